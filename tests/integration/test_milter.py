"""Milters through the real daemon: the libmilter test milter decides per
message (X-Test-* headers); what the SMTP client hears and what lands in
the spool must follow its verdict. DKIM signs what the milter produced."""

import os
import select
import subprocess
import unittest

from harness import DaemonTestCase, SmtpConn, free_port
from peers import Receiver, wait_until

TEST_MILTER = os.environ.get("TEST_MILTER", "")


def start_test_milter(case):
    if not os.access(TEST_MILTER, os.X_OK):
        case.fail(f"TEST_MILTER={TEST_MILTER!r} is not an executable (build target test_milter)")
    proc = subprocess.Popen([TEST_MILTER, "-p", "inet:0@127.0.0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    case.addCleanup(lambda: (proc.kill(), proc.wait(), proc.stdout.close(), proc.stderr.close()))
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    case.assertTrue(ready, "test_milter did not report ready")
    line = proc.stdout.readline().decode().split()
    case.assertEqual(line[0], "ready", line)
    return int(line[1])


def transaction(port, headers, body="body line\r\n", rcpts=("rcpt@example.net",),
                sender="app@example.test"):
    with SmtpConn(port) as c:
        c.read_reply()
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{sender}>").code == 250
        for r in rcpts:
            assert c.cmd(f"RCPT TO:<{r}>").code == 250
        assert c.cmd("DATA").code == 354
        msg = "From: App <app@example.test>\r\nSubject: milter test\r\n" + headers + "\r\n" + body
        c.send(msg.encode() + b".\r\n")
        return c.read_reply(timeout=30)


class MilterTest(DaemonTestCase):

    def daemon(self, milters):
        rm = self.ringmail(overrides={"milters": milters})
        rm.start()
        return rm

    def test_verdicts_reach_the_client_and_the_spool(self):
        port = start_test_milter(self)
        rm = self.daemon([{"name": "test", "address": f"127.0.0.1:{port}",
                           "on_failure": "tempfail", "timeout": "5s"}])
        relay = rm.port("relay")

        accepted = transaction(relay, "X-Test-Action: continue\r\n")
        self.assertReply(accepted, 250, "2.0.0")
        self.assertReply(transaction(relay, "X-Test-Action: reject\r\n"), 550)
        self.assertReply(transaction(relay, "X-Test-Action: tempfail\r\n"), 451)
        custom = transaction(relay, "X-Test-Action: replycode\r\n")
        self.assertReply(custom, 550, "5.7.9")
        self.assertIn("custom text", custom.text)
        discarded = transaction(relay, "X-Test-Action: discard\r\n")
        self.assertReply(discarded, 250, "2.0.0")
        quarantined = transaction(relay, "X-Test-Action: quarantine\r\n")
        self.assertReply(quarantined, 250, "2.0.0")
        modified = transaction(relay, "X-Test-Mod: addheader,chgheader,replbody,addrcpt\r\n")
        self.assertReply(modified, 250, "2.0.0")
        # A recipient refused by the milter at RCPT is dropped; the other stays.
        partial = transaction(relay, "X-Test-Action: continue\r\n",
                              rcpts=("reject-me@example.net", "keep@example.net"))
        self.assertReply(partial, 250, "2.0.0")

        rm.stop()
        dump = rm.spool_dump()
        by_id = {}
        for row in dump:
            by_id.setdefault(row["id"], []).append(row)
        # Exactly the accepted, quarantined, modified and partial messages are
        # stored; rejected, tempfailed and discarded ones are not.
        self.assertEqual(set(by_id), {accepted.queued_id(), quarantined.queued_id(),
                                      modified.queued_id(), partial.queued_id()})
        self.assertEqual([r["state"] for r in by_id[quarantined.queued_id()]], ["quarantined"])
        # Queued, or deferred once its first attempt found no DNS (the harness's).
        self.assertIn(by_id[accepted.queued_id()][0]["state"], ("queued", "deferred"))
        self.assertEqual(sorted(r["recipient"] for r in by_id[modified.queued_id()]),
                         ["added@example.net", "rcpt@example.net"])
        self.assertEqual([r["recipient"] for r in by_id[partial.queued_id()]],
                         ["keep@example.net"])

        # An operator releases the quarantined message: it is queued again.
        released = rm.run_cli("--spool-release", quarantined.queued_id())
        self.assertEqual(released.returncode, 0, released.stderr)
        self.assertIn(b"1 recipient(s) released", released.stdout)
        states = {r["id"]: r["state"] for r in rm.spool_dump()}
        self.assertEqual(states[quarantined.queued_id()], "queued")
        unknown = rm.run_cli("--spool-release", "00000000000000000000")
        self.assertEqual(unknown.returncode, 1)
        self.assertIn(b"no message 00000000000000000000", unknown.stderr)

        content = rm.spool_show(modified.queued_id())
        self.assertIn(b"X-Milter: added\r\n", content)
        self.assertIn(b"Subject: changed subject\r\n", content)
        self.assertTrue(content.endswith(b"\r\n\r\nreplaced body\r\n"), content[-200:])
        self.assertNotIn(b"body line", content)

    def test_milter_down_follows_on_failure(self):
        # A port nothing listens on.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        s.close()
        for policy, code in (("tempfail", 451), ("reject", 550), ("accept", 250)):
            with self.subTest(on_failure=policy):
                rm = self.daemon([{"name": "down", "address": f"127.0.0.1:{dead}",
                                   "on_failure": policy, "timeout": "2s"}])
                reply = transaction(rm.port("relay"), "")
                self.assertReply(reply, code)
                rm.stop()
                self.assertEqual(len(rm.spool_dump()), 1 if code == 250 else 0)

    def test_stalled_milter_times_out_and_the_daemon_goes_on(self):
        port = start_test_milter(self)
        rm = self.daemon([{"name": "slow", "address": f"127.0.0.1:{port}",
                           "on_failure": "tempfail", "timeout": "1s"}])
        self.assertReply(transaction(rm.port("relay"), "X-Test-Stall: 5\r\n"), 451, "4.7.1")
        # The next message is accepted normally.
        self.assertReply(transaction(rm.port("relay"), ""), 250, "2.0.0")
        rm.assert_running("after a milter timeout")

    def test_dkim_signs_what_the_milter_produced(self):
        from test_dkim import KeyDir, run_verifier
        keys = KeyDir()
        self.addCleanup(keys.remove)
        key = keys.key("rsa.pem", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        keys.publish("m1", "example.test", key)
        port = start_test_milter(self)
        rm = self.ringmail(overrides={
            "milters": [{"name": "test", "address": f"127.0.0.1:{port}", "timeout": "5s"}],
            "dkim": [{"domain": "example.test", "selector": "m1", "private_key": key}],
        })
        rm.start()
        reply = transaction(rm.port("relay"), "X-Test-Mod: chgheader,replbody,addheader\r\n")
        self.assertReply(reply, 250, "2.0.0")
        content = rm.spool_show(reply.queued_id())
        self.assertIn(b"Subject: changed subject\r\n", content)
        self.assertEqual(content.count(b"DKIM-Signature:"), 1)
        path = os.path.join(rm.dir, "signed.eml")
        with open(path, "wb") as f:
            f.write(content)
        code, out = run_verifier("dkimpy", keys.keys_file, path)
        self.assertEqual(code, 0, out)


    def test_quarantined_mail_released_while_running_is_delivered_after_reload(self):
        """--spool-release while the daemon runs, then SIGHUP: the released
        recipients are scheduled and delivered (no restart needed)."""
        port = start_test_milter(self)
        smtp_port = free_port()
        rx = Receiver(self, "127.0.0.2", smtp_port, hostname="mx.release.test").start()
        rm = self.ringmail(overrides={
            "milters": [{"name": "test", "address": f"127.0.0.1:{port}",
                         "on_failure": "tempfail", "timeout": "5s"}],
            "delivery": {"routes": [{"domain": "*", "smarthost": f"127.0.0.2:{smtp_port}"}],
                         "retry": {"intervals": ["1s"], "max_age": "1h"}},
        })
        rm.start()
        relay = rm.port("relay")
        held = transaction(relay, "X-Test-Action: quarantine\r\n", rcpts=("held@example.net",))
        self.assertReply(held, 250, "2.0.0")
        passed = transaction(relay, "X-Test-Action: continue\r\n", rcpts=("free@example.net",))
        self.assertReply(passed, 250, "2.0.0")
        self.assertTrue(wait_until(lambda: rx.delivered_to("free@example.net"), 20),
                        "the message the milter passed was not delivered")
        self.assertEqual(rx.delivered_to("held@example.net"), [], "quarantined mail delivered")
        states = {r["id"]: r["state"] for r in rm.spool_dump(live=True)}
        self.assertEqual(states.get(held.queued_id()), "quarantined", states)

        released = rm.run_cli("--spool-release", held.queued_id())
        self.assertEqual(released.returncode, 0, released.stderr)
        rm.reload()
        self.assertTrue(wait_until(lambda: rx.delivered_to("held@example.net"), 20),
                        "released mail not delivered after the reload: " + rm.stderr_tail())
        self.assertTrue(wait_until(lambda: not rm.spool_dump(live=True), 10),
                        rm.spool_dump(live=True))
        self.assertEqual(len(rx.delivered_to("held@example.net")), 1)


if __name__ == "__main__":
    unittest.main()
