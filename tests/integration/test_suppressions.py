"""Suppression lists against a running ringmaild: an address on its tenant's
list or on "*" is accepted, logged Suppressed with the entry's reason,
counted (stats, campaign stats, metric) and never reaches the receiver; a
synchronous hard bounce puts the address on the list by itself, a soft one
does not; the API and ringmailctl add, list, remove, import and export; and
the lists survive a SIGTERM restart and kill -9 (an entry the API
acknowledged, and one a bounce added)."""

import os
import unittest
import urllib.parse

from harness import send_message
from peers import wait_until
from test_campaigns import TENANT, campaign_text
from test_delivery import SENDER
from test_ringmailctl import CtlCase

WAIT = 20.0


class SuppressionCase(CtlCase):
    def route_to(self, ip, port=None):
        return [{"domain": "*.sup.test", "smarthost": f"{ip}:{port or self.smtp_port}"}]

    def send(self, rm, rcpt, campaign="supp"):
        reply = send_message(rm.port("relay"), SENDER, [rcpt], campaign_text(rcpt, campaign))
        self.assertEqual(reply.code, 250, f"{rcpt}: {reply!r}")
        return reply.queued_id

    def suppressed_records(self, rm):
        return [r for r in rm.delivery_log("Suppressed")]

    def list(self, api, **query):
        path = "/api/v1/suppressions"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return api.ok("GET", path)["suppressions"]

    def rcpt_tries(self, rx, address):
        return sum(1 for t in rx.transactions for a, _ in t.rcpts if a.lower() == address)


class Suppression(SuppressionCase):
    def test_a_listed_address_is_accepted_logged_counted_and_never_delivered(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        status, body, _, _ = api.post("/api/v1/suppressions",
                                      {"tenant": TENANT, "addresses": ["Gone@A.sup.test"],
                                       "reason": "asked us to stop"})
        self.assertEqual(status, 201, body)
        self.assertEqual(body, {"added": 1})
        status, body, _, _ = api.post("/api/v1/suppressions",
                                      {"tenant": "*", "address": "all@a.sup.test"})
        self.assertEqual(status, 201, body)
        status, body, _, _ = api.post("/api/v1/suppressions",
                                      {"tenant": "someone-else", "address": "other@a.sup.test"})
        self.assertEqual(status, 201, body)

        for rcpt in ["gone@a.sup.test", "all@a.sup.test", "other@a.sup.test", "ok@a.sup.test"]:
            self.send(rm, rcpt)
        self.assertTrue(wait_until(lambda: len(self.delivered_to(rx)) >= 2, WAIT))
        self.assertTrue(wait_until(lambda: len(self.suppressed_records(rm)) >= 2, WAIT))
        self.assertEqual(sorted(a.lower() for a in self.delivered_to(rx)),
                         ["ok@a.sup.test", "other@a.sup.test"],
                         "another tenant's list does not apply")
        records = {r["recipient"]: r for r in self.suppressed_records(rm)}
        self.assertEqual(sorted(records), ["all@a.sup.test", "gone@a.sup.test"])
        self.assertEqual(records["gone@a.sup.test"]["reason"], "asked us to stop")
        self.assertEqual(records["gone@a.sup.test"]["campaign"], "supp")
        self.assertEqual(records["all@a.sup.test"]["suppression"]["tenant"], "*")

        stats = api.ok("GET", "/api/v1/stats")
        self.assertEqual(stats["suppressed"], 2, stats)
        campaign = wait_until(lambda: (lambda c: c if c["stats"]["suppressed"] == 2 and
                                       c["stats"]["queued"] == 0 else None)(
            api.ok("GET", "/api/v1/campaigns/supp")), WAIT)
        self.assertTrue(campaign, api.ok("GET", "/api/v1/campaigns/supp"))
        self.assertEqual(campaign["stats"]["delivered"], 2)
        payload = api.request("GET", "/metrics")[3].decode()
        self.assertIn("ringmail_messages_suppressed_total 2", payload)
        rm.stop()

    def test_a_hard_bounce_suppresses_the_next_message_a_soft_one_does_not(self):
        rx = self.receiver("127.0.0.2", rcpt={"nouser@b.sup.test": "550 5.1.1 no such user",
                                              "full@b.sup.test": "452 4.2.2 mailbox full",
                                              "spam@b.sup.test": "550 5.7.1 rejected as spam"})
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"), intervals=("1h",))
        for rcpt in ["nouser@b.sup.test", "full@b.sup.test", "spam@b.sup.test"]:
            self.send(rm, rcpt)
        self.assertTrue(wait_until(lambda: len(rm.delivery_log("Bounce")) >= 2 and
                                   rm.delivery_log("TransientFailure"), WAIT))
        # Read from the spool: the entry is committed (with the bounce).
        listed = self.list(api, tenant=TENANT)
        self.assertEqual([e["address"] for e in listed], ["nouser@b.sup.test"])
        entry = listed[0]
        self.assertEqual(entry["source"], "bounce")
        self.assertEqual(entry["category"], "InvalidRecipient")
        self.assertEqual(entry["campaign"], "supp")
        self.assertIn("550 5.1.1", entry["reason"])
        # kill -9 right after: the entry came with the bounce's commit.
        rm.kill9()
        rm.start()
        before = self.rcpt_tries(rx, "nouser@b.sup.test")
        self.assertEqual(before, 1)
        self.send(rm, "NoUser@b.sup.test")
        self.send(rm, "spam@b.sup.test")
        self.assertTrue(wait_until(lambda: self.suppressed_records(rm), WAIT))
        self.assertTrue(wait_until(lambda: len(rm.delivery_log("Bounce")) >= 3, WAIT))
        self.assertEqual([r["recipient"] for r in self.suppressed_records(rm)],
                         ["NoUser@b.sup.test"])
        self.assertIn("550 5.1.1", self.suppressed_records(rm)[0]["reason"])
        self.assertEqual(self.rcpt_tries(rx, "nouser@b.sup.test"), before, "never attempted")
        # At least twice: the kill may have cut the first bounce's commit, so
        # that it was tried again after the restart.
        self.assertGreaterEqual(self.rcpt_tries(rx, "spam@b.sup.test"), 2,
                                "a spam block suppresses nobody")
        rm.stop()

    def test_lists_survive_sigterm_and_kill9_and_removal_lets_mail_through(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        api.post("/api/v1/suppressions", {"tenant": TENANT, "address": "a@c.sup.test"})
        rm.stop()
        rm.start()
        status, body, _, _ = api.post("/api/v1/suppressions",
                                      {"tenant": TENANT, "address": "b@c.sup.test"})
        self.assertEqual(status, 201, body)
        rm.kill9()  # the 201 means it is on disk
        rm.start()
        self.assertEqual([e["address"] for e in self.list(api, tenant=TENANT)],
                         ["a@c.sup.test", "b@c.sup.test"])
        self.send(rm, "a@c.sup.test")
        self.send(rm, "b@c.sup.test")
        self.assertTrue(wait_until(lambda: len(self.suppressed_records(rm)) >= 2, WAIT))
        status, body, _, _ = api.request(
            "DELETE", "/api/v1/suppressions?" + urllib.parse.urlencode(
                {"tenant": TENANT, "address": "A@c.sup.test"}))
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"removed": 1})
        status, body, _, _ = api.request(
            "DELETE", "/api/v1/suppressions?" + urllib.parse.urlencode(
                {"tenant": TENANT, "address": "a@c.sup.test"}))
        self.assertEqual(status, 404, body)
        self.send(rm, "a@c.sup.test")
        self.assertTrue(wait_until(lambda: self.delivered_to(rx), WAIT))
        self.assertEqual([a.lower() for a in self.delivered_to(rx)], ["a@c.sup.test"])
        rm.stop()

    def test_ringmailctl_add_list_import_export_remove(self):
        rm, api = self.admin_daemon()
        out = self.ok("suppressions", "add", "--tenant", "app", "x@d.sup.test", "y@d.sup.test",
                      "--reason", "from the ctl", rm=rm)
        self.assertIn("2", out)
        path = os.path.join(rm.dir, "import.txt")
        with open(path, "w") as f:
            f.write("# old list\nz@d.sup.test\n\n  w@d.sup.test  \n")
        self.ok("suppressions", "import", "--tenant", "app", path, rm=rm)
        listed = self.ok("suppressions", "list", "--tenant", "app", rm=rm)
        for a in ["w@d.sup.test", "x@d.sup.test", "y@d.sup.test", "z@d.sup.test"]:
            self.assertIn(a, listed)
        exported = self.ok("suppressions", "export", "--tenant", "app", rm=rm)
        self.assertEqual(exported.split(), ["w@d.sup.test", "x@d.sup.test", "y@d.sup.test",
                                            "z@d.sup.test"])
        self.ok("suppressions", "remove", "--tenant", "app", "x@d.sup.test", rm=rm)
        p = self.ctl("suppressions", "remove", "--tenant", "app", "x@d.sup.test", rm=rm)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("not found", p.stderr)
        p = self.ctl("suppressions", "add", "--tenant", "app", "not-an-address", rm=rm)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is not an address", p.stderr)
        self.assertEqual(len(self.list(api, tenant="app")), 3)
        rm.stop()


if __name__ == "__main__":
    unittest.main()
