"""The admin HTTP API against a running ringmaild with real mail flowing:
relayed in over SMTP, delivered to aiosmtpd receivers on loopback through a
static route. Each scenario checks what an operator sees (status codes,
JSON bodies, /metrics) against what was sent and what the receivers got."""

import json
import os
import socket
import subprocess
import threading
import time
import unittest

from admin_client import Api, admin_overrides, write_token
from harness import free_port, send_message
from peers import wait_until
from test_delivery import DeliveryCase, message_text, short_timeouts

WAIT = 20.0


class AdminCase(DeliveryCase):
    def admin_daemon(self, routes=None, start=True, intervals=("1s", "2s"), delivery=None, **top):
        d = {
            "dns": {"nameservers": [f"127.0.0.1:{free_port()}"]},
            "smtp_port": self.smtp_port,
            "retry": {"intervals": list(intervals), "max_age": "5d"},
            "idle_timeout": "2s",
            "timeouts": short_timeouts(),
        }
        if routes:
            d["routes"] = routes
        d.update(delivery or {})
        overrides = {"delivery": d}
        overrides.update(admin_overrides())
        overrides.update(top)
        rm = self.ringmail(overrides=overrides)
        token = write_token(rm)
        if start:
            rm.start()
        return rm, Api(rm, token)

    def route_to(self, ip, port=None):
        return [{"domain": "*.admin.test", "smarthost": f"{ip}:{port or self.smtp_port}"}]

    def delivered_to(self, receiver):
        return [a for t in receiver.transactions if t.data_reply and
                t.data_reply.startswith("250") for a in t.accepted]


class RoutesWithTraffic(AdminCase):
    def test_stats_queue_and_metrics_match_what_was_sent(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        site = f"127.0.0.2:{self.smtp_port}"
        rcpts = [f"user{i}@a.admin.test" for i in range(6)] + ["x@b.admin.test"]
        for r in rcpts:
            self.send(rm, r, "stats")
        self.assertTrue(wait_until(lambda: len(self.delivered_to(rx)) == len(rcpts), WAIT),
                        rm.stderr_tail())
        stats = wait_until(lambda: (lambda s: s if s["delivered"] == len(rcpts) else None)(
            api.ok("GET", "/api/v1/stats")), WAIT)
        self.assertTrue(stats, api.ok("GET", "/api/v1/stats"))
        self.assertEqual(stats["received"], len(rcpts))
        self.assertEqual(stats["queued"], 0)
        self.assertEqual(stats["bounced"], 0)
        [entry] = [s for s in stats["sites"] if s["site"] == site]
        self.assertEqual(entry["delivered"], len(rcpts))
        self.assertEqual(entry["source"], "default")
        for key in ("received", "delivered", "deferred", "bounced", "bounced_by_category",
                    "expired", "suppressed", "cancelled", "complaints", "queued", "sites"):
            self.assertIn(key, stats)

        status, _, resp, text = api.get("/metrics", token=False)
        self.assertEqual(status, 200)
        self.assertTrue(resp.getheader("Content-Type").startswith("text/plain; version=0.0.4"))
        text = text.decode()
        line = f'ringmail_messages_delivered_total{{site="{site}"}} {len(rcpts)}'
        self.assertIn(line, text)
        self.assertIn("# TYPE ringmail_delivery_attempt_seconds histogram", text)
        self.assertIn('ringmail_admin_requests_total{code="200"}', text)

        status, body, _, _ = api.get("/healthz", token=False)
        self.assertEqual((status, body), (200, {"status": "ok"}))
        rm.stop()

    def test_queue_listing_with_a_dead_smarthost_and_filters(self):
        dead = free_port()
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2", dead),
                                    intervals=("1h",))
        site = f"127.0.0.2:{dead}"
        for r in ["a@one.admin.test", "b@one.admin.test", "c@two.admin.test"]:
            self.send(rm, r, "queued")
        q = wait_until(lambda: (lambda q: q if q["total"] == 3 and q["sites"] and
                                q["sites"][0]["deferred"] == 3 else None)(
            api.ok("GET", "/api/v1/queue")), WAIT)
        self.assertTrue(q, api.ok("GET", "/api/v1/queue"))
        [entry] = q["sites"]
        self.assertEqual(entry["site"], site)
        self.assertEqual(entry["queued"], 3)
        self.assertEqual(entry["in_flight"], 0)
        self.assertEqual(entry["domains"], ["one.admin.test", "two.admin.test"])
        self.assertIsNone(entry["suspended_until"])
        self.assertEqual(api.ok("GET", "/api/v1/queue?domain=two.admin.test")["total"], 1)
        self.assertEqual(api.ok("GET", f"/api/v1/queue?site={site}")["total"], 3)
        self.assertEqual(api.ok("GET", "/api/v1/queue?site=elsewhere")["total"], 0)
        self.assertEqual(api.ok("GET", "/api/v1/queue?tenant=nobody")["sites"], [])
        status, body, _, _ = api.get("/api/v1/queue?colour=red")
        self.assertEqual(status, 400)
        self.assertIn("colour", body["detail"])
        rm.stop()


class QueueControl(AdminCase):
    def test_suspend_holds_and_resume_releases_within_seconds(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"), intervals=("1h",))
        site = f"127.0.0.2:{self.smtp_port}"
        r = api.ok("POST", "/api/v1/queue/suspend", {"site": site, "duration": "1h"})
        self.assertEqual(r["suspended"]["site"], site)
        self.assertTrue(r["suspended"]["until"].endswith("Z"))
        for i in range(3):
            self.send(rm, f"held{i}@a.admin.test", "suspended")
        time.sleep(3)
        self.assertEqual(self.delivered_to(rx), [], "a suspended site got mail")
        q = api.ok("GET", "/api/v1/queue")
        self.assertEqual(q["total"], 3)
        self.assertIsNotNone(q["sites"][0]["suspended_until"])
        t0 = time.monotonic()
        self.assertEqual(api.ok("POST", "/api/v1/queue/resume", {"site": site}),
                         {"resumed": {"site": site}})
        self.assertTrue(wait_until(lambda: len(self.delivered_to(rx)) == 3, 10), rm.stderr_tail())
        self.assertLess(time.monotonic() - t0, 5.0, "resume did not release within seconds")
        # Held mail is not counted as attempts: delivered at attempt 1.
        for rec in self.records(rm, "Delivery"):
            self.assertEqual(rec["attempt"], 1, rec)
        rm.stop()

    def test_suspend_by_domain_holds_only_that_domain(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"), intervals=("1h",))
        api.ok("POST", "/api/v1/queue/suspend", {"domain": "Held.Admin.Test", "duration": "10m"})
        self.send(rm, "x@held.admin.test", "held")
        self.send(rm, "y@free.admin.test", "free")
        self.assertTrue(wait_until(lambda: self.delivered_to(rx) == ["y@free.admin.test"], WAIT))
        time.sleep(2)
        self.assertEqual(self.delivered_to(rx), ["y@free.admin.test"])
        self.assertEqual(api.ok("GET", "/api/v1/queue?domain=held.admin.test")["total"], 1)
        api.ok("POST", "/api/v1/queue/resume", {"domain": "held.admin.test"})
        self.assertTrue(wait_until(lambda: len(self.delivered_to(rx)) == 2, 5))
        rm.stop()

    def test_suspension_survives_kill_9_and_restart(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"), intervals=("1s",))
        site = f"127.0.0.2:{self.smtp_port}"
        api.ok("POST", "/api/v1/queue/suspend", {"site": site, "duration": "1h"})
        api.ok("POST", "/api/v1/queue/suspend", {"domain": "dom.admin.test", "duration": "1h"})
        self.send(rm, "a@a.admin.test", "before crash")
        rm.kill9()
        rm.start()
        self.send(rm, "b@dom.admin.test", "after crash")
        time.sleep(3)
        self.assertEqual(self.delivered_to(rx), [], "the suspension was lost with kill -9")
        q = api.ok("GET", "/api/v1/queue")
        self.assertEqual(q["total"], 2)
        rm.stop()
        rm.start()
        time.sleep(2)
        self.assertEqual(self.delivered_to(rx), [], "the suspension was lost with a restart")
        api.ok("POST", "/api/v1/queue/resume", {"site": site})
        self.assertTrue(wait_until(lambda: self.delivered_to(rx) == ["a@a.admin.test"], 5))
        api.ok("POST", "/api/v1/queue/resume", {"domain": "dom.admin.test"})
        self.assertTrue(wait_until(lambda: len(self.delivered_to(rx)) == 2, 5))
        rm.stop()
        rm.start()  # resumed for good: nothing held after a restart either
        self.assertEqual(api.ok("GET", "/api/v1/queue")["total"], 0)
        rm.stop()

    def test_bounce_empties_the_queue_with_admin_bounce_records(self):
        dead = free_port()
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2", dead), intervals=("1h",))
        site = f"127.0.0.2:{dead}"
        rcpts = [f"u{i}@a.admin.test" for i in range(4)]
        for r in rcpts:
            self.send(rm, r, "to bounce")
        self.assertTrue(wait_until(lambda: api.ok("GET", "/api/v1/queue")["total"] == 4 and
                                   len(self.records(rm, "TransientFailure")) == 4, WAIT))
        r = api.ok("POST", "/api/v1/queue/bounce", {"site": site, "reason": "decommissioned"})
        self.assertEqual(r, {"bounced": 4})
        recs = self.records(rm, "AdminBounce")
        self.assertEqual(sorted(x["recipient"] for x in recs), rcpts)
        self.assertTrue(all("decommissioned" in json.dumps(x) for x in recs), recs)
        self.assertEqual(api.ok("GET", "/api/v1/queue")["total"], 0)
        self.assertTrue(wait_until(lambda: rm.spool_dump(live=True) == [], WAIT))
        self.assertEqual(api.ok("GET", "/api/v1/stats")["admin_bounced"], 4)
        rm.stop()

    def test_pause_and_resume_all_delivery(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        self.assertEqual(api.ok("POST", "/api/v1/delivery/pause"), {"paused": True})
        self.send(rm, "p@a.admin.test", "paused")
        time.sleep(2)
        self.assertEqual(self.delivered_to(rx), [])
        self.assertEqual(api.ok("POST", "/api/v1/delivery/resume"), {"paused": False})
        self.assertTrue(wait_until(lambda: len(self.delivered_to(rx)) == 1, 5))
        rm.stop()


class Reload(AdminCase):
    def test_reload_good_and_broken_config(self):
        rm, api = self.admin_daemon()
        self.assertEqual(api.ok("POST", "/api/v1/reload"), {"status": "reloaded"})
        with open(rm.config_path) as f:
            good = f.read()
        with open(rm.config_path, "a") as f:
            f.write("bogus_key: 1\n")
        status, body, _, _ = api.post("/api/v1/reload")
        self.assertEqual(status, 400)
        self.assertEqual(body["error"], "config invalid")
        self.assertIn("ringmail.yaml:", body["detail"])
        self.assertIn("bogus_key", body["detail"])
        # The old config stays in force: the API still answers with its token.
        self.assertEqual(api.get("/api/v1/stats")[0], 200)
        # A new token file is read on reload.
        with open(rm.config_path, "w") as f:
            f.write(good)
        new = write_token(rm, "fresh-token-0123456789")
        self.assertEqual(api.ok("POST", "/api/v1/reload"), {"status": "reloaded"})
        self.assertEqual(api.get("/api/v1/stats")[0], 401)
        api.token = new
        self.assertEqual(api.get("/api/v1/stats")[0], 200)
        rm.stop()


class Errors(AdminCase):
    def test_every_error_status(self):
        rm, api = self.admin_daemon()
        status, body, resp, _ = api.get("/api/v1/stats", token=False)
        self.assertEqual(status, 401)
        self.assertTrue(resp.getheader("WWW-Authenticate").startswith("Bearer"))
        self.assertEqual(set(body), {"error", "detail"})
        wrong = api.token[:-1] + ("0" if api.token[-1] != "0" else "1")
        self.assertEqual(api.get("/api/v1/stats", token=wrong)[0], 401)
        self.assertEqual(api.get("/api/v1/stats", token=api.token + "x")[0], 401)
        self.assertEqual(api.get("/api/v1/stats", headers={"Authorization": "Basic abc"},
                                 token=None)[0], 401)
        status, body, _, _ = api.get("/api/v1/nothing")
        self.assertEqual(status, 404)
        self.assertEqual(set(body), {"error", "detail"})
        status, body, resp, _ = api.get("/api/v1/queue/suspend")
        self.assertEqual(status, 405)
        self.assertEqual(resp.getheader("Allow"), "POST")
        status, body, resp, _ = api.request("DELETE", "/api/v1/stats")
        self.assertEqual((status, resp.getheader("Allow")), (405, "GET"))
        status, body, _, _ = api.post("/api/v1/queue/suspend", raw=b"{not json")
        self.assertEqual((status, body["error"]), (400, "malformed JSON"))
        for bad in ({"duration": "1h"}, {"site": "s", "domain": "d", "duration": "1h"},
                    {"site": 5, "duration": "1h"}, {"site": "s", "duration": "soon"},
                    {"site": "s"}, {"site": "s", "duration": "1h", "extra": 1},
                    {"site": "s", "duration": "90d"}):
            status, body, _, _ = api.post("/api/v1/queue/suspend", bad)
            self.assertEqual(status, 400, bad)
            self.assertTrue(body["detail"], bad)
        status, body, _, _ = api.post("/api/v1/queue/bounce", [1, 2])
        self.assertEqual(status, 400)
        status, body = api.announce_oversized("/api/v1/queue/bounce", 1024 * 1024 + 1)
        self.assertEqual(status, 413)
        self.assertEqual(body["error"], "request body too large")
        status, body, _, _ = api.get("/api/v1/events?types=Nonsense")
        self.assertEqual(status, 400)
        # Nothing of that changed the daemon: it is healthy and answers.
        self.assertEqual(api.get("/healthz", token=False)[0], 200)
        rm.stop()

    def test_metrics_auth_requires_the_token(self):
        rm, api = self.admin_daemon(start=False)
        rm.config["admin"]["metrics_auth"] = True
        rm.write_config(rm.config)
        rm.start()
        self.assertEqual(api.get("/metrics", token=False)[0], 401)
        self.assertEqual(api.get("/metrics")[0], 200)
        rm.stop()

    def test_admin_port_in_use_is_a_startup_error(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        port = blocker.getsockname()[1]
        rm, api = self.admin_daemon(start=False)
        rm.config["admin"]["address"] = f"127.0.0.1:{port}"
        rm.write_config(rm.config)
        rm.spawn()
        rc = rm.proc.wait(timeout=20)
        self.assertEqual(rc, 1)
        self.assertIn(f"127.0.0.1:{port}", rm.stderr_text())
        self.assertIn("Address already in use", rm.stderr_text())


class Probe(AdminCase):
    def test_probe_reports_route_banner_extensions_and_tls(self):
        rx = self.receiver("127.0.0.2", tls=True, hostname="probe-rx.test")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        r = api.ok("POST", "/api/v1/probe", {"domain": "x.admin.test"})
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["site"], f"127.0.0.2:{self.smtp_port}")
        self.assertEqual(r["address"], f"127.0.0.2:{self.smtp_port}")
        self.assertEqual(r["source"], "default")
        self.assertTrue(r["banner"].startswith("220"), r)
        # The extensions of the EHLO after STARTTLS (what a delivery would use).
        self.assertIn("PIPELINING", [e.upper() for e in r["extensions"]], r)
        self.assertTrue(r["tls"] and r["tls"].startswith("TLSv1."), r)
        self.assertIn("subject", r["certificate"])
        self.assertFalse(r["certificate"]["verified"], "the test certificate is self-signed")
        self.assertGreaterEqual(r["milliseconds"], 0)
        # No mail was sent.
        self.assertEqual(rx.transactions, [])
        rm.stop()

    def test_probe_names_the_failure(self):
        dead = free_port()
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2", dead))
        r = api.ok("POST", "/api/v1/probe", {"domain": "x.admin.test"})
        self.assertIn("Connection refused", r["error"])
        # No route and no reachable DNS: the lookup's failure is named.
        r = api.ok("POST", "/api/v1/probe", {"domain": "elsewhere.test"})
        self.assertTrue(r["error"].startswith("DNS"), r)
        self.assertEqual(api.post("/api/v1/probe", {"domain": ""})[0], 400)
        self.assertEqual(api.post("/api/v1/probe", {})[0], 400)
        rm.stop()


class Events(AdminCase):
    def test_event_stream_carries_records_as_they_are_written(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        sock = socket.create_connection((api.host, api.port), timeout=20)
        self.addCleanup(sock.close)
        sock.sendall(f"GET /api/v1/events?types=Delivery HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {api.token}\r\n\r\n".encode())
        got = b""
        while b"\r\n\r\n" not in got:
            got += sock.recv(4096)
        head = got.split(b"\r\n\r\n")[0].decode()
        self.assertIn("200", head.splitlines()[0])
        self.assertIn("text/event-stream", head)
        self.send(rm, "live@a.admin.test", "live")
        deadline = time.monotonic() + WAIT
        records = []
        while time.monotonic() < deadline and not records:
            got += sock.recv(65536)
            for line in got.decode(errors="replace").split("\n"):
                # Chunked framing: the data lines are whole lines within it.
                if line.startswith("data: {"):
                    records.append(json.loads(line[len("data: "):]))
        self.assertTrue(records, got[-2000:])
        self.assertEqual(records[0]["type"], "Delivery")
        self.assertEqual(records[0]["recipient"], "live@a.admin.test")
        self.assertFalse([r for r in records if r["type"] != "Delivery"])
        sock.close()
        rm.stop()


class HostileClients(AdminCase):
    def test_half_open_connections_and_a_huge_body_stop_neither_smtp_nor_the_api(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        half_open = []
        for _ in range(200):
            s = socket.create_connection((api.host, api.port), timeout=5)
            s.sendall(b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            half_open.append(s)
        self.addCleanup(lambda: [s.close() for s in half_open])
        body_result = {}

        def huge_body():
            s = socket.create_connection((api.host, api.port), timeout=20)
            try:
                s.sendall(f"POST /api/v1/queue/bounce HTTP/1.1\r\nHost: x\r\n"
                          f"Authorization: Bearer {api.token}\r\n"
                          f"Transfer-Encoding: chunked\r\n\r\n".encode())
                chunk = b"%x\r\n" % (1 << 20) + b"x" * (1 << 20) + b"\r\n"
                for _ in range(100):  # 100 MiB
                    s.sendall(chunk)
            except OSError as e:
                body_result["cut"] = str(e)
            try:
                body_result["reply"] = s.recv(4096)
            except OSError as e:
                body_result.setdefault("cut", str(e))
            s.close()

        t = threading.Thread(target=huge_body)
        t.start()
        t0 = time.monotonic()
        status, body, _, _ = api.get("/api/v1/stats", timeout=5)
        self.assertEqual(status, 200)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.send(rm, "ok@a.admin.test", "during the flood")
        self.assertTrue(wait_until(lambda: len(self.delivered_to(rx)) == 1, WAIT))
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertTrue(body_result.get("cut") or b"413" in body_result.get("reply", b""),
                        body_result)
        self.assertEqual(api.get("/healthz", token=False)[0], 200)
        rm.stop()


if __name__ == "__main__":
    unittest.main()
