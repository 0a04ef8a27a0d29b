"""DKIM signing end to end: ringmaild signs accepted mail on the way into the
spool, and two independent verifiers (dkimpy and OpenDKIM, tests/dkim/)
check what `ringmaild --spool-show ID` prints.

Keys are made with `openssl genpkey` in a temp dir; the public halves go to
a TestPublicKeys-style file ("<selector>._domainkey.<domain> <TXT value>")
that both verifiers read instead of DNS.
"""

import base64
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from harness import QUEUED_RE, DaemonTestCase, line_of

SOURCE_DIR = os.environ.get("RINGMAIL_SOURCE_DIR",
                            os.path.join(os.path.dirname(__file__), "..", ".."))
VERIFIERS = {
    "dkimpy": os.path.join(SOURCE_DIR, "tests", "dkim", "verify_dkimpy.py"),
    "opendkim": os.path.join(SOURCE_DIR, "tests", "dkim", "verify_opendkim.py"),
}
PYTHON = "/usr/bin/python3"
DAY = 24 * 3600

# Ed25519 SubjectPublicKeyInfo in DER is a fixed 12-byte prefix plus the raw
# 32-byte key, which is what p= holds for k=ed25519 (RFC 8463).
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def genpkey(path, *args):
    subprocess.run(["openssl", "genpkey", *args, "-out", path],
                   check=True, capture_output=True, timeout=120)
    os.chmod(path, 0o600)


def dns_record(private_key_path):
    """The TXT value to publish for a PEM private key (RSA or Ed25519)."""
    der = subprocess.run(["openssl", "pkey", "-in", private_key_path, "-pubout",
                          "-outform", "DER"],
                         check=True, capture_output=True, timeout=30).stdout
    if der.startswith(ED25519_SPKI_PREFIX) and len(der) == 44:
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[12:]).decode()
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def header_block(message):
    return message.split(b"\r\n\r\n", 1)[0]


def header_fields(message):
    """[(name, raw value with folding)] of the header block, in order."""
    fields = []
    for line in header_block(message).split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + b"\r\n" + line)
        else:
            name, _, value = line.partition(b":")
            fields.append((name.decode("ascii", "replace"), value))
    return fields


def dkim_signatures(message):
    """Each DKIM-Signature as {tag: value} (whitespace removed, RFC 6376 3.2)."""
    sigs = []
    for name, value in header_fields(message):
        if name.strip().lower() != "dkim-signature":
            continue
        tags = {}
        for part in value.decode("ascii").split(";"):
            tag, eq, val = part.partition("=")
            if eq:
                tags[tag.strip()] = re.sub(r"\s+", "", val)
        sigs.append(tags)
    return sigs


def body_of(message):
    return message.split(b"\r\n\r\n", 1)[1]


def queued_id(resp):
    m = QUEUED_RE.search(resp.decode("utf-8", "replace"))
    return m.group(1) if m else None


def missing_verifier_tools():
    """Why the verifiers cannot run here, or None."""
    for path in VERIFIERS.values():
        if not os.path.exists(path):
            return f"{path} missing"
    if shutil.which("opendkim", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        return "opendkim not installed (apt-get install opendkim)"
    if subprocess.run([PYTHON, "-c", "import dkim, nacl"], capture_output=True).returncode != 0:
        return "dkimpy or PyNaCl missing (apt-get install python3-dkim python3-nacl)"
    return None


def run_verifier(verifier, keys_file, *paths):
    """(exit code, output) of tests/dkim/verify_<verifier>.py."""
    run = subprocess.run([PYTHON, VERIFIERS[verifier], keys_file, *paths],
                         capture_output=True, timeout=120)
    return run.returncode, (run.stdout + run.stderr).decode("utf-8", "replace")


def submit(case, port, sender, recipients, message, options=()):
    """One transaction with smtplib; returns the queue id from the 250 reply."""
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.ringmail.test", timeout=30)
    case.addCleanup(s.close)
    case.assertEqual(s.ehlo()[0], 250)
    code, resp = s.mail(sender, list(options))
    case.assertEqual(code, 250, resp)
    for rcpt in recipients:
        code, resp = s.rcpt(rcpt)
        case.assertEqual(code, 250, resp)
    code, resp = s.data(message)
    case.assertEqual(code, 250, resp)
    qid = queued_id(resp)
    case.assertTrue(qid, resp)
    s.quit()
    return qid


LONG_SUBJECT = (
    "Subject: Quarterly report \u2014 r\u00e9sum\u00e9 of every caf\u00e9 visited this "
    "season, with figures\r\n"
    "  \tthat do not fit on one line, folded   twice with  odd   whitespace\r\n"
    " \u2603 and a snowman at the end")

# 8-bit UTF-8 (SMTPUTF8 + 8BITMIME), a folded long Subject, two recipients.
UTF8_MESSAGE = (
    "From: \u00c9lodie \u00dcnic\u00f6de <\u00e9lodie@example.test>\r\n"
    "To: r1@example.net, r2@example.net\r\n"
    f"{LONG_SUBJECT}\r\n"
    "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    "Message-ID: <utf8-1@example.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Na\u00efve caf\u00e9 body \u2603 \u2014 \u00fcber 8-bit.\r\n"
    ".a line that needs dot-stuffing\r\n"
    "\u65e5\u672c\u8a9e\u306e\u884c\r\n").encode("utf-8")

# Whitespace that relaxed and simple canonicalization treat differently.
# Every field has exactly one space after the colon: `opendkim -t` hands
# header values to the filter milter-style, without the whitespace after
# the colon, so it cannot check simple header canonicalization of other
# spacing (see ODD_SPACING_MESSAGE, checked with dkimpy alone).
WHITESPACE_MESSAGE = (
    b"From: Plain   Sender   <plain@Example.TEST>\r\n"
    b"To: r3@example.net\r\n"
    b"subject: spaced    out  \r\n"
    b"Message-ID: <ws-1@example.test>\r\n"
    b"\r\n"
    b"line with trailing space   \r\n"
    b"  indented\tand\t tabbed  \r\n"
    b"\r\n"
    b"\r\n"
    b"\r\n")

ODD_SPACING_MESSAGE = (
    b"From:plain@example.test\r\n"
    b"To:    r3@example.net\r\n"
    b"Subject:\t tabbed after the colon\r\n"
    b"\r\n"
    b"body\r\n")

SUBDOMAIN_MESSAGE = (
    b"From: Sub Sender <someone@sub.other.test>\r\n"
    b"To: r4@example.net\r\n"
    b"Subject: from a subdomain\r\n"
    b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    b"Message-ID: <sub-1@sub.other.test>\r\n"
    b"\r\n"
    b"Signed by the parent domain.\r\n")

UNSIGNED_MESSAGE = (
    b"From: nobody@unsigned.test\r\n"
    b"To: r5@example.net\r\n"
    b"Subject: no key for this domain\r\n"
    b"\r\n"
    b"Not signed.\r\n")


class KeyDir:
    """A temp dir with generated keys and the public-key file for verifiers."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="ringmail-dkim-keys-")
        self.records = []

    def key(self, name, *genpkey_args):
        path = os.path.join(self.path, name)
        genpkey(path, *genpkey_args)
        return path

    def publish(self, selector, domain, private_key_path):
        self.records.append(f"{selector}._domainkey.{domain} {dns_record(private_key_path)}")
        with open(self.keys_file, "w") as f:
            f.write("\n".join(self.records) + "\n")

    @property
    def keys_file(self):
        return os.path.join(self.path, "public-keys.txt")

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


class DkimSigningTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        missing = missing_verifier_tools()
        if missing:
            raise unittest.SkipTest(missing)
        cls.keys = KeyDir()
        cls.rsa_key = cls.keys.key("rsa.pem", "-algorithm", "RSA",
                                   "-pkeyopt", "rsa_keygen_bits:2048")
        cls.ed_key = cls.keys.key("ed.pem", "-algorithm", "ED25519")
        cls.other_key = cls.keys.key("other.pem", "-algorithm", "RSA",
                                     "-pkeyopt", "rsa_keygen_bits:2048")
        cls.keys.publish("rsa", "example.test", cls.rsa_key)
        cls.keys.publish("ed", "example.test", cls.ed_key)
        cls.keys.publish("o1", "other.test", cls.other_key)

    @classmethod
    def tearDownClass(cls):
        cls.keys.remove()

    def setUp(self):
        self.rm = self.ringmail(overrides={"dkim": [
            {"domain": "example.test", "selector": "rsa", "private_key": self.rsa_key,
             "canonicalization": "relaxed/relaxed"},
            {"domain": "example.test", "selector": "ed", "private_key": self.ed_key,
             "canonicalization": "simple/simple"},
            {"domain": "other.test", "selector": "o1", "private_key": self.other_key,
             "subdomains": True, "expire_after": "1d"},
        ]})
        self.rm.start()
        self.work = os.path.join(self.rm.dir, "messages")
        os.makedirs(self.work)

    # ---- helpers

    def submit(self, sender, recipients, message, options=()):
        return submit(self, self.rm.port("relay"), sender, recipients, message, options)

    def save(self, name, data):
        path = os.path.join(self.work, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def verify(self, verifier, *paths):
        return run_verifier(verifier, self.keys.keys_file, *paths)

    def assertVerifies(self, path, signatures):
        for verifier in VERIFIERS:
            rc, out = self.verify(verifier, path)
            self.assertEqual(rc, 0, f"{verifier} on {path}:\n{out}")
            self.assertIn(f"PASS {path} {signatures} signature(s)", out, f"{verifier}:\n{out}")

    def assertFailsVerification(self, path):
        for verifier in VERIFIERS:
            rc, out = self.verify(verifier, path)
            self.assertNotEqual(rc, 0, f"{verifier} accepted a tampered message:\n{out}")
            self.assertIn(f"FAIL {path}", out, f"{verifier}:\n{out}")

    def assertStoredAfterSignatures(self, stored, submitted):
        """The stored message is the submitted one with trace and signature
        fields above it: the submitted bytes come through unchanged."""
        self.assertTrue(stored.endswith(submitted),
                        f"stored message does not end with the submitted bytes:\n{stored!r}")
        added = header_fields(stored[:len(stored) - len(submitted)] + b"\r\n")
        names = sorted({n.strip().lower() for n, _ in added})
        self.assertEqual(names, ["dkim-signature", "received"], added)

    # ---- tests

    def test_signed_messages_verify_with_dkimpy_and_opendkim(self):
        before = int(time.time())
        utf8_id = self.submit("\u00e9lodie@example.test", ["r1@example.net", "r2@example.net"],
                              UTF8_MESSAGE, ["SMTPUTF8", "BODY=8BITMIME"])
        ws_id = self.submit("plain@example.test", ["r3@example.net"], WHITESPACE_MESSAGE)
        sub_id = self.submit("someone@sub.other.test", ["r4@example.net"], SUBDOMAIN_MESSAGE)
        unsigned_id = self.submit("nobody@unsigned.test", ["r5@example.net"], UNSIGNED_MESSAGE)
        after = int(time.time())

        # While the daemon runs: LMDB readers do not block the writer.
        stored = {qid: self.rm.spool_show(qid) for qid in (utf8_id, ws_id, sub_id, unsigned_id)}
        self.rm.assert_running("after --spool-show")

        # example.test: one rsa-sha256 (relaxed/relaxed) and one
        # ed25519-sha256 (simple/simple) signature, made once for the
        # message, not once per recipient.
        for qid, submitted in ((utf8_id, UTF8_MESSAGE), (ws_id, WHITESPACE_MESSAGE)):
            msg = stored[qid]
            self.assertStoredAfterSignatures(msg, submitted)
            sigs = sorted(dkim_signatures(msg), key=lambda s: s.get("s", ""))
            self.assertEqual(len(sigs), 2, f"{qid}: {sigs}")
            ed, rsa = sigs
            self.assertEqual((rsa.get("v"), rsa.get("a"), rsa.get("d"), rsa.get("s"), rsa.get("c")),
                             ("1", "rsa-sha256", "example.test", "rsa", "relaxed/relaxed"), rsa)
            self.assertEqual((ed.get("v"), ed.get("a"), ed.get("d"), ed.get("s"), ed.get("c")),
                             ("1", "ed25519-sha256", "example.test", "ed", "simple/simple"), ed)
            for sig in sigs:
                self.assertNotIn("x", sig, "no expire_after: no x=")
                self.assertTrue(before <= int(sig["t"]) <= after + 1, sig)
                self.assertEqual(sig["h"].lower().split(":")[0], "from", sig)
            path = self.save(f"{qid}.eml", msg)
            self.assertVerifies(path, 2)

        # The folded Subject and the 8-bit body are signed as submitted.
        utf8 = stored[utf8_id]
        self.assertIn(LONG_SUBJECT.encode("utf-8"), header_block(utf8))
        self.assertEqual(body_of(utf8), body_of(UTF8_MESSAGE))
        for sig in dkim_signatures(utf8):
            self.assertIn("subject", sig["h"].lower().split(":"), sig)

        # sub.other.test is signed by other.test (subdomains: true) with x=.
        sub = stored[sub_id]
        self.assertStoredAfterSignatures(sub, SUBDOMAIN_MESSAGE)
        sigs = dkim_signatures(sub)
        self.assertEqual(len(sigs), 1, sigs)
        sig = sigs[0]
        self.assertEqual((sig.get("d"), sig.get("s"), sig.get("a"), sig.get("c")),
                         ("other.test", "o1", "rsa-sha256", "relaxed/relaxed"), sig)
        self.assertIn("x", sig, sig)
        self.assertEqual(int(sig["x"]) - int(sig["t"]), DAY, sig)
        self.assertVerifies(self.save(f"{sub_id}.eml", sub), 1)

        # No key for unsigned.test: stored without a DKIM-Signature.
        unsigned = stored[unsigned_id]
        self.assertTrue(unsigned.endswith(UNSIGNED_MESSAGE), unsigned)
        self.assertNotIn(b"dkim-signature", unsigned.lower())
        self.assertEqual(dkim_signatures(unsigned), [])

        # One changed body byte breaks every signature, for both verifiers.
        for qid in (utf8_id, sub_id):
            msg = stored[qid]
            at = len(header_block(msg)) + 4 + 2  # inside the first body line
            tampered = msg[:at] + bytes([msg[at] ^ 0x01]) + msg[at + 1:]
            self.assertEqual(len(tampered), len(msg))
            self.assertFailsVerification(self.save(f"{qid}-tampered.eml", tampered))

        # The spool keeps the same bytes after a restart-free stop.
        self.rm.stop()
        for qid, msg in stored.items():
            self.assertEqual(self.rm.spool_show(qid), msg, qid)

    def test_header_only_tampering_fails_relaxed_and_simple(self):
        qid = self.submit("plain@example.test", ["r3@example.net"], WHITESPACE_MESSAGE)
        msg = self.rm.spool_show(qid)
        self.assertVerifies(self.save("ok.eml", msg), 2)
        tampered = msg.replace(b"subject: spaced    out  ", b"subject: spaced    OUT  ", 1)
        self.assertNotEqual(tampered, msg)
        self.assertFailsVerification(self.save("subject-changed.eml", tampered))

    def test_spacing_after_the_colon_is_kept_for_simple_canonicalization(self):
        qid = self.submit("plain@example.test", ["r3@example.net"], ODD_SPACING_MESSAGE)
        msg = self.rm.spool_show(qid)
        self.assertStoredAfterSignatures(msg, ODD_SPACING_MESSAGE)
        path = self.save("odd.eml", msg)
        # dkimpy only: `opendkim -t` drops the whitespace after the colon
        # before canonicalizing (milter-style header values).
        rc, out = self.verify("dkimpy", path)
        self.assertEqual(rc, 0, out)
        self.assertIn(f"PASS {path} 2 signature(s)", out)
        respaced = msg.replace(b"\r\nTo:    r3@", b"\r\nTo: r3@", 1)
        self.assertNotEqual(respaced, msg)
        rc, out = self.verify("dkimpy", self.save("respaced.eml", respaced))
        # relaxed/relaxed (rsa) survives the change, simple/simple (ed) does not.
        self.assertNotEqual(rc, 0, "simple/simple must not survive a whitespace change:\n" + out)
        self.assertEqual(out.count("does not verify"), 1, out)

    def test_spool_show_unknown_id(self):
        out = self.rm.run_cli("--spool-show", "no-such-message-id")
        self.assertEqual(out.returncode, 1, out)
        self.assertEqual(out.stdout, b"")
        self.assertIn(b"no-such-message-id", out.stderr)


class DkimKeySizeTest(DaemonTestCase):

    def setUp(self):
        self.keys = KeyDir()
        self.addCleanup(self.keys.remove)

    def dkim_config(self, key_path):
        return {"dkim": [{"domain": "example.test", "selector": "s1", "private_key": key_path}]}

    def test_1024_bit_key_warns_but_starts(self):
        missing = missing_verifier_tools()
        if missing:
            self.skipTest(missing)
        key = self.keys.key("rsa1024.pem", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024")
        rm = self.ringmail(overrides=self.dkim_config(key))
        out = rm.run_cli("--check-config")
        err = out.stderr.decode("utf-8", "replace")
        self.assertEqual(out.returncode, 0, err)
        line = line_of(rm.config_text, key)
        self.assertRegex(err, re.escape(f"{rm.config_path}:{line}: dkim[0].private_key: ") +
                         r".*1024 bits.*\(warning\)")
        rm.start()
        rm.assert_running()
        # A key that only warns still signs, and receivers can verify it.
        self.keys.publish("s1", "example.test", key)
        qid = submit(self, rm.port("relay"), "plain@example.test", ["r3@example.net"],
                     WHITESPACE_MESSAGE)
        msg = rm.spool_show(qid)
        sigs = dkim_signatures(msg)
        self.assertEqual([(x["a"], x["s"]) for x in sigs], [("rsa-sha256", "s1")], sigs)
        path = os.path.join(self.keys.path, "weak.eml")
        with open(path, "wb") as f:
            f.write(msg)
        for verifier in VERIFIERS:
            rc, out = run_verifier(verifier, self.keys.keys_file, path)
            self.assertEqual(rc, 0, f"{verifier}:\n{out}")
            self.assertIn(f"PASS {path} 1 signature(s)", out, verifier)
        rm.stop()

    def test_512_bit_key_is_refused(self):
        try:
            key = self.keys.key("rsa512.pem", "-algorithm", "RSA",
                                "-pkeyopt", "rsa_keygen_bits:512")
        except subprocess.CalledProcessError as e:
            self.skipTest(f"openssl will not make a 512-bit key: {e.stderr!r}")
        rm = self.ringmail(overrides=self.dkim_config(key))
        line = line_of(rm.config_text, key)
        prefix = f"{rm.config_path}:{line}: dkim[0].private_key: "
        out = rm.run_cli("--check-config")
        err = out.stderr.decode("utf-8", "replace")
        self.assertEqual(out.returncode, 1, err)
        self.assertIn(prefix, err)
        self.assertIn("512 bits", err)
        # Starting is refused the same way, before READY=1.
        proc = rm.spawn()
        rc = proc.wait(30)
        self.assertEqual(rc, 1, rm.stderr_text())
        self.assertIn(prefix, rm.stderr_text())
        self.assertFalse(rm.wait_notification("READY=1", 0.1))


if __name__ == "__main__":
    unittest.main()
