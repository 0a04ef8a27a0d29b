"""Outbound delivery end to end: ringmaild takes mail on its relay listener
and delivers it to real peers on loopback, found through a real DNS server
(dnsmasq, authoritative for "test") or a static route: scripted aiosmtpd
receivers on 127.0.0.2, 127.0.0.3, ... sharing delivery.smtp_port, and
smtp-sink for bulk. Each scenario asserts what a user sees: what the
receiver got (envelope, content, which connection, TLS), the delivery-log
records (type, category, site, mx, attempt) and what is left in the spool.

No test talks to the machine's resolver: every config names its own
nameserver (a dnsmasq, or a closed loopback port)."""

import email
import email.policy
import smtplib
import subprocess
import sys
import time
import unittest
import uuid

from harness import DaemonTestCase, free_port, send_message
from peers import SMTP_SOURCE, Dnsmasq, Receiver, SmtpSink, wait_until

SENDER = "author@sender.test"
SENDER_MX = "mx.sender.test"
SENDER_IP = "127.0.0.9"  # the receiver for the senders' domain (DSNs land there)
WAIT = 20.0  # seconds: the longest any single condition may take


def short_timeouts(data_term="10s"):
    return {"connect": "2s", "greeting": "5s", "ehlo": "5s", "starttls": "5s", "mail": "5s",
            "rcpt": "5s", "data_init": "5s", "data_block": "5s", "data_term": data_term,
            "quit": "2s"}


def message_text(subject, rcpt, sender=SENDER, body=None):
    tag = uuid.uuid4().hex
    return (f"From: Author <{sender}>\r\n"
            f"To: {rcpt}\r\n"
            f"Subject: {subject}\r\n"
            f"Message-ID: <{tag}@sender.test>\r\n"
            f"X-Test-Tag: {tag}\r\n"
            f"\r\n"
            f"{body or 'Hello from the delivery test.'}\r\n")


def parse_dsn(content):
    """(message, per-message fields, [per-recipient fields]) of an RFC 3464 DSN."""
    msg = email.message_from_bytes(content, policy=email.policy.compat32)
    status = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
    if not status:
        return msg, None, []
    blocks = status[0].get_payload()
    return msg, blocks[0], blocks[1:]


class DeliveryCase(DaemonTestCase):
    """Helpers shared by the delivery scenarios."""

    def setUp(self):
        self.smtp_port = free_port()  # every receiver listens here, on its own IP
        self.t0 = time.monotonic()

    def tearDown(self):
        sys.stderr.write(f"[{self.id().rsplit('.', 1)[-1]}: "
                         f"{time.monotonic() - self.t0:.1f}s] ")

    # ---- peers

    def dns(self, mx=None, hosts=None, null_mx=None, sender_domain=True):
        mx = dict(mx or {})
        hosts = dict(hosts or {})
        if sender_domain:
            mx.setdefault("sender.test", [(10, SENDER_MX)])
            hosts.setdefault(SENDER_MX, SENDER_IP)
        return Dnsmasq(self, mx=mx, hosts=hosts, null_mx=null_mx).start()

    def receiver(self, ip, **kwargs):
        return Receiver(self, ip, self.smtp_port, **kwargs).start()

    def sender_receiver(self):
        """Where mail to @sender.test (the DSNs) arrives."""
        return self.receiver(SENDER_IP, hostname=SENDER_MX)

    # ---- the daemon

    def daemon(self, nameserver, routes=None, intervals=("1s", "2s"), max_age="1h",
               delivery=None, start=True, **top):
        d = {
            "dns": {"nameservers": [nameserver]},
            "smtp_port": self.smtp_port,
            "retry": {"intervals": list(intervals), "max_age": max_age},
            "idle_timeout": "2s",
            "timeouts": short_timeouts(),
        }
        if routes:
            d["routes"] = routes
        d.update(delivery or {})
        overrides = {"delivery": d}
        overrides.update(top)
        rm = self.ringmail(overrides=overrides)
        if start:
            rm.start()
        return rm

    def send(self, rm, rcpts, subject, sender=SENDER, body=None):
        """Submits one message on the relay listener; returns its queue id."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        reply = send_message(rm.port("relay"), sender, rcpts,
                             message_text(subject, ", ".join(rcpts), sender, body))
        self.assertEqual(reply.code, 250, f"submission of {subject!r}: {reply!r}")
        qid = reply.queued_id()
        self.assertTrue(qid, f"no queue id in {reply!r}")
        return qid

    # ---- waiting and the delivery log

    def records(self, rm, type_=None, recipient=None, qid=None):
        rows = rm.delivery_log(type_)
        if recipient is not None:
            rows = [r for r in rows if r.get("recipient", "").lower() == recipient.lower()]
        if qid is not None:
            rows = [r for r in rows if r.get("id") == qid]
        return rows

    def wait_record(self, rm, type_, recipient, timeout=WAIT, qid=None, count=1, why=""):
        """Waits for `count` records of a type for a recipient; returns them."""
        got = wait_until(lambda: len(self.records(rm, type_, recipient, qid)) >= count and
                         self.records(rm, type_, recipient, qid), timeout)
        if not got:
            rm.assert_running()
            self.fail(f"no {type_} record for {recipient} within {timeout}s {why}\n"
                      f"delivery log:\n" + "\n".join(map(str, rm.delivery_log()))
                      + rm.stderr_tail())
        return got

    def wait_dsn(self, sender_rx, about, timeout=WAIT):
        """The DSN transactions at the sender's receiver that report `about`."""
        def found():
            return [t for t in sender_rx.messages()
                    if t.mail_from == "" and about.lower().encode() in t.content.lower()]
        got = wait_until(found, timeout)
        self.assertTrue(got, f"no DSN about {about} reached the sender's receiver within "
                        f"{timeout}s; it saw {sender_rx.all_transactions()}")
        return got

    def stop_and_dump(self, rm):
        rm.stop()
        return rm.spool_dump()

    def assert_spool_empty(self, rm):
        dump = self.stop_and_dump(rm)
        self.assertEqual(dump, [], "the spool still holds recipients after every one was "
                         "final\ndelivery log:\n" + "\n".join(map(str, rm.delivery_log())))

    def assert_delivery_record(self, rec, qid=None, mx=None, site=None, attempt=1):
        self.assertEqual(rec["type"], "Delivery", rec)
        if qid is not None:
            self.assertEqual(rec["id"], qid, rec)
        self.assertEqual(rec["sender"], SENDER, rec)
        self.assertEqual(rec["response"]["code"], 250, rec)
        self.assertEqual(rec["attempt"], attempt, rec)
        if mx is not None:
            self.assertEqual(rec["mx"], mx, rec)
        if site is not None:
            self.assertEqual(rec["site"], site, rec)
        for key in ("time", "tenant", "campaign", "source", "size"):
            self.assertIn(key, rec)


class DeliveryTest(DeliveryCase):

    def test_mx_preference_and_fallback(self):
        """MX 10 has no listener; MX 20 takes the message."""
        dns = self.dns(mx={"fallback.test": [(10, "mx1.fallback.test"),
                                             (20, "mx2.fallback.test")]},
                       hosts={"mx1.fallback.test": "127.0.0.2",
                              "mx2.fallback.test": "127.0.0.3"})
        rx = self.receiver("127.0.0.3", hostname="mx2.fallback.test")
        rm = self.daemon(dns.address)
        rcpt = "user@fallback.test"
        qid = self.send(rm, rcpt, "fallback")
        rec = self.wait_record(rm, "Delivery", rcpt)[0]
        self.assert_delivery_record(rec, qid, mx="mx2.fallback.test",
                                    site="mx1.fallback.test,mx2.fallback.test")
        got = rx.delivered_to(rcpt)
        self.assertEqual(len(got), 1, rx)
        self.assertEqual(got[0].mail_from, SENDER)
        self.assertEqual(got[0].accepted, [rcpt])
        self.assertIn(b"Subject: fallback", got[0].content)
        self.assertEqual(self.records(rm, "TransientFailure", rcpt), [])
        self.assert_spool_empty(rm)

    def test_domains_on_one_mx_set_share_the_site(self):
        """Two domains whose MX sets are the same hosts (in another order) are one site."""
        dns = self.dns(mx={"one.test": [(10, "mxa.shared.test"), (20, "mxb.shared.test")],
                           "two.test": [(10, "mxb.shared.test"), (20, "mxa.shared.test")]},
                       hosts={"mxa.shared.test": "127.0.0.2", "mxb.shared.test": "127.0.0.3"})
        rx_a = self.receiver("127.0.0.2", hostname="mxa.shared.test")
        rx_b = self.receiver("127.0.0.3", hostname="mxb.shared.test")
        rm = self.daemon(dns.address)
        qid = self.send(rm, ["u1@one.test", "u2@two.test"], "shared site")
        r1 = self.wait_record(rm, "Delivery", "u1@one.test")[0]
        r2 = self.wait_record(rm, "Delivery", "u2@two.test")[0]
        self.assertEqual(r1["site"], "mxa.shared.test,mxb.shared.test", r1)
        self.assertEqual(r1["site"], r2["site"], (r1, r2))
        for r in (r1, r2):
            self.assert_delivery_record(r, qid)
            self.assertIn(r["mx"], ("mxa.shared.test", "mxb.shared.test"), r)
        got = rx_a.messages() + rx_b.messages()
        self.assertEqual(sorted(a for t in got for a in t.accepted),
                         ["u1@one.test", "u2@two.test"], (rx_a, rx_b))
        self.assert_spool_empty(rm)

    def test_retry_then_success(self):
        """451 at the first attempt, 250 at the second: delivered exactly once."""
        dns = self.dns(mx={"retry.test": [(10, "mx.retry.test")]},
                       hosts={"mx.retry.test": "127.0.0.2"})
        rcpt = "later@retry.test"
        rx = self.receiver("127.0.0.2", hostname="mx.retry.test",
                           rcpt={rcpt: ["451 4.3.0 try again later", "250 2.1.5 Ok"]})
        rm = self.daemon(dns.address, intervals=("1s", "2s"))
        qid = self.send(rm, rcpt, "retry")
        delivered = self.wait_record(rm, "Delivery", rcpt, timeout=15)[0]
        self.assert_delivery_record(delivered, qid, mx="mx.retry.test",
                                    site="mx.retry.test", attempt=2)
        failures = self.records(rm, "TransientFailure", rcpt)
        self.assertEqual(len(failures), 1, failures)
        tf = failures[0]
        self.assertEqual(tf["attempt"], 1, tf)
        self.assertEqual(tf["response"]["code"], 451, tf)
        self.assertEqual(tf["response"]["enhanced"], "4.3.0", tf)
        self.assertEqual(tf["mx"], "mx.retry.test", tf)
        self.assertIn("category", tf)
        self.assertIn("next_attempt", tf)
        self.assertLess(tf["time"], tf["next_attempt"], tf)
        self.assertEqual(len(rx.delivered_to(rcpt)), 1, rx)
        self.assertEqual(rx.rcpt_attempts[rcpt], 2, rx)
        # The retry waited about the first interval (1 s, jitter 0.9-1.1).
        txns = [t for t in rx.all_transactions() if any(a == rcpt for a, _ in t.rcpts)]
        self.assertGreaterEqual(txns[-1].time - txns[0].time, 0.8, txns)
        self.assert_spool_empty(rm)
        self.assertEqual(len(rx.delivered_to(rcpt)), 1, "delivered twice")

    def test_permanent_bounce_sends_dsn(self):
        """550 5.1.1: Bounce InvalidRecipient, and an RFC 3464 DSN from <> to the sender."""
        dns = self.dns(mx={"bounce.test": [(10, "mx.bounce.test")]},
                       hosts={"mx.bounce.test": "127.0.0.2"})
        rcpt = "nobody@bounce.test"
        rx = self.receiver("127.0.0.2", hostname="mx.bounce.test",
                           rcpt={rcpt: "550 5.1.1 <nobody@bounce.test>: user unknown"})
        senders = self.sender_receiver()
        rm = self.daemon(dns.address)
        qid = self.send(rm, rcpt, "bounce me")
        bounce = self.wait_record(rm, "Bounce", rcpt)[0]
        self.assertEqual(bounce["id"], qid)
        self.assertEqual(bounce["category"], "InvalidRecipient", bounce)
        self.assertEqual(bounce["response"]["code"], 550, bounce)
        self.assertEqual(bounce["response"]["enhanced"], "5.1.1", bounce)
        self.assertEqual(bounce["mx"], "mx.bounce.test", bounce)
        self.assertEqual(bounce["attempt"], 1, bounce)
        self.assertEqual(rx.messages(), [], "the refused recipient got a message")

        dsn_txn = self.wait_dsn(senders, rcpt)[0]
        self.assertEqual(dsn_txn.mail_from, "", "a DSN goes from the null sender")
        self.assertEqual(dsn_txn.accepted, [SENDER])
        msg, per_message, per_rcpt = parse_dsn(dsn_txn.content)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertIn(SENDER, msg.get("To", ""))
        self.assertIsNotNone(per_message, "no message/delivery-status part")
        self.assertIn("Reporting-MTA", per_message)
        self.assertEqual(len(per_rcpt), 1, per_rcpt)
        fields = per_rcpt[0]
        self.assertRegex(fields["Final-Recipient"], r"(?i)^rfc822;\s*nobody@bounce\.test$")
        self.assertEqual(fields["Action"].strip().lower(), "failed")
        self.assertEqual(fields["Status"].strip(), "5.1.1")
        self.assertIn("550", fields.get("Diagnostic-Code", ""))
        # The original (or its headers) comes back with the report.
        self.assertIn(b"Subject: bounce me", dsn_txn.content)
        # The DSN itself was delivered and logged as such.
        self.wait_record(rm, "Delivery", SENDER)
        self.assert_spool_empty(rm)

    def test_multi_recipient_transaction_with_mixed_answers(self):
        """3 recipients at one domain: one transaction, 3 RCPTs; 250/550/451."""
        dns = self.dns(mx={"multi.test": [(10, "mx.multi.test")]},
                       hosts={"mx.multi.test": "127.0.0.2"})
        ok, bad, later = "ok@multi.test", "bad@multi.test", "later@multi.test"
        rx = self.receiver("127.0.0.2", hostname="mx.multi.test",
                           rcpt={bad: "550 5.1.1 no such user", later: "451 4.3.0 not now"})
        senders = self.sender_receiver()
        rm = self.daemon(dns.address, intervals=("1m",))
        qid = self.send(rm, [ok, bad, later], "three recipients")
        self.wait_record(rm, "Delivery", ok)
        self.wait_record(rm, "Bounce", bad)
        self.wait_record(rm, "TransientFailure", later)
        txns = rx.all_transactions()
        self.assertEqual(len(txns), 1, f"expected one transaction: {txns}")
        self.assertEqual(sorted(a for a, _ in txns[0].rcpts), sorted([ok, bad, later]), txns)
        self.assertEqual(txns[0].accepted, [ok])
        self.assertTrue(txns[0].delivered, txns)
        self.assertIn(b"Subject: three recipients", txns[0].content)

        d = self.records(rm, "Delivery", ok)
        b = self.records(rm, "Bounce", bad)
        t = self.records(rm, "TransientFailure", later)
        self.assertEqual((len(d), len(b), len(t)), (1, 1, 1), rm.delivery_log())
        self.assert_delivery_record(d[0], qid, mx="mx.multi.test")
        self.assertEqual(b[0]["category"], "InvalidRecipient", b)
        self.assertEqual(b[0]["response"]["code"], 550, b)
        self.assertEqual(t[0]["response"]["code"], 451, t)
        self.assertIn("next_attempt", t[0])
        for r in d + b + t:
            self.assertEqual(r["id"], qid, r)
        # Only the bounced recipient is reported to the sender.
        dsn = self.wait_dsn(senders, bad)[0]
        _, _, per_rcpt = parse_dsn(dsn.content)
        self.assertEqual([f["Final-Recipient"].split(";")[-1].strip() for f in per_rcpt], [bad])
        self.wait_record(rm, "Delivery", SENDER)
        # The message stays while one recipient is deferred; the final ones
        # are kept with their outcome.
        dump = self.stop_and_dump(rm)
        self.assertEqual(sorted((r["id"], r["recipient"], r["state"], r["attempts"])
                                for r in dump),
                         sorted([(qid, ok, "delivered", 1), (qid, bad, "bounced", 1),
                                 (qid, later, "deferred", 1)]), dump)

    def test_expiration_after_max_age(self):
        """Always 451 and max_age 3 s: Expiration (MessageExpired) and a DSN."""
        dns = self.dns(mx={"expire.test": [(10, "mx.expire.test")]},
                       hosts={"mx.expire.test": "127.0.0.2"})
        rcpt = "slow@expire.test"
        rx = self.receiver("127.0.0.2", hostname="mx.expire.test",
                           rcpt={rcpt: "451 4.3.0 try again later"})
        senders = self.sender_receiver()
        rm = self.daemon(dns.address, intervals=("1s",), max_age="3s")
        qid = self.send(rm, rcpt, "expire")
        exp = self.wait_record(rm, "Expiration", rcpt, timeout=15)
        self.assertEqual(len(exp), 1, exp)
        exp = exp[0]
        self.assertEqual(exp["id"], qid)
        self.assertEqual(exp["category"], "MessageExpired", exp)
        failures = self.records(rm, "TransientFailure", rcpt)
        self.assertGreaterEqual(len(failures), 1, "expired without a single attempt")
        self.assertEqual([f["attempt"] for f in failures], list(range(1, len(failures) + 1)))
        self.assertEqual(self.records(rm, "Delivery", rcpt), [])
        self.assertEqual(self.records(rm, "Bounce", rcpt), [])
        self.assertGreaterEqual(rx.rcpt_attempts[rcpt], 1)
        dsn = self.wait_dsn(senders, rcpt)[0]
        self.assertEqual(dsn.mail_from, "")
        msg, _, per_rcpt = parse_dsn(dsn.content)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(len(per_rcpt), 1, per_rcpt)
        self.assertEqual(per_rcpt[0]["Action"].strip().lower(), "failed")
        self.assertRegex(per_rcpt[0]["Status"].strip(), r"^4\.4\.7$")
        self.wait_record(rm, "Delivery", SENDER)
        self.assert_spool_empty(rm)

    def test_null_mx_and_nxdomain_bounce_without_connecting(self):
        """Null MX (with an A record beside it) and NXDOMAIN: Bounce BadDomain,
        no connection to anything."""
        dns = self.dns(null_mx=["null.test"], hosts={"null.test": "127.0.0.2"})
        trap = self.receiver("127.0.0.2", hostname="null.test")
        senders = self.sender_receiver()
        rm = self.daemon(dns.address)
        q1 = self.send(rm, "someone@null.test", "null mx")
        q2 = self.send(rm, "someone@nx.test", "nxdomain")
        for rcpt, qid in (("someone@null.test", q1), ("someone@nx.test", q2)):
            rec = self.wait_record(rm, "Bounce", rcpt)
            self.assertEqual(len(rec), 1, rec)
            rec = rec[0]
            self.assertEqual(rec["id"], qid)
            self.assertEqual(rec["category"], "BadDomain", rec)
            self.assertEqual(rec["mx"], "", rec)
            self.assertEqual(rec["response"]["code"] // 100, 5, rec)
            self.assertEqual(rec["attempt"], 1, rec)
            self.wait_dsn(senders, rcpt)
        self.assertEqual(trap.connection_list(), [],
                         "a null MX domain must not be tried at its A record (RFC 7505)")
        self.assertEqual([t for t in senders.all_transactions() if t.mail_from != ""], [])
        self.assertEqual(self.records(rm, "TransientFailure", "someone@null.test"), [])
        self.assertEqual(self.records(rm, "TransientFailure", "someone@nx.test"), [])
        wait_until(lambda: len(self.records(rm, "Delivery", SENDER)) >= 2, WAIT)
        self.assert_spool_empty(rm)

    def test_dns_temporary_failure_defers(self):
        """The nameserver's port is closed: TransientFailure DNSFailure, kept deferred."""
        rm = self.daemon(f"127.0.0.1:{free_port()}", intervals=("1m",))
        rcpt = "someone@tempdns.test"
        qid = self.send(rm, rcpt, "dns down")
        rec = self.wait_record(rm, "TransientFailure", rcpt)
        self.assertEqual(len(rec), 1, rec)
        rec = rec[0]
        self.assertEqual(rec["id"], qid)
        self.assertEqual(rec["category"], "DNSFailure", rec)
        self.assertEqual(rec["response"]["code"] // 100, 4, rec)
        self.assertEqual(rec["attempt"], 1, rec)
        self.assertIn("next_attempt", rec)
        self.assertEqual(self.records(rm, "Bounce", rcpt), [])
        dump = self.stop_and_dump(rm)
        self.assertEqual([(r["id"], r["recipient"], r["state"], r["attempts"]) for r in dump],
                         [(qid, rcpt, "deferred", 1)], dump)

    def test_starttls_when_offered(self):
        dns = self.dns(mx={"tls.test": [(10, "mx.tls.test")]},
                       hosts={"mx.tls.test": "127.0.0.2"})
        rx = self.receiver("127.0.0.2", hostname="mx.tls.test", tls=True)
        rm = self.daemon(dns.address)
        rcpt = "secret@tls.test"
        qid = self.send(rm, rcpt, "over tls")
        rec = self.wait_record(rm, "Delivery", rcpt)[0]
        self.assert_delivery_record(rec, qid, mx="mx.tls.test")
        self.assertIn("tls", rec, rec)
        self.assertTrue(rec["tls"].startswith("TLSv1."), rec)
        got = rx.delivered_to(rcpt)
        self.assertEqual(len(got), 1, rx)
        self.assertIsNotNone(got[0].tls, "the message went in clear text")
        self.assertTrue(got[0].tls.startswith("TLSv1."), got[0].tls)
        self.assertTrue(rec["tls"].startswith(got[0].tls), (rec["tls"], got[0].tls))
        self.assert_spool_empty(rm)

    def test_smtputf8_message_to_receiver_without_smtputf8(self):
        """An SMTPUTF8 message to a server without SMTPUTF8: Bounce ProtocolErrors."""
        dns = self.dns(mx={"ascii.test": [(10, "mx.ascii.test")]},
                       hosts={"mx.ascii.test": "127.0.0.2"})
        rx = self.receiver("127.0.0.2", hostname="mx.ascii.test", smtputf8=False)
        senders = self.sender_receiver()
        rm = self.daemon(dns.address)
        rcpt = "jürgen@ascii.test"
        msg = (f"From: {SENDER}\r\nTo: {rcpt}\r\nSubject: Grüße\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße.\r\n").encode("utf-8")
        with smtplib.SMTP("127.0.0.1", rm.port("relay"), local_hostname="client.ringmail.test",
                          timeout=20) as s:
            s.ehlo("client.ringmail.test")
            self.assertTrue(s.has_extn("smtputf8"), "ringmaild does not offer SMTPUTF8")
            refused = s.sendmail(SENDER, [rcpt], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            self.assertEqual(refused, {})
        rec = self.wait_record(rm, "Bounce", rcpt)
        self.assertEqual(len(rec), 1, rec)
        rec = rec[0]
        self.assertEqual(rec["category"], "ProtocolErrors", rec)
        self.assertEqual(rec["response"]["code"] // 100, 5, rec)
        self.assertEqual(rx.messages(), [], "the message went to a server without SMTPUTF8")
        self.assertEqual(self.records(rm, "Delivery", rcpt), [])
        self.wait_dsn(senders, "ascii.test")
        self.wait_record(rm, "Delivery", SENDER)
        self.assert_spool_empty(rm)

    def test_internationalized_domain_is_resolved_by_its_a_label(self):
        """An SMTPUTF8 recipient at a UTF-8 domain: MX lookup of the A-label
        (RFC 6531 3.7.1), delivered with the UTF-8 address intact."""
        a_label = "παράδειγμα.test".encode("idna").decode("ascii")  # xn--hxajbheg2az3al.test
        dns = self.dns(mx={a_label: [(10, "mx.idn.test")]}, hosts={"mx.idn.test": "127.0.0.2"})
        rx = self.receiver("127.0.0.2", hostname="mx.idn.test", smtputf8=True)
        rm = self.daemon(dns.address)
        rcpt = "δοκιμή@παράδειγμα.test"
        msg = (f"From: {SENDER}\r\nTo: {rcpt}\r\nSubject: IDN\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\nΓειά σου.\r\n").encode("utf-8")
        with smtplib.SMTP("127.0.0.1", rm.port("relay"), local_hostname="client.ringmail.test",
                          timeout=20) as s:
            s.ehlo("client.ringmail.test")
            refused = s.sendmail(SENDER, [rcpt], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            self.assertEqual(refused, {})
        rec = self.wait_record(rm, "Delivery", rcpt)
        self.assertEqual(rec[0]["mx"], "mx.idn.test", rec)
        got = [t for t in rx.messages() if rcpt in t.accepted]
        self.assertEqual(len(got), 1, rx.messages())
        self.assertIn("Γειά σου.".encode("utf-8"), got[0].content)
        self.assert_spool_empty(rm)

    def test_address_literal_recipient_goes_to_that_address(self):
        """user@[127.0.0.2]: no DNS, delivered to the literal's address."""
        dns = self.dns()
        rx = self.receiver("127.0.0.2", hostname="literal.test")
        rm = self.daemon(dns.address)
        rcpt = "user@[127.0.0.2]"
        self.send(rm, rcpt, "literal")
        rec = self.wait_record(rm, "Delivery", rcpt)
        self.assertEqual(rec[0]["site"], "[127.0.0.2]", rec)
        self.assertEqual(len(rx.delivered_to(rcpt)), 1, rx.messages())
        self.assert_spool_empty(rm)

    def test_sites_waiting_at_the_global_connection_limit_are_served(self):
        """With one outbound connection in all, a second site's mail waits
        until the first site's idle connection closes, then goes."""
        dns = self.dns(mx={"one.test": [(10, "mx.one.test")], "two.test": [(10, "mx.two.test")]},
                       hosts={"mx.one.test": "127.0.0.2", "mx.two.test": "127.0.0.3"})
        rx1 = self.receiver("127.0.0.2", hostname="mx.one.test")
        rx2 = self.receiver("127.0.0.3", hostname="mx.two.test")
        rm = self.daemon(dns.address, delivery={"max_connections": 1, "idle_timeout": "1s"})
        self.send(rm, "a@one.test", "first site")
        self.wait_record(rm, "Delivery", "a@one.test")
        # The one connection now idles at one.test; two.test must not wait forever.
        self.send(rm, "b@two.test", "second site")
        self.wait_record(rm, "Delivery", "b@two.test")
        self.assertEqual(len(rx1.delivered_to("a@one.test")), 1)
        self.assertEqual(len(rx2.delivered_to("b@two.test")), 1)
        self.assert_spool_empty(rm)

    def test_paused_delivery_holds_mail_until_a_reload_resumes_it(self):
        """delivery.paused: accepted and spooled, no DNS, no connection; a
        reload with paused false delivers it."""
        dns = self.dns(mx={"held.test": [(10, "mx.held.test")]},
                       hosts={"mx.held.test": "127.0.0.2"})
        rx = self.receiver("127.0.0.2", hostname="mx.held.test")
        rm = self.daemon(dns.address, delivery={"paused": True})
        qid = self.send(rm, "user@held.test", "held")
        time.sleep(1.5)  # give a wrongly running engine time to deliver
        self.assertEqual(rx.connection_list(), [], "a paused engine connected")
        self.assertEqual(self.records(rm, "Delivery"), [])
        self.assertEqual(self.records(rm, "TransientFailure"), [])
        dump = rm.spool_dump(live=True)
        self.assertEqual([(r["id"], r["state"]) for r in dump], [(qid, "queued")])
        rm.config["delivery"]["paused"] = False
        rm.write_config(rm.config)
        rm.reload()
        self.wait_record(rm, "Delivery", "user@held.test")
        self.assertEqual(len(rx.delivered_to("user@held.test")), 1)
        self.assert_spool_empty(rm)

    def test_egress_sources_of_the_default_pool_take_turns(self):
        """policy.pools default = [ip5, ip6]: connections leave from
        127.0.0.5 and 127.0.0.6 in turn, and the log names the source."""
        dns = self.dns(mx={"egress.test": [(10, "mx.egress.test")]},
                       hosts={"mx.egress.test": "127.0.0.2"})
        rx = self.receiver("127.0.0.2", hostname="mx.egress.test")
        rm = self.daemon(dns.address, policy={
            "sources": [{"name": "ip5", "address": "127.0.0.5"},
                        {"name": "ip6", "address": "127.0.0.6"}],
            "pools": [{"name": "default", "sources": ["ip5", "ip6"]}]})
        rcpts = [f"user{i}@egress.test" for i in range(6)]
        for i, rcpt in enumerate(rcpts):
            self.send(rm, rcpt, f"egress {i}")
        ok = wait_until(lambda: len(self.records(rm, "Delivery")) >= 6, WAIT)
        self.assertTrue(ok, self.records(rm))
        peers = {c.peer[0] for c in rx.connection_list()}
        self.assertEqual(peers, {"127.0.0.5", "127.0.0.6"}, rx.connection_list())
        sources = {r["source"] for r in self.records(rm, "Delivery")}
        self.assertEqual(sources, {"ip5", "ip6"})
        self.assertEqual({r["site"] for r in self.records(rm, "Delivery")}, {"mx.egress.test"})
        self.assert_spool_empty(rm)

    def test_ipv4_sources_do_not_strand_an_ipv6_destination(self):
        """An IPv4-only default pool and a smarthost on ::1: delivered from
        the machine's IPv6 address rather than never."""
        dns = self.dns()
        rx = self.receiver("::1", hostname="v6.test")
        rm = self.daemon(dns.address,
                         routes=[{"domain": "v6.test", "smarthost": f"[::1]:{self.smtp_port}"}],
                         policy={"sources": [{"name": "ip5", "address": "127.0.0.5"}],
                                 "pools": [{"name": "default", "sources": ["ip5"]}]})
        self.send(rm, "user@v6.test", "v6")
        self.wait_record(rm, "Delivery", "user@v6.test")
        self.assertEqual(len(rx.delivered_to("user@v6.test")), 1)
        self.assertEqual({c.peer[0] for c in rx.connection_list()}, {"::1"})
        self.assert_spool_empty(rm)

    def test_connection_reuse(self):
        """30 messages to one site: a few connections, each carrying several."""
        dns = self.dns(mx={"reuse.test": [(10, "mx.reuse.test")]},
                       hosts={"mx.reuse.test": "127.0.0.2"})
        rx = self.receiver("127.0.0.2", hostname="mx.reuse.test")
        # A long idle timeout: a slow submission loop must not close the
        # connections between messages.
        rm = self.daemon(dns.address, delivery={"max_connections_per_site": 2,
                                                "max_messages_per_connection": 10,
                                                "idle_timeout": "15s"})
        rcpts = [f"user{i}@reuse.test" for i in range(30)]
        for i, rcpt in enumerate(rcpts):
            self.send(rm, rcpt, f"reuse {i}")
        ok = wait_until(lambda: len(self.records(rm, "Delivery")) >= 30, WAIT)
        self.assertTrue(ok, f"{len(self.records(rm, 'Delivery'))} of 30 delivered")
        self.assertEqual(sorted(a for t in rx.messages() for a in t.accepted), sorted(rcpts))
        per_conn = {}
        for t in rx.messages():
            per_conn[t.conn] = per_conn.get(t.conn, 0) + 1
        conns = rx.connection_list()
        sys.stderr.write(f"[reuse] {len(conns)} connections, messages per connection "
                         f"{sorted(per_conn.values(), reverse=True)} ")
        self.assertGreater(max(per_conn.values()), 1, "no connection carried two messages")
        self.assertLessEqual(max(per_conn.values()), 10,
                             "max_messages_per_connection 10 was exceeded")
        self.assertGreaterEqual(len(per_conn), 3, "30 messages at 10 per connection")
        self.assertLessEqual(len(conns), 10, f"{len(conns)} connections for 30 messages")
        self.assert_spool_empty(rm)

    def test_static_route_overrides_mx(self):
        """delivery.routes "*.routed.test" goes to the smarthost, whatever the MX says;
        the parent domain itself does not match and goes by MX."""
        dns = self.dns(mx={"a.routed.test": [(10, "mx.routed.test")],
                           "routed.test": [(10, "mx.routed.test")]},
                       hosts={"mx.routed.test": "127.0.0.3"})
        smarthost = self.receiver("127.0.0.2", hostname="smarthost.test")
        by_mx = self.receiver("127.0.0.3", hostname="mx.routed.test")
        hostport = f"127.0.0.2:{self.smtp_port}"
        rm = self.daemon(dns.address,
                         routes=[{"domain": "*.routed.test", "smarthost": hostport}])
        q1 = self.send(rm, "user@a.routed.test", "routed")
        q2 = self.send(rm, "user@routed.test", "not routed")
        r1 = self.wait_record(rm, "Delivery", "user@a.routed.test")[0]
        r2 = self.wait_record(rm, "Delivery", "user@routed.test")[0]
        self.assert_delivery_record(r1, q1, site=hostport)
        self.assert_delivery_record(r2, q2, mx="mx.routed.test", site="mx.routed.test")
        self.assertEqual([a for t in smarthost.messages() for a in t.accepted],
                         ["user@a.routed.test"])
        self.assertEqual([a for t in by_mx.messages() for a in t.accepted], ["user@routed.test"])
        self.assert_spool_empty(rm)

    def test_bulk_smtp_source_to_smtp_sink(self):
        """smtp-source (1000 messages, 20 sessions) -> ringmaild -> smtp-sink."""
        total = 1000
        sink = SmtpSink(self).start()
        rm = self.daemon(f"127.0.0.1:{free_port()}",
                         routes=[{"domain": "bulk.test", "smarthost": f"127.0.0.1:{sink.port}"}])
        t0 = time.monotonic()
        source = subprocess.Popen(
            [SMTP_SOURCE, "-s", "20", "-m", str(total), "-l", "2048", "-d",
             "-M", "source.test", "-f", "bulk@source.test", "-t", "rcpt@bulk.test",
             f"127.0.0.1:{rm.port('relay')}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: source.poll() is None and source.kill())
        out, _ = source.communicate(timeout=50)
        self.assertEqual(source.returncode, 0, out.decode("utf-8", "replace")[-2000:])
        received = len(rm.delivery_log("Reception"))
        self.assertEqual(received, total, "ringmaild did not receive every message")
        ok = wait_until(lambda: len(self.records(rm, "Delivery")) >= total and
                        sink.count() >= total, max(5.0, 45 - (time.monotonic() - t0)),
                        interval=0.2)
        took = time.monotonic() - t0
        delivered = self.records(rm, "Delivery")
        sys.stderr.write(f"[bulk] {len(delivered)} delivered, sink counted {sink.count()} in "
                         f"{took:.1f}s ")
        others = [r for r in rm.delivery_log() if r["type"] not in ("Reception", "Delivery")]
        self.assertTrue(ok, f"{len(delivered)} Delivery records, sink {sink.count()} of {total}; "
                        f"other records: {others[:5]}")
        self.assertEqual(len(delivered), total)
        self.assertEqual(len({r["id"] for r in delivered}), total, "a message delivered twice")
        self.assertTrue(all(r["recipient"] == "rcpt@bulk.test" for r in delivered))
        self.assert_spool_empty(rm)
        self.assertEqual(sink.count(), total, "smtp-sink got more transactions than messages")


if __name__ == "__main__":
    unittest.main()
