"""`ringmaild -c F --check-compliance DOMAIN` (Ringmail extension) against a
real dnsmasq on loopback that serves the sender's TXT records.

The DKIM keys are made with openssl in a temp dir; the key record is
published the way DNS panels do for 2048-bit keys, in several
character-strings. Each scenario changes one thing of a compliant sender of
example.test (DKIM key published, SPF at the domain and at the VERP return
path domain, DMARC p=none, one-click unsubscribe, opportunistic outbound
TLS) and compares the exit code and the report lines ("CHECK STATUS
REASON") with what an operator should read."""

import os
import shutil
import tempfile
import unittest

from harness import DaemonTestCase
from peers import Dnsmasq
from test_dkim import dns_record, genpkey

DOMAIN = "example.test"
RETURN_PATH = "bounces.example.test"
SPF = "v=spf1 ip4:127.0.0.1 -all"
DMARC = "v=DMARC1; p=none; rua=mailto:dmarc@example.test"
CHECKS = ["dkim", "spf", "spf", "dmarc", "unsubscribe", "tls", "return_path"]


def report_lines(stdout):
    """[(check, status, reason)] of the report."""
    lines = []
    for line in stdout.decode().splitlines():
        check, status, reason = line.split(None, 2)
        lines.append((check, status, reason))
    return lines


class ComplianceCheck(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.keys = tempfile.mkdtemp(prefix="ringmail-compliance-keys-")
        cls.rsa_key = os.path.join(cls.keys, "s1.pem")
        cls.other_key = os.path.join(cls.keys, "other.pem")
        for path in (cls.rsa_key, cls.other_key):
            genpkey(path, "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        cls.hmac_key = os.path.join(cls.keys, "hmac.key")
        with open(cls.hmac_key, "w") as f:
            f.write("k" * 40 + "\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.keys, ignore_errors=True)

    def compliant_txt(self):
        return {
            f"s1._domainkey.{DOMAIN}": [dns_record(self.rsa_key)],
            DOMAIN: ["google-site-verification=abc", SPF],
            RETURN_PATH: [SPF],
            f"_dmarc.{DOMAIN}": [DMARC],
        }

    def run_check(self, txt, dkim=True, domain=DOMAIN, extra=()):
        """(exit code, report lines, stderr) of the check."""
        dnsmasq = Dnsmasq(self, txt=txt).start()
        overrides = {
            "delivery": {"dns": {"nameservers": [dnsmasq.address]}},
            "policy": {
                "return_path": {"domain": RETURN_PATH, "key_file": self.hmac_key},
                "list_unsubscribe": {"listen": "127.0.0.1:0",
                                     "url": "https://unsubscribe.example.test/u",
                                     "key_file": self.hmac_key},
            },
        }
        if dkim:
            overrides["dkim"] = [{"domain": DOMAIN, "selector": "s1",
                                  "private_key": self.rsa_key}]
        rm = self.ringmail(overrides=overrides)
        result = rm.run_cli("--check-compliance", domain, *extra)
        return result.returncode, report_lines(result.stdout), result.stderr.decode()

    def assertLine(self, lines, check, status, reason_part):
        self.assertTrue(
            any(c == check and s == status and reason_part in r for c, s, r in lines),
            f"no line '{check} {status} ...{reason_part}...' in:\n" +
            "\n".join(" ".join(line) for line in lines))

    def test_a_compliant_domain_passes_with_every_line_ok(self):
        rc, lines, err = self.run_check(self.compliant_txt())
        self.assertEqual(rc, 0, err + repr(lines))
        self.assertEqual([c for c, _, _ in lines], CHECKS)
        for check, status, reason in lines:
            self.assertEqual(status, "ok", f"{check}: {reason}")
        self.assertLine(lines, "dkim", "ok",
                        f"s1._domainkey.{DOMAIN} publishes the rsa key of {self.rsa_key}")
        self.assertLine(lines, "spf", "ok", f'{DOMAIN}: "{SPF}"')
        self.assertLine(lines, "spf", "ok", f"{RETURN_PATH} (policy.return_path")
        self.assertLine(lines, "dmarc", "ok", f"_dmarc.{DOMAIN} p=none")
        self.assertLine(lines, "tls", "ok", "delivery.tls: opportunistic")

    def test_missing_dmarc_fails_naming_it(self):
        txt = self.compliant_txt()
        del txt[f"_dmarc.{DOMAIN}"]
        rc, lines, err = self.run_check(txt)
        self.assertEqual(rc, 1, err + repr(lines))
        self.assertLine(lines, "dmarc", "missing", f"no v=DMARC1 record at _dmarc.{DOMAIN}")
        self.assertEqual([s for c, s, _ in lines if c != "dmarc"], ["ok"] * 6)

    def test_a_published_key_that_is_not_the_private_keys_fails(self):
        txt = self.compliant_txt()
        txt[f"s1._domainkey.{DOMAIN}"] = [dns_record(self.other_key)]
        rc, lines, err = self.run_check(txt)
        self.assertEqual(rc, 1, err + repr(lines))
        own = dns_record(self.rsa_key)
        self.assertLine(lines, "dkim", "missing",
                        "p= is not the public key of the configured private key; "
                        f'publish "{own}"')

    def test_no_dkim_entry_fails(self):
        rc, lines, err = self.run_check(self.compliant_txt(), dkim=False)
        self.assertEqual(rc, 1, err + repr(lines))
        self.assertLine(lines, "dkim", "missing", f"no dkim[] entry signs mail from {DOMAIN}")

    def test_two_spf_records_and_a_broken_key_record_fail(self):
        txt = self.compliant_txt()
        txt[DOMAIN] = [SPF, "v=spf1 mx ~all"]
        txt[f"s1._domainkey.{DOMAIN}"] = ["v=DKIM1; k=rsa; p=not*base64"]
        rc, lines, err = self.run_check(txt)
        self.assertEqual(rc, 1, err + repr(lines))
        self.assertLine(lines, "spf", "missing", "2 v=spf1 records")
        self.assertLine(lines, "dkim", "missing", "not a DKIM key record (p= is not base64)")

    def test_bad_domain_argument_and_bad_config_exit_2(self):
        rc, lines, err = self.run_check(self.compliant_txt(), domain="not a domain")
        self.assertEqual(rc, 2)
        self.assertIn("is not a domain name", err)
        rc, _, err = self.run_check(self.compliant_txt(), extra=("--check-config",))
        self.assertEqual(rc, 2)
        self.assertIn("exclude each other", err)
        rm = self.ringmail()
        rm.write_config(text="hostname: [\n")
        result = rm.run_cli("--check-compliance", DOMAIN)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stdout, b"")

    def test_help_names_the_flag(self):
        result = self.ringmail().run_cli("--help", config=False)
        self.assertEqual(result.returncode, 0)
        self.assertIn(b"--check-compliance DOMAIN", result.stdout)


if __name__ == "__main__":
    unittest.main()
