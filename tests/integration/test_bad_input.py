"""Hostile and broken clients over a raw socket: SMTP smuggling probes, NUL
bytes, long lines, garbage, vanishing clients, unknown and out-of-sequence
commands. Each gets a clear reply or a clean close; nothing smuggled or
half-received is queued; the daemon keeps serving."""

import socket
import unittest

from harness import QUEUED_RE, DaemonTestCase, SmtpConn, send_message

SMUGGLING_SEPARATORS = [
    b"\n.\n",
    b"\r.\r",
    b"\r\n.\n",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
]


class BadInputTest(DaemonTestCase):

    def setUp(self):
        self.rm = self.ringmail()
        self.rm.start()
        self.port = self.rm.port("relay")
        self.acked = set()  # every id the server acknowledged in this test

    def conn(self, ehlo=True):
        c = SmtpConn(self.port)
        self.addCleanup(c.close)
        self.assertEqual(c.read_reply().code, 220)
        if ehlo:
            self.assertEqual(c.ehlo().code, 250)
        return c

    def assert_serving(self):
        """The daemon runs and a well-formed message still goes through."""
        self.rm.assert_running()
        r = send_message(self.port, "good@example.test", ["good@example.net"],
                         "Subject: good\r\n\r\nwell-formed\r\n")
        self.assertReply(r, 250, "2.0.0")
        self.acked.add(r.queued_id())

    def stop_and_check_spool(self):
        self.rm.stop()
        dump = self.rm.spool_dump()
        self.assertEqual({r["id"] for r in dump}, self.acked,
                         f"spool holds other messages than the acknowledged ones: {dump}")
        return dump

    def test_smuggling_probes(self):
        for i, sep in enumerate(SMUGGLING_SEPARATORS):
            with self.subTest(separator=sep):
                c = self.conn()
                self.assertReply(c.cmd(f"MAIL FROM:<legit{i}@example.test>"), 250)
                self.assertReply(c.cmd(f"RCPT TO:<legit{i}@example.net>"), 250)
                self.assertReply(c.cmd("DATA"), 354)
                c.send(b"From: legit@example.test\r\nSubject: probe\r\n\r\nlegit body" + sep +
                       b"MAIL FROM:<smuggled%d@evil.test>\r\n"
                       b"RCPT TO:<smuggled%d@example.net>\r\n"
                       b"DATA\r\n"
                       b"From: smuggled@evil.test\r\nSubject: smuggled\r\n\r\n"
                       b"smuggled body\r\n.\r\nQUIT\r\n" % (i, i))
                got = c.wait_closed(timeout=30).decode("utf-8", "replace")
                ids = QUEUED_RE.findall(got)
                self.acked.update(ids)
                self.assertLessEqual(len(ids), 1, f"two messages from one DATA: {got!r}")
                # A 354 reply line, not the digits inside a queue id.
                self.assertNotRegex(got, r"(?m)^354[ -]", f"smuggled DATA was accepted: {got!r}")
                self.assertIn("221", got, got)
        self.assert_serving()
        dump = self.stop_and_check_spool()
        for row in dump:
            self.assertNotIn("smuggled", row["sender"] + row["recipient"], row)

    def test_nul_bytes(self):
        c = self.conn(ehlo=False)
        r = c.cmd("EHLO a\0b")
        self.assertIn(r.code, (500, 501), r)
        self.assertEqual(c.ehlo().code, 250)
        r = c.cmd("MAIL FROM:<nul\0@example.test>")
        self.assertIn(r.code, (500, 501, 553), r)
        self.assertReply(c.cmd("NOOP"), 250)
        # NUL in the body: accepted or refused, the session goes on.
        self.assertReply(c.cmd("MAIL FROM:<nul@example.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<nul@example.net>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: nul\r\n\r\nbody with \0 NUL\r\n.\r\n")
        r = c.read_reply()
        self.assertTrue(r.code == 250 or 500 <= r.code < 600, r)
        if r.code == 250:
            self.acked.add(r.queued_id())
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertEqual(c.cmd("QUIT").code, 221)
        self.assert_serving()
        self.stop_and_check_spool()

    def test_long_lines(self):
        c = self.conn()
        r = c.cmd("NOOP " + "x" * 2000)
        self.assertEqual(r.code, 500, r)
        self.assertReply(c.cmd("NOOP"), 250)
        r = c.cmd("MAIL FROM:<" + "a" * 1990 + "@example.test>")
        self.assertEqual(r.code, 500, r)
        self.assertReply(c.cmd("RSET"), 250)
        # 100 KB without a line end, then a command: replies are 500s, then NOOP's 250.
        c.send(b"A" * 100_000 + b"\r\nNOOP\r\n")
        replies = []
        for _ in range(200):
            r = c.read_reply(timeout=15)
            replies.append(r)
            if r.code != 500:
                break
        self.assertEqual(replies[-1].code, 250, replies)
        self.assertGreaterEqual(len(replies), 2, replies)
        # A 2000-octet line inside DATA: stored or refused, never split into commands.
        self.assertReply(c.cmd("MAIL FROM:<long@example.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<long@example.net>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: long\r\n\r\n" + b"y" * 1500 + b"\r\nMAIL FROM:<x@evil.test>" +
               b"z" * 500 + b"\r\n.\r\n")
        r = c.read_reply()
        self.assertTrue(r.code == 250 or 500 <= r.code < 600, r)
        if r.code == 250:
            self.acked.add(r.queued_id())
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertEqual(c.cmd("QUIT").code, 221)
        self.assert_serving()
        self.stop_and_check_spool()

    def test_garbage_before_ehlo(self):
        c = self.conn(ehlo=False)
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n")
        r = c.read_reply()
        self.assertGreaterEqual(r.code, 500, r)
        r = c.cmd("FOO BAR")
        self.assertEqual(r.code, 500, r)
        r = c.cmd("MAIL FROM:<early@example.test>")
        self.assertReply(r, 503, "5.5.1")
        r = c.cmd("\xff\xfe binary \x01\x02")
        self.assertGreaterEqual(r.code, 500, r)
        self.assertEqual(c.ehlo().code, 250)
        self.assertReply(c.cmd("MAIL FROM:<late@example.test>"), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        # A client that sends only garbage and leaves.
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"\x00\xff" * 5000)
        s.close()
        self.assert_serving()
        self.stop_and_check_spool()

    def test_disconnect_mid_data(self):
        for n in range(3):
            c = self.conn()
            self.assertReply(c.cmd("MAIL FROM:<vanish@example.test>"), 250)
            self.assertReply(c.cmd(f"RCPT TO:<middata{n}@example.net>"), 250)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"Subject: cut\r\n\r\n" + b"partial line\r\n" * 200)
            if n == 1:
                c.send(b".")  # cut after a lone dot
            if n == 2:
                c.send(b"\r\n.")  # cut just before the final CRLF
            c.sock.shutdown(socket.SHUT_RDWR) if n == 0 else None
            c.close()
        # Mid-BDAT.
        c = self.conn()
        self.assertReply(c.cmd("MAIL FROM:<vanish@example.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<midbdat@example.net>"), 250)
        c.send(b"BDAT 10000 LAST\r\n" + b"x" * 100)
        c.close()
        self.assert_serving()
        dump = self.stop_and_check_spool()
        for row in dump:
            self.assertFalse(row["recipient"].startswith("mid"), row)

    def test_unknown_and_misc_commands(self):
        c = self.conn()
        for verb in ("XYZZY", "MAILFROM:<a@example.test>", "EXPN list", "TURN", "ETRN x"):
            r = c.cmd(verb)
            self.assertIn(r.code, (500, 502), f"{verb}: {r}")
            self.assertTrue(r.enhanced.startswith("5.5."), f"{verb}: {r}")
        self.assertEqual(c.cmd("HELP").code, 214)
        self.assertEqual(c.cmd("VRFY someone").code, 252)
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("RSET"), 250)
        self.assertEqual(c.cmd("HELO again.ringmail.test").code, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)
        self.assertEqual(c.wait_closed(), b"")
        self.assert_serving()
        self.stop_and_check_spool()

    def test_out_of_sequence_and_bad_arguments(self):
        c = self.conn()
        self.assertReply(c.cmd("RCPT TO:<a@example.net>"), 503, "5.5.1")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")
        # A refused BDAT still carries its chunk; the server must skip it.
        c.send(b"BDAT 10 LAST\r\n0123456789")
        self.assertEqual(c.read_reply().code, 503)
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 250)
        self.assertReply(c.cmd("MAIL FROM:<b@example.test>"), 503, "5.5.1")
        r = c.cmd("DATA")
        self.assertIn(r.code, (503, 554), r)
        self.assertTrue(r.enhanced.startswith("5.5."), r)
        self.assertReply(c.cmd("RSET"), 250)
        for bad in ("MAIL FROM:not-an-address", "MAIL FROM:<a@@example.test>",
                    "MAIL FROM:<a@example.test> NOSUCHPARAM=1", "MAIL TO:<a@example.test>",
                    "MAIL FROM:<a@example.test> SIZE=notanumber"):
            r = c.cmd(bad)
            self.assertTrue(500 <= r.code < 600, f"{bad}: {r}")
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 250)
        for bad in ("RCPT TO:<>", "RCPT TO:no-brackets-no-at", "RCPT TO:<a b@example.net>"):
            r = c.cmd(bad)
            self.assertTrue(500 <= r.code < 600, f"{bad}: {r}")
        r = c.cmd("DATA")
        self.assertIn(r.code, (503, 554), f"DATA without a valid recipient: {r}")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("NOOP"), 250)
        # BDAT without a valid count cannot be framed: 501, then the session
        # may go on or hang up with 421 (what follows could be chunk data).
        self.assertReply(c.cmd("BDAT notanumber"), 501)
        c.send(b"NOOP\r\n")
        r = c.read_reply()
        if r.code == 421:
            self.assertEqual(r.enhanced, "4.7.0", r)
            c.wait_closed()
        else:
            self.assertReply(r, 250)
            self.assertEqual(c.cmd("QUIT").code, 221)
        self.assert_serving()
        self.stop_and_check_spool()


if __name__ == "__main__":
    unittest.main()
