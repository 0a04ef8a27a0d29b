#!/usr/bin/python3
"""bench/run_inbound.py — end-to-end acceptance benchmark: ringmaild vs Postfix.

One invocation measures, interleaved and on the same machine:
  1. the wire limit (smtp-source -> smtp-sink), as a reference;
  2. N repetitions (default 3, order alternating) of smtp-source
     (-s 50 -m 20000 -l 4096 -d) against a private Postfix instance and
     against ringmaild, each with a durable spool in a scratch dir and a warm
     up first: msgs/s, CPU µs per message of the MTA alone (its own transient
     cgroup; smtp-source is in another), the ratio; medians reported;
  3. p99 end-of-DATA -> 250 latency of ringmaild (and Postfix) at half of
     its median max rate (bench/smtp_latency_tool, paced, 50 connections);
  4. 10,000 concurrent idle connections to ringmaild: VmRSS and per connection.

Run as root (Postfix's master, cgroups). See bench/README.md.
Process model: single-threaded driver; every daemon it starts is stopped by
pid before it exits, even on errors.
"""

import argparse
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_util as bu  # noqa: E402
from postfix_instance import PostfixInstance  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"

RINGMAIL_CONFIG = """\
# Benchmark config written by bench/run_inbound.py.
hostname: ringmail-bench.localdomain
listeners:
  - {{name: relay, address: "127.0.0.1:{port}", mode: relay, tls: none}}
relay_networks: [127.0.0.0/8]
limits:
  max_connections: {max_connections}
  idle_timeout: 30m
  shutdown_timeout: 10s
spool:
  path: {spool}
  max_size: 4GiB
log:
  level: warn
"""


def log(msg):
    print(msg, flush=True)


class RingmailMta:
    name = "ringmaild"

    def __init__(self, binary, scratch, max_connections=20000):
        self.binary = binary
        self.scratch = scratch
        self.max_connections = max_connections
        self.port = None
        self.proc = None
        self.config = os.path.join(scratch, "ringmail.yaml")
        self.log_path = os.path.join(scratch, "ringmaild.log")

    def create(self):
        if os.path.exists(self.scratch):
            shutil.rmtree(self.scratch)
        os.makedirs(os.path.join(self.scratch, "spool"))
        self.port = bu.free_port()
        with open(self.config, "w") as f:
            f.write(RINGMAIL_CONFIG.format(port=self.port, spool=os.path.join(self.scratch, "spool"),
                                           max_connections=self.max_connections))

    def start(self, cgroup, timeout=30):
        notify = bu.NotifySocket(os.path.join(self.scratch, "notify.sock"))
        env = dict(os.environ, NOTIFY_SOCKET=notify.path)
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.config], stdout=logf, stderr=logf,
                                     env=env, preexec_fn=cgroup.preexec())
        logf.close()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("ringmaild exited with %d:\n%s" % (self.proc.returncode,
                                                                          self.log_tail()))
                if notify.ready():
                    if bu.smtp_greets(self.port):
                        return
                time.sleep(0.05)
            # No READY=1: accept a listening daemon but say so.
            if bu.smtp_greets(self.port):
                log("  warning: ringmaild listens but sent no READY=1")
                return
            raise RuntimeError("ringmaild not ready after %ds:\n%s" % (timeout, self.log_tail()))
        finally:
            notify.close()

    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log("  warning: ringmaild did not stop within 30 s of SIGTERM; killing it")
            self.proc.kill()
            self.proc.wait()

    def queued_count(self):
        """Recipients in the spool per `ringmaild --spool-dump` (daemon stopped)."""
        r = subprocess.run([self.binary, "-c", self.config, "--spool-dump"], capture_output=True)
        if r.returncode != 0:
            return None
        return sum(1 for line in r.stdout.splitlines() if line.strip())

    def log_tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def destroy(self):
        self.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)


class PostfixMta:
    name = "postfix"

    def __init__(self, scratch, mode, sink_port):
        self.scratch = scratch
        self.mode = mode
        self.sink_port = sink_port
        self.pf = None
        self.port = None

    def create(self):
        self.port = bu.free_port()
        self.pf = PostfixInstance(self.scratch, self.port, mode=self.mode, sink_port=self.sink_port)
        self.pf.create()

    def start(self, cgroup):
        self.pf.start(preexec_fn=cgroup.preexec())

    def stop(self):
        if self.pf:
            self.pf.stop()

    def queued_count(self):
        return self.pf.queued_count() if self.mode == "hold" else None

    def destroy(self):
        if self.pf:
            self.pf.destroy()


def smtp_source(port, messages, sessions, size, cgroup):
    cmd = [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size), "-d",
           "-M", "bench.test", "-f", "bench@bench.test", "-t", "rcpt@example.test",
           "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=cgroup.preexec())
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("smtp-source failed (%d): %s" % (r.returncode, r.stderr.strip()[-500:]))
    return elapsed


def measure_acceptance(mta, args, mta_cg, load_cg):
    """One repetition against one MTA: fresh spool, warm-up, idle, timed run."""
    mta.create()
    mta.start(mta_cg)
    try:
        if args.warmup:
            smtp_source(mta.port, args.warmup, min(args.sessions, args.warmup), args.size, load_cg)
        bu.wait_idle(mta_cg, max_wait=args.idle_wait)
        cpu0 = mta_cg.usage_usec()
        load0 = load_cg.usage_usec()
        busy0, total0 = bu.system_busy_usec()
        elapsed = smtp_source(mta.port, args.messages, args.sessions, args.size, load_cg)
        busy1, total1 = bu.system_busy_usec()
        load1 = load_cg.usage_usec()
        # Postfix may still be moving files or logging: count until it is quiet.
        bu.wait_idle(mta_cg, max_wait=args.idle_wait, machine_threshold=1.0)
        cpu1 = mta_cg.usage_usec()
        mta.stop()
        queued = mta.queued_count()
        expected = args.messages + args.warmup
        if queued is not None and queued != expected:
            raise RuntimeError("%s spooled %d messages, expected %d" % (mta.name, queued, expected))
        other = (busy1 - busy0) - (cpu1 - cpu0) - (load1 - load0)
        return {
            "msgs_per_s": args.messages / elapsed,
            "seconds": elapsed,
            "cpu_us_per_msg": (cpu1 - cpu0) / args.messages,
            "load_cpu_us_per_msg": (load1 - load0) / args.messages,
            "other_cpu_pct": max(0.0, 100.0 * other / max(1, total1 - total0)),
            "queued_verified": queued,
        }
    finally:
        mta.destroy()


def measure_wire(args, load_cg):
    port = bu.free_port()
    sink = subprocess.Popen([SMTP_SINK, "-u", "postfix", "127.0.0.1:%d" % port, "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=load_cg.preexec())
    try:
        deadline = time.monotonic() + 10
        while not bu.smtp_greets(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        smtp_source(port, min(args.warmup or 200, 500), args.sessions, args.size, load_cg)
        return args.messages / smtp_source(port, args.messages, args.sessions, args.size, load_cg)
    finally:
        sink.kill()
        sink.wait()


def measure_latency(mta, args, rate, mta_cg, load_cg):
    mta.create()
    mta.start(mta_cg)
    try:
        if args.warmup:
            smtp_source(mta.port, args.warmup, min(args.sessions, args.warmup), args.size, load_cg)
        bu.wait_idle(mta_cg, max_wait=args.idle_wait)
        messages = max(200, int(rate * args.latency_seconds))
        cmd = [args.latency_tool, "--port", str(mta.port), "--connections", str(args.sessions),
               "--rate", "%.1f" % rate, "--messages", str(messages), "--size", str(args.size)]
        r = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=load_cg.preexec())
        if r.returncode != 0:
            raise RuntimeError("smtp_latency_tool failed: %s" % r.stderr.strip()[-500:])
        return json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        mta.destroy()


def measure_idle_connections(mta, args, mta_cg):
    """Opens args.idle_connections connections, reads every greeting, reads VmRSS."""
    mta.create()
    mta.start(mta_cg)
    socks = []
    try:
        bu.wait_idle(mta_cg, max_wait=5, machine_threshold=1.0)
        base_kib = bu.rss_kib(mta.pid())
        sel = selectors.DefaultSelector()
        pending = {}
        greeted = 0
        opened = 0
        window = 512
        t0 = time.monotonic()
        deadline = t0 + 180
        while greeted < args.idle_connections:
            if time.monotonic() > deadline:
                raise RuntimeError("only %d of %d connections greeted in 180 s"
                                   % (greeted, args.idle_connections))
            while opened < args.idle_connections and len(pending) < window:
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", mta.port))
                socks.append(s)
                pending[s.fileno()] = (s, b"")
                sel.register(s, selectors.EVENT_READ)
                opened += 1
            for key, _ in sel.select(timeout=1.0):
                s, buf = pending[key.fd]
                try:
                    data = s.recv(512)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    raise RuntimeError("connection %d failed: %s" % (greeted, e))
                if not data:
                    raise RuntimeError("ringmaild closed connection after %d greeted: %r"
                                       % (greeted, buf))
                buf += data
                if b"\r\n" in buf:
                    if not buf.startswith(b"220"):
                        raise RuntimeError("unexpected greeting after %d: %r" % (greeted, buf))
                    sel.unregister(s)
                    del pending[key.fd]
                    greeted += 1
                else:
                    pending[key.fd] = (s, buf)
        open_s = time.monotonic() - t0
        time.sleep(1.0)
        rss = bu.rss_kib(mta.pid())
        alive = mta.proc.poll() is None
        if not alive:
            raise RuntimeError("ringmaild died holding idle connections:\n" + mta.log_tail())
        # Everyone still connected? A closed socket would be readable now.
        probe = selectors.DefaultSelector()
        for s in socks:
            probe.register(s, selectors.EVENT_READ)
        closed = len(probe.select(timeout=0))
        probe.close()
        return {
            "connections": greeted,
            "open_seconds": open_s,
            "rss_base_kib": base_kib,
            "rss_kib": rss,
            "rss_per_conn_kib": (rss - base_kib) / greeted,
            "closed_by_server": closed,
        }
    finally:
        for s in socks:
            s.close()
        mta.destroy()


def find_ringmaild(explicit):
    if explicit:
        return explicit
    for cand in (os.environ.get("RINGMAILD"), os.path.join(REPO, "build/release/ringmaild")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--idle-connections", type=int, default=10000)
    ap.add_argument("--idle-wait", type=float, default=20.0,
                    help="max seconds to wait for the MTA and machine to go idle")
    ap.add_argument("--postfix-mode", choices=["hold", "relay"], default="hold")
    ap.add_argument("--ringmaild", help="path (default: $RINGMAILD or build/release/ringmaild)")
    ap.add_argument("--latency-tool", default=os.path.join(REPO, "build/release/smtp_latency_tool"))
    ap.add_argument("--scratch", help="scratch dir on a real disk (default: under /var/tmp)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--skip-postfix", action="store_true")
    ap.add_argument("--skip-ringmail", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 rep, 2000 messages, 200 warm-up, 2 s latency, 1000 idle")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.messages, args.warmup = 1, 2000, 200
        args.latency_seconds, args.idle_connections, args.idle_wait = 2.0, 1000, 8.0

    if os.geteuid() != 0:
        sys.exit("run_inbound: must run as root (private Postfix master, cgroups)")
    ringmaild = None if args.skip_ringmail else find_ringmaild(args.ringmaild)
    if not args.skip_ringmail and not ringmaild:
        sys.exit("run_inbound: no ringmaild (build build/release or pass --ringmaild)")
    if not args.skip_ringmail and not os.access(args.latency_tool, os.X_OK):
        sys.exit("run_inbound: no %s (ninja -C build/release smtp_latency_tool)" % args.latency_tool)
    for tool in (SMTP_SOURCE, SMTP_SINK):
        if not os.access(tool, os.X_OK):
            sys.exit("run_inbound: %s missing (apt-get install postfix)" % tool)

    # 10k client sockets here, 10k accepted ones in ringmaild (inherits this).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < args.idle_connections + 100:
        log("warning: RLIMIT_NOFILE hard limit %d < %d idle connections + slack; lowering"
            % (hard, args.idle_connections))
        args.idle_connections = max(0, want - 100)

    scratch = args.scratch or tempfile.mkdtemp(prefix="ringmail-bench-", dir="/var/tmp")
    os.makedirs(scratch, exist_ok=True)
    os.chmod(scratch, 0o755)  # Postfix children (user postfix) must reach the queue
    tag = "ringmail-bench-%d" % os.getpid()
    cg = {"postfix": bu.CpuCgroup(tag + "-postfix"), "ringmaild": bu.CpuCgroup(tag + "-ringmaild"),
          "load": bu.CpuCgroup(tag + "-load")}
    sink_port = None
    sink = None
    results = {"config": {k: v for k, v in vars(args).items()}, "ringmaild": ringmaild}
    try:
        if ringmaild:
            v = subprocess.run([ringmaild, "--version"], capture_output=True, text=True)
            results["ringmaild_version"] = v.stdout.strip()
        pf_version = subprocess.run(["/usr/sbin/postconf", "-d", "-h", "mail_version"],
                                    capture_output=True, text=True).stdout.strip()
        results["postfix_version"] = pf_version
        log("ringmail inbound benchmark: %d x %d messages of %d bytes, %d sessions (-d), "
            "warm-up %d; postfix %s in %s mode; cgroups %s; scratch %s"
            % (args.reps, args.messages, args.size, args.sessions, args.warmup, pf_version,
               args.postfix_mode, cg["load"].kind, scratch))
        log("  %s" % (results.get("ringmaild_version") or "ringmaild skipped"))

        wire = measure_wire(args, cg["load"])
        results["wire_msgs_per_s"] = wire
        log("wire limit (smtp-source -> smtp-sink): %.0f msgs/s" % wire)

        if args.postfix_mode == "relay":
            sink_port = bu.free_port()
            sink = subprocess.Popen([SMTP_SINK, "-u", "postfix", "127.0.0.1:%d" % sink_port, "1000"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    preexec_fn=cg["load"].preexec())

        mtas = []
        if not args.skip_postfix:
            mtas.append(PostfixMta(os.path.join(scratch, "postfix"), args.postfix_mode, sink_port))
        if ringmaild:
            mtas.append(RingmailMta(ringmaild, os.path.join(scratch, "ringmail"),
                                    max_connections=max(20000, args.idle_connections + 1000)))
        runs = {m.name: [] for m in mtas}
        for rep in range(args.reps):
            order = mtas if rep % 2 == 0 else list(reversed(mtas))
            for mta in order:
                r = measure_acceptance(mta, args, cg[mta.name], cg["load"])
                runs[mta.name].append(r)
                log("rep %d %-9s %8.0f msgs/s  %7.0f CPU us/msg  (smtp-source %4.0f us/msg, "
                    "other load on machine %2.0f%%)%s"
                    % (rep + 1, mta.name, r["msgs_per_s"], r["cpu_us_per_msg"],
                       r["load_cpu_us_per_msg"], r["other_cpu_pct"],
                       "  spool holds %d" % r["queued_verified"] if r["queued_verified"] else ""))
        results["runs"] = runs
        med = {name: {"msgs_per_s": bu.median([r["msgs_per_s"] for r in rs]),
                      "cpu_us_per_msg": bu.median([r["cpu_us_per_msg"] for r in rs])}
               for name, rs in runs.items()}
        results["median"] = med

        if ringmaild:
            rm = next(m for m in mtas if m.name == "ringmaild")
            rate = med["ringmaild"]["msgs_per_s"] / 2
            lat = measure_latency(rm, args, rate, cg["ringmaild"], cg["load"])
            results["latency_ringmaild"] = lat
            if not args.skip_postfix:
                pm = next(m for m in mtas if m.name == "postfix")
                prate = med["postfix"]["msgs_per_s"] / 2
                results["latency_postfix"] = measure_latency(pm, args, prate, cg["postfix"],
                                                             cg["load"])
            if args.idle_connections:
                results["idle"] = measure_idle_connections(rm, args, cg["ringmaild"])

        print_summary(results, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    finally:
        if sink:
            sink.kill()
            sink.wait()
        for c in cg.values():
            c.remove()
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def print_summary(results, args):
    med = results["median"]
    log("")
    log("== summary (median of %d; %d x %d-byte messages, %d connections reused) =="
        % (args.reps, args.messages, args.size, args.sessions))
    log("wire limit           %8.0f msgs/s" % results["wire_msgs_per_s"])
    for name in ("postfix", "ringmaild"):
        if name in med:
            label = name + (" (%s)" % args.postfix_mode if name == "postfix" else "")
            log("%-20s %8.0f msgs/s  %7.0f CPU us/msg" % (label, med[name]["msgs_per_s"],
                                                         med[name]["cpu_us_per_msg"]))
    if "postfix" in med and "ringmaild" in med:
        log("ratio ringmaild/postfix: %.1fx msgs/s, %.1fx less CPU per message"
            % (med["ringmaild"]["msgs_per_s"] / med["postfix"]["msgs_per_s"],
               med["postfix"]["cpu_us_per_msg"] / max(1e-9, med["ringmaild"]["cpu_us_per_msg"])))
    for name in ("ringmaild", "postfix"):
        lat = results.get("latency_" + name)
        if lat:
            log("%-9s end-of-DATA->250 at %.0f msgs/s (half max; achieved %.0f, %d msgs): "
                "p50 %.2f ms  p99 %.2f ms  max %.2f ms"
                % (name, lat["target_rate"], lat["rate"], lat["count"], lat["p50_ms"],
                   lat["p99_ms"], lat["max_ms"]))
    idle = results.get("idle")
    if idle:
        log("ringmaild idle connections: %d open, VmRSS %.1f MiB (%.1f MiB before), "
            "%.1f KiB per connection, %d closed by server"
            % (idle["connections"], idle["rss_kib"] / 1024, idle["rss_base_kib"] / 1024,
               idle["rss_per_conn_kib"], idle["closed_by_server"]))


if __name__ == "__main__":
    main()
