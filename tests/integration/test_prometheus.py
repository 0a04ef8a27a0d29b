"""/metrics as Prometheus sees it: a real Prometheus server (Debian's
`prometheus`) scrapes ringmaild every second while mail flows, and a PromQL
query through Prometheus's HTTP API must return the number of messages the
test sent; `promtool check metrics` must find nothing wrong with a scrape
taken under load."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

from admin_client import Api
from harness import free_port
from peers import SMTP_SOURCE, wait_until
from test_admin_api import AdminCase

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

# Every family CONTRACT.md "Metrics" and "Metrics added by these features" names.
CONTRACT_METRICS = [
    "messages_received_total", "messages_delivered_total", "messages_deferred_total",
    "messages_bounced_total", "queue_recipients", "smtp_sessions_active",
    "spool_commit_seconds", "delivery_attempt_seconds", "dkim_signatures_total",
    "warmup_sent", "backoff_active", "build_info", "messages_suppressed_total",
    "messages_cancelled_total", "feedback_total", "backoff_activations_total",
    "webhook_posts_total", "admin_requests_total",
]


class Prometheus(AdminCase):
    def test_prometheus_scrapes_and_counts_what_was_sent(self):
        self.assertTrue(PROMETHEUS, "prometheus is not installed (make deps)")
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        work = tempfile.mkdtemp(prefix="ringmail-prom-")
        self.addCleanup(shutil.rmtree, work, True)
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: ringmail\n"
                    f"    static_configs:\n      - targets: ['{api.host}:{api.port}']\n")
        port = free_port()
        log = open(os.path.join(work, "prom.log"), "w")
        self.addCleanup(log.close)
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={work}/prometheus.yml",
             f"--storage.tsdb.path={work}/data", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=log)
        self.addCleanup(lambda: (prom.terminate(), prom.wait(20)))

        def query(q):
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    data = json.load(r)
            except OSError:
                return None
            result = data.get("data", {}).get("result", [])
            return float(result[0]["value"][1]) if result else None

        if not wait_until(lambda: query("up{job='ringmail'}") == 1.0, 60):
            with open(os.path.join(work, "prom.log")) as f:
                self.fail("Prometheus never scraped ringmaild: " + f.read()[-3000:])
        sent = 25
        for i in range(sent):
            self.send(rm, f"p{i}@a.admin.test", "prometheus")
        self.assertTrue(wait_until(lambda: len(self.delivered_to(rx)) == sent, 30))
        got = wait_until(lambda: query("sum(ringmail_messages_delivered_total)") == sent, 30)
        self.assertTrue(got, query("sum(ringmail_messages_delivered_total)"))
        self.assertEqual(query("sum(ringmail_messages_received_total)"), sent)
        self.assertEqual(query("ringmail_queue_recipients{state='queued'}"), 0)
        rm.stop()

    def test_promtool_finds_nothing_wrong_with_a_scrape_under_load(self):
        self.assertTrue(PROMTOOL, "promtool is not installed (make deps)")
        rx = self.receiver("127.0.0.2")
        rm, api = self.admin_daemon(routes=self.route_to("127.0.0.2"))
        load = subprocess.Popen(
            [SMTP_SOURCE, "-s", "10", "-m", "5000", "-l", "2048", "-f", "author@sender.test",
             "-t", "rcpt@load.admin.test", f"127.0.0.1:{rm.port('relay')}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(load.kill)
        self.addCleanup(load.stderr.close)
        scrapes = []
        while load.poll() is None and len(scrapes) < 20:
            status, _, _, text = api.get("/metrics", token=False)
            self.assertEqual(status, 200)
            scrapes.append(text)
            time.sleep(0.05)
        self.assertEqual(load.wait(60), 0, load.stderr.read())
        self.assertGreaterEqual(len(scrapes), 3, "the load ended before three scrapes")
        for text in scrapes[-3:]:
            check = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                                   capture_output=True, timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
            self.assertEqual((check.stdout + check.stderr).strip(), b"",
                             (check.stdout + check.stderr).decode())
        body = scrapes[-1].decode()
        for name in CONTRACT_METRICS:
            self.assertIn(f"# TYPE ringmail_{name} ", body, name)
            self.assertIn(f"# HELP ringmail_{name} ", body, name)
        for h in ("spool_commit_seconds", "delivery_attempt_seconds"):
            for part in ("_bucket{le=\"+Inf\"}", "_sum", "_count"):
                self.assertIn(f"ringmail_{h}{part}", body)
        rm.stop()


if __name__ == "__main__":
    unittest.main()
