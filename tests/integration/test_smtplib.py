"""Python smtplib against ringmaild: SMTPUTF8, 8BITMIME, BDAT (raw), the
campaign header, recipient and size limits."""

import smtplib
import unittest

from harness import QUEUED_RE, DaemonTestCase, SmtpConn

MAX_SIZE = 64 * 1024
MAX_RCPTS = 5


def queued_id(resp):
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else resp
    m = QUEUED_RE.search(text)
    return m.group(1) if m else None


class SmtplibTest(DaemonTestCase):

    def setUp(self):
        self.rm = self.ringmail(overrides={"limits": {"max_message_size": "64KiB",
                                                      "max_recipients": MAX_RCPTS}})
        self.rm.start()
        self.relay = self.rm.port("relay")

    def client(self):
        s = smtplib.SMTP("127.0.0.1", self.relay, local_hostname="client.ringmail.test",
                         timeout=20)
        self.addCleanup(s.close)
        code, _ = s.ehlo()
        self.assertEqual(code, 250)
        return s

    def test_smtputf8(self):
        s = self.client()
        self.assertTrue(s.has_extn("smtputf8"), s.esmtp_features)
        sender = "élève@exämple.test"
        rcpt = "δοκιμή@παράδειγμα.test"
        msg = (f"From: {sender}\r\nTo: {rcpt}\r\nSubject: Grüße ☃\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\nNaïve café body ☃\r\n").encode("utf-8")
        code, resp = s.mail(sender, ["SMTPUTF8", "BODY=8BITMIME"])
        self.assertEqual(code, 250, resp)
        code, resp = s.rcpt(rcpt)
        self.assertEqual(code, 250, resp)
        code, resp = s.data(msg)
        self.assertEqual(code, 250, resp)
        qid = queued_id(resp)
        self.assertIsNotNone(qid, resp)
        # Without SMTPUTF8 a UTF-8 address must be refused, not mangled.
        s.command_encoding = "utf-8"
        code, resp = s.docmd("MAIL", f"FROM:<{sender}>")
        self.assertGreaterEqual(code, 500, resp)
        s.quit()
        self.rm.stop()
        rows = [r for r in self.rm.spool_dump() if r["id"] == qid]
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["sender"], sender)
        self.assertEqual(rows[0]["recipient"], rcpt)
        rec = [r for r in self.rm.delivery_log("Reception") if r["id"] == qid]
        self.assertEqual(len(rec), 1)
        self.assertEqual(rec[0]["recipient"], rcpt)
        self.assertIn("Naïve café body ☃".encode("utf-8"), self.rm.spool_show(qid))

    def test_8bitmime(self):
        s = self.client()
        self.assertTrue(s.has_extn("8bitmime"))
        body = "Ünïcödé 8-bit body line\r\n".encode("utf-8") + bytes(range(0xa0, 0xff)) + b"\r\n"
        msg = (b"From: a@example.test\r\nTo: b@example.net\r\nSubject: 8bit\r\n"
               b"Content-Type: text/plain; charset=latin-1\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
        code, resp = s.mail("a@example.test", ["BODY=8BITMIME"])
        self.assertEqual(code, 250, resp)
        self.assertEqual(s.rcpt("b@example.net")[0], 250)
        code, resp = s.data(msg)
        self.assertEqual(code, 250, resp)
        qid = queued_id(resp)
        self.assertTrue(qid, resp)
        s.quit()
        self.rm.stop()
        self.assertIn(qid, {r["id"] for r in self.rm.spool_dump()})
        self.assertIn(body, self.rm.spool_show(qid), "8-bit body not stored byte for byte")

    def test_bdat(self):
        with SmtpConn(self.relay) as c:
            self.assertEqual(c.read_reply().code, 220)
            ehlo = c.ehlo()
            self.assertIn("CHUNKING", [l.upper() for l in ehlo.lines], ehlo)
            self.assertReply(c.cmd("MAIL FROM:<bdat@example.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<bdat-rcpt@example.net>"), 250)
            chunk1 = (b"From: bdat@example.test\r\nTo: bdat-rcpt@example.net\r\n"
                      b"Subject: chunked\r\n\r\nfirst chunk marker-BDAT-ONE\r\n"
                      # Inside a BDAT chunk this is content, not an end of data
                      # and not a command.
                      b".\r\nMAIL FROM:<smuggled@evil.test>\r\n")
            c.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
            r = c.read_reply()
            self.assertReply(r, 250, msg="BDAT chunk 1")
            self.assertIsNone(r.queued_id(), r)
            chunk2 = b"second chunk marker-BDAT-TWO\r\n"
            c.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
            r = c.read_reply()
            self.assertReply(r, 250, "2.0.0", "BDAT LAST")
            qid = r.queued_id()
            self.assertTrue(qid, r)
            # BDAT 0 LAST with no transaction is a sequence error.
            r = c.cmd("BDAT 0 LAST")
            self.assertEqual(r.code, 503, r)
            self.assertReply(c.cmd("NOOP"), 250)
            self.assertEqual(c.cmd("QUIT").code, 221)
        self.rm.stop()
        dump = self.rm.spool_dump()
        self.assertEqual([r["recipient"] for r in dump], ["bdat-rcpt@example.net"], dump)
        self.assertEqual(dump[0]["id"], qid)
        rec = [r for r in self.rm.delivery_log("Reception") if r["id"] == qid]
        self.assertEqual(len(rec), 1)
        if "size" in rec[0]:
            self.assertGreaterEqual(rec[0]["size"], len(chunk1) + len(chunk2), rec[0])
        raw = self.rm.spool_show(qid)
        self.assertIn(b"first chunk marker-BDAT-ONE\r\n.\r\nMAIL FROM:<smuggled@evil.test>\r\n"
                      b"second chunk marker-BDAT-TWO\r\n", raw,
                      "BDAT chunks not stored byte for byte")

    def test_campaign_header(self):
        s = self.client()
        msg = (b"From: a@example.test\r\nTo: c@example.net\r\nSubject: campaign\r\n"
               b"X-Campaign-ID: spring-sale-7f3a\r\n\r\nbody-marker-campaign-91d2\r\n")
        code, resp = s.mail("a@example.test")
        self.assertEqual(code, 250)
        self.assertEqual(s.rcpt("c@example.net")[0], 250)
        code, resp = s.data(msg)
        self.assertEqual(code, 250, resp)
        qid = queued_id(resp)
        s.quit()
        self.rm.stop()
        rows = [r for r in self.rm.spool_dump() if r["id"] == qid]
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0].get("campaign"), "spring-sale-7f3a")
        rec = [r for r in self.rm.delivery_log("Reception") if r["id"] == qid]
        self.assertEqual(len(rec), 1)
        self.assertEqual(rec[0].get("campaign"), "spring-sale-7f3a")
        raw = self.rm.spool_show(qid)
        self.assertIn(b"body-marker-campaign-91d2", raw)
        self.assertNotIn(b"X-Campaign-ID: spring-sale-7f3a", raw, "campaign header not stripped")
        self.assertNotIn(b"x-campaign-id:", raw.lower())
        self.assertIn(b"Received: ", raw, "no Received: trace header")

    def test_too_many_recipients(self):
        s = self.client()
        self.assertEqual(s.mail("a@example.test")[0], 250)
        for i in range(MAX_RCPTS):
            code, resp = s.rcpt(f"r{i}@example.net")
            self.assertEqual(code, 250, resp)
        code, resp = s.rcpt("one-too-many@example.net")
        self.assertEqual(code, 452, resp)
        self.assertTrue(resp.startswith(b"4.5.3"), resp)
        code, resp = s.data(b"Subject: many\r\n\r\nbody\r\n")
        self.assertEqual(code, 250, resp)
        qid = queued_id(resp)
        s.quit()
        self.rm.stop()
        rows = [r for r in self.rm.spool_dump() if r["id"] == qid]
        self.assertEqual(sorted(r["recipient"] for r in rows),
                         sorted(f"r{i}@example.net" for i in range(MAX_RCPTS)))

    def test_too_big(self):
        s = self.client()
        size_ext = s.esmtp_features.get("size", "")
        self.assertEqual(size_ext.strip(), str(MAX_SIZE), s.esmtp_features)
        # Declared too big.
        code, resp = s.mail("a@example.test", [f"SIZE={MAX_SIZE + 1}"])
        self.assertEqual(code, 552, resp)
        self.assertTrue(resp.startswith(b"5.3.4"), resp)
        # Declared small, streamed big: refused at the end of DATA.
        self.assertEqual(s.mail("a@example.test", ["SIZE=1000"])[0], 250)
        self.assertEqual(s.rcpt("big@example.net")[0], 250)
        big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * (2 * MAX_SIZE // 1000)
        code, resp = s.data(big)
        self.assertEqual(code, 552, resp)
        self.assertTrue(resp.startswith(b"5.3.4"), resp)
        # The session goes on.
        self.assertEqual(s.noop()[0], 250)
        self.assertEqual(s.mail("a@example.test")[0], 250)
        self.assertEqual(s.rcpt("small@example.net")[0], 250)
        code, resp = s.data(b"Subject: small\r\n\r\nsmall\r\n")
        self.assertEqual(code, 250, resp)
        s.quit()
        self.rm.stop()
        self.assertEqual([r["recipient"] for r in self.rm.spool_dump()], ["small@example.net"])


if __name__ == "__main__":
    unittest.main()
