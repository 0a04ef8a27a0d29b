"""A full spool (LMDB map full) answers 452 4.3.1, keeps what it had, and
goes on accepting messages that fit; nothing is half-written."""

import unittest

from harness import DaemonTestCase, SmtpConn


def transaction(conn, body):
    assert conn.cmd("MAIL FROM:<app@example.test>").code == 250
    assert conn.cmd("RCPT TO:<rcpt@example.net>").code == 250
    assert conn.cmd("DATA").code == 354
    conn.send(body + b".\r\n")
    return conn.read_reply(timeout=30)


class SpoolFullTest(DaemonTestCase):

    def test_map_full_is_452_and_the_spool_survives(self):
        rm = self.ringmail(overrides={
            "spool": {"max_size": "2MiB"},
            "limits": {"max_message_size": "8MiB"},
        })
        rm.start()
        small = b"Subject: small\r\n\r\n" + b"fits\r\n" * 50
        big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 4000  # ~4 MiB
        with SmtpConn(rm.port("relay")) as c:
            c.read_reply()
            c.ehlo()
            first = transaction(c, small)
            self.assertReply(first, 250, "2.0.0")
            full = transaction(c, big)
            self.assertReply(full, 452, "4.3.1")
            # The session goes on, and a message that fits is still accepted.
            after = transaction(c, small)
            self.assertReply(after, 250, "2.0.0")
        rm.assert_running("after a map-full commit")
        rm.stop()
        ids = sorted(r["id"] for r in rm.spool_dump())
        self.assertEqual(ids, sorted([first.queued_id(), after.queued_id()]))
        # Restart on the same spool: both messages are intact.
        rm.start()
        rm.stop()
        for reply in (first, after):
            shown = rm.run_cli("--spool-show", reply.queued_id())
            self.assertEqual(shown.returncode, 0, shown.stderr)
            self.assertIn(b"fits\r\n", shown.stdout)


if __name__ == "__main__":
    unittest.main()
