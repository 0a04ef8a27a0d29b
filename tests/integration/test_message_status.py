"""Message status and dead letters against a running ringmaild: mail relayed
in over SMTP and delivered through a static route to aiosmtpd receivers on
loopback; GET /api/v1/messages/{id} followed through every state a
recipient goes through (queued while its site is held, in flight while the
receiver sits on the end of DATA, deferred with its next attempt after a
4xx, delivered with the receiver's 250, bounced with its 5xx) and after
the message finished; the dead letters of spool.keep_failed listed,
retried after the route is fixed (the new receiver gets the exact bytes
the first one refused) and deleted; and a status record that survives
kill -9 because it is written in the commit that deletes the message."""

import datetime
import json
import os
import subprocess
import time
import unittest
import urllib.parse

from peers import wait_until
from test_admin_api import AdminCase
from test_ringmailctl import ringmailctl_path

WAIT = 20.0


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


class StatusCase(AdminCase):
    def status(self, api, qid):
        code, body, _, payload = api.get(f"/api/v1/messages/{qid}")
        self.assertEqual(code, 200, f"GET /api/v1/messages/{qid}: {code} {payload[:300]!r}")
        return body

    def by_recipient(self, body):
        return {r["recipient"]: r for r in body["recipients"]}

    def wait_status(self, api, qid, predicate, why, timeout=WAIT):
        """Polls the message's status until predicate(body) holds; returns the body."""
        seen = []

        def check():
            code, body, _, _ = api.get(f"/api/v1/messages/{qid}")
            seen.append((code, body))
            return body if code == 200 and predicate(body) else None
        got = wait_until(check, timeout, interval=0.05)
        self.assertTrue(got, f"{why}: last answers {seen[-3:]}")
        return got

    def ctl(self, rm, *args):
        p = subprocess.run([ringmailctl_path(), "-c", rm.config_path] + list(args),
                           capture_output=True, text=True, timeout=40, cwd=rm.dir)
        return p


class MessageStatus(StatusCase):
    def test_every_state_and_after_completion(self):
        rx = self.receiver("127.0.0.2",
                           rcpt={"later@a.status.test": ["451 4.3.0 mailbox busy, try later",
                                                         "250 2.1.5 Ok"],
                                 "bad@a.status.test": "550 5.1.1 no such user here"})
        slow = self.receiver("127.0.0.3", stall=3.0)
        routes = [{"domain": "*.status.test", "smarthost": f"127.0.0.2:{self.smtp_port}"},
                  {"domain": "*.slow.test", "smarthost": f"127.0.0.3:{self.smtp_port}"}]
        rm, api = self.admin_daemon(routes=routes, intervals=("3s",),
                                    delivery={"generate_dsn": False})
        site = f"127.0.0.2:{self.smtp_port}"

        # Queued: held by a suspension of its site, no attempt yet.
        api.ok("POST", "/api/v1/queue/suspend", {"site": site, "duration": "1h"})
        rcpts = ["ok@a.status.test", "later@a.status.test", "bad@a.status.test"]
        t_sent = datetime.datetime.now(datetime.timezone.utc)
        qid = self.send(rm, rcpts, "status")
        time.sleep(1.0)
        body = self.status(api, qid)
        self.assertEqual(body["id"], qid)
        self.assertEqual(body["sender"], "author@sender.test")
        self.assertEqual(body["tenant"], "127.0.0.0/8")
        self.assertIsNone(body["campaign"])
        self.assertLess(abs((parse_time(body["received"]) - t_sent).total_seconds()), 5)
        self.assertGreater(body["size"], 100)
        self.assertEqual([r["recipient"] for r in body["recipients"]], rcpts)
        for r in body["recipients"]:
            self.assertEqual((r["state"], r["attempts"], r["next_attempt"], r["response"]),
                             ("queued", 0, None, None), r)
        self.assertIsNone(body["finished"])
        self.assertEqual(rx.all_transactions(), [], "a suspended site got a connection")

        # One transaction: delivered, deferred with its next attempt, bounced.
        api.ok("POST", "/api/v1/queue/resume", {"site": site})
        body = self.wait_status(api, qid, lambda b: self.by_recipient(b)[
            "later@a.status.test"]["state"] == "deferred", "later@ never deferred")
        t_deferred = datetime.datetime.now(datetime.timezone.utc)
        r = self.by_recipient(body)
        self.assertEqual(r["ok@a.status.test"]["state"], "delivered")
        self.assertEqual(r["ok@a.status.test"]["attempts"], 1)
        self.assertEqual(r["ok@a.status.test"]["response"],
                         {"code": 250, "enhanced": "2.0.0", "text": "Ok: accepted"})
        self.assertEqual(r["later@a.status.test"]["attempts"], 1)
        self.assertEqual(r["later@a.status.test"]["response"]["code"], 451)
        self.assertEqual(r["later@a.status.test"]["response"]["enhanced"], "4.3.0")
        self.assertIn("mailbox busy", r["later@a.status.test"]["response"]["text"])
        next_attempt = parse_time(r["later@a.status.test"]["next_attempt"])
        self.assertGreater(next_attempt, t_deferred - datetime.timedelta(seconds=1))
        self.assertLess(next_attempt, t_deferred + datetime.timedelta(seconds=5))
        self.assertEqual(r["bad@a.status.test"]["state"], "bounced")
        self.assertEqual(r["bad@a.status.test"]["response"]["code"], 550)
        self.assertEqual(r["bad@a.status.test"]["response"]["enhanced"], "5.1.1")
        self.assertEqual(r["bad@a.status.test"]["category"], "InvalidRecipient")
        self.assertIsNone(body["finished"])

        # The retry delivers it: the message is finished, and answers from its
        # status record with every recipient's end.
        body = self.wait_status(api, qid, lambda b: b["finished"] is not None,
                                "the message never finished")
        r = self.by_recipient(body)
        self.assertEqual(r["later@a.status.test"]["state"], "delivered")
        self.assertEqual(r["later@a.status.test"]["attempts"], 2)
        self.assertEqual(r["later@a.status.test"]["response"]["code"], 250)
        self.assertEqual(r["ok@a.status.test"]["state"], "delivered")
        self.assertEqual(r["bad@a.status.test"]["state"], "bounced")
        self.assertEqual(r["bad@a.status.test"]["response"]["code"], 550)
        self.assertEqual(body["sender"], "author@sender.test")
        kept = parse_time(body["kept_until"]) - parse_time(body["finished"])
        self.assertEqual(kept, datetime.timedelta(days=7))  # the default spool.keep_status
        self.assertEqual(sorted(a for t in rx.messages() for a in t.accepted),
                         ["later@a.status.test", "ok@a.status.test"])

        # In flight: the receiver sits on the end of DATA.
        qslow = self.send(rm, "x@b.slow.test", "slow")
        body = self.wait_status(api, qslow, lambda b: b["recipients"][0]["state"] == "in_flight",
                                "never seen in flight")
        self.assertIsNone(body["recipients"][0]["next_attempt"])
        self.wait_status(api, qslow, lambda b: b["recipients"][0]["state"] == "delivered",
                         "the slow one was not delivered")

        # ringmailctl message ID: the same, as a table.
        p = self.ctl(rm, "message", qid)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertIn(["id", qid], [line.split() for line in lines])
        header = next(i for i, line in enumerate(lines) if line.startswith("RECIPIENT"))
        rows = {line.split()[0]: line.split() for line in lines[header + 1:]}
        self.assertEqual(rows["bad@a.status.test"][1:6], ["bounced", "1", "-", "550", "5.1.1"])
        self.assertEqual(rows["ok@a.status.test"][1:6], ["delivered", "1", "-", "250", "2.0.0"])
        p = self.ctl(rm, "--json", "message", qid)
        self.assertEqual(json.loads(p.stdout), self.status(api, qid))

        # Unknown: 404, and ringmailctl exits 1 with the API's error.
        code, body, _, _ = api.get("/api/v1/messages/0123456789abcdef0123")
        self.assertEqual(code, 404)
        self.assertEqual(body["error"], "not found")
        p = self.ctl(rm, "message", "0123456789abcdef0123")
        self.assertEqual(p.returncode, 1)
        self.assertIn("not found", p.stderr)
        rm.stop()

    def test_keep_status_off_forgets_a_finished_message(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"),
                                    spool={"keep_status": "0"})
        qid = self.send(rm, "a@x.admin.test", "forgotten")
        self.assertTrue(wait_until(lambda: rx.messages(), WAIT), rm.stderr_tail())
        gone = wait_until(lambda: api.get(f"/api/v1/messages/{qid}")[0] == 404, WAIT)
        self.assertTrue(gone, api.get(f"/api/v1/messages/{qid}")[1])
        rm.stop()


class DeadLetters(StatusCase):
    def test_bounced_mail_is_kept_retried_after_the_route_is_fixed_and_deleted(self):
        # The first route's receiver takes the content, then refuses it.
        refusing = self.receiver("127.0.0.2", data={
            "keep@dead.test": "550 5.1.1 mailbox unknown",
            "drop@dead.test": "550 5.1.1 mailbox unknown"})
        fixed = self.receiver("127.0.0.3")
        rm, api = self.admin_daemon(
            routes=[{"domain": "dead.test", "smarthost": f"127.0.0.2:{self.smtp_port}"}],
            delivery={"generate_dsn": False}, spool={"keep_failed": "1d"})
        body_text = "The one that came back.\r\n.dot-stuffed line\r\nend"
        keep = self.send(rm, "keep@dead.test", "dead letter", body=body_text)
        drop = self.send(rm, "drop@dead.test", "dropped letter")
        self.assertTrue(wait_until(lambda: len([t for t in refusing.all_transactions()
                                                if t.data_reply]) == 2, WAIT),
                        f"{refusing}" + rm.stderr_tail())
        refused = {t.accepted[0]: t.content for t in refusing.all_transactions() if t.data_reply}

        listed = wait_until(lambda: (lambda d: d if len(d) == 2 else None)(
            api.ok("GET", "/api/v1/dead")["dead"]), WAIT)
        self.assertTrue(listed, api.ok("GET", "/api/v1/dead"))
        entry = next(d for d in listed if d["id"] == keep)
        self.assertEqual(entry["tenant"], "127.0.0.0/8")
        self.assertEqual(entry["sender"], "author@sender.test")
        [rcpt] = entry["recipients"]
        self.assertEqual((rcpt["recipient"], rcpt["state"], rcpt["category"]),
                         ("keep@dead.test", "bounced", "InvalidRecipient"))
        self.assertEqual(rcpt["response"]["code"], 550)
        self.assertNotIn("content", entry)
        self.assertEqual(len(api.ok("GET", "/api/v1/dead?category=InvalidRecipient")["dead"]), 2)
        self.assertEqual(api.ok("GET", "/api/v1/dead?category=SpamBlock")["dead"], [])
        self.assertEqual(api.ok("GET", "/api/v1/dead?tenant=nobody")["dead"], [])
        code, body, _, _ = api.get("/api/v1/dead?category=NoSuchThing")
        self.assertEqual(code, 400, body)
        # The status route answers for it too, finished.
        self.assertIsNotNone(self.status(api, keep)["finished"])

        p = self.ctl(rm, "dead", "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.splitlines()[-1], "total: 2")
        self.assertTrue(any(line.startswith(keep) and "InvalidRecipient" in line
                            for line in p.stdout.splitlines()), p.stdout)

        # Both hard bounces put their address on the tenant's list.
        suppressions = f"/api/v1/suppressions?tenant={urllib.parse.quote('127.0.0.0/8', safe='')}"
        listed = wait_until(lambda: (lambda s: s if len(s) == 2 else None)(
            api.ok("GET", suppressions)["suppressions"]), WAIT)
        self.assertTrue(listed, api.ok("GET", suppressions))
        self.assertEqual([(e["address"], e["source"], e["category"]) for e in listed],
                         [("drop@dead.test", "bounce", "InvalidRecipient"),
                          ("keep@dead.test", "bounce", "InvalidRecipient")])

        # Fix the route (a reload), then retry: the new receiver gets the
        # very bytes the first one refused, as the retry lifts the entry
        # that its own bounce made (and only that one).
        config = json.loads(json.dumps(rm.config))
        config["delivery"]["routes"] = [
            {"domain": "dead.test", "smarthost": f"127.0.0.3:{self.smtp_port}"}]
        rm.config = config
        rm.write_config(config)
        self.assertEqual(api.ok("POST", "/api/v1/reload"), {"status": "reloaded"})
        self.assertEqual(api.ok("POST", f"/api/v1/dead/{keep}/retry"),
                         {"id": keep, "requeued": 1})
        self.assertTrue(wait_until(lambda: fixed.delivered_to("keep@dead.test"), WAIT),
                        f"{fixed}" + rm.stderr_tail())
        [txn] = fixed.delivered_to("keep@dead.test")
        self.assertEqual(txn.content, refused["keep@dead.test"])
        self.assertIn(b"The one that came back.\r\n.dot-stuffed line\r\nend", txn.content)
        self.assertEqual(txn.mail_from, "author@sender.test")
        body = self.wait_status(api, keep, lambda b: b["finished"] is not None and
                                b["recipients"][0]["state"] == "delivered",
                                "the retried message did not finish delivered")
        self.assertEqual(body["recipients"][0]["response"]["code"], 250)
        self.assertEqual(body["recipients"][0]["attempts"], 2)
        self.assertEqual([d["id"] for d in api.ok("GET", "/api/v1/dead")["dead"]], [drop])
        code, body, _, _ = api.post(f"/api/v1/dead/{keep}/retry")
        self.assertEqual(code, 404, body)
        # Received once, when it first came: no second Reception record.
        self.assertEqual(len(self.records(rm, "Reception", qid=keep)), 1)
        self.assertEqual(len(self.records(rm, "Delivery", qid=keep)), 1)
        self.assertEqual([e["address"] for e in api.ok("GET", suppressions)["suppressions"]],
                         ["drop@dead.test"])

        # DELETE drops the other one (ringmailctl), and only once.
        p = self.ctl(rm, "dead", "delete", drop)
        self.assertEqual((p.returncode, p.stdout), (0, f"deleted dead letter {drop}\n"), p.stderr)
        self.assertEqual(api.ok("GET", "/api/v1/dead")["dead"], [])
        code, body, _, _ = api.request("DELETE", f"/api/v1/dead/{drop}")
        self.assertEqual(code, 404, body)
        code, body, _, _ = api.post(f"/api/v1/dead/{drop}/retry")
        self.assertEqual(code, 404, body)
        self.assertEqual(fixed.delivered_to("drop@dead.test"), [])
        rm.stop()


class CrashSafety(StatusCase):
    def test_status_survives_kill_9(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        first = self.send(rm, "first@x.admin.test", "before the crash")
        before = self.wait_status(api, first, lambda b: b["finished"] is not None,
                                  "the first message never finished")

        # Then a burst, killed the moment the receiver has answered it all,
        # before (most of) the results are committed: whatever the last
        # commit held, every message is in the spool or has its status
        # record after the restart; never neither.
        ids = [self.send(rm, f"burst{i}@x.admin.test", f"burst {i}") for i in range(8)]
        self.assertTrue(wait_until(lambda: len(rx.messages()) >= 9, WAIT, interval=0.001),
                        rm.stderr_tail())
        rm.kill9()
        self.assertEqual(rm.proc.returncode, -9)
        rm.start()
        self.assertEqual(self.status(api, first), before)
        for qid in ids:
            body = self.status(api, qid)  # 200: in the spool or finished, never 404
            self.assertIn(body["recipients"][0]["state"], ("queued", "in_flight", "deferred",
                                                           "delivered"), body)
        for qid in ids:
            body = self.wait_status(api, qid, lambda b: b["finished"] is not None,
                                    f"{qid} never finished after the restart")
            self.assertEqual(body["recipients"][0]["state"], "delivered")
        rm.stop()


if __name__ == "__main__":
    unittest.main()
