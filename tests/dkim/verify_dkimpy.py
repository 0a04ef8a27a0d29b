#!/usr/bin/python3
"""Verifies every DKIM-Signature of each message with dkimpy (python3-dkim).

Usage: verify_dkimpy.py KEYS_FILE MESSAGE_FILE...

KEYS_FILE holds one public key per line, as OpenDKIM's TestPublicKeys file:
    <selector>._domainkey.<domain> <TXT record value>
dkimpy's DNS lookup is answered from that file only (no network).

Prints "PASS <file> <n> signature(s)" or "FAIL <file>: <reason>" per message
and exits 0 only when every signature of every message verified.
"""
import sys

import dkim


def load_keys(path):
    keys = {}
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            name, _, value = line.partition(b" ")
            keys[name.lower().rstrip(b".")] = value.strip()
    return keys


def signature_count(message):
    headers, _ = dkim.rfc822_parse(message)
    return sum(1 for name, _ in headers if name.lower() == b"dkim-signature")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    keys = load_keys(argv[1])

    def dnsfunc(name, timeout=5):
        return keys.get(name.lower().rstrip(b"."))

    ok = True
    for path in argv[2:]:
        with open(path, "rb") as f:
            message = f.read()
        count = signature_count(message)
        if count == 0:
            print("FAIL %s: no DKIM-Signature" % path)
            ok = False
            continue
        verifier = dkim.DKIM(message, minkey=1024)
        failures = []
        for idx in range(count):
            try:
                if not verifier.verify(idx=idx, dnsfunc=dnsfunc):
                    failures.append("signature %d does not verify" % idx)
            except dkim.DKIMException as e:
                failures.append("signature %d: %s" % (idx, e))
        if failures:
            print("FAIL %s: %s" % (path, "; ".join(failures)))
            ok = False
        else:
            print("PASS %s %d signature(s)" % (path, count))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
