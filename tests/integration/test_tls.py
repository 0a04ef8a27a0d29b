"""TLS against ringmaild: openssl s_client with STARTTLS and implicit TLS,
clients that speak the wrong protocol, and STARTTLS command injection."""

import base64
import os
import queue
import re
import socket
import subprocess
import threading
import time
import unittest

from harness import (DEFAULT_PASSWORD, DEFAULT_USER, DaemonTestCase, SmtpConn,
                     send_message)


class SClient:
    """openssl s_client driven line by line; stdout is the server's data."""

    def __init__(self, case, port, starttls):
        argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-crlf", "-brief",
                "-ign_eof"]
        if starttls:
            argv += ["-starttls", "smtp", "-name", "client.ringmail.test"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        case.addCleanup(self.close)
        self.lines = queue.Queue()
        self.seen = []
        self.err = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines),
                         daemon=True).start()
        self.errq = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.errq),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in iter(stream.readline, b""):
            q.put(line.decode("utf-8", "replace").rstrip("\r\n"))
        q.put(None)

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, pattern, timeout=15):
        """Reads server lines until one matches pattern (a final reply line)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timeout waiting for {pattern!r}; saw {self.seen}; "
                                     f"stderr {self.stderr()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"s_client ended waiting for {pattern!r}; saw {self.seen};"
                                     f" stderr {self.stderr()}")
            self.seen.append(line)
            if re.match(pattern, line):
                return line

    def stderr(self):
        while True:
            try:
                line = self.errq.get_nowait()
            except queue.Empty:
                return "\n".join(self.err)
            if line is not None:
                self.err.append(line)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


class TlsTest(DaemonTestCase):

    def setUp(self):
        self.rm = self.ringmail()
        self.rm.start()

    def transaction(self, sc, tag):
        sc.send("EHLO client.ringmail.test")
        sc.expect(r"250 ")
        sc.send("AUTH PLAIN " + base64.b64encode(
            f"\0{DEFAULT_USER}\0{DEFAULT_PASSWORD}".encode()).decode())
        sc.expect(r"235 ")
        sc.send("MAIL FROM:<tls@example.test>")
        sc.expect(r"250 ")
        sc.send(f"RCPT TO:<{tag}@example.net>")
        sc.expect(r"250 ")
        sc.send("DATA")
        sc.expect(r"354 ")
        sc.send("Subject: over TLS")
        sc.send("")
        sc.send(f"sent with openssl s_client ({tag})")
        sc.send(".")
        line = sc.expect(r"\d{3} ", timeout=30)
        self.assertRegex(line, r"^250 2\.0\.0 Ok: queued as \S+")
        sc.send("QUIT")
        sc.expect(r"221 ")
        return line.split()[-1]

    def assert_tls_protocol(self, sc):
        deadline = time.monotonic() + 5
        while "Protocol version" not in sc.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertRegex(sc.stderr(), r"Protocol version: TLSv1\.[23]")

    def test_openssl_starttls(self):
        sc = SClient(self, self.rm.port("submission"), starttls=True)
        qid = self.transaction(sc, "starttls")
        self.assert_tls_protocol(sc)
        self.rm.stop()
        self.assertIn(qid, {r["id"] for r in self.rm.spool_dump()})

    def test_openssl_implicit(self):
        sc = SClient(self, self.rm.port("smtps"), starttls=False)
        sc.expect(r"220 ")
        qid = self.transaction(sc, "implicit")
        self.assert_tls_protocol(sc)
        self.rm.stop()
        self.assertIn(qid, {r["id"] for r in self.rm.spool_dump()})

    def assert_still_serves(self):
        self.rm.assert_running()
        r = send_message(self.rm.port("smtps"), "after@example.test", ["after@example.net"],
                         "Subject: after\r\n\r\nstill alive\r\n", tls=True,
                         auth=(DEFAULT_USER, DEFAULT_PASSWORD))
        self.assertReply(r, 250, "2.0.0")
        r = send_message(self.rm.port("relay"), "after@example.test", ["after2@example.net"],
                         "Subject: after\r\n\r\nstill alive\r\n")
        self.assertReply(r, 250, "2.0.0")

    def test_plaintext_on_implicit_port(self):
        with SmtpConn(self.rm.port("smtps")) as c:
            c.send(b"EHLO client.ringmail.test\r\nMAIL FROM:<x@example.test>\r\n")
            got = c.wait_closed(timeout=15)
            self.assertNotIn(b"250", got, got)
        self.assert_still_serves()

    def test_garbage_handshake(self):
        garbage = [
            b"\x16\x03\x01\x00\x40" + os.urandom(64),        # bogus ClientHello record
            b"\x16\x03\x03\xff\xff" + b"\x01" * 300,          # record longer than sent
            os.urandom(512),
        ]
        for g in garbage:
            with SmtpConn(self.rm.port("smtps")) as c:
                c.send(g)
                c.wait_closed(timeout=30)
        for g in garbage:
            with SmtpConn(self.rm.port("submission")) as c:
                self.assertEqual(c.read_reply().code, 220)
                self.assertEqual(c.ehlo().code, 250)
                self.assertEqual(c.cmd("STARTTLS").code, 220)
                c.send(g)
                c.wait_closed(timeout=30)
        # A client that connects and says nothing on the implicit port, then leaves.
        socket.create_connection(("127.0.0.1", self.rm.port("smtps"))).close()
        self.assert_still_serves()

    def test_starttls_injection(self):
        with SmtpConn(self.rm.port("submission")) as c:
            self.assertEqual(c.read_reply().code, 220)
            self.assertEqual(c.ehlo().code, 250)
            c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
            r = c.read_reply()
            self.assertReply(r, 220, msg="STARTTLS")
            time.sleep(0.3)
            self.assertEqual(c.buf, b"", "injected command answered in clear text")
            leftover = c.tls_handshake()
            self.assertEqual(leftover, b"")
            # Nothing may be said until the client speaks.
            c.sock.settimeout(0.7)
            try:
                unsolicited = c.sock.recv(4096)
            except (socket.timeout, TimeoutError):
                unsolicited = b""
            self.assertEqual(unsolicited, b"", "server answered an injected command after TLS")
            ehlo = c.ehlo()
            self.assertEqual(ehlo.code, 250)
            self.assertGreater(len(ehlo.lines), 1, f"first reply after TLS is not EHLO's: {ehlo}")
            # The injected MAIL FROM must not have started a transaction.
            self.assertReply(c.cmd("AUTH PLAIN " + base64.b64encode(
                f"\0{DEFAULT_USER}\0{DEFAULT_PASSWORD}".encode()).decode()), 235)
            r = c.cmd("RCPT TO:<victim@example.net>")
            self.assertEqual(r.code, 503, f"injected MAIL FROM took effect: {r}")
            self.assertEqual(c.cmd("QUIT").code, 221)
        # Same with RSET, as in the classic probe.
        with SmtpConn(self.rm.port("submission")) as c:
            self.assertEqual(c.read_reply().code, 220)
            self.assertEqual(c.ehlo().code, 250)
            c.send(b"STARTTLS\r\nRSET\r\n")
            self.assertReply(c.read_reply(), 220)
            c.tls_handshake()
            c.sock.settimeout(0.7)
            try:
                unsolicited = c.sock.recv(4096)
            except (socket.timeout, TimeoutError):
                unsolicited = b""
            self.assertEqual(unsolicited, b"", "RSET injected before TLS was answered after TLS")
            self.assertEqual(c.cmd("NOOP").code, 250)
        self.rm.assert_running()


if __name__ == "__main__":
    unittest.main()
