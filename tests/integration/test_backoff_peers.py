"""Backoff, failover, circuit breaking and concurrency feedback against real
peers on loopback (what test_traffic_policy.py does not cover yet).

Receivers (aiosmtpd, or the hand-written ScriptedSmtp for a host that
accepts and hangs up) record when each transaction started, on which
connection and from which source address. What is checked is what an
operator would notice: a rate cut that slows a site and lets it recover,
a `when` threshold that tolerates a couple of "slow down" replies, a 421
greeting that a rule holds the site for, that Ringmail's own timeouts,
refused connections, SIZE refusals and DNS failures never trip a rule, a
smarthost list that fails over and comes back, a dead site left alone for
growing intervals instead of hammered, fewer connections after 421s, and a
source held by a backoff rule giving its turns to the other source of its
pool. The admin API (SITE.backoff, SITE.circuit) and /metrics are checked
against what the receivers saw.

Every rule is configured (policy.backoff given), so the shipped provider
rules play no part. Weighted shares over many messages are covered by
test_tenant_limits.py (WeightedPools) and not repeated here."""

import threading
import time
import unittest

from harness import free_port
from peers import ScriptedSmtp, wait_until
from test_admin_api import AdminCase
from test_delivery import WAIT, short_timeouts

# Receivers of this file (egress sources of the pool test are 127.0.0.2/3).
RATE_IP = "127.0.0.41"
WHEN_IP = "127.0.0.42"
SLOW_IP = "127.0.0.43"
SIZE_IP = "127.0.0.44"
CONTROL_IP = "127.0.0.45"
FIRST_IP = "127.0.0.46"
SECOND_IP = "127.0.0.47"
CIRCUIT_IP = "127.0.0.48"
BUSY_IP = "127.0.0.49"
POOL_IP = "127.0.0.50"
DEAD_IP = "127.0.0.51"
GREETING_IP = "127.0.0.52"

# A remote server's reply with the words of Ringmail's own failures.
CONTROL_REPLY = "451 4.4.2 Upstream timeout, connection refused; try later"
ACTIVATIONS = 'ringmail_backoff_activations_total{{action="{}"}}'


class BackoffPeersCase(AdminCase):
    """A daemon with the admin API and static routes to this test's peers."""

    def metrics(self, api):
        """/metrics as {"name{labels}": value}."""
        status, _, _, body = api.get("/metrics", token=False)
        self.assertEqual(status, 200, body[:300])
        values = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def activations(self, api, action):
        return self.metrics(api).get(ACTIVATIONS.format(action), 0)

    def sites(self, api):
        return api.ok("GET", "/api/v1/queue")["sites"]

    def site_entry(self, api, site, source="default"):
        for s in self.sites(api):
            if s["site"] == site and s["source"] == source:
                return s
        return None

    def backoff_of(self, api, site, source="default"):
        entry = self.site_entry(api, site, source)
        return entry["backoff"] if entry else None

    def backoff_sites(self, api):
        return [(s["site"], s["source"]) for s in self.sites(api) if s["backoff"]]

    def backoff_log_lines(self, rm):
        return [line for line in rm.stderr_text().splitlines() if "backoff: " in line and
                "rule" in line]

    def send_many(self, rm, count, prefix, domain):
        for i in range(count):
            self.send(rm, f"{prefix}{i}@{domain}", f"{prefix} {i}")


class RateFactorTest(BackoffPeersCase):
    DOMAIN = "cut.backoff.test"

    def test_a_rate_cut_slows_the_site_and_recovers_linearly(self):
        """message_rate 5/s (burst 1): one message every 200 ms. The fifth
        transaction is answered "421 ... slow down"; the rule cuts the rate
        to a tenth and restores it linearly over 4 s. So the next message
        waits about a second (not 200 ms), the three after the 421 take
        about 2 s (not 0.6 s), and once the 4 s are over the site sends
        every 200 ms again, SITE.backoff is gone, and one rate_factor
        activation was counted."""
        refused = {"n": 0, "at": None}
        lock = threading.Lock()

        def data(address, attempt):
            with lock:
                refused["n"] += 1
                if refused["n"] == 5:
                    refused["at"] = time.monotonic()
                    return "421 4.7.0 Slow down: you are sending too fast"
            return None

        rx = self.receiver(RATE_IP, data=data)
        site = f"{RATE_IP}:{self.smtp_port}"
        rm, api = self.admin_daemon(
            routes=[{"domain": self.DOMAIN, "smarthost": site}],
            delivery={"paused": True},
            policy={"shaping": [{"match": {"domain": self.DOMAIN}, "message_rate": "5/s",
                                 "burst": 1}],
                    "backoff": [{"match": {"code": 421, "text": "(?i)slow down"},
                                 "action": {"rate_factor": 0.1, "recover_after": "4s"}}]})
        total = 24
        self.send_many(rm, total, "c", self.DOMAIN)
        api.ok("POST", "/api/v1/delivery/resume")
        self.assertTrue(wait_until(lambda: refused["at"] is not None, WAIT), rx)
        backoff = wait_until(lambda: self.backoff_of(api, site), WAIT)
        self.assertTrue(backoff, self.sites(api))
        self.assertEqual(backoff["action"], "rate_factor")
        self.assertIn("slow down", backoff["reply"].lower())
        self.assertTrue(wait_until(lambda: len(rx.messages()) >= total, 40),
                        f"{len(rx.messages())} of {total} delivered" + rm.stderr_tail())
        cut = refused["at"]
        starts = sorted(t.time for t in rx.all_transactions())
        after = [t for t in starts if t > cut]
        self.assertGreaterEqual(len(after), total - 4, starts)
        self.assertGreaterEqual(after[0] - cut, 0.6,
                                f"the next message went {after[0] - cut:.2f}s after the cut; "
                                f"uncut it would have been 0.2s: {starts}")
        self.assertGreaterEqual(after[2] - cut, 1.3,
                                f"three messages within {after[2] - cut:.2f}s of the cut "
                                f"(0.6s uncut): {starts}")
        recovered = [t for t in after if t >= cut + 4.3]
        self.assertGreaterEqual(len(recovered), 4, f"cut at {cut}: {starts}")
        gaps = [b - a for a, b in zip(recovered, recovered[1:])]
        self.assertLessEqual(sum(gaps) / len(gaps), 0.5,
                             f"not back to 5/s after the recovery: gaps {gaps}")
        # The override ended by itself when the recovery was complete.
        self.assertTrue(wait_until(lambda: self.backoff_of(api, site) is None, 5),
                        self.sites(api))
        metrics = self.metrics(api)
        self.assertEqual(metrics.get(ACTIVATIONS.format("rate_factor")), 1, metrics)
        self.assertEqual(metrics.get(f'ringmail_backoff_active{{site="{site}",source="default"}}'),
                         0, metrics)
        [line] = self.backoff_log_lines(rm)
        self.assertIn(site, line)
        self.assertIn("Slow down", line)


class WhenThresholdTest(BackoffPeersCase):
    DOMAIN = "when.backoff.test"

    def test_the_third_matching_reply_suspends_not_the_first_two(self):
        """when: {count: 3, within: 1m}. Two "451 ... slow down" replies
        leave the site alone: the next message and both retries are
        delivered, SITE.backoff stays null, nothing is counted. The third
        matching reply suspends the site: SITE.backoff shows the rule,
        one suspend activation is counted, and nothing is sent until
        resume ends it."""
        script = {"refuse": 2}
        lock = threading.Lock()

        def data(address, attempt):
            with lock:
                if script["refuse"] > 0:
                    script["refuse"] -= 1
                    return "451 4.7.1 Slow down, too much mail from you"
            return None

        rx = self.receiver(WHEN_IP, data=data)
        site = f"{WHEN_IP}:{self.smtp_port}"
        rm, api = self.admin_daemon(
            routes=[{"domain": self.DOMAIN, "smarthost": site}],
            policy={"backoff": [{"match": {"code": 451, "text": "(?i)slow down"},
                                 "action": {"suspend": "1h"},
                                 "when": {"count": 3, "within": "1m"}}]})

        def refusals():
            return [t for t in rx.all_transactions()
                    if t.data_reply and t.data_reply.startswith("451")]

        for i in range(2):
            self.send(rm, f"a{i}@{self.DOMAIN}", f"a {i}")
            self.assertTrue(wait_until(lambda: len(refusals()) == i + 1, WAIT), rx)
        self.send(rm, f"a2@{self.DOMAIN}", "a 2")
        # Mail keeps flowing: the third message and both retries arrive.
        self.assertTrue(wait_until(lambda: len(rx.messages()) >= 3, WAIT),
                        f"{rx!r}\n{rm.stderr_tail()}")
        self.assertEqual(len(refusals()), 2)
        self.assertIsNone(self.backoff_of(api, site), self.sites(api))
        self.assertEqual(self.activations(api, "suspend"), 0)
        self.assertEqual(self.backoff_log_lines(rm), [])

        with lock:
            script["refuse"] = 1
        self.send(rm, f"b0@{self.DOMAIN}", "b 0")
        backoff = wait_until(lambda: self.backoff_of(api, site), WAIT)
        self.assertTrue(backoff, f"the third matching reply did not suspend: {self.sites(api)}")
        self.assertEqual(len(refusals()), 3)
        self.assertEqual(backoff["action"], "suspend")
        self.assertIn("3 within", backoff["rule"])
        self.assertEqual(self.activations(api, "suspend"), 1)
        self.assertEqual(len(self.backoff_log_lines(rm)), 1, self.backoff_log_lines(rm))
        seen = len(rx.all_transactions())
        self.send(rm, f"b1@{self.DOMAIN}", "b 1")
        time.sleep(2.5)  # b0's retry is due after 1 s: still held
        self.assertEqual(len(rx.all_transactions()), seen, "sent during the suspension")
        api.ok("POST", "/api/v1/queue/resume", {"site": site})
        self.assertTrue(wait_until(lambda: len(rx.messages()) >= 5, WAIT), rx)
        self.assertEqual(self.activations(api, "suspend"), 1)


class GreetingRefusalTest(BackoffPeersCase):
    DOMAIN = "greeting.backoff.test"

    def test_a_421_greeting_is_a_remote_reply_for_the_rules(self):
        """The host refuses the connection with "421 ... too many
        connections". A rule matching it suspends the site: the job waits
        (no deferral, no circuit), no second connection is made, and
        resume lets it through once the host greets again."""
        host = ScriptedSmtp(self, GREETING_IP, self.smtp_port,
                            greeting="421 4.7.0 {host} Too many connections from your IP").start()
        site = f"{GREETING_IP}:{self.smtp_port}"
        rm, api = self.admin_daemon(
            routes=[{"domain": self.DOMAIN, "smarthost": site}], intervals=("500ms",),
            policy={"backoff": [{"match": {"code": 421, "text": "(?i)too many connections"},
                                 "action": {"suspend": "1h"}}]})
        self.send(rm, f"g0@{self.DOMAIN}", "g 0")
        backoff = wait_until(lambda: self.backoff_of(api, site), WAIT)
        self.assertTrue(backoff, self.sites(api))
        self.assertEqual(backoff["action"], "suspend")
        self.assertIn("Too many connections", backoff["reply"])
        self.assertEqual(self.activations(api, "suspend"), 1)
        time.sleep(2)  # four retry intervals
        self.assertEqual(len(host.connection_list()), 1, host)
        self.assertEqual(self.records(rm, "TransientFailure"), [], "held, not deferred")
        self.assertIsNone(self.site_entry(api, site)["circuit"], self.sites(api))
        host.greeting = f"220 {host.hostname} ESMTP scripted"
        api.ok("POST", "/api/v1/queue/resume", {"site": site})
        self.assertTrue(wait_until(lambda: len(host.messages()) == 1, WAIT),
                        f"{host!r}\n{rm.stderr_tail()}")


class InternalFailureTest(BackoffPeersCase):
    # Rules that match the texts (and codes) of replies Ringmail makes up
    # itself: a refused connect ("connect to ... Connection refused"), a
    # timeout ("timeout waiting for ..."), a message over the server's SIZE
    # ("552 5.3.4 message size N exceeds the server's limit"), a failed DNS
    # look-up ("451 4.4.3 DNS lookup of D failed"). None may fire on those.
    RULES = [
        {"match": {"text": "(?i)refused|timeout|timed out|lost|exceeds|failed"},
         "action": {"suspend": "1h"}},
        {"match": {"enhanced": "4.4"}, "action": {"suspend": "1h"}},
        {"match": {"code": 552}, "action": {"suspend": "1h"}},
    ]

    def test_ringmails_own_failures_never_trigger_a_rule(self):
        """Four sites fail in Ringmail's own ways, repeatedly (retries every
        1-2 s): no activation, no SITE.backoff, no log line. A fifth site
        whose server sends a real reply with the same words is suspended,
        so the rules are live."""
        dead_port = free_port()
        slow = self.receiver(SLOW_IP, stall=4.0)
        sized = ScriptedSmtp(self, SIZE_IP, self.smtp_port,
                             extensions=("8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 64")).start()
        self.receiver(CONTROL_IP, data=lambda address, attempt: CONTROL_REPLY)
        routes = [
            {"domain": "dead.backoff.test", "smarthost": f"{DEAD_IP}:{dead_port}"},
            {"domain": "slow.backoff.test", "smarthost": f"{SLOW_IP}:{self.smtp_port}"},
            {"domain": "size.backoff.test", "smarthost": f"{SIZE_IP}:{self.smtp_port}"},
            {"domain": "control.backoff.test", "smarthost": f"{CONTROL_IP}:{self.smtp_port}"},
        ]  # nodns.backoff.test: MX look-up at the closed nameserver port
        rm, api = self.admin_daemon(
            routes=routes, delivery={"timeouts": short_timeouts(data_term="1s")},
            policy={"backoff": self.RULES})
        for name in ("dead", "slow", "size", "nodns"):
            self.send(rm, f"x@{name}.backoff.test", name)

        def failed(rcpt, words, type_="TransientFailure", count=2):
            def found():
                recs = [r for r in self.records(rm, type_, rcpt)
                        if words.lower() in r["response"]["text"].lower()]
                return len(recs) >= count and recs
            got = wait_until(found, WAIT)
            self.assertTrue(got, f"{rcpt}: no {count} {type_} records with {words!r}:\n"
                            + "\n".join(map(str, self.records(rm, recipient=rcpt))))
            return got

        # Each failed at least twice (the first try and a retry).
        failed("x@dead.backoff.test", "refused")
        failed("x@slow.backoff.test", "timeout")
        failed("x@nodns.backoff.test", "failed")
        [bounce] = failed("x@size.backoff.test", "exceeds", "Bounce", 1)
        self.assertEqual(bounce["response"]["code"], 552, bounce)
        self.assertGreaterEqual(len(slow.all_transactions()), 2, slow)
        self.assertEqual(sized.all_transactions(), [], "the message went over the SIZE")
        self.assertEqual(self.activations(api, "suspend"), 0, self.backoff_log_lines(rm))
        self.assertEqual(self.backoff_sites(api), [])
        self.assertEqual(self.backoff_log_lines(rm), [])

        # The same words from a remote server do trigger.
        self.send(rm, "x@control.backoff.test", "control")
        control_site = f"{CONTROL_IP}:{self.smtp_port}"
        self.assertTrue(wait_until(lambda: self.backoff_sites(api), WAIT), self.sites(api))
        self.assertEqual(self.backoff_sites(api), [(control_site, "default")])
        self.assertEqual(self.activations(api, "suspend"), 1)
        [line] = self.backoff_log_lines(rm)
        self.assertIn(control_site, line)


class SmarthostFailoverTest(BackoffPeersCase):
    DOMAIN = "failover.backoff.test"

    def test_a_smarthost_list_fails_over_and_comes_back(self):
        """smarthost: [first, second]. With nothing listening on the first,
        mail goes to the second; once the first answers again (and the
        second's idle connection is gone), mail goes to the first."""
        first_at = f"{FIRST_IP}:{self.smtp_port}"
        second_at = f"{SECOND_IP}:{self.smtp_port}"
        second = self.receiver(SECOND_IP)
        rm, api = self.admin_daemon(
            routes=[{"domain": self.DOMAIN, "smarthost": [first_at, second_at]}],
            policy={"backoff": []})
        self.send(rm, f"f0@{self.DOMAIN}", "f 0")
        self.assertTrue(wait_until(lambda: second.delivered_to(f"f0@{self.DOMAIN}"), WAIT),
                        f"{second!r}\n{rm.stderr_tail()}")
        [rec] = self.records(rm, "Delivery", f"f0@{self.DOMAIN}")
        self.assertEqual(rec["site"], f"{first_at},{second_at}", rec)
        self.assertEqual(rec["attempt"], 1, "failover is within the attempt, not a retry")
        self.assertEqual(self.records(rm, "TransientFailure"), [])

        first = self.receiver(FIRST_IP)
        # The second's connection idles until delivery.idle_timeout (2 s);
        # while it is open it would be reused.
        self.assertTrue(wait_until(lambda: all(c.closed for c in second.connection_list()),
                                   WAIT), second.connection_list())
        self.send(rm, f"f1@{self.DOMAIN}", "f 1")
        self.assertTrue(wait_until(lambda: first.delivered_to(f"f1@{self.DOMAIN}"), WAIT),
                        f"{first!r}\n{second!r}\n{rm.stderr_tail()}")
        self.assertEqual([a for t in second.messages() for a in t.accepted],
                         [f"f0@{self.DOMAIN}"])


class CircuitBreakerTest(BackoffPeersCase):
    DOMAIN = "circuit.backoff.test"

    def test_a_dead_site_is_left_alone_for_growing_intervals_then_one_probe_closes_it(self):
        """The only host accepts and hangs up at once (every address of the
        site failed). Retries are due every 500 ms, but the circuit keeps
        the site alone 1 s, then 2 s, then 4 s: connection attempts come
        1, 2, 4 s apart, more mail meanwhile adds none, and the API shows
        SITE.circuit. When the host greets again, the next (probe)
        connection closes the circuit and carries the mail."""
        host = ScriptedSmtp(self, CIRCUIT_IP, self.smtp_port, greeting=None).start()
        site = f"{CIRCUIT_IP}:{self.smtp_port}"
        rm, api = self.admin_daemon(routes=[{"domain": self.DOMAIN, "smarthost": site}],
                                    intervals=("500ms",), policy={"backoff": []})
        self.send(rm, f"c0@{self.DOMAIN}", "c 0")
        self.assertTrue(wait_until(lambda: len(host.connection_list()) >= 2, WAIT), host)
        circuit = wait_until(lambda: (self.site_entry(api, site) or {}).get("circuit"), WAIT)
        self.assertTrue(circuit, self.sites(api))
        self.assertGreaterEqual(circuit["failures"], 1, circuit)
        self.assertTrue(circuit["open_until"].endswith("Z"), circuit)
        # Mail submitted while the circuit is open opens no connection.
        for i in range(1, 3):
            self.send(rm, f"c{i}@{self.DOMAIN}", f"c {i}")
        # (Its third attempt hung up on, and counted, before the host is fixed.)
        self.assertTrue(wait_until(lambda: len(host.connection_list()) >= 3 and
                                   host.connection_list()[2].closed, WAIT), host)
        self.assertTrue(wait_until(lambda: ((self.site_entry(api, site) or {}).get("circuit")
                                            or {}).get("failures", 0) >= 3, WAIT),
                        self.sites(api))
        # The host is back; the circuit is open for 4 s more.
        host.greeting = f"220 {host.hostname} ESMTP scripted"
        back = time.monotonic()
        self.assertTrue(wait_until(lambda: len(host.messages()) >= 3, WAIT),
                        f"{host!r}\n{rm.stderr_tail()}")
        conns = host.connection_list()
        times = [c.time for c in conns]
        gaps = [b - a for a, b in zip(times, times[1:4])]
        self.assertEqual(len(gaps), 3, conns)
        for gap, least in zip(gaps, (0.9, 1.8, 3.6)):
            self.assertGreaterEqual(gap, least, f"attempts not left alone long enough: {gaps}")
        self.assertGreater(gaps[2], 2 * gaps[0], f"the intervals do not grow: {gaps}")
        probe = conns[3]
        self.assertGreater(probe.time, back, "a fourth attempt before the host was back")
        carried = {t.conn for t in host.messages()}
        self.assertIn(probe.id, carried, f"the probe carried no mail: {host!r}")
        self.assertTrue(wait_until(lambda: (self.site_entry(api, site) or {}).get("circuit")
                                   is None, WAIT), self.sites(api))
        # Each message was deferred (without a connection) while the circuit
        # was open, and delivered once it closed.
        for i in range(3):
            self.assertTrue(self.records(rm, "TransientFailure", f"c{i}@{self.DOMAIN}"))
            self.assertEqual(len(self.records(rm, "Delivery", f"c{i}@{self.DOMAIN}")), 1)


def max_overlap(intervals):
    """The most intervals (start, end) open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                    key=lambda ev: (ev[0], ev[1]))
    best = depth = 0
    for _, step in events:
        depth += step
        best = max(best, depth)
    return best


class ConcurrencyFeedbackTest(BackoffPeersCase):
    DOMAIN = "busy.backoff.test"
    STALL = 0.6

    def test_421s_shrink_the_connections_of_a_site(self):
        """initial_connections 4 (also the maximum), 0.6 s per message.
        A backlog of 8 released at once is carried on 4 connections in
        parallel. Then 3 transactions are answered 421 (each takes one
        away: 4 -> 1). A backlog of 6 released at once now starts on one
        connection: the first two transactions follow each other, and at
        most 3 ever overlap while it grows again."""
        state = {"phase": 1, "refuse": 0}
        spans = {1: [], 3: []}  # (start of MAIL, end of the stalled DATA)
        lock = threading.Lock()
        rx = None

        def data(address, attempt):
            with lock:
                if state["refuse"] > 0:
                    state["refuse"] -= 1
                    return "421 4.3.2 Too busy, closing the connection"
                txn = [t for t in rx.all_transactions() if address in t.accepted][-1]
                spans.setdefault(state["phase"], []).append(
                    (txn.time, time.monotonic() + self.STALL - 0.05))
            return None

        rx = self.receiver(BUSY_IP, data=data, stall=self.STALL)
        site = f"{BUSY_IP}:{self.smtp_port}"
        rm, api = self.admin_daemon(
            routes=[{"domain": self.DOMAIN, "smarthost": site}], intervals=("1h",),
            delivery={"paused": True, "initial_connections": 4, "max_connections_per_site": 4},
            policy={"backoff": []})

        def backlog(prefix, count):
            api.ok("POST", "/api/v1/delivery/pause")
            self.send_many(rm, count, prefix, self.DOMAIN)
            api.ok("POST", "/api/v1/delivery/resume")

        backlog("p", 8)
        self.assertTrue(wait_until(lambda: len(rx.messages()) >= 8, WAIT), rx)
        self.assertEqual(max_overlap(spans[1]), 4, spans[1])

        with lock:
            state["phase"], state["refuse"] = 2, 3
        backlog("r", 3)
        self.assertTrue(wait_until(lambda: len(self.records(rm, "TransientFailure")) >= 3, WAIT),
                        rm.delivery_log())
        for rec in self.records(rm, "TransientFailure"):
            self.assertEqual(rec["response"]["code"], 421, rec)

        with lock:
            state["phase"] = 3
        backlog("q", 6)
        self.assertTrue(wait_until(lambda: len(rx.messages()) >= 14, WAIT), rx)
        third = sorted(spans[3])
        self.assertEqual(len(third), 6, third)
        self.assertGreaterEqual(third[1][0], third[0][1],
                                f"two at once right after the 421s: {third}")
        self.assertLessEqual(max_overlap(third), 3, third)


class PoolYieldTest(BackoffPeersCase):
    DOMAIN = "pool.backoff.test"
    SOURCES = {"ip2": "127.0.0.2", "ip3": "127.0.0.3"}

    def test_a_suspended_source_yields_its_turns_to_the_other_source(self):
        """Pool default = ip2, ip3 (weights 1:1). The first message's
        transaction is answered with a matching 421: that (source, site) is
        suspended for an hour. The next 10 messages, and the retry of the
        first, all leave from the other source at once, while the
        suspended one sends nothing."""
        answered = {"n": 0}
        lock = threading.Lock()

        def data(address, attempt):
            with lock:
                answered["n"] += 1
                if answered["n"] == 1:
                    return "421 4.7.0 Rate limited, slow down"
            return None

        rx = self.receiver(POOL_IP, data=data)
        site = f"{POOL_IP}:{self.smtp_port}"
        rm, api = self.admin_daemon(
            routes=[{"domain": self.DOMAIN, "smarthost": site}],
            policy={"sources": [{"name": n, "address": a} for n, a in self.SOURCES.items()],
                    "pools": [{"name": "default", "sources": ["ip2", "ip3"]}],
                    "backoff": [{"match": {"code": 421, "text": "(?i)rate limited"},
                                 "action": {"suspend": "1h"}}]})
        self.send(rm, f"p0@{self.DOMAIN}", "p 0")
        held = wait_until(lambda: self.backoff_sites(api), WAIT)
        self.assertTrue(held, self.sites(api))
        [(held_site, held_source)] = held
        self.assertEqual(held_site, site)
        peer_of = {c.id: c.peer[0] for c in rx.connection_list()}
        [first] = rx.all_transactions()
        self.assertEqual(peer_of[first.conn], self.SOURCES[held_source])
        other = next(a for n, a in self.SOURCES.items() if n != held_source)

        total = 10
        self.send_many(rm, total, "q", self.DOMAIN)
        self.assertTrue(wait_until(lambda: len(rx.messages()) >= total + 1, WAIT),
                        f"{len(rx.messages())} of {total + 1} delivered: {rx!r}\n"
                        + rm.stderr_tail())
        peer_of = {c.id: c.peer[0] for c in rx.connection_list()}
        sent_from = [peer_of[t.conn] for t in rx.messages()]
        self.assertEqual(sent_from, [other] * (total + 1),
                         f"{held_source} is suspended; everything goes from {other}")
        self.assertEqual(self.backoff_sites(api), [(site, held_source)])
        by_source = {}
        for r in self.records(rm, "Delivery"):
            by_source[r["source"]] = by_source.get(r["source"], 0) + 1
        self.assertEqual(list(by_source), [n for n in self.SOURCES if n != held_source])


if __name__ == "__main__":
    unittest.main()
