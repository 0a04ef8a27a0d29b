"""Campaigns and tenants against a running ringmaild: created by their first
message or by the API, statistics that match what aiosmtpd receivers got
(after deliveries, 4xx retries and 5xx bounces), pause / resume / cancel,
the tenant kill switch and the global pause, and all of it after a SIGTERM
restart and after kill -9 under load (no double counting)."""

import threading
import time
import unittest
import urllib.parse
import uuid

from harness import free_port, send_message
from peers import wait_until
from test_admin_api import AdminCase
from test_delivery import SENDER

WAIT = 20.0
TENANT = "127.0.0.0/8"  # relay mail's tenant: the relay_networks entry it matched
TENANT_PATH = urllib.parse.quote(TENANT, safe="")


def campaign_text(rcpt, campaign, subject="campaign test"):
    tag = uuid.uuid4().hex
    lines = [f"From: Author <{SENDER}>", f"To: {rcpt}", f"Subject: {subject}",
             f"Message-ID: <{tag}@sender.test>"]
    if campaign:
        lines.append(f"X-Campaign-ID: {campaign}")
    return "\r\n".join(lines) + "\r\n\r\nHello from the campaign test.\r\n"


class CampaignCase(AdminCase):
    def send_campaign(self, rm, rcpt, campaign, expect=250):
        reply = send_message(rm.port("relay"), SENDER, [rcpt], campaign_text(rcpt, campaign))
        self.assertEqual(reply.code, expect, f"{rcpt} in {campaign}: {reply!r}")
        return reply

    def campaign(self, api, cid):
        return api.ok("GET", f"/api/v1/campaigns/{cid}")

    def wait_stats(self, api, cid, **want):
        """Waits until the campaign's stats have every field of `want`."""
        got = wait_until(lambda: (lambda s: s if all(s.get(k) == v for k, v in want.items())
                                  else None)(self.campaign(api, cid)["stats"]), WAIT)
        self.assertTrue(got, f"{cid}: wanted {want}, have {self.campaign(api, cid)['stats']}")
        return got

    def delivered_addresses(self, rx):
        return sorted(a.lower() for a in self.delivered_to(rx))


class CampaignStats(CampaignCase):
    def test_created_by_header_and_by_api_with_stats_that_match_the_receiver(self):
        rx = self.receiver("127.0.0.2", rcpt={"bounce@c.admin.test": "550 5.1.1 no such user",
                                              "later@c.admin.test": ["451 4.3.0 try later",
                                                                     "250 2.1.5 ok"]})
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        status, created, _, _ = api.post("/api/v1/campaigns",
                                         {"id": "autumn", "name": "Autumn", "tenant": "app9"})
        self.assertEqual(status, 201, created)
        self.assertEqual(created["state"], "active")
        for rcpt in ["ok@c.admin.test", "bounce@c.admin.test", "later@c.admin.test"]:
            self.send_campaign(rm, rcpt, "spring")
        self.send_campaign(rm, "plain@c.admin.test", None)

        stats = self.wait_stats(api, "spring", delivered=2, bounced=1, queued=0)
        self.assertEqual(stats["received"], 3)
        self.assertEqual(stats["deferred"], 1)
        self.assertEqual(stats["bounced_by_category"], {"InvalidRecipient": 1})
        self.assertEqual(stats["expired"], 0)
        self.assertEqual(stats["cancelled"], 0)
        for key in ("complaints", "unsubscribes", "suppressed"):
            self.assertEqual(stats[key], 0)
        spring = self.campaign(api, "spring")
        self.assertEqual(spring["tenant"], TENANT, "a campaign made by mail has its tenant")
        self.assertEqual(spring["state"], "active")
        self.assertTrue(spring["created"].endswith("Z"))
        # The receiver and the delivery log say the same.
        self.assertEqual(self.delivered_addresses(rx),
                         ["later@c.admin.test", "ok@c.admin.test", "plain@c.admin.test"])
        # (The bounce's DSN keeps the campaign in its records, but is not its mail.)
        log = [r for r in rm.delivery_log() if r.get("campaign") == "spring" and r.get("sender")]
        self.assertEqual(len([r for r in log if r["type"] == "Delivery"]), stats["delivered"])
        self.assertEqual(len([r for r in log if r["type"] == "Bounce"]), stats["bounced"])
        self.assertEqual(len([r for r in log if r["type"] == "TransientFailure"]),
                         stats["deferred"])

        listed = api.ok("GET", "/api/v1/campaigns")["campaigns"]
        self.assertEqual(sorted(c["id"] for c in listed), ["autumn", "spring"])
        only = api.ok("GET", "/api/v1/campaigns?tenant=app9")["campaigns"]
        self.assertEqual([c["id"] for c in only], ["autumn"])
        tenant = api.ok("GET", f"/api/v1/tenants/{TENANT_PATH}")
        self.assertEqual(tenant["stats"]["received"], 4, "the tenant counts mail without campaign")
        self.assertEqual(tenant["stats"]["delivered"], 3)
        self.assertEqual(tenant["state"], "active")
        rm.stop()


class CampaignControl(CampaignCase):
    def test_pause_holds_while_other_mail_flows_and_resume_releases(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"), intervals=("1h",))
        api.post("/api/v1/campaigns", {"id": "held"})
        paused = api.ok("POST", "/api/v1/campaigns/held/pause")
        self.assertEqual(paused["state"], "paused")
        for i in range(2):
            self.send_campaign(rm, f"held{i}@p.admin.test", "held")
        self.send_campaign(rm, "free@p.admin.test", "free")
        self.assertTrue(wait_until(lambda: self.delivered_addresses(rx) == ["free@p.admin.test"],
                                   WAIT))
        time.sleep(2)
        self.assertEqual(self.delivered_addresses(rx), ["free@p.admin.test"],
                         "nothing of the paused campaign goes")
        self.assertEqual(api.ok("GET", "/api/v1/queue?campaign=held")["total"], 2)
        self.assertEqual(self.campaign(api, "held")["stats"]["queued"], 2)

        started = time.monotonic()
        self.assertEqual(api.ok("POST", "/api/v1/campaigns/held/resume")["state"], "active")
        self.assertTrue(wait_until(lambda: len(self.delivered_addresses(rx)) == 3, WAIT))
        self.assertLess(time.monotonic() - started, 5.0, "held mail goes within seconds")
        for r in rm.delivery_log("Delivery"):
            self.assertEqual(r["attempt"], 1, "the pause was no attempt")
        rm.stop()

    def test_cancel_empties_the_queue_and_refuses_later_mail(self):
        dead = free_port()
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2", dead), intervals=("1h",))
        for i in range(3):
            self.send_campaign(rm, f"doomed{i}@x.admin.test", "doomed")
        self.send_campaign(rm, "kept@x.admin.test", "kept")
        self.wait_stats(api, "doomed", received=3, deferred=3)
        cancelled = api.ok("POST", "/api/v1/campaigns/doomed/cancel")
        self.assertEqual(cancelled["state"], "cancelled")
        stats = self.wait_stats(api, "doomed", cancelled=3, queued=0)
        self.assertEqual(stats["received"], 3)
        records = wait_until(lambda: len(rm.delivery_log("Cancelled")) == 3 and
                             rm.delivery_log("Cancelled"), WAIT)
        self.assertTrue(records)
        self.assertEqual(sorted(r["recipient"] for r in records),
                         [f"doomed{i}@x.admin.test" for i in range(3)])
        self.assertEqual(api.ok("GET", "/api/v1/queue?campaign=doomed")["total"], 0)
        self.assertEqual(api.ok("GET", "/api/v1/queue")["total"], 1, "other mail stays")
        reply = self.send_campaign(rm, "late@x.admin.test", "doomed", expect=550)
        self.assertEqual(reply.enhanced, "5.7.1")
        status, body, _, _ = api.post("/api/v1/campaigns/doomed/resume")
        self.assertEqual(status, 409, body)
        _, _, _, metrics = api.get("/metrics", token=False)
        self.assertIn("ringmail_messages_cancelled_total 3", metrics.decode())
        self.assertEqual(api.ok("GET", "/api/v1/stats")["cancelled"], 3)
        rm.stop()

    def test_injected_mail_counts_for_its_campaign_and_a_cancelled_one_is_refused(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        built = {"from": f"App <{SENDER}>", "to": ["i1@i.admin.test"], "subject": "hi",
                 "text": "hello", "campaign": "injected", "tenant": "app7"}
        status, body, _, _ = api.post("/api/v1/messages", built)
        self.assertEqual(status, 200, body)
        stats = self.wait_stats(api, "injected", delivered=1, queued=0)
        self.assertEqual(stats["received"], 1)
        self.assertEqual(self.campaign(api, "injected")["tenant"], "app7")
        self.assertEqual(api.ok("GET", "/api/v1/tenants/app7")["stats"]["delivered"], 1)
        api.ok("POST", "/api/v1/campaigns/injected/cancel")
        status, body, _, _ = api.post("/api/v1/messages", dict(built, to=["i2@i.admin.test"]))
        self.assertEqual(status, 409, body)
        self.assertIn("injected", body["detail"])
        time.sleep(1)
        self.assertEqual(self.delivered_addresses(rx), ["i1@i.admin.test"])
        self.assertEqual(self.campaign(api, "injected")["stats"]["received"], 1)
        rm.stop()

    def test_tenant_kill_switch_and_global_pause_persist_across_restart(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"), intervals=("1h",))
        tenant = api.ok("POST", f"/api/v1/tenants/{TENANT_PATH}/pause")
        self.assertEqual((tenant["name"], tenant["state"]), (TENANT, "paused"))
        self.send_campaign(rm, "t1@t.admin.test", None)
        time.sleep(2)
        self.assertEqual(self.delivered_addresses(rx), [], "the paused tenant sends nothing")
        rm.stop()
        rm.start()
        self.assertEqual(api.ok("GET", f"/api/v1/tenants/{TENANT_PATH}")["state"], "paused",
                         "the kill switch survives a restart")
        listed = api.ok("GET", "/api/v1/tenants")["tenants"]
        self.assertEqual([(t["name"], t["state"]) for t in listed], [(TENANT, "paused")])
        time.sleep(1.5)
        self.assertEqual(self.delivered_addresses(rx), [])
        api.ok("POST", f"/api/v1/tenants/{TENANT_PATH}/resume")
        self.assertTrue(wait_until(lambda: self.delivered_addresses(rx) == ["t1@t.admin.test"],
                                   WAIT))

        self.assertEqual(api.ok("POST", "/api/v1/delivery/pause"), {"paused": True})
        self.send_campaign(rm, "t2@t.admin.test", None)
        rm.stop()
        rm.start()
        time.sleep(2)
        self.assertEqual(self.delivered_addresses(rx), ["t1@t.admin.test"],
                         "the global pause survives a restart")
        self.assertEqual(api.ok("POST", "/api/v1/delivery/resume"), {"paused": False})
        self.assertTrue(wait_until(lambda: len(self.delivered_addresses(rx)) == 2, WAIT))
        rm.stop()


class CampaignDurability(CampaignCase):
    def test_state_and_stats_survive_sigterm_restart(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"), intervals=("1h",))
        for i in range(3):
            self.send_campaign(rm, f"r{i}@r.admin.test", "restart")
        self.wait_stats(api, "restart", delivered=3)
        api.ok("POST", "/api/v1/campaigns/restart/pause")
        self.send_campaign(rm, "held@r.admin.test", "restart")
        self.wait_stats(api, "restart", received=4, queued=1)
        before = self.campaign(api, "restart")
        rm.stop()
        rm.start()
        after = self.campaign(api, "restart")
        self.assertEqual(after, before)
        time.sleep(1.5)
        self.assertEqual(len(self.delivered_addresses(rx)), 3, "still paused after the restart")
        api.ok("POST", "/api/v1/campaigns/restart/resume")
        self.wait_stats(api, "restart", delivered=4, queued=0, received=4)
        rm.stop()

    def test_kill9_under_load_counts_every_recipient_once(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        acked = []
        stop = threading.Event()

        def load():
            i = 0
            while not stop.is_set() and i < 400:
                rcpt = f"load{i}@k.admin.test"
                try:
                    reply = send_message(rm.port("relay"), SENDER, [rcpt],
                                         campaign_text(rcpt, "load"))
                except Exception:  # the daemon died mid-transaction: unacknowledged
                    return
                if reply.code == 250:
                    acked.append(rcpt)
                i += 1

        sender = threading.Thread(target=load)
        sender.start()
        self.assertTrue(wait_until(lambda: len(self.delivered_to(rx)) >= 40, WAIT))
        rm.kill9()
        stop.set()
        self.assertGreaterEqual(len(acked), 40)
        sender.join(30)
        rm.start()
        # Every acknowledged message is delivered; some may reach the receiver
        # twice (delivered, result not yet committed), but the statistics
        # count each recipient once, as the spool does.
        self.assertTrue(wait_until(lambda: set(acked) <= set(self.delivered_addresses(rx)),
                                   WAIT), "an acknowledged message was lost")
        stats = self.wait_stats(api, "load", queued=0)
        # Read after the stats settled: a message committed but not
        # acknowledged (the kill cut its 250) may arrive after the acked ones,
        # and a committed delivery means the receiver has it.
        distinct = set(self.delivered_addresses(rx))
        self.assertGreater(len(distinct), len(acked) - 1)
        self.assertEqual(stats["delivered"], len(distinct), stats)
        self.assertEqual(stats["received"], len(distinct), stats)
        self.assertEqual(stats["bounced"] + stats["expired"] + stats["cancelled"], 0)
        rm.stop()


if __name__ == "__main__":
    unittest.main()
