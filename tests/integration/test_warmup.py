"""IP warm-up end to end: a warming source (127.0.0.2, bound before connect)
sends no more than its cap in the current UTC window, as the receiver sees
it; over the cap its mail spills to the pool's other source (127.0.0.3) or,
under `overflow: hold`, waits for the next window; the count survives
SIGTERM and kill -9 restarts within the window; GET /api/v1/warmup,
ringmail_warmup_sent{source}, ringmailctl warmup and explain agree with the
receiver; a `started` of yesterday gives step 2."""

import datetime
import subprocess
import time
import unittest

from harness import send_message
from peers import wait_until
from test_admin_api import AdminCase
from test_delivery import SENDER, WAIT
from test_ringmailctl import ringmailctl_path

RX_IP = "127.0.0.22"
DOMAIN = "warm.test"
WARMING, OTHER = "127.0.0.2", "127.0.0.3"


def sources(pool):
    return {"sources": [{"name": "ip1", "address": WARMING}, {"name": "ip2", "address": OTHER}],
            "pools": [{"name": "default", "sources": pool}]}


class WarmupCase(AdminCase):
    def warm_daemon(self, warmup, pool=("ip1", "ip2")):
        self.rx = self.receiver(RX_IP)
        policy = sources(list(pool))
        policy["warmup"] = [warmup]
        return self.admin_daemon(
            routes=[{"domain": DOMAIN, "smarthost": f"{RX_IP}:{self.smtp_port}"}],
            intervals=("1h",), policy=policy)

    def send(self, rm, count, prefix):
        for i in range(count):
            reply = send_message(rm.port("relay"), SENDER, [f"{prefix}{i}@{DOMAIN}"],
                                 f"Subject: {prefix} {i}\r\n\r\nwarm-up\r\n")
            self.assertEqual(reply.code, 250, reply)

    def by_source(self):
        peers = {c.id: c.peer[0] for c in self.rx.connection_list()}
        counts = {}
        for t in self.rx.messages():
            source = peers[t.conn]
            counts[source] = counts.get(source, 0) + len(t.accepted)
        return counts

    def delivered(self):
        return sum(len(t.accepted) for t in self.rx.messages())

    def start_early_in_a_minute(self, room=25):
        # Every count below is per UTC minute: do not start where the
        # window would roll over during the first part of a test.
        second = time.time() % 60
        if second > 60 - room:
            time.sleep(60 - second + 0.5)

    def metric(self, api, series):
        _, _, _, text = api.get("/metrics", token=False)
        for line in text.decode().splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


class SpillTest(WarmupCase):
    def test_over_its_cap_the_source_spills_to_the_pool_and_the_api_agrees(self):
        self.start_early_in_a_minute()
        rm, api = self.warm_daemon({"source": "ip1", "schedule": ["5/m", "unlimited"]})
        self.send(rm, 14, "s")
        self.assertTrue(wait_until(lambda: self.delivered() == 14, WAIT), self.by_source())
        self.assertEqual(self.by_source(), {WARMING: 5, OTHER: 9}, "ip1 sent exactly its cap")
        self.assertEqual(self.records(rm, "TransientFailure"), [], "a spill is not a deferral")

        listed = api.ok("GET", "/api/v1/warmup")["sources"]
        self.assertEqual(len(listed), 1, listed)
        w = listed[0]
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        self.assertEqual((w["source"], w["address"], w["pool"], w["provider"]),
                         ("ip1", WARMING, "default", None))
        self.assertEqual((w["started"], w["day"], w["cap"], w["window"], w["sent"], w["state"]),
                         (today, 1, 5, "1m", 5, "warming"))
        self.assertTrue(wait_until(
            lambda: self.metric(api, 'ringmail_warmup_sent{source="ip1"}') == 5, 5))

        explained = api.ok("GET", f"/api/v1/explain?domain={DOMAIN}&source=ip1")
        limits = {l["name"]: l for l in explained["limits"]}
        self.assertEqual(limits["warmup_cap"]["value"], 5, explained)
        self.assertEqual(limits["warmup_cap"]["set_by"], "warmup ip1 day 1")
        self.assertEqual(limits["warmup_sent"]["value"], 5)

        ctl = subprocess.run([ringmailctl_path(), "-c", rm.config_path, "warmup"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(ctl.returncode, 0, ctl.stderr)
        row = [line.split() for line in ctl.stdout.splitlines() if line.startswith("ip1")]
        self.assertEqual(row, [["ip1", WARMING, "default", "all", today, "1", "5", "1m", "5",
                                "warming"]], ctl.stdout)
        rm.stop()

    def test_started_yesterday_is_day_two(self):
        self.start_early_in_a_minute()
        yesterday = (datetime.datetime.now(datetime.timezone.utc).date()
                     - datetime.timedelta(days=1)).isoformat()
        rm, api = self.warm_daemon({"source": "ip1", "schedule": ["1/m", "3/m", "unlimited"],
                                    "started": yesterday})
        self.send(rm, 10, "y")
        self.assertTrue(wait_until(lambda: self.delivered() == 10, WAIT), self.by_source())
        self.assertEqual(self.by_source().get(WARMING), 3, "step 2 of the schedule")
        w = api.ok("GET", "/api/v1/warmup")["sources"][0]
        self.assertEqual((w["started"], w["day"], w["cap"]), (yesterday, 2, 3))
        rm.stop()


class HoldAndRestartTest(WarmupCase):
    def test_hold_waits_for_the_next_window_and_the_count_survives_restarts(self):
        self.start_early_in_a_minute(room=35)
        rm, api = self.warm_daemon({"source": "ip1", "schedule": ["4/m"], "overflow": "hold"},
                                   pool=("ip1",))
        minute = int(time.time() // 60)
        self.send(rm, 3, "a")
        self.assertTrue(wait_until(lambda: self.delivered() == 3, WAIT))

        # SIGTERM: the three are still counted; one more goes, then it holds.
        rm.stop()
        rm.start()
        self.send(rm, 2, "b")
        self.assertTrue(wait_until(lambda: self.delivered() == 4, WAIT))
        time.sleep(1)
        self.assertEqual(self.delivered(), 4, "the cap counts across a SIGTERM restart")

        # kill -9: the count is on disk with the results it goes with.
        rm.kill9()
        rm.start()
        self.send(rm, 1, "c")
        time.sleep(2)
        if int(time.time() // 60) == minute:
            self.assertEqual(self.delivered(), 4, "the cap counts across kill -9")
            queued = api.ok("GET", "/api/v1/queue")["total"]
            self.assertEqual(queued, 2, "held, not lost")
        self.assertEqual(self.records(rm, "TransientFailure"), [], "holding is not a deferral")

        # The next UTC minute opens the window: the held two go, from ip1.
        self.assertTrue(wait_until(lambda: self.delivered() == 6, 75), self.by_source())
        self.assertEqual(self.by_source(), {WARMING: 6})
        got = sorted(a for t in self.rx.messages() for a in t.accepted)
        self.assertEqual(len(got), len(set(got)), f"nothing twice: {got}")
        w = api.ok("GET", "/api/v1/warmup")["sources"][0]
        self.assertEqual((w["cap"], w["sent"]), (4, 2))
        rm.stop()


if __name__ == "__main__":
    unittest.main()
