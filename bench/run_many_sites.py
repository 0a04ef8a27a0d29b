#!/usr/bin/env python3
"""bench/run_many_sites.py — delivery to many sites: Postfix vs ringmaild.

The scenario of issue 12: N messages (default 20,000 x 4 KiB) to 1,000
recipient domains (d0..d999.sites.test) whose MX records (dnsmasq on
127.0.0.153:53) spread them over 100 MX hosts (mx0..mx99, one smtp-sink each
on 127.0.1.1..127.0.1.100, all on one port). mx0..mx4 answer every RCPT with
a 4xx (5% of the recipients are deferred), mx5 with a 5xx (1% bounce, with a
DSN), and mx99's ten domains are rate-limited to 100 messages/s (ringmaild: a
policy.shaping rule on its MX; Postfix, whose destination_rate_delay counts
in whole seconds only: a transport with one connection whose nexthop is that
MX host). The rest is delivered at once.

Both MTAs get the mail from smtp_latency_tool (50 connections, as fast as
they take it) while they deliver; the run ends when the 94 accepting sinks
have all 94% of the messages. Reported per MTA: msgs/s (deliverable
messages / time from the first submission to the last delivery) and CPU µs
per submitted message (the MTA's cgroup), median of the reps, and the ratio
ringmaild/Postfix of the same run. Postfix resolves through the system
resolver, so its master runs in a mount namespace whose /etc/resolv.conf
names the benchmark's dnsmasq (nothing on the machine changes).

Needs root, the postfix and dnsmasq packages, build/release/ringmaild and
build/release/smtp_latency_tool. Runs outside `make test`.
  sudo bench/run_many_sites.sh [--reps 3] [--messages 20000] [--quick]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_util as bu  # noqa: E402
from postfix_instance import PostfixInstance  # noqa: E402
from run_inbound import RingmailMta, find_ringmaild  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LATENCY_TOOL = os.path.join(REPO, "build/release/smtp_latency_tool")
ZONE = "sites.test"
DNS_IP = "127.0.0.153"
DOMAINS = 1000
MX_HOSTS = 100
SOFT_FAIL = range(0, 5)  # mx0..mx4: 421 to every RCPT
HARD_FAIL = (5,)         # mx5: 5xx to every RCPT
RATED_MX = 99            # mx99: 100 messages/s
RATE_PER_S = 100


def log(msg):
    print(msg, flush=True)


def mx_ip(j):
    return "127.0.1.%d" % (j + 1)


def mx_of_message(k):
    return (k % DOMAINS) % MX_HOSTS


def deliverable(messages):
    return sum(1 for k in range(messages)
               if mx_of_message(k) not in SOFT_FAIL and mx_of_message(k) not in HARD_FAIL)


class Dns:
    """dnsmasq on DNS_IP:53, authoritative for ZONE (and bench.test, the
    sender's domain, with no records: DSNs to it end as NXDOMAIN)."""

    def __init__(self, scratch):
        self.dir = os.path.join(scratch, "dns")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "dnsmasq.conf")
        self.proc = None

    def start(self):
        lines = ["no-resolv", "no-hosts", "bind-interfaces", "listen-address=" + DNS_IP,
                 "port=53", "auth-server=ns.%s,%s" % (ZONE, DNS_IP), "auth-zone=" + ZONE,
                 "auth-zone=bench.test", "auth-ttl=3600", "user=root"]
        for d in range(DOMAINS):
            lines.append("mx-host=d%d.%s,mx%d.%s,10" % (d, ZONE, d % MX_HOSTS, ZONE))
        for j in range(MX_HOSTS):
            lines.append("host-record=mx%d.%s,%s" % (j, ZONE, mx_ip(j)))
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--log-facility=-",
                                      "--conf-file=" + self.conf, "--pid-file"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((DNS_IP, 53), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dnsmasq did not start on %s:53" % DNS_IP)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class MxSinks:
    """One smtp-sink -c per MX host on its own loopback address, one port."""

    def __init__(self, scratch, cgroup):
        self.dir = os.path.join(scratch, "sinks")
        self.cgroup = cgroup
        self.port = None
        self.sinks = []

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = bu.free_port()
        self.sinks = []
        for j in range(MX_HOSTS):
            sink = bu.CountingSink(os.path.join(self.dir, "mx%d" % j), self.cgroup, backlog=256)
            flags = ["-r", "rcpt"] if j in SOFT_FAIL else ["-f", "rcpt"] if j in HARD_FAIL else []
            out = open(sink.path, "wb")
            err = open(sink.path + ".err", "ab")
            sink.port = self.port
            sink.proc = subprocess.Popen([bu.SMTP_SINK, "-c", "-u", "postfix"] + flags +
                                         ["%s:%d" % (mx_ip(j), self.port), "256"],
                                         stdout=out, stderr=err,
                                         preexec_fn=self.cgroup.preexec())
            out.close()
            err.close()
            self.sinks.append(sink)
        deadline = time.monotonic() + 15
        for j in range(MX_HOSTS):
            while not bu.smtp_greets(self.port, host=mx_ip(j)):
                if time.monotonic() > deadline:
                    raise RuntimeError("smtp-sink on %s did not start: %s"
                                       % (mx_ip(j), self.sinks[j].stderr_tail()))
                time.sleep(0.05)

    def delivered(self):
        return sum(s.count() for j, s in enumerate(self.sinks)
                   if j not in SOFT_FAIL and j not in HARD_FAIL)

    def stop(self):
        for s in self.sinks:
            s.stop()


class PostfixPath:
    name = "postfix"

    def __init__(self, scratch):
        self.scratch = scratch
        self.pf = None

    def setup(self, sink_port):
        self.pf = PostfixInstance(self.scratch, bu.free_port(), mode="relay", sink_port=sink_port)
        self.pf.create()
        main_cf = os.path.join(self.pf.conf_dir, "main.cf")
        with open(main_cf) as f:
            text = f.read()
        text = text.replace("relayhost = [127.0.0.1]:%d" % sink_port, "relayhost =")
        transport = os.path.join(self.pf.conf_dir, "transport")
        with open(transport, "w") as f:
            for d in range(RATED_MX, DOMAINS, MX_HOSTS):
                f.write("d%d.%s slow:[mx%d.%s]\n" % (d, ZONE, RATED_MX, ZONE))
        text += ("smtp_tcp_port = %d\n"
                 "transport_maps = texthash:%s\n"
                 # Postfix's rate delay counts in whole seconds (1/s at the
                 # least, 100 times slower than ringmaild's limit): its
                 # closest gentle setting is one connection to that MX.
                 "slow_destination_concurrency_limit = 1\n"
                 "slow_destination_concurrency_failed_cohort_limit = 100\n"
                 "bounce_queue_lifetime = 0\n"
                 % (sink_port, transport))
        with open(main_cf, "w") as f:
            f.write(text)
        with open(os.path.join(self.pf.conf_dir, "master.cf"), "a") as f:
            f.write("slow      unix  -       -       n       -       -       smtp\n")
        self.resolv = os.path.join(self.scratch, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver %s\noptions attempts:1 timeout:1\n" % DNS_IP)
        self.port = self.pf.port

    def start(self, cgroup):
        # The master and everything it starts see resolv.conf naming dnsmasq.
        script = "mount --bind %s /etc/resolv.conf && exec %s -c %s start" % (
            self.resolv, "/usr/sbin/postfix", self.pf.conf_dir)
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, text=True, preexec_fn=cgroup.preexec())
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: %s %s\n%s" % (r.stdout, r.stderr,
                                                                    self.pf.maillog_tail()))
        self.pf.running = True
        deadline = time.monotonic() + 20
        while not bu.smtp_greets(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("postfix did not listen\n" + self.pf.maillog_tail())
            time.sleep(0.1)

    def stop(self):
        self.pf.stop()

    def log_tail(self):
        return self.pf.maillog_tail(40) if self.pf else ""

    def teardown(self):
        if self.pf:
            self.pf.destroy()


RINGMAIL_DELIVERY = """\
delivery:
  smtp_port: {sink_port}
  tls: none
  dns: {{nameservers: ["{dns}:53"]}}
  retry: {{intervals: [10m], max_age: 1h}}
policy:
  shaping:
    - match: {{mx_suffix: "mx{rated}.{zone}"}}
      message_rate: {rate}/s
"""


class RingmailPath:
    name = "ringmaild"

    def __init__(self, binary, scratch):
        self.binary = binary
        self.scratch = scratch
        self.mta = None

    def setup(self, sink_port):
        extra = RINGMAIL_DELIVERY.format(sink_port=sink_port, dns=DNS_IP, rated=RATED_MX,
                                         zone=ZONE, rate=RATE_PER_S)
        self.mta = RingmailMta(self.binary, self.scratch, extra_config=extra)
        self.mta.create()
        self.port = self.mta.port

    def start(self, cgroup):
        self.mta.start(cgroup)

    def stop(self):
        self.mta.stop()

    def teardown(self):
        if self.mta:
            self.mta.destroy()


def run_once(path, cg, sinks, messages, size, scratch):
    sinks.start()
    path.setup(sinks.port)
    try:
        path.start(cg)
        bu.wait_idle(cg)
        cpu0 = cg.usage_usec()
        want = deliverable(messages)
        err = open(os.path.join(scratch, "source.err"), "wb")
        t0 = time.monotonic()
        source = subprocess.Popen([LATENCY_TOOL, "--port", str(path.port), "--connections", "50",
                                   "--rate", "1000000000", "--messages", str(messages),
                                   "--size", str(size), "--domains", str(DOMAINS),
                                   "--domain-suffix", ZONE],
                                  stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        deadline = t0 + max(120, messages / 50)  # well past either MTA's time
        while sinks.delivered() < want and time.monotonic() < deadline:
            time.sleep(0.005)
        t1 = time.monotonic()
        source.wait(60)
        got = sinks.delivered()
        cpu = cg.usage_usec() - cpu0
        if got < want:
            missing = {j: s.count() for j, s in enumerate(sinks.sinks)}
            raise RuntimeError("%s delivered %d of %d in %.0f s; per MX: %s\n%s"
                               % (path.name, got, want, t1 - t0, missing,
                                  path.log_tail() if hasattr(path, "log_tail") else ""))
        return {"msgs_s": want / (t1 - t0), "cpu_us": cpu / messages, "seconds": t1 - t0,
                "source_rc": source.returncode}
    finally:
        path.stop()
        path.teardown()
        sinks.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ringmaild", help="ringmaild binary (default build/release/ringmaild)")
    ap.add_argument("--latency-tool", help="smtp_latency_tool (default build/release/)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--quick", action="store_true", help="1 rep of 3,000 messages")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run_many_sites: needs root (Postfix, cgroups, a mount namespace)")
    if args.quick:
        args.reps, args.messages = 1, 3000
    ringmaild = find_ringmaild(args.ringmaild)
    global LATENCY_TOOL
    LATENCY_TOOL = args.latency_tool or LATENCY_TOOL
    if not os.access(LATENCY_TOOL, os.X_OK):
        sys.exit("run_many_sites: needs %s (ninja -C build/release smtp_latency_tool)"
                 % LATENCY_TOOL)
    scratch = tempfile.mkdtemp(prefix="ringmail-sites-", dir="/var/tmp")
    os.chmod(scratch, 0o755)  # Postfix children (user postfix) must reach the queue
    tag = "sites-%d" % os.getpid()
    cg = {"postfix": bu.CpuCgroup(tag + "-postfix"), "ringmaild": bu.CpuCgroup(tag + "-ringmaild")}
    sink_cg = bu.CpuCgroup(tag + "-sinks")
    dns = Dns(scratch)
    sinks = MxSinks(scratch, sink_cg)
    log("many-sites benchmark: %d x %d B to %d domains over %d MX hosts; %d%% 4xx, %d%% 5xx, "
        "mx%d at %d/s; %d rep(s)" % (args.messages, args.size, DOMAINS, MX_HOSTS,
                                     len(SOFT_FAIL), len(HARD_FAIL), RATED_MX, RATE_PER_S,
                                     args.reps))
    results = {"postfix": [], "ringmaild": []}
    try:
        dns.start()
        for rep in range(1, args.reps + 1):
            order = ["postfix", "ringmaild"] if rep % 2 else ["ringmaild", "postfix"]
            for name in order:
                path = (PostfixPath(os.path.join(scratch, "postfix")) if name == "postfix"
                        else RingmailPath(ringmaild, os.path.join(scratch, "ringmail")))
                r = run_once(path, cg[name], sinks, args.messages, args.size, scratch)
                results[name].append(r)
                log("rep %d %-9s %8.0f msgs/s %8.0f CPU µs/msg  (%.2f s)"
                    % (rep, name, r["msgs_s"], r["cpu_us"], r["seconds"]))
    finally:
        dns.stop()
        for c in list(cg.values()) + [sink_cg]:
            c.remove()
        shutil.rmtree(scratch, ignore_errors=True)
    med = {n: (bu.median([r["msgs_s"] for r in rs]), bu.median([r["cpu_us"] for r in rs]))
           for n, rs in results.items()}
    log("== many sites: %d x %d B (median of %d) ==" % (args.messages, args.size, args.reps))
    for n, (rate, cpu) in med.items():
        log("%-9s %8.0f msgs/s %8.0f CPU µs/msg" % (n, rate, cpu))
    log("ratio ringmaild/postfix: %.2f msgs/s, %.2f CPU per message"
        % (med["ringmaild"][0] / med["postfix"][0], med["ringmaild"][1] / med["postfix"][1]))


if __name__ == "__main__":
    main()
