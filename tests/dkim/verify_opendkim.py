#!/usr/bin/python3
"""Verifies every DKIM-Signature of each message with OpenDKIM.

Usage: verify_opendkim.py KEYS_FILE MESSAGE_FILE...

Runs `opendkim -t MESSAGE` (OpenDKIM's test mode: the real filter code and
libopendkim, fed from a file instead of a milter connection) with a config
whose TestPublicKeys names KEYS_FILE (lines "<selector>._domainkey.<domain>
<TXT value>"), so no DNS is used. A message passes when the
Authentication-Results header OpenDKIM would add reports dkim=pass once per
DKIM-Signature and nothing else.

Prints "PASS <file> <n> signature(s)" or "FAIL <file>: <reason>" per message
and exits 0 only when every message passed.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

OPENDKIM = shutil.which("opendkim", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def signature_count(message):
    header = message.split(b"\r\n\r\n", 1)[0]
    return len(re.findall(rb"(?im)^dkim-signature[ \t]*:", header))


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    if OPENDKIM is None:
        print("FAIL: opendkim not installed (apt-get install opendkim)")
        return 1
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "opendkim.conf")
        with open(conf, "w") as f:
            f.write("Mode v\nSyslog no\nTestPublicKeys %s\n" % os.path.abspath(argv[1]))
        for path in argv[2:]:
            with open(path, "rb") as f:
                count = signature_count(f.read())
            run = subprocess.run([OPENDKIM, "-x", conf, "-t", path, "-vvv"],
                                 capture_output=True, timeout=60)
            output = (run.stdout + run.stderr).decode("utf-8", "replace")
            results = re.findall(r"\bdkim=(\w+)", output)
            if count == 0 or run.returncode != 0 or results != ["pass"] * count:
                print("FAIL %s: %d signature(s), opendkim exit %d, results %s\n%s" %
                      (path, count, run.returncode, results, output))
                ok = False
            else:
                print("PASS %s %d signature(s)" % (path, count))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
