#!/usr/bin/env python3
"""bench/run_metrics_scrape.py — what /metrics and GET /api/v1/queue cost
with mail queued for many sites (issue 10's goal: a scrape under 50 ms with
10,000 sites).

Fills a spool with --sites messages, one recipient each, to address
literals [127.1.X.Y] (one site each; bench/spool_fill_tool --literals),
starts ringmaild with delivery to a closed port so that every recipient is
deferred once (a messages_deferred_total{site} series and a queue entry per
site), then times --scrapes GETs of /metrics and of /api/v1/queue, and the
same against the daemon with an empty spool, in one run. Prints medians,
p95, sizes and the ratio full/empty.

  bench/run_metrics_scrape.py [--sites 10000] [--scrapes 30]
      [--ringmaild build/release/ringmaild] [--fill build/release/spool_fill_tool]
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, token):
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError("%s: %d %r" % (path, r.status, body[:200]))
    return time.perf_counter() - t0, body


class Daemon:
    def __init__(self, binary, scratch, fill=None, sites=0):
        self.binary, self.dir = binary, scratch
        os.makedirs(os.path.join(scratch, "spool"), exist_ok=True)
        self.token = os.urandom(8).hex()
        with open(os.path.join(scratch, "admin.token"), "w") as f:
            f.write(self.token + "\n")
        self.admin = free_port()
        if sites:
            out = subprocess.run([fill, "--spool", os.path.join(scratch, "spool"),
                                  "--messages", str(sites), "--recipients", "1",
                                  "--domains", str(sites), "--size", "1024",
                                  "--map-size-gib", "1", "--literals"],
                                 capture_output=True, text=True, check=True)
            print("  filled: " + out.stdout.strip(), flush=True)
        with open(os.path.join(scratch, "ringmail.yaml"), "w") as f:
            f.write("""hostname: bench.test
listeners:
  - {name: relay, address: "127.0.0.1:%d", mode: relay, tls: none}
relay_networks: [127.0.0.0/8]
limits: {max_connections_per_ip: 0}
spool: {path: spool, max_size: 1GiB}
delivery:
  smtp_port: %d
  dns: {nameservers: ["127.0.0.1:%d"]}
  retry: {intervals: [1h], max_age: 5d}
  max_connections: 2000
  timeouts: {connect: 2s}
admin: {address: "127.0.0.1:%d", token_file: admin.token}
log: {level: warn}
""" % (free_port(), free_port(), free_port(), self.admin))
        self.log = open(os.path.join(scratch, "ringmaild.log"), "w")
        self.proc = subprocess.Popen([binary, "-c", os.path.join(scratch, "ringmail.yaml")],
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while True:
            try:
                get(self.admin, "/healthz", self.token)
                break
            except (OSError, RuntimeError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("ringmaild did not start; see " + self.log.name)
                time.sleep(0.2)

    def wait_deferred(self, n, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, body = get(self.admin, "/api/v1/stats", self.token)
            stats = json.loads(body)
            if stats["deferred"] >= n:
                return stats
            time.sleep(1)
        raise RuntimeError("only %d of %d recipients deferred" % (stats["deferred"], n))

    def measure(self, path, n):
        times, size = [], 0
        for _ in range(n):
            t, body = get(self.admin, path, self.token)
            times.append(t * 1000)
            size = len(body)
        times.sort()
        return {"median_ms": statistics.median(times),
                "p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))],
                "bytes": size}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sites", type=int, default=10000)
    ap.add_argument("--scrapes", type=int, default=30)
    ap.add_argument("--ringmaild", default=os.path.join(ROOT, "build/release/ringmaild"))
    ap.add_argument("--fill", default=os.path.join(ROOT, "build/release/spool_fill_tool"))
    args = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="ringmail-scrape-", dir="/var/tmp")
    results = {}
    try:
        print("metrics scrape benchmark: %d sites, %d scrapes each" % (args.sites, args.scrapes),
              flush=True)
        empty = Daemon(args.ringmaild, os.path.join(scratch, "empty"))
        results["empty"] = {p: empty.measure(p, args.scrapes)
                            for p in ("/metrics", "/api/v1/queue")}
        empty.stop()
        full = Daemon(args.ringmaild, os.path.join(scratch, "full"), args.fill, args.sites)
        t0 = time.monotonic()
        stats = full.wait_deferred(args.sites)
        print("  all %d recipients deferred after %.1f s, %d sites in stats"
              % (args.sites, time.monotonic() - t0, len(stats["sites"])), flush=True)
        results["full"] = {p: full.measure(p, args.scrapes) for p in ("/metrics", "/api/v1/queue")}
        _, body = get(full.admin, "/metrics", full.token)
        series = sum(1 for line in body.decode().splitlines()
                     if line.startswith("ringmail_messages_deferred_total{"))
        full.stop()
        for p in ("/metrics", "/api/v1/queue"):
            e, f = results["empty"][p], results["full"][p]
            print("%-15s empty: median %.2f ms, p95 %.2f ms, %d B | %d sites: median %.2f ms, "
                  "p95 %.2f ms, %d B | ratio %.1fx"
                  % (p, e["median_ms"], e["p95_ms"], e["bytes"], args.sites, f["median_ms"],
                     f["p95_ms"], f["bytes"], f["median_ms"] / max(e["median_ms"], 1e-9)))
        print("messages_deferred_total series in the scrape: %d" % series)
        ok = results["full"]["/metrics"]["p95_ms"] < 50
        print("goal (/metrics under 50 ms with %d sites): %s" % (args.sites, "met" if ok else "NOT met"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
