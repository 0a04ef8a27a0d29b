"""Durability under kill -9: clients record every id acknowledged with
"250 ... queued as ID"; the daemon is killed at several moments (early,
later, in the middle of heavy smtp-source load) and restarted on the same
spool. Every acknowledged (id, recipient) must be in --spool-dump each time,
every dump line must parse, and the daemon must restart cleanly."""

import json
import os
import subprocess
import sys
import threading
import time
import unittest

from harness import QUEUED_RE, DaemonTestCase, SmtpConn

SENDERS = 4
# (seconds after READY=1 before kill -9, extra smtp-source load)
ROUNDS = [(0.3, False), (1.0, False), (2.0, True)]


class Sender(threading.Thread):
    """Sends messages in a loop over one connection at a time, reconnecting
    whenever the daemon goes away. Records (id, recipient) for every 250."""

    def __init__(self, port, index, acked, lock, stop):
        super().__init__(daemon=True)
        self.port, self.index, self.acked, self.lock, self.stop = port, index, acked, lock, stop
        self.sent = 0
        self.errors = 0

    def run(self):
        n = 0
        while not self.stop.is_set():
            c = None
            try:
                c = SmtpConn(self.port, timeout=10)
                if c.read_reply().code != 220 or c.ehlo().code != 250:
                    raise OSError("bad greeting")
                while not self.stop.is_set():
                    n += 1
                    rcpt = f"crash-{self.index}-{n}@example.net"
                    body = (f"From: crash@example.test\r\nTo: {rcpt}\r\nSubject: crash {n}\r\n\r\n"
                            + ("durable line %d\r\n" % n) * (50 + n % 200))
                    # Pipelined MAIL, RCPT, DATA as PIPELINING allows.
                    c.send(f"MAIL FROM:<crash@example.test>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n")
                    r1, r2, r3 = c.read_reply(), c.read_reply(), c.read_reply()
                    if (r1.code, r2.code, r3.code) != (250, 250, 354):
                        raise OSError(f"unexpected replies {r1} {r2} {r3}")
                    c.send(body + ".\r\n")
                    r = c.read_reply(timeout=30)
                    self.sent += 1
                    if r.code == 250:
                        m = QUEUED_RE.search(r.text)
                        if not m:
                            raise OSError(f"250 without an id: {r}")
                        with self.lock:
                            self.acked.append((m.group(1), rcpt))
            except Exception:  # the daemon was killed: reconnect
                self.errors += 1
                time.sleep(0.05)
            finally:
                if c is not None:
                    c.close()


class CrashTest(DaemonTestCase):

    def check_spool(self, rm, acked, when):
        dump = rm.spool_dump()  # parses every line, fails on a corrupt one
        have = {(r["id"], r["recipient"]) for r in dump}
        self.assertEqual(len(have), len(dump), f"{when}: duplicate (id, recipient) in dump")
        missing = [a for a in acked if a not in have]
        self.assertEqual(missing, [], f"{when}: {len(missing)} of {len(acked)} acknowledged "
                         f"recipients are not in the spool (first: {missing[:5]})"
                         + rm.stderr_tail())
        return dump

    def check_delivery_log(self, rm, when):
        try:
            with open(rm.delivery_log_path, "rb") as f:
                lines = f.read().split(b"\n")
        except FileNotFoundError:
            return
        bad = []
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:
                    bad.append((n, line[:200]))
        self.assertEqual(bad, [], f"{when}: corrupt delivery log lines")

    def test_kill9_rounds(self):
        rm = self.ringmail(overrides={"limits": {"max_connections": 500}})
        port = rm.port("relay")
        acked, lock, stop = [], threading.Lock(), threading.Event()
        senders = [Sender(port, i, acked, lock, stop) for i in range(SENDERS)]

        def stop_senders():
            stop.set()
            for s in senders:
                s.join(30)
        self.addCleanup(stop_senders)

        rm.start()
        for s in senders:
            s.start()
        for round_no, (delay, heavy) in enumerate(ROUNDS, 1):
            source = None
            if heavy:
                source = subprocess.Popen(
                    ["/usr/sbin/smtp-source", "-s", "10", "-m", "1000000", "-l", "4096", "-d",
                     "-f", "load@example.test", "-t", "load@example.net",
                     f"127.0.0.1:{port}"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.addCleanup(lambda p=source: p.poll() is None and p.kill())
            time.sleep(delay)
            with lock:
                before = len(acked)
            rm.kill9()
            self.assertEqual(rm.proc.returncode, -9)
            if source is not None:
                source.kill()
                source.wait(10)
            time.sleep(0.2)  # let senders notice; nothing new can be acked now
            with lock:
                snapshot = list(acked)
            sys.stderr.write(f"\n[crash] round {round_no}: killed after {delay}s, "
                             f"{len(snapshot)} acked so far ({len(snapshot) - before} "
                             "of them while the kill was under way)\n")
            self.check_spool(rm, snapshot, f"after kill -9 #{round_no}")
            self.check_delivery_log(rm, f"after kill -9 #{round_no}")
            rm.start()  # must recover and become ready on the killed spool
        time.sleep(0.5)
        stop_senders()
        with lock:
            final = list(acked)
        self.assertGreater(len(final), 20, "the clients got too few acknowledgements to "
                           "test anything")
        self.assertEqual(len({a[0] for a in final}), len(final), "an id was given twice")
        rm.stop()
        dump = self.check_spool(rm, final, "after the final clean stop")
        for row in dump:
            self.assertIn(row["state"], ("queued", "deferred"), row)
        self.check_delivery_log(rm, "after the final clean stop")
        sys.stderr.write(f"[crash] {len(final)} acknowledged, {len(dump)} in spool, "
                         f"sender errors {[s.errors for s in senders]}\n")
        self.assertTrue(os.path.isdir(rm.spool_dir))


if __name__ == "__main__":
    unittest.main()
