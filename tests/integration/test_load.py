"""Postfix's smtp-source against the relay listener: 2000 messages of 4 KiB
over 20 parallel sessions; every one is in the spool and the delivery log."""

import subprocess
import sys
import time
import unittest

from harness import DaemonTestCase

MESSAGES = 2000
SESSIONS = 20
LENGTH = 4096


class LoadTest(DaemonTestCase):

    def test_smtp_source(self):
        rm = self.ringmail(overrides={"limits": {"max_connections": 500}})
        rm.start()
        argv = ["/usr/sbin/smtp-source", "-s", str(SESSIONS), "-m", str(MESSAGES),
                "-l", str(LENGTH), "-d", "-f", "load-sender@example.test",
                "-t", "load-rcpt@example.net", "-M", "client.ringmail.test",
                f"127.0.0.1:{rm.port('relay')}"]
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, timeout=240)
        took = time.monotonic() - t0
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, f"smtp-source failed: {out}" + rm.stderr_tail())
        self.assertNotIn("fatal", out)
        sys.stderr.write(f"\n[load] {MESSAGES} msgs in {took:.2f}s = "
                         f"{MESSAGES / took:.0f} msgs/s\n")
        rm.stop()
        dump = rm.spool_dump()
        self.assertEqual(len(dump), MESSAGES, f"spool has {len(dump)} recipients")
        self.assertEqual(len({r["id"] for r in dump}), MESSAGES)
        for row in dump:
            self.assertEqual(row["recipient"], "load-rcpt@example.net", row)
            self.assertEqual(row["sender"], "load-sender@example.test", row)
            self.assertIn(row["state"], ("queued", "deferred"), row)
        receptions = rm.delivery_log("Reception")
        self.assertEqual(len(receptions), MESSAGES)
        self.assertEqual({r["id"] for r in receptions}, {r["id"] for r in dump})
        for r in receptions:
            if "size" in r:
                self.assertGreaterEqual(r["size"], LENGTH, r)


if __name__ == "__main__":
    unittest.main()
