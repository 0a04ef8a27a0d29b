"""Traffic policy end to end: rates, adaptive concurrency and backoff.

A receiver on loopback records when each transaction started and on which
connection. What is checked is what a mailbox provider would see: how many
messages arrive per second under a message_rate, how many connections a
slow MX gets for a backlog, and that a "slow down" reply matched by a
policy.backoff rule stops all sending to that site until the suspension
ends, with nothing lost."""

import threading
import time
import unittest

from harness import free_port
from peers import wait_until
from test_admin_api import AdminCase
from test_delivery import WAIT, DeliveryCase

RX_IP = "127.0.0.21"
DOMAIN = "policy.test"


class TrafficPolicyCase(DeliveryCase):
    def policy_daemon(self, policy=None, delivery=None, **receiver):
        self.rx = self.receiver(RX_IP, **receiver)
        return self.daemon(f"127.0.0.1:{free_port()}",
                           routes=[{"domain": DOMAIN, "smarthost": f"{RX_IP}:{self.smtp_port}"}],
                           policy=policy or {}, delivery=delivery)

    def send_many(self, rm, count, prefix):
        for i in range(count):
            self.send(rm, f"{prefix}{i}@{DOMAIN}", f"{prefix} {i}")

    def wait_delivered(self, count, timeout=WAIT):
        ok = wait_until(lambda: len(self.rx.messages()) >= count, timeout)
        self.assertTrue(ok, f"{len(self.rx.messages())} of {count} delivered: {self.rx!r}")


class RateTest(TrafficPolicyCase):
    def test_message_rate_holds_within_one_token_of_the_bucket(self):
        # 4/s, burst 4: 16 messages take at least 3 s, and no 1 s window
        # holds more than the burst plus one second's tokens plus one.
        rm = self.policy_daemon(policy={"shaping": [
            {"match": {"domain": DOMAIN}, "message_rate": "4/s"}]})
        self.send_many(rm, 16, "r")
        self.wait_delivered(16)
        times = sorted(t.time for t in self.rx.messages())
        self.assertGreaterEqual(times[-1] - times[0], 2.7, times)
        for i, start in enumerate(times):
            in_window = sum(1 for t in times[i:] if t < start + 1.0)
            self.assertLessEqual(in_window, 4 + 4 + 1, f"window from {start}: {times}")
        self.assertEqual(self.records(rm, "TransientFailure"), [],
                         "waiting for a token is not a deferral")


class ConcurrencyTest(TrafficPolicyCase):
    def test_a_backlog_for_a_slow_mx_grows_from_two_connections(self):
        # The receiver takes 0.5 s per message: 12 messages used to open 12
        # connections; now the site starts at two and grows with the backlog.
        rm = self.policy_daemon(stall=0.5, delivery={"max_connections_per_site": 8})
        self.send_many(rm, 12, "c")
        self.wait_delivered(12, timeout=30)
        conns = self.rx.connection_list()
        self.assertLessEqual(len(conns), 6, conns)
        self.assertGreaterEqual(len(conns), 2, conns)
        self.assertEqual(sum(len(c.transactions) for c in conns), 12)

    def test_messages_one_after_another_reuse_the_idle_connection(self):
        rm = self.policy_daemon()
        for i in range(5):
            self.send(rm, f"s{i}@{DOMAIN}", f"s {i}")
            self.wait_delivered(i + 1)
        self.assertEqual(len(self.rx.connection_list()), 1, self.rx.connection_list())


class BackoffTest(TrafficPolicyCase):
    def test_a_rate_limit_reply_suspends_the_site_until_the_rule_says(self):
        first = {"n": 0}
        lock = threading.Lock()

        def data(address, attempt):
            with lock:
                first["n"] += 1
                if first["n"] == 1:
                    return ("421 4.7.28 Our system has detected an unusual rate of unsolicited "
                            "mail originating from your IP address; temporarily rate limited")
            return None

        rm = self.policy_daemon(
            data=data,
            policy={"backoff": [{"match": {"code": 421, "text": "(?i)rate limited"},
                                 "action": {"suspend": "4s"}}]})
        self.send(rm, f"b0@{DOMAIN}", "b 0")
        ok = wait_until(lambda: len(self.rx.all_transactions()) >= 1, WAIT)
        self.assertTrue(ok)
        refused_at = self.rx.all_transactions()[0].time
        self.send_many(rm, 3, "w")
        self.wait_delivered(4, timeout=30)
        later = [t.time for t in self.rx.all_transactions()[1:]]
        self.assertGreaterEqual(min(later) - refused_at, 3.5,
                                f"sent during the suspension: {later} after {refused_at}")
        deferred = self.records(rm, "TransientFailure")
        self.assertEqual(len(deferred), 1, deferred)  # the 421 itself; the held ones waited

    def test_a_bounce_rule_bounces_the_recipient_at_once(self):
        rm = self.policy_daemon(
            data={f"x@{DOMAIN}": "450 4.7.1 Sender blocked for policy reasons"},
            policy={"backoff": [{"match": {"code": 450, "text": "(?i)blocked for policy"},
                                 "action": {"bounce": True}}]})
        self.send(rm, f"x@{DOMAIN}", "x")
        bounce = self.wait_record(rm, "Bounce", f"x@{DOMAIN}")[0]
        self.assertEqual(bounce["response"]["code"], 450)
        self.assertEqual(self.records(rm, "TransientFailure", f"x@{DOMAIN}"), [])


TSS04 = ("421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected "
         "volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes")


class ShippedBackoffTest(AdminCase):
    def test_yahoos_tss04_suspends_by_itself_shows_everywhere_and_resume_ends_it(self):
        answers = {"n": 0}
        lock = threading.Lock()

        def data(address, attempt):
            with lock:
                answers["n"] += 1
                return TSS04 if answers["n"] == 1 else None

        rx = self.receiver(RX_IP, data=data)
        site = f"{RX_IP}:{self.smtp_port}"
        rm, api = self.admin_daemon(routes=[{"domain": DOMAIN, "smarthost": site}])
        self.send(rm, f"y0@{DOMAIN}", "y 0")
        self.assertTrue(wait_until(lambda: len(rx.all_transactions()) >= 1, WAIT))
        for i in range(1, 3):
            self.send(rm, f"y{i}@{DOMAIN}", f"y {i}")
        # The shipped rule (no policy.backoff configured) holds the site 2 h.
        queue = wait_until(lambda: [s for s in api.ok("GET", "/api/v1/queue")["sites"]
                                    if s["backoff"]], WAIT)
        self.assertTrue(queue, api.ok("GET", "/api/v1/queue"))
        backoff = queue[0]["backoff"]
        self.assertEqual(backoff["action"], "suspend")
        self.assertIn("TSS04", backoff["rule"])
        self.assertIn("TSS04", backoff["reply"])
        status, _, _, metrics = api.get("/metrics", token=False)
        metrics = metrics.decode()
        self.assertEqual(status, 200)
        self.assertIn(f'ringmail_backoff_active{{site="{site}",source="default"}} 1', metrics)
        self.assertIn('ringmail_backoff_activations_total{action="suspend"} 1', metrics)
        explain = api.ok("GET", f"/api/v1/explain?domain={DOMAIN}")
        live = [limit for limit in explain["limits"] if limit["name"] == "backoff"]
        self.assertEqual(len(live), 1, explain)
        self.assertTrue(live[0]["set_by"].startswith("backoff "), live)
        time.sleep(3)  # the deferred one is due again by now: still held
        self.assertEqual(len(rx.all_transactions()), 1, "nothing is sent during the suspension")
        # kill -9: the suspension is in the spool and holds after the restart.
        rm.kill9()
        rm.start()
        status, _, _, metrics = api.get("/metrics", token=False)
        self.assertIn(f'ringmail_backoff_active{{site="{site}",source="default"}} 1',
                      metrics.decode(), "restored, before any mail routes to the site")
        time.sleep(3)  # the recipients loaded at start-up are due again: still held
        self.assertEqual(len(rx.all_transactions()), 1, "the suspension survives kill -9")
        queue = wait_until(lambda: [s for s in api.ok("GET", "/api/v1/queue")["sites"]
                                    if s["backoff"]], WAIT)
        self.assertTrue(queue, api.ok("GET", "/api/v1/queue"))
        self.assertEqual(queue[0]["backoff"]["until"], backoff["until"])
        api.ok("POST", "/api/v1/queue/resume", {"site": site})
        self.assertTrue(wait_until(lambda: len(rx.messages()) >= 3, WAIT), rx)
        status, _, _, metrics = api.get("/metrics", token=False)
        self.assertIn(f'ringmail_backoff_active{{site="{site}",source="default"}} 0',
                      metrics.decode())


class CampaignPolicyTest(AdminCase):
    def test_a_campaigns_pool_and_rate_hold_across_kill9(self):
        from test_campaigns import campaign_text
        from harness import send_message
        from test_delivery import SENDER
        rx = self.receiver(RX_IP)
        rm, api = self.admin_daemon(
            routes=[{"domain": DOMAIN, "smarthost": f"{RX_IP}:{self.smtp_port}"}],
            policy={"sources": [{"name": "ip1", "address": "127.0.0.2"},
                                {"name": "ip2", "address": "127.0.0.3"}],
                    "pools": [{"name": "default", "sources": ["ip1"]},
                              {"name": "bulk", "sources": ["ip2"]}]})
        status, body = api.post("/api/v1/campaigns",
                                 {"id": "spring", "pool": "bulk", "message_rate": "2/m"})[:2]
        self.assertIn(status, (200, 201), body)
        rm.kill9()
        rm.start()
        # Replayed from the campaign's record: its pool, and its rate (two now,
        # the burst; the third waits 30 s for a token).
        for i in range(3):
            reply = send_message(rm.port("relay"), SENDER, [f"k{i}@{DOMAIN}"],
                                 campaign_text(f"k{i}@{DOMAIN}", "spring"))
            self.assertEqual(reply.code, 250, reply)
        reply = send_message(rm.port("relay"), SENDER, [f"plain@{DOMAIN}"],
                             campaign_text(f"plain@{DOMAIN}", ""))
        self.assertEqual(reply.code, 250, reply)
        self.assertTrue(wait_until(lambda: len(rx.messages()) >= 3, WAIT), rx)
        time.sleep(2)
        got = {a: t for t in rx.messages() for a in t.accepted}
        self.assertEqual(len(got), 3, f"the campaign's third waits for its token: {got}")
        self.assertIn(f"plain@{DOMAIN}", got, "mail of no campaign is not held up")
        peers = {c.id: c.peer[0] for c in rx.connection_list()}
        for addr, t in got.items():
            want = "127.0.0.2" if addr.startswith("plain") else "127.0.0.3"
            self.assertEqual(peers[t.conn], want, f"{addr} from {peers[t.conn]}")


if __name__ == "__main__":
    unittest.main()
