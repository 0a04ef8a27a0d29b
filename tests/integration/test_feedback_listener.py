"""The feedback listener (mode feedback) against a running ringmaild: a
campaign message is delivered to an aiosmtpd receiver, then real reports
about it come back over SMTP (smtplib) to the return-path domain — a
Postfix RFC 3464 bounce to its VERP address, an RFC 5965 abuse report with
the recipient redacted that only Ringmail's X-Ringmail-Ref header
attributes, an out-of-office — and each must become the Feedback record
CONTRACT shapes: the bounce and the complaint suppress their recipient
(the next message to it is logged Suppressed and not delivered), the
out-of-office does not, and the complaint counts in the campaign's and the
tenant's stats. Forged tokens, other domains and malformed reports are
refused or dropped and the daemon carries on.

Tokens are computed here with Python's hmac and base64 (the format of
policy/feedback_token.cc, checked against its known answer), never by the
daemon, so a wrong encoder or decoder fails the test."""

import base64
import hashlib
import hmac
import os
import re
import smtplib
import unittest
import urllib.parse
from email.parser import BytesHeaderParser

from harness import DEFAULT_LISTENERS, HOST, free_port, send_message
from peers import wait_until
from admin_client import Api, admin_overrides, write_token
from test_admin_api import AdminCase
from test_delivery import SENDER, short_timeouts

WAIT = 20.0
KEY = b"feedback-listener-test-key-0123456789"  # >= 32 octets
DOMAIN = "bounces.ringmail.test"
TENANT = "127.0.0.0/8"  # relay mail's tenant
CORPUS = os.path.join(os.environ.get("RINGMAIL_SOURCE_DIR",
                                     os.path.join(os.path.dirname(__file__), "..", "..")),
                      "tests", "mail", "feedback_corpus")


def _b32(data):
    return base64.b32encode(data).decode().lower().rstrip("=")


def _seal(context, payload, mac_bytes, key):
    mac = hmac.new(key, context + b"\0" + payload, hashlib.sha256).digest()[:mac_bytes]
    return "1" + _b32(payload + mac)


def verp_local_part(message_id, index, key=KEY):
    payload = bytes.fromhex(message_id) + index.to_bytes(4, "big")
    return "b-" + _seal(b"ringmail verp 1", payload, 12, key)


def ref_token(message_id, index, tenant, campaign, key=KEY):
    payload = (bytes.fromhex(message_id) + index.to_bytes(4, "big") +
               bytes([len(tenant)]) + tenant.encode() + bytes([len(campaign)]) + campaign.encode())
    return _seal(b"ringmail ref 1", payload, 16, key)


def corpus(name):
    with open(os.path.join(CORPUS, name), "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def replace_line(text, prefix, line):
    return re.sub(rf"(?m)^{re.escape(prefix)}.*$", lambda _: line, text, count=1)


def crlf(text):
    return re.sub(r"\r?\n", "\r\n", text).encode("utf-8", "surrogateescape")


class TokenFormat(unittest.TestCase):
    def test_python_tokens_match_the_cc_known_answers(self):
        # tests/policy/feedback_token_test.cc, computed there with this code.
        key = b"0123456789abcdef0123456789abcdef"
        self.assertEqual(verp_local_part("0190f3a2b4c5d6e7f809", 3, key),
                         "b-1agiphivuyxlop6ajaaaaaa2ohjq6dmbfkh6kxbykgm")
        self.assertEqual(ref_token("0190f3a2b4c5d6e7f809", 2, "app1", "spring-2026", key),
                         "1agiphivuyxlop6ajaaaaaaqemfyhamilonyhe2lom4wtembsgzt7lbmnk5jmy4dxvelwivurc7fq")


class FeedbackListener(AdminCase):
    def feedback_daemon(self):
        listeners = DEFAULT_LISTENERS + [{"name": "feedback", "mode": "feedback", "tls": "none"}]
        overrides = {
            "delivery": {
                "dns": {"nameservers": [f"127.0.0.1:{free_port()}"]},
                "smtp_port": self.smtp_port,
                "retry": {"intervals": ["1s", "2s"], "max_age": "5d"},
                "idle_timeout": "2s",
                "timeouts": short_timeouts(),
                "routes": self.route_to("127.0.0.2"),
            },
            "policy": {"return_path": {"domain": DOMAIN, "key_file": "rp.key"}},
        }
        overrides.update(admin_overrides())
        rm = self.ringmail(listeners=listeners, overrides=overrides)
        with open(os.path.join(rm.dir, "rp.key"), "wb") as f:
            f.write(KEY + b"\n")
        token = write_token(rm)
        rm.start()
        return rm, Api(rm, token)

    def deliver_campaign_message(self, rm, rcpt, campaign):
        """Sends one campaign message through the daemon; returns its queue id
        once the receiver took it (as one VERP transaction)."""
        text = (f"From: Author <{SENDER}>\r\nTo: {rcpt}\r\nSubject: May newsletter\r\n"
                f"Message-ID: <{os.urandom(8).hex()}@sender.test>\r\n"
                f"X-Campaign-ID: {campaign}\r\n\r\nHello.\r\n")
        reply = send_message(rm.port("relay"), SENDER, [rcpt], text)
        self.assertEqual(reply.code, 250, reply)
        qid = reply.queued_id()
        self.wait_record(rm, "Delivery", rcpt, qid=qid)
        return qid

    def report(self, rm, rcpt, content, sender=""):
        """Mails a report to the feedback listener with smtplib (MAIL FROM:<>)."""
        with smtplib.SMTP(HOST, rm.port("feedback"), timeout=30) as s:
            s.ehlo("mx.reporter.test")
            self.assertNotIn("auth", s.esmtp_features, "a feedback listener offers no AUTH")
            return s.sendmail(sender, [rcpt], content)

    def feedback(self, rm, count=1, **want):
        """Waits for `count` Feedback records with every field of `want`."""
        def found():
            rows = [r for r in rm.delivery_log("Feedback")
                    if all(r.get(k) == v for k, v in want.items())]
            return rows if len(rows) >= count else None
        rows = wait_until(found, WAIT)
        if not rows:
            rm.assert_running()
            self.fail(f"no Feedback record with {want}:\n" +
                      "\n".join(map(str, rm.delivery_log())) + rm.stderr_tail())
        return rows

    def copy_to(self, rx, rcpt):
        """The one transaction that delivered to rcpt: its MAIL FROM and header."""
        [t] = [t for t in rx.transactions if t.delivered and rcpt in t.accepted]
        return t.mail_from, BytesHeaderParser().parsebytes(t.content)

    def suppression(self, api, address):
        path = "/api/v1/suppressions?" + urllib.parse.urlencode({"tenant": TENANT,
                                                                 "address": address})
        found = api.ok("GET", path)["suppressions"]
        return found[0] if found else None

    def metric(self, api, series):
        status, _, _, payload = api.get("/metrics")
        self.assertEqual(status, 200)
        for line in payload.decode().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    def test_reports_are_attributed_counted_and_forgeries_dropped(self):
        rx = self.receiver("127.0.0.2")
        rm, api = self.feedback_daemon()
        rcpt, reader, away = ("nosuchuser@fb.admin.test", "reader@fb.admin.test",
                              "away@fb.admin.test")
        qid = self.deliver_campaign_message(rm, rcpt, "may-news")
        reader_qid = self.deliver_campaign_message(rm, reader, "may-news")
        away_qid = self.deliver_campaign_message(rm, away, "may-news")
        verp = f"{verp_local_part(qid, 0)}@{DOMAIN}"
        # What went out carries the tokens computed here: the daemon's VERP
        # sender and X-Ringmail-Ref, which the reports below bring back.
        sender, header = self.copy_to(rx, rcpt)
        self.assertEqual(sender, verp)
        reader_sender, reader_header = self.copy_to(rx, reader)
        self.assertEqual(reader_header["X-Ringmail-Ref"].strip(),
                         ref_token(reader_qid, 0, TENANT, "may-news"))
        away_verp, _ = self.copy_to(rx, away)
        self.assertEqual(away_verp, f"{verp_local_part(away_qid, 0)}@{DOMAIN}")

        # A Postfix bounce, as Postfix writes it, to the VERP address.
        dsn = corpus("postfix_bounce.eml").replace("nosuchuser@example.net", rcpt)
        dsn = dsn.replace("b-AQAAAAAAAAABAAAAAgHk2k3yZ0Nv1w@bounces.sender.example", verp)
        self.assertEqual(self.report(rm, verp, crlf(dsn)), {})
        [bounce] = self.feedback(rm, feedback_type="bounce")
        self.assertEqual(list(bounce)[:9], ["type", "time", "feedback_type", "id", "recipient",
                                            "campaign", "tenant", "category", "report"])
        self.assertEqual(bounce["id"], qid)
        self.assertEqual(bounce["recipient"], rcpt)
        self.assertEqual(bounce["campaign"], "may-news")
        self.assertEqual(bounce["tenant"], TENANT)
        self.assertEqual(bounce["category"], "InvalidRecipient")
        self.assertEqual(bounce["report"]["kind"], "dsn")
        self.assertEqual(bounce["report"]["action"], "failed")
        self.assertEqual(bounce["report"]["status"], "5.1.1")
        self.assertEqual(bounce["report"]["attributed_by"], "verp")
        self.assertEqual(self.metric(api, 'ringmail_feedback_total{feedback_type="bounce"}'), 1)
        entry = self.suppression(api, rcpt)
        self.assertIsNotNone(entry, "a hard bounce suppresses before the 250")
        self.assertEqual(entry["source"], "bounce")
        self.assertEqual(entry["category"], "InvalidRecipient")
        self.assertEqual(entry["campaign"], "may-news")

        # The same bounce to a forged token (one character changed): 250,
        # but ignored, and counted as forged.
        forged_local = verp_local_part(qid, 0)
        forged_local = forged_local[:-1] + ("a" if forged_local[-1] != "a" else "b")
        forged = f"{forged_local}@{DOMAIN}"
        self.assertEqual(self.report(rm, forged, crlf(dsn.replace(verp, forged))), {})
        self.assertTrue(wait_until(
            lambda: self.metric(api, 'ringmail_feedback_dropped_total{reason="forged"}') == 1,
            WAIT), rm.stderr_tail())
        # A token signed with another key is no better.
        other = f"{verp_local_part(qid, 0, key=b'x' * 32)}@{DOMAIN}"
        self.assertEqual(self.report(rm, other, crlf(dsn)), {})
        self.assertTrue(wait_until(
            lambda: self.metric(api, 'ringmail_feedback_dropped_total{reason="forged"}') == 2,
            WAIT))
        self.assertEqual(len(rm.delivery_log("Feedback")), 1)

        # A Yahoo complaint: to the fbl address, recipient redacted; only the
        # returned original's X-Ringmail-Ref says whose it is.
        arf = replace_line(corpus("yahoo_arf.eml"), "X-Ringmail-Ref:",
                           f"X-Ringmail-Ref: {reader_header['X-Ringmail-Ref'].strip()}")
        self.assertEqual(self.report(rm, f"fbl@{DOMAIN}", crlf(arf),
                                     sender="feedback@arf.mail.yahoo.com"), {})
        [complaint] = self.feedback(rm, feedback_type="complaint")
        self.assertEqual(complaint["id"], reader_qid)
        self.assertEqual(complaint["recipient"], reader,
                         "the spool's address, not the redacted one")
        self.assertEqual(complaint["campaign"], "may-news")
        self.assertEqual(complaint["tenant"], TENANT)
        self.assertEqual(complaint["report"]["attributed_by"], "ref")
        self.assertEqual(complaint["report"]["feedback_type"], "abuse")
        self.assertEqual(self.suppression(api, reader)["source"], "complaint")
        stats = api.ok("GET", "/api/v1/campaigns/may-news")["stats"]
        self.assertEqual(stats["complaints"], 1)
        tenant = api.ok("GET", "/api/v1/tenants/" + urllib.parse.quote(TENANT, safe=""))
        self.assertEqual(tenant["stats"]["complaints"], 1)
        # The provider sends the same report again: one complaint still.
        self.report(rm, f"fbl@{DOMAIN}", crlf(arf))
        self.feedback(rm, count=2, feedback_type="complaint")
        self.assertEqual(api.ok("GET", "/api/v1/campaigns/may-news")["stats"]["complaints"], 1)

        # An out-of-office to the VERP address: an autoreply, nothing more.
        ooo = corpus("rfc3834_autoreply.eml").replace(
            "b-AQAAAAAAAAAJAAAAAgP0o9n8m7l6kg@bounces.sender.example", away_verp)
        self.report(rm, away_verp, crlf(ooo), sender="jane@example.net")
        [auto] = self.feedback(rm, feedback_type="autoreply")
        self.assertEqual(auto["category"], "AutoReply")
        self.assertEqual(auto["recipient"], away)
        self.assertIsNone(self.suppression(api, away), "an out-of-office suppresses nobody")

        # The next campaign message: the bounced and the complaining
        # recipients are accepted, logged Suppressed and not delivered; the
        # one away still gets it.
        delivered_before = len([t for t in rx.transactions if t.delivered])
        for address in (rcpt, reader, away):
            reply = send_message(rm.port("relay"), SENDER, [address],
                                 f"From: <{SENDER}>\r\nTo: {address}\r\nSubject: June\r\n"
                                 f"X-Campaign-ID: may-news\r\n\r\nHi.\r\n")
            self.assertEqual(reply.code, 250, reply)
        self.wait_record(rm, "Suppressed", rcpt)
        self.wait_record(rm, "Suppressed", reader)
        self.wait_record(rm, "Delivery", away, count=2)
        self.assertEqual(len([t for t in rx.transactions if t.delivered]), delivered_before + 1)

        # Stats agree after a restart (persisted, not recomputed).
        rm.stop()
        rm.start()
        self.assertEqual(api.ok("GET", "/api/v1/campaigns/may-news")["stats"]["complaints"], 1)
        # Nothing the listener took was ever received for delivery: no DSN
        # about a DSN, no relaying (6 Receptions: the 6 messages sent).
        self.assertEqual(len(rm.delivery_log("Reception")), 6)
        self.assertEqual(len(rm.delivery_log("Bounce")), 0)

    def test_other_domains_are_refused_and_malformed_reports_do_not_hurt(self):
        rm, api = self.feedback_daemon()
        with smtplib.SMTP(HOST, rm.port("feedback"), timeout=30) as s:
            s.ehlo("mx.reporter.test")
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as refused:
                s.sendmail("", ["victim@example.net"], b"Subject: relay?\r\n\r\nno\r\n")
            code, text = refused.exception.recipients["victim@example.net"]
            self.assertEqual(code, 550)
            self.assertTrue(text.startswith(b"5.1.1 "), text)
            self.assertIn(DOMAIN.encode(), text)
        # Garbage, a cut-off multipart and a report about a message the spool
        # never had: each taken (250) and dropped; the daemon carries on.
        unknown = f"{verp_local_part('00000000000000000000', 0)}@{DOMAIN}"
        for rcpt, body in [(unknown, b"\xff\xfe garbage\r\n--x\r\nContent-Type: multipart/x\r\n"),
                           (unknown, crlf(corpus("truncated_multipart.eml"))),
                           (unknown, crlf(corpus("garbage_status.eml"))),
                           (f"abuse@{DOMAIN}", crlf(corpus("missing_boundary.eml")))]:
            self.assertEqual(self.report(rm, rcpt, body), {})
        rm.assert_running()
        self.assertTrue(wait_until(
            lambda: self.metric(api, 'ringmail_feedback_dropped_total{reason="unattributed"}') == 4,
            WAIT), rm.stderr_tail())
        self.assertEqual(rm.delivery_log("Feedback"), [])
        self.assertEqual(rm.delivery_log("Reception"), [])
        status, _, _, _ = api.get("/healthz", token=False)
        self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
