"""GET /api/v1/explain and `ringmailctl explain` against a running ringmaild:
the limits in force for a destination and what set each.

dnsmasq is authoritative for "test" and for "google.com", so that one
domain's MX hosts carry Google's real names (gmail-smtp-in.l.google.com) on
a loopback address: the shipped gmail defaults apply to it. Other domains
get a policy.shaping domain rule or an mx_suffix rule. Each scenario
compares the API's JSON (and ringmailctl's table) with the config, and mail
to the Google-named MX is still delivered."""

import json
import subprocess
import unittest

from peers import Dnsmasq, wait_until
from test_admin_api import AdminCase
from test_ringmailctl import ringmailctl_path

WAIT = 20.0
GOOGLE_MX = "gmail-smtp-in.l.google.com"
GOOGLE_ALT = "alt1.gmail-smtp-in.l.google.com"
GOOGLE_IP = "127.0.0.2"
PLAIN_MX = "mx.plain.test"
PLAIN_IP = "127.0.0.3"

SHAPING = [
    {"match": {"domain": "vip.test"}, "max_connections": 3, "message_rate": "120/m"},
    {"match": {"mx_suffix": ".plain.test"}, "max_messages_per_connection": 7,
     "connection_rate": "5/s"},
]


def limits_by_name(body):
    return {limit["name"]: (limit["value"], limit["set_by"]) for limit in body["limits"]}


class ExplainCase(AdminCase):
    def setUp(self):
        super().setUp()
        self.dnsmasq = Dnsmasq(self, zones=["google.com"], mx={
            "gmail.test": [(5, GOOGLE_MX), (10, GOOGLE_ALT)],
            "plain.test": [(10, PLAIN_MX)],
            "vip.test": [(10, PLAIN_MX)],
        }, hosts={GOOGLE_MX: GOOGLE_IP, GOOGLE_ALT: GOOGLE_IP, PLAIN_MX: PLAIN_IP},
            null_mx=["nomail.test"]).start()
        self.rm, self.api = self.admin_daemon(delivery={
            "dns": {"nameservers": [self.dnsmasq.address]},
            "max_connections_per_site": 9,
            "max_messages_per_connection": 40,
        }, policy={
            "sources": [{"name": "ip1", "address": "127.0.0.1"},
                        {"name": "ip2", "address": "127.0.0.5"}],
            "pools": [{"name": "default", "sources": ["ip1"]}],
            "shaping": SHAPING,
        })

    def explain(self, query):
        return self.api.get(f"/api/v1/explain?{query}")


class Explain(ExplainCase):
    def test_a_google_mx_gets_the_shipped_gmail_defaults(self):
        body = self.api.ok("GET", "/api/v1/explain?domain=Gmail.TEST")
        self.assertEqual(list(body), ["domain", "site", "provider", "source", "limits"])
        self.assertEqual(body["domain"], "gmail.test")
        self.assertEqual(body["site"], f"{GOOGLE_ALT},{GOOGLE_MX}")
        self.assertEqual(body["provider"], "gmail")
        self.assertEqual(body["source"], "ip1", "the default pool's first source")
        self.assertEqual(limits_by_name(body), {
            "max_connections": (5, "shipped provider gmail"),
            "max_connections_scope": ("provider", "shipped provider gmail"),
            "max_messages_per_connection": (50, "shipped provider gmail"),
            "message_rate": ("unlimited", "delivery defaults"),
            "connection_rate": ("unlimited", "delivery defaults"),
            "tls_required": (True, "shipped provider gmail"),
        })

    def test_shaping_rules_name_their_index_and_the_rest_is_delivery_defaults(self):
        # vip.test: rule 0 (a domain rule) matches first; rule 1 would match
        # its MX too but is not looked at.
        body = self.api.ok("GET", "/api/v1/explain?domain=vip.test&source=ip2")
        self.assertEqual(body["site"], PLAIN_MX)
        self.assertIsNone(body["provider"])
        self.assertEqual(body["source"], "ip2")
        self.assertEqual(limits_by_name(body), {
            "max_connections": (3, "policy.shaping[0]"),
            "max_connections_scope": ("site", "policy.shaping[0]"),
            "max_messages_per_connection": (40, "delivery defaults"),
            "message_rate": ("120/m", "policy.shaping[0]"),
            "message_rate_burst": (120, "policy.shaping[0]"),
            "connection_rate": ("unlimited", "delivery defaults"),
            "tls_required": (False, "delivery defaults"),
        })
        body = self.api.ok("GET", "/api/v1/explain?domain=plain.test")
        self.assertEqual(limits_by_name(body), {
            "max_connections": (9, "delivery defaults"),
            "max_connections_scope": ("site", "delivery defaults"),
            "max_messages_per_connection": (7, "policy.shaping[1]"),
            "message_rate": ("unlimited", "delivery defaults"),
            "connection_rate": ("5/s", "policy.shaping[1]"),
            "connection_rate_burst": (5, "policy.shaping[1]"),
            "tls_required": (False, "delivery defaults"),
        })

    def test_bad_requests_are_named(self):
        status, body, _, _ = self.explain("domain=gmail.test&source=nope")
        self.assertEqual(status, 400)
        self.assertEqual(body["error"], "unknown source")
        self.assertIn('"nope"', body["detail"])
        status, body, _, _ = self.explain("source=ip1")
        self.assertEqual(status, 400)
        self.assertIn("domain", body["detail"])
        status, body, _, _ = self.explain("domain=a%40b.test")
        self.assertEqual((status, body["detail"]), (400, "domain: not a domain name"))
        status, body, _, _ = self.explain("domain=nomail.test")
        self.assertEqual(status, 404, body)
        self.assertEqual(body["error"], "no destination")
        self.assertEqual(self.api.get("/api/v1/explain?domain=gmail.test", token=False)[0], 401)
        self.rm.stop()

    def test_mail_to_the_google_named_mx_is_delivered(self):
        rx = self.receiver(GOOGLE_IP, tls=True, hostname=GOOGLE_MX)
        self.send(self.rm, ["a@gmail.test", "b@gmail.test"], "shipped defaults")
        self.wait_record(self.rm, "Delivery", "a@gmail.test")
        self.wait_record(self.rm, "Delivery", "b@gmail.test")
        self.assertTrue(wait_until(lambda: rx.transactions, WAIT))
        [record] = self.records(self.rm, "Delivery", "a@gmail.test")
        self.assertEqual(record["site"], f"{GOOGLE_ALT},{GOOGLE_MX}", record)
        self.rm.stop()


class ExplainCtl(ExplainCase):
    def ctl(self, *args):
        return subprocess.run([ringmailctl_path(), "-c", self.rm.config_path, *args],
                              capture_output=True, text=True, timeout=60, cwd=self.rm.dir)

    def test_table_and_json(self):
        p = self.ctl("explain", "gmail.test")
        self.assertEqual((p.returncode, p.stderr), (0, ""), p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["domain", "gmail.test"])
        self.assertEqual(lines[2].split(), ["provider", "gmail"])
        self.assertEqual(lines[3].split(), ["source", "ip1"])
        header = next(i for i, line in enumerate(lines)
                      if line.split() == ["LIMIT", "VALUE", "SET-BY"])
        rows = [line.split(None, 2) for line in lines[header + 1:]]
        self.assertIn(["max_connections", "5", "shipped provider gmail"], rows)
        self.assertIn(["tls_required", "true", "shipped provider gmail"], rows)
        self.assertIn(["message_rate", "unlimited", "delivery defaults"], rows)

        p = self.ctl("--json", "explain", "vip.test", "--source", "ip2")
        self.assertEqual(p.returncode, 0, p.stderr)
        body = json.loads(p.stdout)
        self.assertEqual(body, self.api.ok("GET", "/api/v1/explain?domain=vip.test&source=ip2"))
        self.assertEqual(limits_by_name(body)["max_connections"], (3, "policy.shaping[0]"))

        p = self.ctl("explain", "gmail.test", "--source", "nope")
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown source", p.stderr)
        p = self.ctl("explain")
        self.assertEqual(p.returncode, 2)
        self.rm.stop()


if __name__ == "__main__":
    unittest.main()
