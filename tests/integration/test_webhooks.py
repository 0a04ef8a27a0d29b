"""Webhooks against a running ringmaild: a real HTTP receiver (http.server)
on loopback that fails the first POSTs (a 500, then a connection dropped
without an answer) and then answers 200 gets every delivery-log record at
least once, in order, each batch signed (HMAC-SHA256 checked here with
Python's hmac), with event ids that stay the same across retries and
restarts; a SIGTERM restart and a kill -9 with a backlog while the receiver
is down lose nothing; max_backlog drops the oldest with its metric."""

import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import threading
import time
import unittest

from harness import free_port
from peers import wait_until
from test_admin_api import AdminCase

WAIT = 30.0
SECRET = b"webhook-secret-0123456789abcdef-0123456789"


class HookReceiver:
    """An HTTP server on 127.0.0.1:port answering POSTs by a script.

    script: {path: actions for its first requests} ("500", "drop": read the
    request, close without an answer, "200"); then `then` for every later
    one. Every request is kept: (path, headers, body bytes, action)."""

    def __init__(self, case, port=None, script=None, then="200"):
        self.port = port or free_port()
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.then = then
        self.requests = []
        self.lock = threading.Lock()
        self.server = None
        case.addCleanup(self.stop)

    def start(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with owner.lock:
                    todo = owner.script.get(self.path)
                    action = todo.pop(0) if todo else owner.then
                    owner.requests.append((self.path, dict(self.headers), body, action))
                if action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                code = int(action)
                self.send_response(code)
                # One request per connection, so that a "drop" is seen: on a
                # reused connection, libcurl repeats the request by itself.
                self.send_header("Connection", "close")
                self.close_connection = True
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def set_then(self, action):
        with self.lock:
            self.then = action

    def all(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r[0] == path]

    def accepted_records(self, path=None):
        """The records of every POST answered 200, in arrival order."""
        out = []
        for _, _, body, action in self.all(path):
            if action == "200":
                out.extend(json.loads(body))
        return out


def sequence(record):
    """The sequence number in an event id ("EPOCH-SEQ")."""
    m = re.fullmatch(r"[0-9a-f]{16}-([0-9]+)", record["event_id"])
    assert m, record["event_id"]
    return int(m.group(1))


def without_id(record):
    return {k: v for k, v in record.items() if k != "event_id"}


class WebhookCase(AdminCase):
    def hook_daemon(self, hooks, rx_ip="127.0.0.2", **top):
        with_secret = []
        for h in hooks:
            h = dict(h)
            h.setdefault("secret_file", "webhook.key")
            with_secret.append(h)
        rm, api = self.admin_daemon(routes=self.route_to(rx_ip), start=False,
                                    webhooks=with_secret, **top)
        with open(os.path.join(rm.dir, "webhook.key"), "wb") as f:
            f.write(SECRET + b"\n")  # one trailing newline is stripped
        rm.start()
        return rm, api

    def metric(self, api, line_start):
        status, _, _, text = api.get("/metrics", token=False)
        self.assertEqual(status, 200)
        for line in text.decode().splitlines():
            if line.startswith(line_start + " "):
                return float(line.split()[-1])
        return None

    def check_signed(self, requests):
        for path, headers, body, _ in requests:
            self.assertEqual(headers.get("Content-Type"), "application/json", path)
            want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            self.assertEqual(headers.get("X-Ringmail-Signature"), want, f"signature of {body[:200]}")

    def check_stable_ids(self, requests):
        """Every event id means one record, whichever POST carried it."""
        seen = {}
        for _, _, body, _ in requests:
            for record in json.loads(body):
                self.assertIn("event_id", record)
                earlier = seen.setdefault(record["event_id"], record)
                self.assertEqual(earlier, record, "one event id, two records")
        return seen

    def check_in_order(self, records):
        """Deduplicated by event id, each sequence above the one before."""
        firsts, seen = [], set()
        for r in records:
            if r["event_id"] not in seen:
                seen.add(r["event_id"])
                firsts.append(r)
        seqs = [sequence(r) for r in firsts]
        self.assertEqual(seqs, sorted(seqs), "records out of order")
        self.assertEqual(len(seqs), len(set(seqs)))
        return firsts


class WebhookDelivery(WebhookCase):
    def test_failing_receiver_gets_every_record_in_order_signed_with_stable_ids(self):
        self.receiver("127.0.0.2")
        hooks = HookReceiver(self, script={"/all": ["500", "drop"]}).start()
        url = f"http://127.0.0.1:{hooks.port}"
        rm, api = self.hook_daemon([
            {"name": "crm", "url": url + "/all", "batch": 3},
            {"name": "deliveries", "url": url + "/deliveries", "events": ["Delivery"]},
        ])
        rcpts = [f"user{i}@w.admin.test" for i in range(4)]
        for r in rcpts:
            self.send(rm, r, "webhook")
        for r in rcpts:
            self.wait_record(rm, "Delivery", r)
        log = rm.delivery_log()
        self.assertEqual(len(log), 8, log)

        def all_there():
            got = {r["event_id"] for r in hooks.accepted_records("/all")}
            return len(got) >= len(log)
        self.assertTrue(wait_until(all_there, WAIT), hooks.all())
        self.assertTrue(wait_until(
            lambda: len(hooks.accepted_records("/deliveries")) >= 4, WAIT), hooks.all())

        requests = hooks.all()
        self.assertEqual([r[3] for r in hooks.all("/all")[:2]], ["500", "drop"])
        self.check_signed(requests)
        ids = self.check_stable_ids(requests)
        # What failed was sent again, with the same ids.
        accepted = {r["event_id"] for r in hooks.accepted_records()}
        for _, _, body, action in requests:
            if action != "200":
                for record in json.loads(body):
                    self.assertIn(record["event_id"], accepted)
        for path, _, body, _ in hooks.all("/all"):
            self.assertLessEqual(len(json.loads(body)), 3, "batch: 3")
        # Every record of the log, once or more, in order.
        posted = self.check_in_order(hooks.accepted_records("/all"))
        key = lambda r: json.dumps(r, sort_keys=True)
        self.assertEqual(sorted(map(key, map(without_id, posted))), sorted(map(key, log)))
        for r in rcpts:
            kinds = [p["type"] for p in posted if p["recipient"] == r]
            self.assertEqual(kinds, ["Reception", "Delivery"], r)
        # The filtered webhook: only Delivery records, the same ids as the other's.
        deliveries = self.check_in_order(hooks.accepted_records("/deliveries"))
        self.assertEqual({d["type"] for d in deliveries}, {"Delivery"})
        self.assertEqual(len(deliveries), 4)
        for d in deliveries:
            self.assertEqual(ids[d["event_id"]], d)

        self.assertEqual(self.metric(
            api, 'ringmail_webhook_posts_total{result="http_5xx",webhook="crm"}'), 1)
        self.assertEqual(self.metric(
            api, 'ringmail_webhook_posts_total{result="error",webhook="crm"}'), 1)
        self.assertGreaterEqual(self.metric(
            api, 'ringmail_webhook_posts_total{result="ok",webhook="crm"}'), 3)
        self.assertEqual(self.metric(api, 'ringmail_webhook_backlog{webhook="crm"}'), 0)
        rm.stop()

    def test_restart_with_a_backlog_while_the_receiver_is_down_loses_nothing(self):
        # Without a delivery log too: the records come through the spool.
        self.receiver("127.0.0.2")
        port = free_port()
        rm, api = self.hook_daemon([{"name": "crm", "url": f"http://127.0.0.1:{port}/h"}],
                                   log={"level": "info", "delivery_log": None})
        rcpts = [f"down{i}@w.admin.test" for i in range(3)]
        for r in rcpts:
            self.send(rm, r, "webhook restart")
        self.assertTrue(wait_until(lambda: api.ok("GET", "/api/v1/stats")["delivered"] == 3,
                                   WAIT))
        self.assertTrue(wait_until(lambda: self.metric(
            api, 'ringmail_webhook_backlog{webhook="crm"}') == 6, WAIT))
        self.assertGreaterEqual(self.metric(
            api, 'ringmail_webhook_posts_total{result="connect_error",webhook="crm"}'), 1)
        rm.stop()

        hooks = HookReceiver(self, port=port).start()
        rm.start()
        self.assertTrue(wait_until(lambda: len(hooks.accepted_records()) >= 6, WAIT),
                        hooks.all())
        posted = self.check_in_order(hooks.accepted_records())
        self.check_signed(hooks.all())
        self.assertEqual(len(posted), 6)
        for r in rcpts:
            self.assertEqual([p["type"] for p in posted if p["recipient"] == r],
                             ["Reception", "Delivery"], r)
        time.sleep(1.5)
        self.assertEqual(len(hooks.all()), 1, "one batch, nothing twice after a clean stop")
        rm.stop()

    def test_kill_9_keeps_every_committed_record_with_its_event_id(self):
        self.receiver("127.0.0.2")
        hooks = HookReceiver(self, then="500").start()
        rm, api = self.hook_daemon(
            [{"name": "crm", "url": f"http://127.0.0.1:{hooks.port}/h"}])
        rcpts = [f"crash{i}@w.admin.test" for i in range(5)]
        for r in rcpts:
            self.send(rm, r, "webhook kill")
        for r in rcpts:
            self.wait_record(rm, "Delivery", r)
        receptions = rm.delivery_log("Reception")
        # A failed POST that carried all ten records: their ids before the crash.
        def full_attempt():
            for _, _, body, _ in hooks.all():
                if len(json.loads(body)) >= 10:
                    return json.loads(body)
            return None
        before = wait_until(full_attempt, WAIT)
        self.assertTrue(before, hooks.all())
        rm.kill9()

        hooks.set_then("200")
        rm.start()
        self.assertTrue(wait_until(lambda: len({r["event_id"] for r in
                                                hooks.accepted_records()}) >= 10, WAIT),
                        hooks.all())
        ids = self.check_stable_ids(hooks.all())
        posted = self.check_in_order(hooks.accepted_records())
        # Guarantee: every record the daemon had committed before the kill
        # is posted after it, with the id and content it had.
        accepted = {p["event_id"]: p for p in posted}
        for record in before:
            self.assertEqual(accepted.get(record["event_id"]), record)
        # Every Reception of the log (written after its commit) is posted,
        # and every recipient has its Delivery posted.
        key = lambda r: json.dumps(r, sort_keys=True)
        posted_texts = {key(without_id(p)) for p in posted}
        for r in receptions:
            self.assertIn(key(r), posted_texts)
        for r in rcpts:
            self.assertIn("Delivery", [p["type"] for p in posted if p["recipient"] == r])
        self.assertEqual(len(ids), len(accepted))
        rm.stop()

    def test_max_backlog_drops_the_oldest_with_a_metric_and_a_log_line(self):
        self.receiver("127.0.0.2")
        port = free_port()
        rm, api = self.hook_daemon(
            [{"name": "crm", "url": f"http://127.0.0.1:{port}/h", "max_backlog": 3}])
        rcpts = [f"full{i}@w.admin.test" for i in range(4)]
        for r in rcpts:
            self.send(rm, r, "webhook backlog")
        for r in rcpts:
            self.wait_record(rm, "Delivery", r)
        self.assertTrue(wait_until(lambda: self.metric(
            api, 'ringmail_webhook_dropped_total{webhook="crm"}') == 5, WAIT),
            api.get("/metrics", token=False)[3].decode())
        self.assertEqual(self.metric(api, 'ringmail_webhook_backlog{webhook="crm"}'), 3)
        self.assertIn("webhook crm: backlog reached max_backlog (3 records)", rm.stderr_text())

        hooks = HookReceiver(self, port=port).start()
        # A restart tries at once (rather than at the next backoff step).
        rm.stop()
        rm.start()
        self.assertTrue(wait_until(lambda: len(hooks.accepted_records()) >= 3, WAIT),
                        hooks.all())
        time.sleep(1.0)
        posted = self.check_in_order(hooks.accepted_records())
        # Eight records (four Reception, four Delivery) had the sequence
        # numbers 1-8 of this new spool: the newest three are kept.
        self.assertEqual([sequence(p) for p in posted], [6, 7, 8])
        key = lambda r: json.dumps(r, sort_keys=True)
        log = {key(r) for r in rm.delivery_log()}
        for p in posted:
            self.assertIn(key(without_id(p)), log)
        self.assertEqual(self.metric(api, 'ringmail_webhook_backlog{webhook="crm"}'), 0)
        rm.stop()

    def test_a_reload_adds_and_removes_a_webhook(self):
        self.receiver("127.0.0.2")
        hooks = HookReceiver(self).start()
        rm, api = self.hook_daemon([])
        self.send(rm, "before@w.admin.test", "no webhook yet")
        self.wait_record(rm, "Delivery", "before@w.admin.test")

        rm.config["webhooks"] = [{"name": "late", "url": f"http://127.0.0.1:{hooks.port}/h",
                                  "secret_file": "webhook.key"}]
        rm.write_config()
        status, body, _, _ = api.post("/api/v1/reload")
        self.assertEqual(status, 200, body)
        self.send(rm, "after@w.admin.test", "webhook added")
        self.assertTrue(wait_until(lambda: len(hooks.accepted_records()) >= 2, WAIT),
                        hooks.all())
        posted = self.check_in_order(hooks.accepted_records())
        self.assertEqual([(p["type"], p["recipient"]) for p in posted],
                         [("Reception", "after@w.admin.test"),
                          ("Delivery", "after@w.admin.test")])
        self.check_signed(hooks.all())

        rm.config["webhooks"] = []
        rm.write_config()
        status, body, _, _ = api.post("/api/v1/reload")
        self.assertEqual(status, 200, body)
        self.assertIn("webhook late removed", rm.stderr_text())
        self.send(rm, "gone@w.admin.test", "webhook removed")
        self.wait_record(rm, "Delivery", "gone@w.admin.test")
        time.sleep(1.0)
        self.assertEqual(len(hooks.accepted_records()), 2, "nothing after the removal")
        rm.stop()


if __name__ == "__main__":
    unittest.main()
