#!/usr/bin/python3
"""bench/run_injection.py — the HTTP injection API against SMTP submission.

One ringmaild (release build) with a relay listener, the admin API and a
static route to a counting smtp-sink. Interleaved in every repetition:
  http  wrk, 20 keep-alive connections (-c), POST /api/v1/messages with one
        small built message (a text part of --text-size bytes, a subject, a
        display name) for --seconds; messages/s is wrk's requests/s, and
        any answer but 200 fails the run;
  smtp  bench/smtp_latency_tool, 20 connections reused, as fast as the
        daemon answers, the same number of messages (what the http run
        did), each the size of the built message, on the relay listener.
Both answer only after the spool commit (200 / 250), so both rates are of
durable acceptance; the daemon delivers to the sink meanwhile in both.
Reported: each run's messages/s and ringmaild's CPU per message (its own
cgroup), the medians and the ratio http/smtp. The machine is shared:
compare ratios, not absolute figures.

Usage: sudo bench/run_injection.py [--reps 3] [--seconds 10] [--connections 20]
Needs build/release/ringmaild and smtp_latency_tool, wrk and smtp-sink.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_util as bu  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = """\
hostname: ringmail-bench.localdomain
listeners:
  - {{name: relay, address: "127.0.0.1:{smtp_port}", mode: relay, tls: none}}
relay_networks: [127.0.0.0/8]
limits:
  max_connections_per_ip: 0
spool:
  path: {spool}
  max_size: 4GiB
delivery:
  routes:
    - {{domain: "*", smarthost: "127.0.0.1:{sink_port}"}}
  retry: {{intervals: [1s, 5s], max_age: 1h}}
admin:
  address: 127.0.0.1:{admin_port}
  token_file: {token_file}
log:
  level: warn
"""

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


def built_message(text_size):
    line = "The quick brown fox jumps over the lazy dog, again and again. "
    text = (line * (text_size // len(line) + 1))[:text_size]
    return {"from": "Bench Sender <bench@bench.test>", "to": ["rcpt@example.test"],
            "subject": "injection bench", "text": text}


def wait_http(url, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def run_http(args, admin_port, token, body, scratch):
    script = os.path.join(scratch, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT.format(body=json.dumps(body), token=token))
    out = subprocess.run(["wrk", "-t2", "-c%d" % args.connections, "-d%ds" % args.seconds,
                          "--latency", "-s", script,
                          "http://127.0.0.1:%d/api/v1/messages" % admin_port],
                         capture_output=True, text=True, timeout=args.seconds + 60)
    if out.returncode != 0:
        raise RuntimeError("wrk failed: " + out.stderr.strip()[-400:])
    text = out.stdout
    if "Non-2xx" in text:
        raise RuntimeError("the API refused some requests:\n" + text)
    requests = int(next(l for l in text.splitlines() if "requests in" in l).split()[0])
    rate = float(next(l for l in text.splitlines() if l.startswith("Requests/sec")).split()[1])
    return requests, rate


def run_smtp(args, smtp_port, messages, size):
    out = subprocess.run([args.latency_tool, "--port", str(smtp_port), "--connections",
                          str(args.connections), "--rate", "1000000000", "--messages",
                          str(messages), "--size", str(size)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("smtp_latency_tool failed: " + out.stderr.strip()[-400:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["count"], result["rate"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10, help="length of each http run")
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--text-size", type=int, default=1000, help="bytes of the text part")
    ap.add_argument("--ringmaild", default=os.environ.get(
        "RINGMAILD", os.path.join(REPO, "build/release/ringmaild")))
    ap.add_argument("--latency-tool", default=os.path.join(REPO, "build/release/smtp_latency_tool"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run_injection: must run as root (cgroups)")
    for tool in (args.ringmaild, args.latency_tool, bu.SMTP_SINK, "/usr/bin/wrk"):
        if not os.access(tool, os.X_OK):
            sys.exit("run_injection: %s missing (ninja -C build/release ringmaild "
                     "smtp_latency_tool; apt-get install wrk postfix)" % tool)

    scratch = tempfile.mkdtemp(prefix="ringmail-inject-", dir="/var/tmp")
    tag = "ringmail-inject-%d" % os.getpid()
    load_cg = bu.CpuCgroup(tag + "-load")
    mta_cg = bu.CpuCgroup(tag + "-mta")
    sink = bu.CountingSink(os.path.join(scratch, "sink.count"), load_cg)
    daemon = None
    try:
        sink.start()
        token = secrets.token_hex(16)
        token_file = os.path.join(scratch, "admin.token")
        with open(token_file, "w") as f:
            f.write(token + "\n")
        smtp_port, admin_port = bu.free_port(), bu.free_port()
        config = os.path.join(scratch, "ringmail.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(smtp_port=smtp_port, sink_port=sink.port, admin_port=admin_port,
                                  spool=os.path.join(scratch, "spool"), token_file=token_file))
        daemon = subprocess.Popen([args.ringmaild, "-c", config], stderr=subprocess.PIPE,
                                  preexec_fn=mta_cg.preexec())
        if not wait_http("http://127.0.0.1:%d/healthz" % admin_port):
            raise RuntimeError("ringmaild did not come up")

        body = built_message(args.text_size)
        # The size of the message the daemon builds, for the SMTP runs.
        size = len(body["text"]) + 400
        version = subprocess.run([args.ringmaild, "--version"], capture_output=True,
                                 text=True).stdout.strip()
        print("injection benchmark: %s; %d connections, %d s http runs, text %d B "
              "(SMTP messages %d B); %d reps" % (version, args.connections, args.seconds,
                                                 args.text_size, size, args.reps), flush=True)
        results = {"http": [], "smtp": []}
        messages = None  # the SMTP runs send what the last http run did
        for rep in range(1, args.reps + 1):
            order = ["http", "smtp"] if rep % 2 else ["smtp", "http"]
            for path in order:
                bu.wait_idle(mta_cg, max_wait=20.0)
                busy0, total0 = bu.system_busy_usec()
                cpu0 = mta_cg.usage_usec()
                if path == "http":
                    count, rate = run_http(args, admin_port, token, body, scratch)
                else:
                    count, rate = run_smtp(args, smtp_port, messages or 20000, size)
                if path == "http":
                    messages = count
                cpu = (mta_cg.usage_usec() - cpu0) / max(1, count)
                busy1, total1 = bu.system_busy_usec()
                results[path].append((rate, cpu))
                print("rep %d %-4s %7d msgs in %5.1f s: %7.0f msgs/s  %5.0f CPU µs/msg "
                      "(machine busy %2.0f%%)" % (rep, path, count, count / rate, rate, cpu,
                                                  100.0 * (busy1 - busy0) / max(1, total1 - total0)),
                      flush=True)
        http = bu.median([r for r, _ in results["http"]])
        smtp = bu.median([r for r, _ in results["smtp"]])
        http_cpu = bu.median([c for _, c in results["http"]])
        smtp_cpu = bu.median([c for _, c in results["smtp"]])
        print("\nmedian: http %.0f msgs/s (%.0f CPU µs/msg), smtp %.0f msgs/s (%.0f CPU µs/msg)"
              % (http, http_cpu, smtp, smtp_cpu))
        print("ratio http/smtp: %.3f msgs/s, %.3f CPU per message" % (http / smtp,
                                                                      http_cpu / smtp_cpu))
    finally:
        if daemon:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        sink.stop()
        for cg in (mta_cg, load_cg):
            cg.remove()
        subprocess.run(["rm", "-rf", scratch])


if __name__ == "__main__":
    main()
