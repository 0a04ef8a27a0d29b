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
With --dkim (bench/run_dkim.sh) both MTAs DKIM-sign every message with one
fresh key (RSA-2048 or, --dkim-algorithm ed25519, Ed25519): ringmaild through
its dkim: config, Postfix through an OpenDKIM milter in Postfix's cgroup; every
run checks the signatures (dkimpy) and ringmaild's rate is compared with the
signing capacity `openssl speed` measures around each of its runs.

Run as root (Postfix's master, cgroups). See bench/README.md.
Process model: single-threaded driver; every daemon it starts is stopped by
pid before it exits, even on errors.
"""

import argparse
import json
import os
import random
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
from postfix_instance import OpenDkimMilter, PostfixInstance  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMTP_SOURCE = bu.SMTP_SOURCE
SMTP_SINK = bu.SMTP_SINK

RINGMAIL_CONFIG = """\
# Benchmark config written by bench/run_inbound.py.
hostname: ringmail-bench.localdomain
listeners:
  - {{name: relay, address: "127.0.0.1:{port}", mode: relay, tls: none}}
relay_networks: [127.0.0.0/8]
limits:
  max_connections: {max_connections}
  max_connections_per_ip: 0  # every load generator connects from 127.0.0.1
  idle_timeout: 30m
  shutdown_timeout: 10s
spool:
  path: {spool}
  max_size: 4GiB
log:
  level: warn
{log_extra}{dkim}{extra}"""

RINGMAIL_DKIM = """\
dkim:
  - domain: {domain}
    selector: {selector}
    private_key: {key}
    canonicalization: relaxed/relaxed
"""

# smtp-source -f bench@bench.test writes "From: <bench@bench.test>" into the
# message it generates (checked with smtp-sink -d), and smtp_latency_tool
# sends the same From: both MTAs sign every message with d=bench.test.
DKIM_DOMAIN = "bench.test"
DKIM_SELECTOR = "bench"


def log(msg):
    print(msg, flush=True)


def check_verifier_rejects(message, txt):
    """The verifier must not pass anything: the same message with one more
    body line must fail."""
    if bu.dkim_verify(message.rstrip(b"\r\n") + b"\r\ntampered\r\n", txt)[1] is True:
        raise RuntimeError("dkimpy verified a tampered message: the DKIM check is broken")


class RingmailMta:
    name = "ringmaild"

    def __init__(self, binary, scratch, max_connections=20000, dkim=None, extra_config="",
                 delivery_log=False, baseline=False):
        self.binary = binary
        # A baseline ringmaild built from an earlier commit (run_relay.py
        # --baseline) may not know keys added since: they are left out.
        self.baseline = baseline
        # Top-level YAML appended (run_relay.py: delivery:). By default delivery
        # is paused: this benchmark measures acceptance, like Postfix's hold
        # queue, and must not look up the recipients' domains.
        self.extra_config = extra_config or "delivery:\n  paused: true\n"
        self.delivery_log = delivery_log  # True: log.delivery_log = SCRATCH/delivery.jsonl
        self.dkim = dkim  # None or {"key": path, "txt": DNS TXT record, "algorithm": …}
        self.scratch = scratch
        self.max_connections = max_connections
        self.port = None
        self.proc = None
        self.config = os.path.join(scratch, "ringmail.yaml")
        self.log_path = os.path.join(scratch, "ringmaild.log")
        self.delivery_log_path = os.path.join(scratch, "delivery.jsonl")

    def create(self):
        if os.path.exists(self.scratch):
            shutil.rmtree(self.scratch)
        os.makedirs(os.path.join(self.scratch, "spool"))
        self.port = bu.free_port()
        with open(self.config, "w") as f:
            f.write(RINGMAIL_CONFIG.format(port=self.port, spool=os.path.join(self.scratch, "spool"),
                                           max_connections=self.max_connections,
                                           log_extra="  delivery_log: %s\n" % self.delivery_log_path
                                           if self.delivery_log else "",
                                           dkim=RINGMAIL_DKIM.format(
                                               domain=DKIM_DOMAIN, selector=DKIM_SELECTOR,
                                               key=self.dkim["key"]) if self.dkim else "",
                                           extra=self.extra_config)
                    if not self.baseline else
                    "".join(line for line in RINGMAIL_CONFIG.format(
                        port=self.port, spool=os.path.join(self.scratch, "spool"),
                        max_connections=self.max_connections,
                        log_extra="  delivery_log: %s\n" % self.delivery_log_path
                        if self.delivery_log else "",
                        dkim="", extra=self.extra_config).splitlines(True)
                        if "max_connections_per_ip" not in line))

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

    def verify_dkim(self, samples):
        """After stop: `--spool-show` of `samples` spooled ids (first, last,
        random others); each must carry a DKIM-Signature that dkimpy verifies."""
        r = subprocess.run([self.binary, "-c", self.config, "--spool-dump"], capture_output=True,
                           text=True)
        ids = []
        for line in r.stdout.splitlines():
            if line.strip():
                rec = json.loads(line)
                mid = rec.get("id") or rec.get("message_id") or rec.get("queue_id")
                if mid and (not ids or ids[-1] != mid):
                    ids.append(mid)
        if not ids:
            raise RuntimeError("ringmaild --spool-dump gave no message ids:\n" + r.stdout[:300])
        pick = [ids[0], ids[-1]] + random.sample(ids, min(len(ids), max(0, samples - 2)))
        signed = verified = 0
        for mid in pick:
            show = subprocess.run([self.binary, "-c", self.config, "--spool-show", mid],
                                  capture_output=True)
            if show.returncode != 0:
                raise RuntimeError("ringmaild --spool-show %s failed: %s"
                                   % (mid, show.stderr.decode(errors="replace")[-300:]))
            count, ok = bu.dkim_verify(show.stdout, self.dkim["txt"])
            signed += count >= 1
            verified += bool(ok)
            if mid == pick[0]:
                check_verifier_rejects(show.stdout, self.dkim["txt"])
        return {"checked": len(pick), "signed": signed,
                "verified": verified if bu.dkim_verify(b"", "")[1] is not None else None,
                "sample_id": pick[0]}

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

    def __init__(self, scratch, mode, sink_port, dkim=None, sink_dump=None):
        self.scratch = scratch
        self.mode = mode
        self.sink_port = sink_port
        self.sink_dump = sink_dump  # relay mode + DKIM: smtp-sink -d writes messages here
        self.dkim = dkim  # None or {"key": path, "txt": …, "algorithm": rsa|ed25519}
        self.pf = None
        self.milter = None
        self.port = None

    def create(self):
        self.port = bu.free_port()
        if self.sink_dump:
            for root, _dirs, files in os.walk(self.sink_dump):
                for f in files:
                    os.unlink(os.path.join(root, f))
        socket_path = None
        if self.dkim:
            self.milter = OpenDkimMilter(
                self.scratch + "-opendkim", DKIM_DOMAIN, DKIM_SELECTOR, self.dkim["key"],
                algorithm="ed25519-sha256" if self.dkim["algorithm"] == "ed25519"
                else "rsa-sha256")
            self.milter.create()
            socket_path = self.milter.socket
        self.pf = PostfixInstance(self.scratch, self.port, mode=self.mode, sink_port=self.sink_port,
                                  milter_socket=socket_path)
        self.pf.create()

    def start(self, cgroup):
        # OpenDKIM joins Postfix's cgroup: its CPU is Postfix's cost of signing.
        if self.milter:
            self.milter.start(preexec_fn=cgroup.preexec())
        self.pf.start(preexec_fn=cgroup.preexec())

    def stop(self):
        if self.pf:
            self.pf.stop()
        if self.milter:
            self.milter.stop()

    def verify_dkim(self, samples):
        """After stop: every held queue file (relay mode: every message
        smtp-sink dumped) must contain a DKIM-Signature header (byte search);
        `samples` of them (held ones through `postcat -bh`) must verify with
        dkimpy."""
        if self.mode == "relay":
            files = [os.path.join(root, f) for root, _dirs, fs in os.walk(self.sink_dump)
                     for f in fs]
        else:
            files = self.pf.held_files()
        signed = 0
        for path in files:
            with open(path, "rb") as f:
                signed += b"DKIM-Signature:" in f.read()
        pick = random.sample(files, min(len(files), samples))
        verified = 0
        for path in pick:
            if self.mode == "relay":
                with open(path, "rb") as f:
                    message = f.read()
            else:
                message = self.pf.message_of(path)
            count, ok = bu.dkim_verify(message, self.dkim["txt"])
            verified += bool(count and ok)
            if path == pick[0]:
                check_verifier_rejects(message, self.dkim["txt"])
        return {"checked": len(files), "signed": signed,
                "verified": verified if bu.dkim_verify(b"", "")[1] is not None else None,
                "verified_of": len(pick),
                "sample_id": os.path.basename(pick[0]) if pick else None}

    def queued_count(self):
        return self.pf.queued_count() if self.mode == "hold" else None

    def destroy(self):
        if self.pf:
            self.pf.destroy()
        if self.milter:
            self.milter.stop()
            shutil.rmtree(self.milter.scratch, ignore_errors=True)


def smtp_source(port, messages, sessions, size, cgroup):
    cmd = bu.smtp_source_cmd(port, messages, sessions, size)
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
        speed = []
        if args.dkim and mta.name == "ringmaild":
            # One core's signing rate right before and right after this run:
            # the machine (shared, virtual) drifts by +-20% within minutes.
            speed.append(bu.openssl_sign_per_s(args.dkim_algorithm, args.openssl_seconds))
            bu.wait_idle(mta_cg, max_wait=2, machine_threshold=1.0)
        cpu0 = mta_cg.usage_usec()
        load0 = load_cg.usage_usec()
        busy0, total0 = bu.system_busy_usec()
        elapsed = smtp_source(mta.port, args.messages, args.sessions, args.size, load_cg)
        busy1, total1 = bu.system_busy_usec()
        load1 = load_cg.usage_usec()
        # Postfix may still be moving files or logging: count until it is quiet.
        bu.wait_idle(mta_cg, max_wait=args.idle_wait, machine_threshold=1.0)
        cpu1 = mta_cg.usage_usec()
        if speed:
            speed.append(bu.openssl_sign_per_s(args.dkim_algorithm, args.openssl_seconds))
        mta.stop()
        queued = mta.queued_count()
        expected = args.messages + args.warmup
        if queued is not None and queued != expected:
            raise RuntimeError("%s spooled %d messages, expected %d" % (mta.name, queued, expected))
        other = (busy1 - busy0) - (cpu1 - cpu0) - (load1 - load0)
        dkim = None
        if args.dkim:
            dkim = mta.verify_dkim(args.dkim_verify_samples)
            if mta.name == "postfix" and dkim["checked"] != expected:
                raise RuntimeError("postfix: %d messages to check for DKIM, expected %d"
                                   % (dkim["checked"], expected))
            if dkim["signed"] != dkim["checked"]:
                raise RuntimeError("%s: only %d of %d checked messages carry a DKIM-Signature"
                                   % (mta.name, dkim["signed"], dkim["checked"]))
            if dkim["verified"] is not None and dkim["verified"] != dkim.get("verified_of",
                                                                            dkim["checked"]):
                raise RuntimeError("%s: dkimpy verified only %d of %d sampled signatures"
                                   % (mta.name, dkim["verified"],
                                      dkim.get("verified_of", dkim["checked"])))
        return {
            "msgs_per_s": args.messages / elapsed,
            "seconds": elapsed,
            "cpu_us_per_msg": (cpu1 - cpu0) / args.messages,
            "load_cpu_us_per_msg": (load1 - load0) / args.messages,
            "other_cpu_pct": max(0.0, 100.0 * other / max(1, total1 - total0)),
            "queued_verified": queued,
            "load_cores": (load1 - load0) / elapsed / 1e6,
            "dkim": dkim,
            "openssl_sign_per_s": speed,
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


def add_capacity(r):
    """Signing capacity of the cores left to ringmaild in run `r`: one core's
    `openssl speed` sign/s (mean of the measurements just before and after
    the run) x (CPUs - the cores smtp-source used during the run)."""
    r["cpus"] = len(os.sched_getaffinity(0))
    r["sign_per_core"] = sum(r["openssl_sign_per_s"]) / len(r["openssl_sign_per_s"])
    r["cores_left"] = r["cpus"] - r["load_cores"]
    r["sign_capacity"] = r["sign_per_core"] * r["cores_left"]
    r["capacity_pct"] = 100.0 * r["msgs_per_s"] / r["sign_capacity"]
    # The same without the cores other processes (other jobs on a shared
    # machine) took during the run: an estimate, for noisy runs.
    r["cores_left_quiet"] = max(0.05, r["cores_left"] - r["other_cpu_pct"] / 100.0 * r["cpus"])
    r["capacity_quiet_pct"] = 100.0 * r["msgs_per_s"] / (r["sign_per_core"] *
                                                          r["cores_left_quiet"])
    # Share of ringmaild's CPU per message that one openssl-speed signature is.
    r["sign_cpu_pct"] = 100.0 * (1e6 / r["sign_per_core"]) / max(1e-9, r["cpu_us_per_msg"])


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
    ap.add_argument("--messages", type=int,
                    help="messages per timed run (default 20000; 10000 with --dkim)")
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--idle-connections", type=int,
                    help="idle-connection test size (default 10000; 0 = skipped with --dkim)")
    ap.add_argument("--idle-wait", type=float, default=20.0,
                    help="max seconds to wait for the MTA and machine to go idle")
    ap.add_argument("--postfix-mode", choices=["hold", "relay"], default="hold")
    ap.add_argument("--ringmaild", help="path (default: $RINGMAILD or build/release/ringmaild)")
    ap.add_argument("--baseline", help="a ringmaild built from an earlier commit, run interleaved "
                                       "with --ringmaild in every rep (acceptance only)")
    ap.add_argument("--latency-tool", default=os.path.join(REPO, "build/release/smtp_latency_tool"))
    ap.add_argument("--scratch", help="scratch dir on a real disk (default: under /var/tmp)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--skip-postfix", action="store_true")
    ap.add_argument("--skip-ringmail", action="store_true")
    ap.add_argument("--dkim", action="store_true",
                    help="both MTAs DKIM-sign every message (ringmaild: dkim: config entry; "
                         "Postfix: OpenDKIM milter in Postfix's cgroup) and are compared with "
                         "openssl speed's signing capacity")
    ap.add_argument("--dkim-algorithm", choices=["rsa", "ed25519"],
                    help="RSA-2048 (rsa-sha256, default) or Ed25519 (ed25519-sha256); "
                         "implies --dkim")
    ap.add_argument("--dkim-verify-samples", type=int, default=3,
                    help="messages per run whose signature dkimpy verifies (default 3)")
    ap.add_argument("--openssl-seconds", type=int, default=3,
                    help="openssl speed -seconds (run before and after the MTA runs)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 rep, 2000 messages (1000 with --dkim), 200 warm-up, "
                         "2 s latency, 1000 idle (0 with --dkim)")
    args = ap.parse_args()
    if args.dkim_algorithm:
        args.dkim = True
    elif args.dkim:
        args.dkim_algorithm = "rsa"
    if args.messages is None:
        args.messages = 10000 if args.dkim else 20000
    if args.idle_connections is None:
        args.idle_connections = 0 if args.dkim else 10000
    if args.quick:
        args.reps, args.warmup = 1, 200
        args.messages = 1000 if args.dkim else 2000
        args.latency_seconds, args.idle_wait = 2.0, 8.0
        args.idle_connections = min(args.idle_connections, 1000)
        args.openssl_seconds = 1

    if os.geteuid() != 0:
        sys.exit("run_inbound: must run as root (private Postfix master, cgroups)")
    ringmaild = None if args.skip_ringmail else find_ringmaild(args.ringmaild)
    if not args.skip_ringmail and not ringmaild:
        sys.exit("run_inbound: no ringmaild (build build/release or pass --ringmaild)")
    if not args.skip_ringmail and not os.access(args.latency_tool, os.X_OK):
        sys.exit("run_inbound: no %s (ninja -C build/release smtp_latency_tool)" % args.latency_tool)
    for tool in (SMTP_SOURCE, SMTP_SINK) + ((OpenDkimMilter.BINARY,) if args.dkim and
                                            not args.skip_postfix else ()):
        if not os.access(tool, os.X_OK):
            sys.exit("run_inbound: %s missing (apt-get install postfix opendkim)" % tool)

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
    if args.baseline:
        cg["baseline"] = bu.CpuCgroup(tag + "-baseline")
    sink_port = None
    sink = None
    sink_dump = None
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

        dkim = None
        if args.dkim:
            key_dir = os.path.join(scratch, "dkim")
            os.makedirs(key_dir)
            os.chmod(key_dir, 0o755)
            key = os.path.join(key_dir, "bench.%s.pem" % args.dkim_algorithm)
            bu.gen_dkim_key(key, args.dkim_algorithm)
            dkim = {"key": key, "algorithm": args.dkim_algorithm,
                    "txt": bu.dkim_txt_record(key, args.dkim_algorithm)}
            results["dkim_algorithm"] = args.dkim_algorithm
            results["openssl_version"] = subprocess.run(["openssl", "version"], capture_output=True,
                                                        text=True).stdout.strip()
            log("DKIM: %s key %s, d=%s s=%s, relaxed/relaxed; ringmaild signs in-process, "
                "Postfix through OpenDKIM (%s) as an smtpd milter"
                % ("RSA-2048" if args.dkim_algorithm == "rsa" else "Ed25519", key, DKIM_DOMAIN,
                   DKIM_SELECTOR, subprocess.run([OpenDkimMilter.BINARY, "-V"], capture_output=True,
                                                 text=True).stdout.split("\n")[0].strip()))

        wire = measure_wire(args, cg["load"])
        results["wire_msgs_per_s"] = wire
        log("wire limit (smtp-source -> smtp-sink): %.0f msgs/s" % wire)

        if args.postfix_mode == "relay":
            sink_port = bu.free_port()
            dump = []
            if args.dkim:  # keep what Postfix relays, to check its DKIM signatures
                sink_dump = os.path.join(scratch, "sink-dump")
                os.makedirs(sink_dump)
                shutil.chown(sink_dump, "postfix")
                dump = ["-d", sink_dump + "/"]
            sink = subprocess.Popen([SMTP_SINK, "-u", "postfix", *dump,
                                     "127.0.0.1:%d" % sink_port, "1000"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    preexec_fn=cg["load"].preexec())

        mtas = []
        if not args.skip_postfix:
            mtas.append(PostfixMta(os.path.join(scratch, "postfix"), args.postfix_mode, sink_port,
                                   dkim=dkim, sink_dump=sink_dump))
        if ringmaild:
            mtas.append(RingmailMta(ringmaild, os.path.join(scratch, "ringmail"),
                                    max_connections=max(20000, args.idle_connections + 1000),
                                    dkim=dkim))
        if ringmaild and args.baseline:
            base = RingmailMta(args.baseline, os.path.join(scratch, "baseline"),
                               max_connections=max(20000, args.idle_connections + 1000),
                               dkim=dkim, baseline=True)
            base.name = "baseline"
            mtas.append(base)
        runs = {m.name: [] for m in mtas}
        for rep in range(args.reps):
            order = mtas if rep % 2 == 0 else list(reversed(mtas))
            for mta in order:
                r = measure_acceptance(mta, args, cg[mta.name], cg["load"])
                runs[mta.name].append(r)
                if r["openssl_sign_per_s"]:
                    add_capacity(r)
                log("rep %d %-9s %8.0f msgs/s  %7.0f CPU us/msg  (smtp-source %4.0f us/msg, "
                    "other load on machine %2.0f%%)%s"
                    % (rep + 1, mta.name, r["msgs_per_s"], r["cpu_us_per_msg"],
                       r["load_cpu_us_per_msg"], r["other_cpu_pct"],
                       "  spool holds %d" % r["queued_verified"] if r["queued_verified"] else ""))
                if r["openssl_sign_per_s"]:
                    log("      openssl speed %s before/after: %s sign/s per core -> capacity "
                        "%.0f sign/s x %.2f cores left = %.0f msgs/s; ringmaild at %.0f%% of it "
                        "(%.0f%% of the %.2f cores other processes left)"
                        % ("rsa2048" if args.dkim_algorithm == "rsa" else "ed25519",
                           "/".join("%.0f" % x for x in r["openssl_sign_per_s"]),
                           r["sign_per_core"], r["cores_left"], r["sign_capacity"],
                           r["capacity_pct"], r["capacity_quiet_pct"], r["cores_left_quiet"]))
                if r["dkim"]:
                    d = r["dkim"]
                    log("      DKIM check: %d/%d %s carry DKIM-Signature, dkimpy verified %s"
                        " (e.g. %s)"
                        % (d["signed"], d["checked"],
                           "--spool-show samples" if mta.name == "ringmaild" else
                           "held queue files" if args.postfix_mode == "hold" else
                           "messages relayed to smtp-sink",
                           "n/a (no python3-dkim)" if d["verified"] is None else "%d/%d" % (
                               d["verified"], d.get("verified_of", d["checked"])),
                           d["sample_id"]))
        results["runs"] = runs

        med = {name: {"msgs_per_s": bu.median([r["msgs_per_s"] for r in rs]),
                      "cpu_us_per_msg": bu.median([r["cpu_us_per_msg"] for r in rs])}
               for name, rs in runs.items()}
        results["median"] = med
        if args.dkim and "ringmaild" in runs:
            rs = runs["ringmaild"]
            results["capacity"] = {
                "cpus": rs[0]["cpus"],
                "sign_per_core": bu.median([r["sign_per_core"] for r in rs]),
                "sign_us": bu.median([1e6 / r["sign_per_core"] for r in rs]),
                "sign_cpu_pct": bu.median([r["sign_cpu_pct"] for r in rs]),
                "cores_left": bu.median([r["cores_left"] for r in runs["ringmaild"]]),
                "sign_capacity": bu.median([r["sign_capacity"] for r in runs["ringmaild"]]),
                "capacity_pct": bu.median([r["capacity_pct"] for r in runs["ringmaild"]]),
                "other_cpu_pct": bu.median([r["other_cpu_pct"] for r in runs["ringmaild"]]),
                "capacity_quiet_pct": bu.median([r["capacity_quiet_pct"] for r in rs]),
            }

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
    log("== summary (median of %d; %d x %d-byte messages, %d connections reused%s) =="
        % (args.reps, args.messages, args.size, args.sessions,
           "; DKIM %s" % ("RSA-2048" if args.dkim_algorithm == "rsa" else "Ed25519")
           if args.dkim else ""))
    log("wire limit           %8.0f msgs/s" % results["wire_msgs_per_s"])
    for name in ("postfix", "ringmaild", "baseline"):
        if name in med:
            label = name + (" (%s%s)" % (args.postfix_mode, "+OpenDKIM" if args.dkim else "")
                            if name == "postfix" else "")
            log("%-20s %8.0f msgs/s  %7.0f CPU us/msg" % (label, med[name]["msgs_per_s"],
                                                         med[name]["cpu_us_per_msg"]))
    if "postfix" in med and "ringmaild" in med:
        log("ratio ringmaild/postfix: %.1fx msgs/s, %.1fx less CPU per message"
            % (med["ringmaild"]["msgs_per_s"] / med["postfix"]["msgs_per_s"],
               med["postfix"]["cpu_us_per_msg"] / max(1e-9, med["ringmaild"]["cpu_us_per_msg"])))
    if "baseline" in med and "ringmaild" in med:
        log("ratio ringmaild/baseline: %.3f msgs/s, %.3f CPU per message"
            % (med["ringmaild"]["msgs_per_s"] / med["baseline"]["msgs_per_s"],
               med["ringmaild"]["cpu_us_per_msg"] / max(1e-9, med["baseline"]["cpu_us_per_msg"])))
    cap = results.get("capacity")
    if cap:
        log("signing capacity = openssl speed sign/s of one core (measured just before and "
            "after each ringmaild run) x (CPUs - cores smtp-source used in that run):")
        log("  %.0f sign/s per core (%.0f us/sign) x %.2f cores (%d CPUs - %.2f) = %.0f msgs/s"
            % (cap["sign_per_core"], cap["sign_us"], cap["cores_left"], cap["cpus"],
               cap["cpus"] - cap["cores_left"], cap["sign_capacity"]))
        log("ringmaild / signing capacity: %.0f%% (median of per-run ratios; other processes "
            "used %.0f%% of the machine during the ringmaild runs; counting their cores out "
            "too: %.0f%%)"
            % (cap["capacity_pct"], cap["other_cpu_pct"], cap["capacity_quiet_pct"]))
        log("one signature is %.0f%% of ringmaild's CPU per message (%.0f of %.0f us; medians)"
            % (cap["sign_cpu_pct"], cap["sign_us"], med["ringmaild"]["cpu_us_per_msg"]))
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
