#!/usr/bin/env python3
"""bench/run_restart.py -- restart with a large queue (DESIGN.md budget:
"Restart with 1,000,000 queued recipients: delivering again within 10 s").

Fills a fresh spool with --messages messages of --size octets, each to
--recipients recipients over --domains domains (bench/spool_fill_tool:
1,000,000 recipients, 1,000,000 jobs by default), starts ringmaild on it
with every domain routed to a counting smtp-sink, and prints: how long
recovery and scheduling took (ringmaild's own log lines), the time from
exec to READY=1 and to the sink's first delivery, the deliveries in the
following --seconds seconds, and ringmaild's VmRSS with the queue loaded.
Needs root (smtp-sink drops to the postfix user) and build/release with
ringmaild and spool_fill_tool.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_util as bu  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = """hostname: restart-bench.localdomain
listeners:
  - {{name: relay, address: "127.0.0.1:{port}", mode: relay, tls: none}}
relay_networks: [127.0.0.0/8]
limits: {{shutdown_timeout: 5s}}
spool: {{path: {spool}, max_size: {map_gib}GiB}}
delivery:
  routes:
    - {{domain: "*", smarthost: "127.0.0.1:{sink_port}"}}
  max_connections_per_site: 50
log: {{level: info}}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--recipients", type=int, default=10)
    ap.add_argument("--domains", type=int, default=10)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--seconds", type=float, default=10.0, help="delivery measured after the first")
    ap.add_argument("--ringmaild", default=os.environ.get(
        "RINGMAILD", os.path.join(REPO, "build/release/ringmaild")))
    ap.add_argument("--fill-tool", default=os.path.join(REPO, "build/release/spool_fill_tool"))
    ap.add_argument("--scratch", help="kept afterwards (default: a temporary dir under /var/tmp)")
    args = ap.parse_args()
    for tool in (args.ringmaild, args.fill_tool):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: cmake -S . -B build/release -G Ninja "
                     "-DCMAKE_BUILD_TYPE=RelWithDebInfo && ninja -C build/release ringmaild "
                     "spool_fill_tool")
    scratch = args.scratch or tempfile.mkdtemp(prefix="ringmail-restart-", dir="/var/tmp")
    spool = os.path.join(scratch, "spool")
    os.makedirs(spool, exist_ok=True)
    map_gib = max(2, (args.messages * (args.size + 200 * args.recipients)) // (1 << 30) * 2 + 2)
    cgroup = bu.CpuCgroup("ringmail-restart-load")
    sink = bu.CountingSink(os.path.join(scratch, "sink.count"), cgroup, backlog=1000)
    proc = None
    try:
        fill = subprocess.run([args.fill_tool, "--spool", spool, "--messages", str(args.messages),
                               "--recipients", str(args.recipients), "--domains",
                               str(args.domains), "--size", str(args.size),
                               "--map-size-gib", str(map_gib)],
                              capture_output=True, text=True, check=True)
        filled = json.loads(fill.stdout)
        print(f"spool filled: {filled['messages']} messages, {filled['recipients']} recipients "
              f"over {filled['domains']} domains ({filled['seconds']:.1f} s)")
        subprocess.run(["sync"], check=True)
        sink_port = sink.start()
        port = bu.free_port()
        config = os.path.join(scratch, "ringmail.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(port=port, spool=spool, map_gib=map_gib, sink_port=sink_port))
        notify = bu.NotifySocket(os.path.join(scratch, "notify.sock"))
        log_path = os.path.join(scratch, "ringmaild.log")
        log = open(log_path, "wb")
        t0 = time.monotonic()
        proc = subprocess.Popen([args.ringmaild, "-c", config], stdout=log, stderr=log,
                                env=dict(os.environ, NOTIFY_SOCKET=notify.path))
        log.close()
        ready = first = None
        deadline = t0 + 120
        while time.monotonic() < deadline and first is None:
            if proc.poll() is not None:
                sys.exit("ringmaild exited:\n" + open(log_path, errors="replace").read()[-3000:])
            if ready is None and notify.ready():
                ready = time.monotonic() - t0
            if sink.count() > 0:
                first = time.monotonic() - t0
            time.sleep(0.002)
        if first is None:
            sys.exit("no delivery within 120 s:\n" + open(log_path, errors="replace").read()[-3000:])
        rss = bu.rss_kib(proc.pid)
        status = {line.split(":")[0]: int(line.split()[1])
                  for line in open(f"/proc/{proc.pid}/status") if line.startswith("Rss")}
        start_count = sink.count()
        time.sleep(args.seconds)
        delivered = sink.count() - start_count
        lines = [line for line in open(log_path, errors="replace").read().splitlines()
                 if "spool " in line or "loaded from the spool" in line]
        for line in lines:
            print("  ringmaild: " + line.split(" ", 2)[-1])
        print(f"exec -> READY=1: {ready:.2f} s" if ready is not None else "READY=1: not seen")
        print(f"exec -> first delivery: {first:.2f} s (goal: under 10 s)")
        print(f"deliveries in the next {args.seconds:.0f} s: {delivered} "
              f"({delivered / args.seconds:.0f} transactions/s)")
        anon = status.get("RssAnon", 0)
        print(f"ringmaild VmRSS with the queue loaded: {rss / 1024:.0f} MiB, of which "
              f"{anon / 1024:.0f} MiB its own memory ({anon * 1024 / max(1, filled['recipients']):.0f}"
              f" bytes per queued recipient) and {status.get('RssFile', 0) / 1024:.0f} MiB spool "
              "pages mapped from the page cache")
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        sink.stop()
        cgroup.remove()
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
