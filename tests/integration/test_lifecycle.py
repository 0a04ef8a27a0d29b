"""The daemon's command line and lifecycle: --version, --check-config,
exit codes, SIGTERM/SIGINT with STOPPING=1, SIGHUP reload (bad config kept
out, good config used by new connections), max_connections, idle_timeout."""

import os
import re
import signal
import socket
import subprocess
import time
import unittest

from harness import DaemonTestCase, SmtpConn, deep_merge, line_of, ringmaild_path, to_yaml


def greeting(port):
    with SmtpConn(port) as c:
        return c.read_reply()


class CommandLineTest(DaemonTestCase):

    def test_version(self):
        p = subprocess.run([ringmaild_path(), "--version"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout.decode(), r"^ringmaild \d+\.\d+\.\d+\s*$")

    def test_bad_command_line(self):
        for args in (["--no-such-option"], ["-c"], ["--version", "extra-argument"]):
            p = subprocess.run([ringmaild_path()] + args, capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 2, f"{args}: {p.stdout!r} {p.stderr!r}")
            self.assertTrue(p.stderr.strip(), f"{args}: no message on stderr")

    def test_check_config_ok(self):
        rm = self.ringmail()
        p = rm.run_cli("--check-config")
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def assert_config_error(self, rm, text, needle, key_path):
        rm.write_config(text=text)
        p = rm.run_cli("--check-config")
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, f"--check-config accepted:\n{text}\nstderr: {err}")
        line = line_of(text, needle)
        pattern = (r"(?m)^" + re.escape(rm.config_path) + f":{line}: " + key_path + r": \S")
        self.assertRegex(err, pattern, f"expected {rm.config_path}:{line}: {key_path}: ...")
        return err

    def test_check_config_errors(self):
        rm = self.ringmail()
        base = rm.config
        self.assert_config_error(rm, to_yaml(deep_merge(base, {"bogus_key": 1})),
                                 "bogus_key", r"bogus_key")
        self.assert_config_error(
            rm, to_yaml(deep_merge(base, {"limits": {"idle_timeout": "5 parsecs"}})),
            "idle_timeout", r"limits\.idle_timeout")
        self.assert_config_error(
            rm, to_yaml(deep_merge(base, {"limits": {"max_message_size": "12 furlongs"}})),
            "max_message_size", r"limits\.max_message_size")
        self.assert_config_error(
            rm, to_yaml(deep_merge(base, {"tls": {"certificate": "tls/missing.pem"}})),
            "missing.pem", r"tls\.certificate")
        lst = [dict(rm.listeners[0], mode="bogus")] + rm.listeners[1:]
        err = self.assert_config_error(rm, to_yaml(deep_merge(base, {"listeners": lst})),
                                       '"bogus"',
                                       r"listeners(\[0\]|\.0)\.mode")
        self.assertIn("bogus", err)
        # A users file that is not valid.
        with open(os.path.join(rm.dir, "bad-users.yaml"), "w") as f:
            f.write("- {name: x, password: 12\n")
        rm.write_config(deep_merge(base, {"auth": {"users_file": "bad-users.yaml"}}))
        p = rm.run_cli("--check-config")
        self.assertEqual(p.returncode, 1)
        self.assertIn("bad-users.yaml", p.stderr.decode())
        # Running with a bad config fails at startup with exit 1 and one reason.
        rm.write_config(text=to_yaml(deep_merge(base, {"bogus_key": 1})))
        p = rm.run_cli(timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("bogus_key", p.stderr.decode())

    def test_missing_config_file(self):
        p = subprocess.run([ringmaild_path(), "-c", "/nonexistent/ringmail.yaml",
                            "--check-config"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/ringmail.yaml", p.stderr.decode())

    def test_port_in_use(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        self.addCleanup(s.close)
        rm = self.ringmail(listeners=[{"name": "relay", "mode": "relay", "tls": "none"}])
        rm.config["listeners"][0]["address"] = f"127.0.0.1:{s.getsockname()[1]}"
        rm.write_config()
        rm.spawn()
        rc = rm.proc.wait(30)
        self.assertEqual(rc, 1, rm.stderr_tail())
        self.assertFalse(rm.wait_notification("READY=1", 0.1), "READY=1 sent without listener")


class SignalTest(DaemonTestCase):

    def test_sigterm_and_sigint(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            rm = self.ringmail(overrides={"limits": {"shutdown_timeout": "2s"}})
            rm.start()
            # An idle client and one in the middle of a transaction.
            idle = SmtpConn(rm.port("relay"))
            self.addCleanup(idle.close)
            busy = SmtpConn(rm.port("relay"))
            self.addCleanup(busy.close)
            self.assertEqual(busy.read_reply().code, 220)
            self.assertEqual(busy.ehlo().code, 250)
            self.assertEqual(busy.cmd("MAIL FROM:<a@example.test>").code, 250)
            rc, took = rm.stop(sig, timeout=15)
            self.assertLess(took, 2 + 3, f"stop took {took:.1f}s, shutdown_timeout is 2s")
            self.assertIn("STOPPING=1", rm.notifications)
            # Listeners are closed.
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", rm.port("relay")), timeout=5).close()
            rm.spool_dump()

    def test_sighup_reload(self):
        rm = self.ringmail(hostname="before.ringmail.test")
        rm.start()
        port = rm.port("relay")
        self.assertIn("before.ringmail.test", greeting(port).text)
        held = SmtpConn(port)  # a session open across reloads
        self.addCleanup(held.close)
        self.assertEqual(held.read_reply().code, 220)
        # A broken config is refused; the old one stays.
        good_text = rm.config_text
        size_before = len(rm.stderr_text())
        rm.write_config(text=good_text.replace("hostname:", "hostname_typo:"))
        rm.reload()
        deadline = time.monotonic() + 10
        while len(rm.stderr_text()) == size_before and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        rm.assert_running("after SIGHUP with a broken config")
        self.assertGreater(len(rm.stderr_text()), size_before, "refused reload not logged")
        self.assertIn("before.ringmail.test", greeting(port).text)
        self.assertEqual(held.cmd("NOOP").code, 250)
        # A good change takes effect for new connections.
        rm.write_config(deep_merge(rm.config, {"hostname": "after.ringmail.test"}))
        rm.reload()
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            text = greeting(port).text
            if "after.ringmail.test" in text:
                break
            time.sleep(0.2)
        self.assertIn("after.ringmail.test", text, rm.stderr_tail())
        self.assertEqual(held.cmd("NOOP").code, 250)
        self.assertEqual(held.ehlo().code, 250)
        rm.assert_running()
        rm.stop()


class LimitsTest(DaemonTestCase):

    def test_max_connections(self):
        rm = self.ringmail(overrides={"limits": {"max_connections": 3}})
        rm.start()
        port = rm.port("relay")
        conns = []
        for _ in range(3):
            c = SmtpConn(port)
            self.addCleanup(c.close)
            self.assertEqual(c.read_reply().code, 220)
            conns.append(c)
        with SmtpConn(port) as extra:
            r = extra.read_reply()
            self.assertReply(r, 421, "4.7.0")
            self.assertEqual(extra.wait_closed(), b"")
        # The first three still work.
        for c in conns:
            self.assertEqual(c.cmd("NOOP").code, 250)
        # A slot frees up when one leaves.
        self.assertEqual(conns[0].cmd("QUIT").code, 221)
        conns[0].wait_closed()
        deadline = time.monotonic() + 10
        while True:
            r = greeting(port)
            if r.code == 220 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(r.code, 220, r)
        rm.stop()

    def test_idle_timeout(self):
        rm = self.ringmail(overrides={"limits": {"idle_timeout": "1s"}})
        rm.start()
        with SmtpConn(rm.port("relay")) as c:
            self.assertEqual(c.read_reply().code, 220)
            self.assertEqual(c.ehlo().code, 250)
            t0 = time.monotonic()
            r = c.read_reply(timeout=10)
            took = time.monotonic() - t0
            self.assertReply(r, 421, "4.4.2")
            self.assertGreater(took, 0.7)
            self.assertLess(took, 5)
            self.assertEqual(c.wait_closed(), b"")
        # Also mid-DATA.
        with SmtpConn(rm.port("relay")) as c:
            self.assertEqual(c.read_reply().code, 220)
            self.assertEqual(c.ehlo().code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<idle@example.net>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(b"Subject: idle\r\n\r\nhalf")
            r = c.read_reply(timeout=10)
            self.assertReply(r, 421, "4.4.2")
            c.wait_closed()
        rm.stop()
        self.assertEqual(rm.spool_dump(), [])


if __name__ == "__main__":
    unittest.main()
