"""Slow clients cannot hold connection slots: the command line deadline, the
minimum body data rate, the TLS handshake deadline (STARTTLS and implicit),
ciphertext trickled after the handshake, and the per-address connection
limit (limits.max_connections_per_ip)."""

import select
import socket
import ssl
import time

from harness import (HOST, DaemonTestCase, SmtpConn, client_tls_context, send_message,
                     simple_message)

COMMAND_TIMEOUT = 3.0
TICK = 0.25
MARGIN = 1.5  # scheduling on a loaded machine


def connect_from(port, source_ip):
    """An SmtpConn whose socket is bound to source_ip (127.0.0.x)."""
    conn = SmtpConn.__new__(SmtpConn)
    conn.timeout = 15.0
    conn.sock = socket.create_connection((HOST, port), timeout=15.0, source_address=(source_ip, 0))
    conn.buf = b""
    conn.tls = False
    return conn


def client_hello():
    """The bytes of a real TLS ClientHello, without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_tls_context().wrap_bio(incoming, outgoing)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def trickle_until_closed(sock, data, interval, limit):
    """Sends data one byte every `interval` s until the server closes;
    returns (seconds until EOF from the first byte, bytes received)."""
    got = b""
    start = time.monotonic()
    next_at = start
    i = 0
    while time.monotonic() - start < limit:
        now = time.monotonic()
        if now >= next_at and i < len(data):
            try:
                sock.send(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start, got
            i += 1
            next_at += interval
        readable, _, _ = select.select([sock], [], [], max(0.0, min(next_at - now, 0.05)))
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return time.monotonic() - start, got
            got += chunk
    raise AssertionError(f"connection still open after {limit} s; got {got!r}")


class SlowClientTest(DaemonTestCase):

    def test_trickling_clients_free_their_slots_within_the_command_timeout(self):
        rm = self.ringmail(listeners=[{"name": "relay", "mode": "relay", "tls": "none"}],
                           overrides={"limits": {"max_connections": 50, "idle_timeout": "20s",
                                                 "command_timeout": "3s",
                                                 "max_connections_per_ip": 100}})
        rm.start()
        port = rm.port("relay")
        conns = []
        for _ in range(50):
            c = SmtpConn(port)
            self.addCleanup(c.close)
            self.assertReply(c.read_reply(), 220)
            conns.append(c)
        start = time.monotonic()
        for c in conns:
            c.send("EHLO ")
        with SmtpConn(port) as probe:
            self.assertReply(probe.read_reply(), 421, "4.7.0", "while 50 clients trickle:")
        # One byte a second from each, as long as the server keeps them.
        open_ = {c.sock: c for c in conns}
        got = {c.sock: b"" for c in conns}
        closed_after = {}
        next_byte = start + 1.0
        while open_ and time.monotonic() - start < COMMAND_TIMEOUT + 10:
            now = time.monotonic()
            if now >= next_byte:
                for sock in list(open_):
                    try:
                        sock.send(b"x")
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                next_byte += 1.0
            readable, _, _ = select.select(list(open_), [], [], 0.05)
            for sock in readable:
                try:
                    chunk = sock.recv(4096)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    got[sock] += chunk
                else:
                    closed_after[sock] = time.monotonic() - start
                    del open_[sock]
        self.assertFalse(open_, f"{len(open_)} trickling connections still open")
        for sock, data in got.items():
            self.assertIn(b"421 4.4.2 mx.ringmail.test Error: timeout exceeded", data)
        held = max(closed_after.values())
        print(f"\n50 trickling connections held their slots for {min(closed_after.values()):.2f}"
              f"-{held:.2f} s (command_timeout {COMMAND_TIMEOUT:.0f} s)")
        self.assertGreaterEqual(min(closed_after.values()), COMMAND_TIMEOUT - 0.1)
        self.assertLessEqual(held, COMMAND_TIMEOUT + TICK + MARGIN)
        final = send_message(port, "sender@example.test", ["rcpt@example.net"], simple_message())
        self.assertReply(final, 250, "2.0.0", "after the slots were freed:")

    def test_trickle_inside_data_is_cut_by_the_minimum_rate(self):
        rm = self.ringmail(listeners=[{"name": "relay", "mode": "relay", "tls": "none"}],
                           overrides={"limits": {"min_data_rate": "1KiB/s",
                                                 "data_rate_grace": "2s"}})
        rm.start()
        c = SmtpConn(rm.port("relay"))
        self.addCleanup(c.close)
        self.assertReply(c.read_reply(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<rcpt@example.net>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        took, got = trickle_until_closed(c.sock, b"Subject: slow\r\n\r\n" + b"x" * 200, 0.2, 15)
        self.assertIn(b"421 4.4.2 mx.ringmail.test Error: data rate too low", got)
        self.assertGreater(took, 2.0)
        self.assertLessEqual(took, 2.0 + TICK + MARGIN)
        print(f"\nslow DATA cut after {took:.2f} s (grace 2 s)")

    def _tls_ringmail(self):
        rm = self.ringmail(listeners=[{"name": "relay", "mode": "relay", "tls": "starttls"},
                                      {"name": "smtps", "mode": "submission", "tls": "implicit"}],
                           overrides={"limits": {"tls_handshake_timeout": "2s",
                                                 "command_timeout": "3s"}})
        rm.start()
        return rm

    def test_trickled_starttls_handshake_is_closed(self):
        rm = self._tls_ringmail()
        c = SmtpConn(rm.port("relay"))
        self.addCleanup(c.close)
        self.assertReply(c.read_reply(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("STARTTLS"), 220)
        took, got = trickle_until_closed(c.sock, client_hello(), 0.2, 15)
        self.assertEqual(got, b"", "no reply is possible in the middle of a handshake")
        self.assertLessEqual(took, 2.0 + TICK + MARGIN)
        print(f"\ntrickled STARTTLS handshake closed after {took:.2f} s")

    def test_trickled_implicit_tls_handshake_is_closed(self):
        rm = self._tls_ringmail()
        sock = socket.create_connection((HOST, rm.port("smtps")), timeout=15)
        self.addCleanup(sock.close)
        took, got = trickle_until_closed(sock, client_hello(), 0.2, 15)
        self.assertEqual(got, b"")
        self.assertLessEqual(took, 2.0 + TICK + MARGIN)
        print(f"\ntrickled implicit-TLS handshake closed after {took:.2f} s")

    def test_ciphertext_trickled_after_the_handshake_meets_the_command_timeout(self):
        rm = self._tls_ringmail()
        sock = socket.create_connection((HOST, rm.port("smtps")), timeout=15)
        self.addCleanup(sock.close)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_tls_context().wrap_bio(incoming, outgoing)
        plain = b""
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(65536)
                self.assertTrue(data, "closed during the handshake")
                incoming.write(data)
        sock.sendall(outgoing.read())
        while b"\n" not in plain:  # the greeting
            try:
                plain += tls.read()
            except ssl.SSLWantReadError:
                incoming.write(sock.recv(65536))
        self.assertTrue(plain.startswith(b"220 "), plain)
        # One TLS record holding a whole command, sent a byte at a time: the
        # server gets ciphertext but no plaintext until its last byte.
        tls.write(b"EHLO client.ringmail.test\r\n")
        took, got = trickle_until_closed(sock, outgoing.read(), 0.5, 15)
        incoming.write(got)
        reply = b""
        try:
            while True:
                reply += tls.read()
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
            pass
        self.assertIn(b"421 4.4.2 mx.ringmail.test Error: timeout exceeded", reply)
        self.assertLessEqual(took, COMMAND_TIMEOUT + TICK + MARGIN)
        print(f"\nciphertext trickled after the handshake cut after {took:.2f} s")

    def test_per_address_connection_limit(self):
        rm = self.ringmail(listeners=[{"name": "relay", "mode": "relay", "tls": "none"}],
                           overrides={"limits": {"max_connections_per_ip": 10,
                                                 "connection_limit_exempt": ["127.0.0.3/32"]}})
        rm.start()
        port = rm.port("relay")
        held = []
        for _ in range(10):
            c = SmtpConn(port)
            self.addCleanup(c.close)
            self.assertReply(c.read_reply(), 220)
            held.append(c)
        with SmtpConn(port) as eleventh:
            r = eleventh.read_reply()
            self.assertReply(r, 421, "4.7.0", "the 11th connection from 127.0.0.1:")
            self.assertIn("Too many connections from your address", r.text)
        other = connect_from(port, "127.0.0.2")
        self.addCleanup(other.close)
        self.assertReply(other.read_reply(), 220, msg="from 127.0.0.2:")
        self.assertReply(other.ehlo(), 250)
        self.assertReply(other.cmd("MAIL FROM:<sender@example.test>"), 250)
        self.assertReply(other.cmd("RCPT TO:<rcpt@example.net>"), 250)
        self.assertReply(other.cmd("DATA"), 354)
        other.send(simple_message() + ".\r\n")
        self.assertReply(other.read_reply(), 250, "2.0.0", "from 127.0.0.2:")
        for _ in range(12):  # exempt
            c = connect_from(port, "127.0.0.3")
            self.addCleanup(c.close)
            self.assertReply(c.read_reply(), 220, msg="from exempt 127.0.0.3:")
        # A closed connection gives its place back.
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            with SmtpConn(port) as again:
                r = again.read_reply()
            if r.code == 220 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertReply(r, 220, msg="after one of the 10 closed:")


if __name__ == "__main__":
    import unittest
    unittest.main()
