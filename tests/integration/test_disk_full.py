"""A full filesystem under the spool: the reproduction of the hardening issue.

The spool sits on a 16 MiB tmpfs under a 64 MiB LMDB map, so the filesystem
fills before the map. The smarthost is down while 4 KiB messages are sent
until ringmaild refuses them; then it comes up. What a user must see:

- every refusal is `452 4.3.1` (never a 451), logged once for the episode;
- every acknowledged message is delivered exactly once: the delivery
  results still commit on the full disk, so a restart repeats nothing;
- acceptance resumes by itself once the deliveries have freed space;
- kill -9 while the disk is full loses nothing that was acknowledged.

Mounting needs root; without it the tests are skipped with the reason."""

import os
import subprocess
import sys
import time
import unittest

from harness import DaemonTestCase, SmtpConn, free_port
from peers import Receiver, wait_until

TMPFS_SIZE = "16m"
MAP_SIZE = "64MiB"
BODY = ("X" * 76 + "\r\n") * 52  # about 4 KiB
MAX_MESSAGES = 4000  # the tmpfs holds far fewer: refusals must come first
WAIT = 90


def message(i):
    return (f"From: app@sender.test\r\nTo: r{i}@full.test\r\nSubject: full {i}\r\n"
            f"Message-ID: <full-{i}@sender.test>\r\n\r\n{BODY}")


class DiskFullTest(DaemonTestCase):

    def setUp(self):
        self.smtp_port = free_port()
        self.t0 = time.monotonic()

    def tearDown(self):
        sys.stderr.write(f"[{self.id().rsplit('.', 1)[-1]}: {time.monotonic() - self.t0:.1f}s] ")

    def daemon(self):
        rm = self.ringmail(overrides={
            "spool": {"max_size": MAP_SIZE},
            "delivery": {
                "routes": [{"domain": "*", "smarthost": f"127.0.0.2:{self.smtp_port}"}],
                "retry": {"intervals": ["1s"], "max_age": "1h"},
                "idle_timeout": "2s",
                "timeouts": {"connect": "1s"},
            },
        })
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs for the spool needs root")
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700",
                                  "tmpfs", rm.spool_dir], capture_output=True, text=True)
        if mounted.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")

        def unmount():
            rm.kill9()
            subprocess.run(["umount", "-l", rm.spool_dir], capture_output=True)
        self.addCleanup(unmount)
        rm.start()
        return rm

    def fill(self, rm):
        """Sends messages until refused, then a few more; returns the
        acknowledged {recipient: queue id} and every refusal."""
        acked, refusals = {}, []
        with SmtpConn(rm.port("relay"), timeout=30) as c:
            c.read_reply()
            c.ehlo()
            for i in range(MAX_MESSAGES):
                self.assertEqual(c.cmd("MAIL FROM:<app@sender.test>").code, 250)
                self.assertEqual(c.cmd(f"RCPT TO:<r{i}@full.test>").code, 250)
                self.assertEqual(c.cmd("DATA").code, 354)
                c.send(message(i) + ".\r\n")
                reply = c.read_reply(timeout=30)
                if reply.code == 250:
                    acked[f"r{i}@full.test"] = reply.queued_id()
                else:
                    refusals.append(reply)
                    if len(refusals) >= 20:
                        break
        self.assertTrue(refusals, f"{len(acked)} messages all fit on a {TMPFS_SIZE} tmpfs")
        self.assertGreater(len(acked), 200, f"only {len(acked)} messages were accepted")
        bad = [r for r in refusals if (r.code, r.enhanced) != (452, "4.3.1")]
        self.assertEqual(bad, [], f"refusals other than 452 4.3.1 (of {len(refusals)})")
        return acked, refusals

    def received(self, rx):
        got = {}
        for t in rx.messages():
            for a in t.accepted:
                got[a.lower()] = got.get(a.lower(), 0) + 1
        return got

    def wait_all_received(self, rm, rx, acked):
        t0 = time.monotonic()
        ok = wait_until(lambda: all(r in self.received(rx) for r in acked), WAIT, interval=0.2)
        got = self.received(rx)
        missing = sorted(r for r in acked if r not in got)
        self.assertTrue(ok, f"{len(missing)} of {len(acked)} acknowledged messages never "
                        f"arrived: {missing[:10]}" + rm.stderr_tail())
        return time.monotonic() - t0

    def accepted_again(self, rm, timeout=WAIT):
        """Polls with one small message until it gets 250; returns seconds."""
        t0 = time.monotonic()

        def one():
            with SmtpConn(rm.port("relay")) as c:
                c.read_reply()
                c.ehlo()
                c.cmd("MAIL FROM:<app@sender.test>")
                c.cmd("RCPT TO:<after@full.test>")
                c.cmd("DATA")
                c.send("Subject: after the drain\r\n\r\nfits\r\n.\r\n")
                return c.read_reply(timeout=30).code == 250
        self.assertTrue(wait_until(one, timeout, interval=0.5),
                        "acceptance did not resume after the drain" + rm.stderr_tail())
        return time.monotonic() - t0

    def test_full_disk_refuses_with_452_and_delivers_each_message_once(self):
        rm = self.daemon()
        acked, refusals = self.fill(rm)
        rm.assert_running("after filling the disk")
        # Still full a while later: the deferrals of the dead smarthost keep
        # committing, and new mail is still refused the same way.
        time.sleep(3)
        with SmtpConn(rm.port("relay")) as c:
            c.read_reply()
            c.ehlo()
            c.cmd("MAIL FROM:<app@sender.test>")
            c.cmd("RCPT TO:<late@full.test>")
            c.cmd("DATA")
            c.send(message(999999) + ".\r\n")
            self.assertReply(c.read_reply(timeout=30), 452, "4.3.1", "while the disk is full")

        rx = Receiver(self, "127.0.0.2", self.smtp_port, hostname="sink.full.test").start()
        drained = self.wait_all_received(rm, rx, acked)
        resumed = self.accepted_again(rm)
        stderr = rm.stderr_text()
        self.assertNotIn("451 4.3.0", stderr)
        self.assertNotIn("not committed", stderr, rm.stderr_tail())
        self.assertEqual(stderr.count("spool full: refusing new mail"), 1,
                         "the episode is logged once, not per message" + rm.stderr_tail())
        self.assertIn("accepting new mail again", stderr)

        # A restart repeats nothing: every delivery result was committed.
        wait_until(lambda: "after@full.test" in self.received(rx), WAIT)
        rm.stop()
        self.assertEqual(rm.spool_dump(), [], "recipients left after the drain")
        rm.start()
        time.sleep(4)
        rm.stop()
        got = self.received(rx)
        duplicates = {r: n for r, n in got.items() if n > 1}
        sys.stderr.write(f"\n[disk-full] {len(acked)} acknowledged, {len(refusals)} refused "
                         f"(all 452 4.3.1); all delivered {drained:.1f}s after the smarthost "
                         f"came up; acceptance resumed {resumed:.1f}s later; duplicates after "
                         f"a restart: {sum(n - 1 for n in duplicates.values())}\n")
        self.assertEqual(duplicates, {}, "messages delivered more than once")
        deliveries = [r["recipient"] for r in rm.delivery_log("Delivery")]
        self.assertEqual(sorted(set(deliveries)), sorted(deliveries), "two Delivery records")

    def test_kill9_while_the_disk_is_full_loses_nothing_acknowledged(self):
        rm = self.daemon()
        acked, _ = self.fill(rm)
        rm.kill9()
        rm.start()  # on the same, still full, spool
        queued = {r["recipient"] for r in rm.spool_dump(live=True)}
        missing = sorted(set(acked) - queued)
        self.assertEqual(missing, [], "acknowledged messages gone after kill -9")
        rx = Receiver(self, "127.0.0.2", self.smtp_port, hostname="sink.full.test").start()
        drained = self.wait_all_received(rm, rx, acked)
        resumed = self.accepted_again(rm)
        got = self.received(rx)
        extra = sorted(set(got) - set(acked) - {"after@full.test"})
        self.assertEqual(extra, [], "messages arrived that were never acknowledged")
        duplicates = {r: n for r, n in got.items() if n > 1}
        sys.stderr.write(f"\n[disk-full kill -9] {len(acked)} acknowledged, all delivered "
                         f"{drained:.1f}s after the smarthost came up, acceptance resumed "
                         f"{resumed:.1f}s later, duplicates {len(duplicates)}\n")
        self.assertEqual(duplicates, {})


if __name__ == "__main__":
    unittest.main()
