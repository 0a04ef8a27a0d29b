"""OpenDKIM, the real milter, in front of ringmaild.

Signing: OpenDKIM (Mode s, selector od) signs mail from example.test that
ringmaild relays from 127.0.0.1 (OpenDKIM's default InternalHosts), and
the signature in the stored message verifies with dkimpy. Verifying:
OpenDKIM (Mode v) checks a message the client signed with dkimpy and adds
Authentication-Results with dkim=pass. In the variants with ringmaild's own
`dkim:` entry (selector rm), ringmaild signs after the milter, so the stored
message carries both signatures and both verify.

Keys are made with `openssl genpkey` at test time; OpenDKIM reads the
public keys from a TestPublicKeys file and dkimpy from the same file, so no
DNS is used. OpenDKIM is ready once its port accepts connections.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import HOST, DaemonTestCase, free_port
from test_dkim import (KeyDir, dkim_signatures, header_block, header_fields,
                       missing_verifier_tools, run_verifier, submit)

OPENDKIM = shutil.which("opendkim", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
OPENDKIM_READY_TIMEOUT = 10.0

MESSAGE = (
    b"From: Report Bot <reports@example.test>\r\n"
    b"To: ops@example.net\r\n"
    b"Subject: nightly report,\r\n"
    b"   folded onto a second line\r\n"
    b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    b"Message-ID: <opendkim-1@example.test>\r\n"
    b"\r\n"
    b"All jobs finished.\r\n"
    b"trailing blanks   \r\n"
    b"\r\n")


class OpenDkim:
    """One `opendkim -f` milter on a free loopback port, killed at cleanup."""

    def __init__(self, case, directory, settings):
        self.port = free_port()
        self.conf = os.path.join(directory, f"opendkim-{self.port}.conf")
        lines = [f"Socket inet:{self.port}@{HOST}", "Syslog false",
                 "Canonicalization relaxed/relaxed", "RequireSafeKeys false",
                 *settings]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(directory, f"opendkim-{self.port}.log"), "w+b")
        self.proc = subprocess.Popen([OPENDKIM, "-f", "-x", self.conf],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        case.addCleanup(self.stop)
        deadline = time.monotonic() + OPENDKIM_READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                case.fail(f"opendkim exited with {self.proc.returncode}: {self.output()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    case.fail(f"opendkim did not listen on {self.port}: {self.output()}")
                time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def milter(self):
        return {"name": "opendkim", "address": f"{HOST}:{self.port}",
                "on_failure": "tempfail", "timeout": "10s"}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


def field_values(message, name):
    return [value.decode("utf-8", "replace").strip()
            for n, value in header_fields(message) if n.strip().lower() == name.lower()]


class OpenDkimMilterTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        missing = missing_verifier_tools()
        if missing:
            raise unittest.SkipTest(missing)
        cls.keys = KeyDir()
        rsa = ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        cls.od_key = cls.keys.key("od.pem", *rsa)        # OpenDKIM signs with it
        cls.rm_key = cls.keys.key("rm.pem", *rsa)        # ringmaild signs with it
        cls.client_key = cls.keys.key("client.pem", *rsa)  # the submitting client
        cls.keys.publish("od", "example.test", cls.od_key)
        cls.keys.publish("rm", "example.test", cls.rm_key)
        cls.keys.publish("client", "example.test", cls.client_key)

    @classmethod
    def tearDownClass(cls):
        cls.keys.remove()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ringmail-opendkim-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def opendkim_signer(self):
        return OpenDkim(self, self.tmp, ["Mode s", "Domain example.test", "Selector od",
                                         f"KeyFile {self.od_key}"])

    def opendkim_verifier(self):
        return OpenDkim(self, self.tmp, ["Mode v", f"TestPublicKeys {self.keys.keys_file}"])

    def relay(self, opendkim, ringmail_signs, *messages):
        """Starts ringmaild with the milter, relays each message, returns the
        stored bytes of each."""
        overrides = {"milters": [opendkim.milter()]}
        if ringmail_signs:
            overrides["dkim"] = [{"domain": "example.test", "selector": "rm",
                                  "private_key": self.rm_key}]
        rm = self.ringmail(overrides=overrides)
        rm.start()
        stored = []
        for message in messages:
            qid = submit(self, rm.port("relay"), "reports@example.test", ["ops@example.net"],
                         message)
            stored.append(rm.spool_show(qid))
        rm.stop()
        return stored

    def assert_verifier_passes(self, stored, count, verifier="dkimpy"):
        path = os.path.join(self.tmp, f"stored-{verifier}.eml")
        with open(path, "wb") as f:
            f.write(stored)
        code, out = run_verifier(verifier, self.keys.keys_file, path)
        self.assertEqual(code, 0, out)
        self.assertIn(f"PASS {path} {count} signature(s)", out)

    def selectors(self, stored):
        return sorted((sig.get("d"), sig.get("s")) for sig in dkim_signatures(stored))

    def client_signed(self):
        """MESSAGE signed by the client with dkimpy (selector client)."""
        import dkim
        with open(self.client_key, "rb") as f:
            key = f.read()
        return dkim.sign(MESSAGE, b"client", b"example.test", key,
                         canonicalize=(b"relaxed", b"relaxed")) + MESSAGE

    def test_opendkim_signs_relayed_mail(self):
        (stored,) = self.relay(self.opendkim_signer(), False, MESSAGE)
        self.assertEqual(self.selectors(stored), [("example.test", "od")])
        (sig,) = dkim_signatures(stored)
        self.assertEqual(sig.get("c"), "relaxed/relaxed")
        self.assertEqual(sig.get("a"), "rsa-sha256")
        self.assert_verifier_passes(stored, 1)
        # The body reached the milter and the spool unchanged.
        self.assertTrue(stored.endswith(MESSAGE.split(b"\r\n\r\n", 1)[1]), stored[-200:])

    def test_ringmail_signs_after_opendkim(self):
        (stored,) = self.relay(self.opendkim_signer(), True, MESSAGE)
        # ringmaild's signature is the newest one, above OpenDKIM's.
        self.assertEqual([(s.get("d"), s.get("s")) for s in dkim_signatures(stored)],
                         [("example.test", "rm"), ("example.test", "od")],
                         header_block(stored).decode("utf-8", "replace"))
        self.assert_verifier_passes(stored, 2, "dkimpy")
        self.assert_verifier_passes(stored, 2, "opendkim")

    def dkim_result(self, stored):
        """The dkim= result of the one Authentication-Results OpenDKIM added."""
        results = field_values(stored, "Authentication-Results")
        self.assertEqual(len(results), 1, header_block(stored).decode("utf-8", "replace"))
        # authserv-id is the MTA name OpenDKIM got in macro j (the hostname).
        self.assertTrue(results[0].startswith("mx.ringmail.test;"), results[0])
        self.assertIn("header.s=client", results[0])
        found = re.findall(r"\bdkim=(\w+)", results[0])
        self.assertEqual(len(found), 1, results[0])
        return found[0]

    def test_opendkim_verifies_client_signature(self):
        signed = self.client_signed()
        tampered = signed.replace(b"All jobs finished.", b"All jobs failed.")
        stored, stored_tampered = self.relay(self.opendkim_verifier(), False, signed, tampered)
        self.assertEqual(self.dkim_result(stored), "pass")
        self.assertEqual(self.selectors(stored), [("example.test", "client")])
        self.assert_verifier_passes(stored, 1)
        # OpenDKIM saw the body ringmaild received: a changed body fails.
        self.assertEqual(self.dkim_result(stored_tampered), "fail")

    def test_opendkim_verifies_and_ringmail_signs(self):
        (stored,) = self.relay(self.opendkim_verifier(), True, self.client_signed())
        self.assertEqual(self.dkim_result(stored), "pass")
        self.assertEqual(self.selectors(stored), [("example.test", "client"),
                                                  ("example.test", "rm")])
        self.assert_verifier_passes(stored, 2)


if __name__ == "__main__":
    unittest.main()
