#!/usr/bin/python3
"""bench/run_relay.py — end-to-end relay benchmark: smtp-source -> MTA -> smtp-sink.

One invocation measures, interleaved on the same machine, for each workload
(default: 20,000 x 4 KiB and 3,000 x 100 KiB, 50 reused connections each),
--reps times (default 3; the order of the paths alternates from one
repetition to the next), three paths:
  wire       smtp-source straight into smtp-sink (the load generator's limit);
  postfix    smtp-source -> private Postfix (relayhost = the smtp-sink) -> smtp-sink;
  ringmaild  smtp-source -> ringmaild (relay listener, static route "*" to
             the smtp-sink) -> smtp-sink.
Each run starts a fresh smtp-sink -c (it counts mail transactions) and a fresh
MTA with an empty queue under a scratch dir on disk, sends a warm-up through
it, waits until the MTA (and, if possible, the machine) is idle, then times N
messages from the start of smtp-source until smtp-sink has counted all N.
Printed per path: msgs/s, CPU µs per message of the MTA alone (its own
transient cgroup: ringmaild's process, or Postfix's master and every child;
smtp-source and smtp-sink are in another), medians, the ratios
ringmaild/Postfix and ringmaild/wire, the goal, and what is left in the MTA's
queue after the drain (ringmaild --spool-dump: active recipients; Postfix:
queue files), which must be 0.

A path that stops making progress (the sink's count does not move for
--stall-timeout seconds after smtp-source is done) is reported as incomplete
with what the sink counted and is skipped for the rest of the invocation; the
exit status is then 1.

Run as root (Postfix's master, cgroups). See bench/README.md.
Process model: single-threaded driver; every daemon it starts is stopped by
pid before it exits, even on errors.
"""

import argparse
import collections
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_util as bu  # noqa: E402
from postfix_instance import PostfixInstance  # noqa: E402
from run_inbound import RingmailMta, find_ringmaild  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BUILD_HINT = ("build it with:\n"
              "  cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo\n"
              "  ninja -C build/release ringmaild\n"
              "or point $RINGMAILD / --ringmaild at a binary (or pass --skip-ringmail)")

# Appended to run_inbound.py's ringmaild config (hostname, relay listener with
# tls none, relay_networks 127.0.0.0/8, limits, spool under the scratch dir,
# log level warn): every recipient domain goes to the run's smtp-sink.
# (smtp-sink offers no STARTTLS, so the default opportunistic TLS stays off.)
RINGMAIL_DELIVERY = """\
delivery:
  routes:
    - {{domain: "*", smarthost: "127.0.0.1:{sink_port}"}}
  retry: {{intervals: [1s, 5s], max_age: 1h}}
{extra}"""

# --policy: traffic policy configured but never binding (issue 12): a
# shaping rule with rates far above what the machine can send, backoff
# rules that no reply of the sink matches, a tenant rate for the relay
# tenant, so that every job passes the (source, site) and tenant buckets,
# and a warm-up plan with a cap far above the run for the one source
# (127.0.0.1 bound before connect), so that every job is counted and checked.
POLICY_NOT_BINDING = """policy:
  sources:
    - {name: ip1, address: 127.0.0.1}
  pools:
    - {name: default, sources: [ip1]}
  warmup:
    - {source: ip1, schedule: [100000000/h]}
  shaping:
    - match: {mx_suffix: ".0.0.1"}
      max_connections: 64
      message_rate: 10000000/s
      connection_rate: 100000/s
  tenants:
    - {name: "127.0.0.0/8", message_rate: 10000000/s}
  backoff:
    - match: {code: 421, text: "(?i)rate limit|try again later"}
      action: {suspend: 15m}
    - match: {enhanced: "4.7", text: "(?i)reputation"}
      action: {rate_factor: 0.5, recover_after: 30m}
      when: {count: 3, within: 10m}
"""

# name -> (messages per timed run, bytes per message)
WORKLOADS = collections.OrderedDict([("small", (20000, 4096)), ("large", (3000, 102400))])

LATENCY_TOOL = os.path.join(REPO, "build/release/smtp_latency_tool")
GOAL_RATIO = 10.0   # ringmaild msgs/s >= 10x Postfix's
GOAL_CPU_US = 300.0  # ringmaild CPU per relayed message


def log(msg):
    print(msg, flush=True)


class WirePath:
    """smtp-source straight into smtp-sink: no MTA."""
    name = "wire"

    def __init__(self):
        self.port = None

    def setup(self, sink_port):
        self.port = sink_port

    def start(self, cgroup):
        pass

    def stop(self):
        pass

    def leftover(self):
        return None

    def log_tail(self):
        return ""

    def teardown(self):
        pass


class PostfixRelayPath:
    """A private Postfix (postfix_instance.py, relay mode) whose relayhost is
    the run's smtp-sink."""
    name = "postfix"

    def __init__(self, scratch):
        self.scratch = scratch
        self.pf = None
        self.port = None

    def setup(self, sink_port):
        self.pf = PostfixInstance(self.scratch, bu.free_port(), mode="relay", sink_port=sink_port)
        self.pf.create()
        self.port = self.pf.port

    def start(self, cgroup):
        self.pf.start(preexec_fn=cgroup.preexec())

    def stop(self):
        self.pf.stop()

    def leftover(self):
        """Queue files left in incoming/active/deferred/hold (Postfix stopped)."""
        return self.pf.queued_count()

    def log_tail(self):
        return self.pf.maillog_tail() if self.pf else ""

    def teardown(self):
        if self.pf:
            self.pf.destroy()


class RingmailRelayPath:
    """ringmaild with a relay listener and a static route to the run's smtp-sink.
    name "baseline": a ringmaild built from an earlier commit (--baseline)."""

    def __init__(self, binary, scratch, delivery_log, delivery_extra, name="ringmaild",
                 admin_load=False, campaigns=None):
        self.name = name
        self.campaigns = campaigns
        self.admin_load = admin_load
        self.admin = None
        self.binary = binary
        self.scratch = scratch
        self.delivery_log = delivery_log
        self.delivery_extra = delivery_extra
        self.mta = None
        self.port = None
        self.delivery_log_counts = None

    def setup(self, sink_port):
        extra = RINGMAIL_DELIVERY.format(sink_port=sink_port, extra=self.delivery_extra)
        if self.admin_load:
            self.admin = AdminLoad(self.scratch)
            extra += self.admin.config()
        self.mta = RingmailMta(self.binary, self.scratch, delivery_log=self.delivery_log,
                               extra_config=extra, baseline=self.name == "baseline")
        self.mta.create()
        if self.admin:
            self.admin.write_token()
        self.port = self.mta.port

    def start(self, cgroup):
        self.mta.start(cgroup)
        if self.admin:
            self.admin.start()

    def stop(self):
        if self.admin:
            self.admin.stop()
        self.mta.stop()
        if self.delivery_log:
            self.delivery_log_counts = count_delivery_log(self.mta.delivery_log_path)

    def leftover(self):
        """Active recipients per `ringmaild --spool-dump` (daemon stopped)."""
        return self.mta.queued_count()

    def log_tail(self):
        return self.mta.log_tail() if self.mta else ""

    def teardown(self):
        if self.mta:
            self.mta.destroy()


class AdminLoad:
    """--admin-load: a real Prometheus scraping /metrics every second and a
    client polling GET /api/v1/queue every second, while the path runs."""

    def __init__(self, scratch):
        os.makedirs(scratch, exist_ok=True)
        self.scratch = scratch
        self.port = bu.free_port()
        self.token = "bench-" + os.urandom(8).hex()
        self.token_file = os.path.join(scratch, "admin.token")
        self.prom = None
        self.poller = None
        self.stopping = threading.Event()
        self.polls = 0
        self.poll_errors = 0

    def config(self):
        return ("admin:\n  address: 127.0.0.1:%d\n  token_file: %s\n"
                % (self.port, self.token_file))

    def write_token(self):
        """After the MTA's scratch dir was made afresh."""
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")

    def start(self):
        prom_dir = os.path.join(self.scratch, "prometheus")
        shutil.rmtree(prom_dir, ignore_errors=True)
        os.makedirs(prom_dir)
        with open(os.path.join(prom_dir, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ringmail\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % self.port)
        self.prom = subprocess.Popen(
            ["prometheus", "--config.file=%s/prometheus.yml" % prom_dir,
             "--storage.tsdb.path=%s/data" % prom_dir,
             "--web.listen-address=127.0.0.1:%d" % bu.free_port()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.stopping.clear()
        self.poller = threading.Thread(target=self._poll, daemon=True)
        self.poller.start()

    def _poll(self):
        import http.client
        while not self.stopping.wait(1.0):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/api/v1/queue", headers={"Authorization": "Bearer " + self.token})
                r = c.getresponse()
                r.read()
                c.close()
                self.polls += 1
                if r.status != 200:
                    self.poll_errors += 1
            except OSError:
                self.poll_errors += 1

    def stop(self):
        self.stopping.set()
        if self.poller:
            self.poller.join(10)
        if self.prom:
            self.prom.terminate()
            try:
                self.prom.wait(20)
            except subprocess.TimeoutExpired:
                self.prom.kill()
        log("      admin load: %d queue polls (%d failed), Prometheus scraping every 1 s"
            % (self.polls, self.poll_errors))


def count_delivery_log(path):
    """Lines of ringmaild's JSON-lines delivery log, by their "type"."""
    counts = collections.Counter()
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if line.strip():
                    try:
                        counts[str(json.loads(line).get("type"))] += 1
                    except ValueError:
                        counts["(not JSON)"] += 1
    except OSError:
        return None
    return dict(counts)


class Source:
    """smtp-source run in the background, in the load cgroup; notes when it exits.
    campaigns (not None): bench/smtp_latency_tool instead, as fast as the MTA
    takes it, each message naming one of `campaigns` campaigns (0: none)."""

    def __init__(self, port, messages, sessions, size, cgroup, scratch, campaigns=None):
        self.err_path = os.path.join(scratch, "smtp-source.err")
        err = open(self.err_path, "wb")
        self.t0 = time.monotonic()
        cmd = bu.smtp_source_cmd(port, messages, sessions, size)
        if campaigns is not None:
            cmd = [LATENCY_TOOL, "--port", str(port), "--connections", str(sessions),
                   "--rate", "1000000000", "--messages", str(messages), "--size", str(size),
                   "--campaigns", str(campaigns)]
        self.proc = subprocess.Popen(cmd,
                                     stdout=subprocess.DEVNULL, stderr=err,
                                     preexec_fn=cgroup.preexec())
        err.close()
        self.t_exit = None

    def running(self):
        if self.t_exit is None and self.proc.poll() is not None:
            self.t_exit = time.monotonic()
        return self.t_exit is None

    def finish(self, timeout):
        """Waits for smtp-source; raises if it failed (e.g. the MTA refused mail)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("smtp-source still running %d s after the sink counted all"
                               % timeout)
        self.running()
        if self.proc.returncode != 0:
            with open(self.err_path, errors="replace") as f:
                raise RuntimeError("smtp-source failed (%d): %s"
                                   % (self.proc.returncode, f.read().strip()[-500:]))


def measure(path, wl, args, cg, scratch):
    """One run of one path: fresh sink and MTA, warm-up, idle, timed N messages
    until the sink has counted them all, drain check."""
    n = wl["messages"]
    mta_cg = cg.get(path.name)
    idle_cg = mta_cg or cg["load"]
    sink = bu.CountingSink(os.path.join(scratch, "sink-%s.count" % path.name), cg["load"])
    res = {"complete": False}
    try:
        sink.start()
        path.setup(sink.port)
        path.start(mta_cg)

        warm = min(args.warmup, n)
        if warm:
            src = Source(path.port, warm, min(wl["sessions"], warm), wl["size"], cg["load"],
                         scratch, campaigns=getattr(path, "campaigns", None))
            ok, got, _ = sink.wait_count(warm, args.stall_timeout, max_seconds=args.max_seconds,
                                         busy=src.running)
            src.finish(timeout=60)
            if not ok:
                res.update(stage="warm-up", expected=warm, delivered=got)
                return finish_incomplete(path, res)
        bu.wait_idle(idle_cg, max_wait=args.idle_wait)

        base = sink.count()
        cpu0 = mta_cg.usage_usec() if mta_cg else None
        load0 = cg["load"].usage_usec()
        busy0, total0 = bu.system_busy_usec()
        src = Source(path.port, n, wl["sessions"], wl["size"], cg["load"], scratch,
                     campaigns=getattr(path, "campaigns", None))
        ok, got, t_done = sink.wait_count(base + n, args.stall_timeout,
                                          max_seconds=args.max_seconds, busy=src.running)
        src.finish(timeout=60 if ok else args.stall_timeout)
        busy1, total1 = bu.system_busy_usec()
        load1 = cg["load"].usage_usec()
        if not ok:
            res.update(stage="timed run", expected=n, delivered=got - base,
                       accepted_seconds=src.t_exit - src.t0)
            return finish_incomplete(path, res)
        elapsed = t_done - src.t0
        # Postfix may still be removing queue files, ringmaild committing
        # delivery results: count the MTA's CPU until it is quiet.
        bu.wait_idle(idle_cg, max_wait=args.idle_wait, machine_threshold=1.0)
        cpu1 = mta_cg.usage_usec() if mta_cg else None
        extra = sink.count() - (base + n)  # > 0: something was delivered twice
        path.stop()
        left = path.leftover()
        mta_cpu = (cpu1 - cpu0) if mta_cg else 0
        other = (busy1 - busy0) - mta_cpu - (load1 - load0)
        res.update({
            "complete": True,
            "msgs_per_s": n / elapsed,
            "seconds": elapsed,
            "accepted_seconds": src.t_exit - src.t0,
            "accept_msgs_per_s": n / max(1e-9, src.t_exit - src.t0),
            "cpu_us_per_msg": mta_cpu / n if mta_cg else None,
            "load_cpu_us_per_msg": (load1 - load0) / n,
            "other_cpu_pct": max(0.0, 100.0 * other / max(1, total1 - total0)),
            "extra_delivered": extra,
            "left_in_queue": left,
        })
        if getattr(path, "delivery_log_counts", None) is not None:
            res["delivery_log"] = path.delivery_log_counts
        return res
    finally:
        path.teardown()
        sink.stop()


def finish_incomplete(path, res):
    path.stop()
    res["left_in_queue"] = path.leftover()
    res["log_tail"] = path.log_tail()
    if getattr(path, "delivery_log_counts", None) is not None:
        res["delivery_log"] = path.delivery_log_counts
    return res


def run_line(rep, wl_name, name, r):
    if not r["complete"] and r["stage"] == "error":
        return "rep %d %-5s %-9s FAILED: %s" % (rep, wl_name, name, r["error"])
    if not r["complete"]:
        return ("rep %d %-5s %-9s INCOMPLETE: %s: smtp-sink counted %d of %d (no progress for "
                "the stall timeout); left in queue: %s"
                % (rep, wl_name, name, r["stage"], r["delivered"], r["expected"],
                   r["left_in_queue"]))
    cpu = ("%7.0f CPU µs/msg" % r["cpu_us_per_msg"]) if r["cpu_us_per_msg"] is not None \
        else "%16s" % "-"
    left = "" if r["left_in_queue"] is None else "  left in %s: %d" % (
        "spool (active rcpts)" if name in ("ringmaild", "baseline") else "queue", r["left_in_queue"])
    dup = "  DUPLICATES at the sink: %d" % r["extra_delivered"] if r["extra_delivered"] else ""
    return ("rep %d %-5s %-9s %8.0f msgs/s  %s  (accepted %.0f msgs/s; source+sink %.0f µs/msg; "
            "other load %2.0f%%)%s%s"
            % (rep, wl_name, name, r["msgs_per_s"], cpu, r["accept_msgs_per_s"],
               r["load_cpu_us_per_msg"], r["other_cpu_pct"], left, dup))


def summarize(wl):
    med = {}
    for name, rs in wl["runs"].items():
        done = [r for r in rs if r["complete"]]
        if not done:
            med[name] = None
            continue
        med[name] = {"msgs_per_s": bu.median([r["msgs_per_s"] for r in done]),
                     "runs": len(done), "of": len(rs)}
        if done[0]["cpu_us_per_msg"] is not None:
            med[name]["cpu_us_per_msg"] = bu.median([r["cpu_us_per_msg"] for r in done])
    wl["median"] = med
    ratios = {}
    rm, pf, wire = med.get("ringmaild"), med.get("postfix"), med.get("wire")
    if rm and pf:
        ratios["ringmaild_over_postfix_msgs"] = rm["msgs_per_s"] / pf["msgs_per_s"]
        ratios["postfix_over_ringmaild_cpu"] = pf["cpu_us_per_msg"] / max(1e-9,
                                                                          rm["cpu_us_per_msg"])
    if rm and wire:
        ratios["ringmaild_over_wire_msgs"] = rm["msgs_per_s"] / wire["msgs_per_s"]
    base = med.get("baseline")
    if rm and base:
        ratios["ringmaild_over_baseline_msgs"] = rm["msgs_per_s"] / base["msgs_per_s"]
        ratios["ringmaild_over_baseline_cpu"] = rm["cpu_us_per_msg"] / max(1e-9,
                                                                           base["cpu_us_per_msg"])
    if pf and wire:
        ratios["postfix_over_wire_msgs"] = pf["msgs_per_s"] / wire["msgs_per_s"]
    wl["ratios"] = ratios
    if rm:
        wl["goal"] = {"ratio": GOAL_RATIO, "cpu_us": GOAL_CPU_US,
                      "ratio_met": (ratios["ringmaild_over_postfix_msgs"] >= GOAL_RATIO)
                      if pf else None,
                      "cpu_met": rm["cpu_us_per_msg"] <= GOAL_CPU_US}
    leftovers = [r["left_in_queue"] for rs in wl["runs"].values() for r in rs
                 if r.get("left_in_queue") is not None]
    wl["all_drained"] = all(x == 0 for x in leftovers)


def print_summary(wl_name, wl, args):
    med, ratios = wl["median"], wl["ratios"]
    log("")
    log("== %s: %d x %d-byte messages, %d connections reused (median of %d) =="
        % (wl_name, wl["messages"], wl["size"], wl["sessions"], args.reps))
    labels = {"wire": "wire limit", "postfix": "postfix (relay)", "ringmaild": "ringmaild (relay)",
              "baseline": "baseline (relay)"}
    for name in ("wire", "postfix", "ringmaild", "baseline"):
        if name not in med:
            continue
        m = med[name]
        if m is None:
            log("%-18s incomplete in every run (see the rep lines)" % labels[name])
            continue
        cpu = ("  %7.0f CPU µs/msg" % m["cpu_us_per_msg"]) if "cpu_us_per_msg" in m else ""
        part = "" if m["runs"] == m["of"] else "  (%d of %d runs complete)" % (m["runs"], m["of"])
        log("%-18s %8.0f msgs/s%s%s" % (labels[name], m["msgs_per_s"], cpu, part))
    if "ringmaild_over_postfix_msgs" in ratios:
        log("ratio ringmaild/postfix: %.1fx msgs/s, %.1fx less CPU per message"
            % (ratios["ringmaild_over_postfix_msgs"], ratios["postfix_over_ringmaild_cpu"]))
    if "ringmaild_over_baseline_msgs" in ratios:
        log("ratio ringmaild/baseline: %.3f msgs/s, %.3f CPU per message"
            % (ratios["ringmaild_over_baseline_msgs"], ratios["ringmaild_over_baseline_cpu"]))
    if "ringmaild_over_wire_msgs" in ratios:
        log("ratio ringmaild/wire: %.0f%%" % (100 * ratios["ringmaild_over_wire_msgs"]))
    if "postfix_over_wire_msgs" in ratios:
        log("ratio postfix/wire: %.0f%%" % (100 * ratios["postfix_over_wire_msgs"]))
    log("goal: >= 10x Postfix, <= 300 µs CPU per relayed message")
    goal = wl.get("goal")
    if goal:
        log("  -> rate: %s; CPU: %s (%.0f µs)"
            % ("n/a (no postfix)" if goal["ratio_met"] is None else
               "%s (%.1fx)" % ("met" if goal["ratio_met"] else "NOT met",
                               ratios["ringmaild_over_postfix_msgs"]),
               "met" if goal["cpu_met"] else "NOT met", med["ringmaild"]["cpu_us_per_msg"]))
    elif "ringmaild" in wl["runs"]:
        log("  -> not measured: ringmaild did not complete a run")
    else:
        log("  -> not measured: ringmaild skipped")
    for name in ("postfix", "ringmaild", "baseline"):
        rs = wl["runs"].get(name)
        if rs:
            left = [r.get("left_in_queue") for r in rs]
            log("%s left after each drain: %s (%s)"
                % (name, ", ".join("?" if x is None else str(x) for x in left),
                   "active recipients, ringmaild --spool-dump" if name in ("ringmaild", "baseline")
                   else "queue files"))
    for name, rs in wl["runs"].items():
        for r in rs:
            if r.get("delivery_log"):
                log("%s delivery log lines by type (one run): %s"
                    % (name, json.dumps(r["delivery_log"], sort_keys=True)))
                break


def main():
    sys.stdout.reconfigure(errors="backslashreplace")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workload", choices=["small", "large", "both"], default="both",
                    help="small: 20000 x 4 KiB; large: 3000 x 100 KiB; both (default)")
    ap.add_argument("--messages", type=int,
                    help="one custom workload of this many messages (default 20000)")
    ap.add_argument("--size", type=int, help="one custom workload, bytes per message (default 4096)")
    ap.add_argument("--sessions", type=int, default=50,
                    help="smtp-source connections, each reused (-d), for every workload (50)")
    ap.add_argument("--warmup", type=int, default=300, help="warm-up messages before each timed run")
    ap.add_argument("--stall-timeout", type=float, default=30.0,
                    help="a run is incomplete when the sink's count has not moved for this "
                         "many seconds after smtp-source ended (default 30)")
    ap.add_argument("--max-seconds", type=float, default=900.0,
                    help="upper bound of one timed run (default 900)")
    ap.add_argument("--idle-wait", type=float, default=20.0,
                    help="max seconds to wait for the MTA and machine to go idle")
    ap.add_argument("--ringmaild", help="path (default: $RINGMAILD or build/release/ringmaild)")
    ap.add_argument("--baseline", help="a ringmaild built from an earlier commit, run interleaved "
                                       "with --ringmaild in every rep (the 'before the change' "
                                       "figure)")
    ap.add_argument("--delivery-log", action="store_true",
                    help="ringmaild writes log.delivery_log in its scratch dir; lines by type "
                         "are reported")
    ap.add_argument("--delivery-connections", type=int,
                    help="ringmaild delivery.max_connections_per_site (default: its own default)")
    ap.add_argument("--delivery-extra", default="",
                    help="more lines of the delivery: section for --ringmaild only (not the "
                         "baseline), e.g. 'initial_connections: 64'; ';' separates lines")
    ap.add_argument("--admin-load", action="store_true",
                    help="the ringmaild path runs with the admin API on, scraped by Prometheus "
                         "every second and polled (GET /api/v1/queue) every second; compare with "
                         "--baseline set to the same binary")
    ap.add_argument("--campaigns", type=int,
                    help="campaign load: the ringmaild path's messages each name one of this "
                         "many campaigns (X-Campaign-ID), the baseline path's (the same binary "
                         "unless --baseline) none; both are sent by bench/smtp_latency_tool")
    ap.add_argument("--policy", action="store_true",
                    help="the ringmaild path runs with traffic policy configured but not "
                         "binding (shaping rates, a tenant rate, backoff rules); the baseline "
                         "path (the same binary unless --baseline) without it")
    ap.add_argument("--scratch", help="scratch dir on a real disk (default: under /var/tmp)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--skip-wire", action="store_true")
    ap.add_argument("--skip-postfix", action="store_true")
    ap.add_argument("--skip-ringmail", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 rep of 2000 x 4 KiB, 200 warm-up, 10 s stall timeout, "
                         "120 s per run at most")
    args = ap.parse_args()

    if args.messages is not None or args.size is not None:
        workloads = {"custom": (args.messages or WORKLOADS["small"][0],
                                args.size or WORKLOADS["small"][1])}
    elif args.workload == "both":
        workloads = dict(WORKLOADS)
    else:
        workloads = {args.workload: WORKLOADS[args.workload]}
    if args.quick:
        args.reps, args.warmup, args.idle_wait = 1, 200, 8.0
        args.max_seconds = min(args.max_seconds, 120.0)
        args.stall_timeout = min(args.stall_timeout, 10.0)
        workloads = {"quick": (2000, 4096)}

    if os.geteuid() != 0:
        sys.exit("run_relay: must run as root (private Postfix master, cgroups)")
    ringmaild = None
    if not args.skip_ringmail:
        ringmaild = find_ringmaild(args.ringmaild)
        if not ringmaild or not os.access(ringmaild, os.X_OK):
            sys.exit("run_relay: no ringmaild at %s;\n%s"
                     % (ringmaild or os.path.join(REPO, "build/release/ringmaild"), BUILD_HINT))
    for tool in (bu.SMTP_SOURCE, bu.SMTP_SINK):
        if not os.access(tool, os.X_OK):
            sys.exit("run_relay: %s missing (apt-get install postfix)" % tool)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))

    scratch = args.scratch or tempfile.mkdtemp(prefix="ringmail-relay-", dir="/var/tmp")
    os.makedirs(scratch, exist_ok=True)
    os.chmod(scratch, 0o755)  # Postfix children (user postfix) must reach the queue
    tag = "ringmail-relay-%d" % os.getpid()
    cg = {"load": bu.CpuCgroup(tag + "-load")}
    paths = []
    if not args.skip_wire:
        paths.append(WirePath())
    if not args.skip_postfix:
        cg["postfix"] = bu.CpuCgroup(tag + "-postfix")
        paths.append(PostfixRelayPath(os.path.join(scratch, "postfix")))
    if ringmaild:
        cg["ringmaild"] = bu.CpuCgroup(tag + "-ringmaild")
        extra = ("  max_connections_per_site: %d\n" % args.delivery_connections
                 if args.delivery_connections else "")
        own = "".join("  %s\n" % line.strip() for line in args.delivery_extra.split(";")
                      if line.strip())
        paths.append(RingmailRelayPath(ringmaild, os.path.join(scratch, "ringmail"),
                                       args.delivery_log,
                                       extra + own + (POLICY_NOT_BINDING if args.policy else ""),
                                       admin_load=args.admin_load, campaigns=args.campaigns))
        if args.policy and not args.baseline:
            args.baseline = ringmaild
        if args.campaigns is not None and not args.baseline:
            args.baseline = ringmaild
            if not os.access(LATENCY_TOOL, os.X_OK):
                sys.exit("run_relay: --campaigns needs %s (ninja -C build/release "
                         "smtp_latency_tool)" % LATENCY_TOOL)
        if args.baseline:
            cg["baseline"] = bu.CpuCgroup(tag + "-baseline")
            paths.append(RingmailRelayPath(args.baseline, os.path.join(scratch, "baseline"),
                                           args.delivery_log, extra, name="baseline",
                                           campaigns=0 if args.campaigns is not None else None))

    results = {"config": dict(vars(args)), "ringmaild": ringmaild, "workloads": {}}
    failed = set()
    ok = True
    try:
        if ringmaild:
            results["ringmaild_version"] = subprocess.run(
                [ringmaild, "--version"], capture_output=True, text=True).stdout.strip()
        results["postfix_version"] = subprocess.run(
            ["/usr/sbin/postconf", "-d", "-h", "mail_version"], capture_output=True,
            text=True).stdout.strip()
        log("ringmail relay benchmark: %s; %d rep(s), %d sessions (-d), warm-up %d; postfix %s; "
            "cgroups %s; scratch %s"
            % (", ".join("%s %d x %d B" % (k, m, s) for k, (m, s) in workloads.items()),
               args.reps, args.sessions, args.warmup, results["postfix_version"],
               cg["load"].kind, scratch))
        log("  %s" % (results.get("ringmaild_version") or "ringmaild skipped"))

        for wl_name, (messages, size) in workloads.items():
            wl = {"messages": messages, "size": size, "sessions": args.sessions,
                  "runs": {p.name: [] for p in paths}}
            results["workloads"][wl_name] = wl
            for rep in range(args.reps):
                order = paths if rep % 2 == 0 else list(reversed(paths))
                for path in order:
                    if path.name in failed:
                        log("rep %d %-5s %-9s skipped (incomplete earlier)"
                            % (rep + 1, wl_name, path.name))
                        continue
                    try:
                        r = measure(path, wl, args, cg, scratch)
                    except RuntimeError as e:  # e.g. the MTA did not start, smtp-source failed
                        r = {"complete": False, "stage": "error", "error": str(e)}
                    wl["runs"][path.name].append(r)
                    log(run_line(rep + 1, wl_name, path.name, r))
                    if not r["complete"]:
                        failed.add(path.name)
                        ok = False
                        if r.get("log_tail"):
                            log("      %s log tail:\n%s" % (path.name, "".join(
                                "        " + line + "\n"
                                for line in r["log_tail"].rstrip().splitlines())))
            summarize(wl)
            ok = ok and wl["all_drained"]
            print_summary(wl_name, wl, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    finally:
        for c in cg.values():
            c.remove()
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
