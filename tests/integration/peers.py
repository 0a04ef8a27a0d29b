"""tests/integration/peers.py -- real peers for outbound delivery tests.

Owns the other ends of ringmaild's delivery engine, all on loopback:

- Dnsmasq: /usr/sbin/dnsmasq as an authoritative server for the zone
  "test" on 127.0.0.1:<free port> (MX records, host records, null MX);
  any other name inside "test" is NXDOMAIN. Ready once it answers a real
  DNS query (built by hand here; no dig needed).
- Receiver: a scripted SMTP server (python3-aiosmtpd) on one loopback IP
  (127.0.0.2, 127.0.0.3, ...) and a given port, so that several "MX hosts"
  share the engine's delivery.smtp_port. Its RCPT and end-of-DATA replies
  are scripted per recipient and per attempt; it records every connection
  and every transaction (envelope, content, which connection carried it,
  TLS version); optional STARTTLS (the harness's test certificate),
  optional stall before answering the end of DATA, SMTPUTF8 on or off.
- SmtpSink: /usr/sbin/smtp-sink -c, counting mail transactions.
- ScriptedSmtp: a small hand-written SMTP responder (blocking sockets) for
  what aiosmtpd cannot be scripted to do: a 421 greeting, accepting and
  closing at once, a STARTTLS that answers 220 and then breaks the
  handshake, a connection dropped in the middle of DATA.
- TcpProxy: a TCP relay that records the bytes each way (e.g. to see the
  BDAT commands one ringmaild sends another).

Every process and thread is registered for cleanup with the TestCase.
Nothing here resolves names through the machine's resolver: hostnames
given to aiosmtpd are explicit (its default calls socket.getfqdn()).
"""

import asyncio
import logging
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

from harness import _shared_cert_dir, free_port

DNSMASQ = "/usr/sbin/dnsmasq"
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"

# aiosmtpd logs every command at INFO on "mail.log"; keep real errors only.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def wait_until(predicate, timeout, interval=0.05):
    """Polls predicate() until it returns something true or timeout seconds
    pass; returns its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --------------------------------------------------------------------------
# DNS: a hand-built query, and dnsmasq

QTYPES = {"A": 1, "NS": 2, "SOA": 6, "MX": 15, "AAAA": 28}


def dns_query(server, port, name, qtype="SOA", timeout=0.5):
    """One UDP query; returns (rcode, answer count) or None without a reply."""
    qid = int.from_bytes(os.urandom(2), "big")
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split("."))
    packet = header + qname + b"\0" + struct.pack(">HH", QTYPES[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, (server, port))
            data, _ = s.recvfrom(4096)
        except OSError:
            return None
    if len(data) < 12 or struct.unpack(">H", data[:2])[0] != qid:
        return None
    return data[3] & 0x0F, struct.unpack(">H", data[6:8])[0]


class Dnsmasq:
    """dnsmasq, authoritative for "test", on 127.0.0.1:<free port>.

    mx: {domain: [(preference, host), ...]}
    hosts: {host: "127.0.0.x"}
    null_mx: [domain, ...]  (RFC 7505: MX 0 ".")
    txt: {name: [record, ...]}, each record a string (cut into
         character-strings of at most 250 octets, as long DKIM keys are
         published; it must not hold a comma, dnsmasq's separator)
    zones: more zones it is authoritative for (e.g. "google.com", so that
           an MX host can have a real provider's name and a loopback address)
    """

    ZONE = "test"

    def __init__(self, case, mx=None, hosts=None, null_mx=None, ttl=5, zones=(), txt=None):
        self.case = case
        self.zones = list(zones)
        self.mx = dict(mx or {})
        self.hosts = dict(hosts or {})
        self.null_mx = list(null_mx or [])
        self.txt = dict(txt or {})
        self.ttl = ttl
        self.port = None
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="ringmail-it-dns-")
        self.log_path = os.path.join(self.dir, "dnsmasq.log")
        case.addCleanup(self._cleanup)

    @property
    def address(self):
        """For delivery.dns.nameservers."""
        return f"127.0.0.1:{self.port}"

    def argv(self):
        args = [DNSMASQ, "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", "--bind-interfaces",
                "--listen-address=127.0.0.1", f"--port={self.port}", "--pid-file",
                f"--auth-server=ns.{self.ZONE},127.0.0.1", f"--auth-zone={self.ZONE}",
                f"--auth-ttl={self.ttl}"]
        args += [f"--auth-zone={zone}" for zone in self.zones]
        if os.geteuid() == 0:
            args.append("--user=root")
        for domain, records in self.mx.items():
            for pref, host in records:
                args.append(f"--mx-host={domain},{host},{pref}")
        for host, ip in self.hosts.items():
            args.append(f"--host-record={host},{ip}")
        for domain in self.null_mx:
            args.append(f"--dns-rr={domain},15,000000")  # preference 0, root name
        for name, records in self.txt.items():
            for record in records:
                assert "," not in record, record
                strings = [record[i:i + 250] for i in range(0, len(record), 250)] or [""]
                args.append(f"--txt-record={name}," + ",".join(strings))
        return args

    def start(self, timeout=10.0):
        for _ in range(3):  # the free TCP port might be taken for UDP
            self.port = free_port()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if dns_query("127.0.0.1", self.port, f"ns.{self.ZONE}", "A") is not None:
                    return self
                time.sleep(0.05)
            self.stop()
        self.case.fail(f"dnsmasq did not start:\n{self.log_tail()}")

    def log_tail(self, limit=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-limit:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def _cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# Scripted SMTP receivers (aiosmtpd)

def server_tls_context():
    d = _shared_cert_dir()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
    return ctx


class Connection:
    """One SMTP connection a receiver accepted."""

    def __init__(self, conn_id, ip, peer):
        self.id = conn_id
        self.ip = ip
        self.peer = peer
        self.ehlo = None
        self.tls = None  # e.g. "TLSv1.3" once STARTTLS completed
        self.closed = False
        self.transactions = []

    def __repr__(self):
        return (f"<Connection {self.id} on {self.ip} ehlo={self.ehlo} tls={self.tls} "
                f"transactions={len(self.transactions)} closed={self.closed}>")


class Transaction:
    """MAIL ... up to the end of DATA (or the connection's end)."""

    def __init__(self, conn, mail_from, mail_options, tls):
        self.conn = conn  # Connection id
        self.mail_from = mail_from  # "" for the null sender
        self.mail_options = mail_options
        self.tls = tls
        self.rcpts = []  # (address, reply) for every RCPT command
        self.accepted = []  # addresses whose RCPT got a 2xx
        self.content = None  # bytes, once DATA's end arrived
        self.data_reply = None  # the reply given at the end of DATA
        self.lost = False  # the connection went away before the reply
        self.time = time.monotonic()

    @property
    def delivered(self):
        return self.data_reply is not None and self.data_reply.startswith("2")

    def __repr__(self):
        return (f"<Transaction conn={self.conn} from=<{self.mail_from}> rcpts={self.rcpts} "
                f"data={self.data_reply!r} lost={self.lost}>")


def _pick(script, address, attempt):
    """The scripted reply for the attempt-th (1-based) time, or None.

    script: None, {address: reply-or-list}, or callable(address, attempt).
    A list's last reply repeats."""
    if script is None:
        return None
    if callable(script):
        return script(address, attempt)
    entry = script.get(address.lower())
    if entry is None:
        return None
    if isinstance(entry, str):
        return entry
    return entry[min(attempt, len(entry)) - 1]


class _Handler:

    def __init__(self, receiver):
        self.r = receiver

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        server.rm_conn.ehlo = hostname
        if self.r.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        if not self.r.eightbitmime:
            responses = [line for line in responses if line.upper() != "250-8BITMIME"]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        sender = "" if address == "<>" else address
        r = self.r
        with r.lock:
            txn = Transaction(server.rm_conn.id, sender, list(mail_options), r._tls_of(server))
            server.rm_txn = txn
            server.rm_conn.transactions.append(txn)
            r.transactions.append(txn)
        # aiosmtpd needs a truthy mail_from to accept RCPT: keep "<>".
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        r = self.r
        with r.lock:
            key = address.lower()
            r.rcpt_attempts[key] = r.rcpt_attempts.get(key, 0) + 1
            reply = _pick(r.rcpt_script, address, r.rcpt_attempts[key]) or r.default_rcpt
            txn = getattr(server, "rm_txn", None)
            if txn is not None:
                txn.rcpts.append((address, reply))
                if reply.startswith("2"):
                    txn.accepted.append(address)
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return reply

    async def handle_DATA(self, server, session, envelope):
        r = self.r
        txn = server.rm_txn
        with r.lock:
            txn.content = bytes(envelope.original_content)
            r.data_waiting += 1
            reply = None
            for address in envelope.rcpt_tos:
                key = address.lower()
                r.data_attempts[key] = r.data_attempts.get(key, 0) + 1
                if reply is None:
                    reply = _pick(r.data_script, address, r.data_attempts[key])
            reply = reply or r.default_data
        try:
            stall = r.stall
            if stall:
                await asyncio.sleep(stall)
        except asyncio.CancelledError:
            with r.lock:
                txn.lost = True
            raise
        finally:
            with r.lock:
                r.data_waiting -= 1
        with r.lock:
            if server.transport is None or server.transport.is_closing():
                txn.lost = True
            else:
                txn.data_reply = reply
            server.rm_txn = None
        return reply

    async def handle_RSET(self, server, session, envelope):
        server.rm_txn = None
        return "250 2.0.0 Ok"


class Receiver:
    """A scripted SMTP server on ip:port (aiosmtpd on its own event loop).

    rcpt / data: {address: reply or [reply per attempt...]} or
      callable(address, attempt) -> reply or None. Attempts count every
      RCPT (resp. every end of DATA the address was accepted for) this
      receiver saw for the address, from 1; a list's last reply repeats.
      A transaction's end-of-DATA reply is the scripted one of its first
      accepted recipient that has one, else default_data.
    tls: offer STARTTLS with the harness's test certificate.
    smtputf8: advertise SMTPUTF8 (refusing MAIL ... SMTPUTF8 when off).
    pipelining: advertise PIPELINING (aiosmtpd reads commands in order).
    stall: seconds to wait before answering the end of DATA (settable).
    eightbitmime: advertise 8BITMIME (off: dropped from the EHLO reply; MAIL
      parameters are still recorded as sent, see Transaction.mail_options).
    """

    def __init__(self, case, ip, port, hostname=None, rcpt=None, data=None, tls=False,
                 smtputf8=True, pipelining=True, stall=0.0,
                 default_rcpt="250 2.1.5 Ok", default_data="250 2.0.0 Ok: accepted",
                 eightbitmime=True):
        self.case = case
        self.ip = ip
        self.port = port
        self.hostname = hostname or f"receiver-{ip}.test"
        self.rcpt_script = rcpt
        self.data_script = data
        self.tls = tls
        self.smtputf8 = smtputf8
        self.pipelining = pipelining
        self.stall = stall
        self.eightbitmime = eightbitmime
        self.default_rcpt = default_rcpt
        self.default_data = default_data
        self.lock = threading.RLock()
        self.connections = []
        self.transactions = []
        self.rcpt_attempts = {}
        self.data_attempts = {}
        self.data_waiting = 0  # transactions whose end of DATA awaits the reply
        self.loop = None
        self.thread = None
        self.server = None
        self._handler = _Handler(self)
        self._tls_context = server_tls_context() if tls else None
        case.addCleanup(self.stop)

    # ---- lifecycle

    def start(self):
        from aiosmtpd.smtp import SMTP

        receiver = self

        class _Smtp(SMTP):
            def connection_made(self, transport):
                if getattr(self, "rm_conn", None) is None:
                    with receiver.lock:
                        conn = Connection(len(receiver.connections) + 1, receiver.ip,
                                          transport.get_extra_info("peername"))
                        receiver.connections.append(conn)
                    self.rm_conn = conn
                    self.rm_txn = None
                super().connection_made(transport)
                if self.session.ssl is not None:  # after STARTTLS
                    obj = transport.get_extra_info("ssl_object")
                    self.rm_conn.tls = obj.version() if obj is not None else "TLS"

            def connection_lost(self, error):
                self.rm_conn.closed = True
                txn = self.rm_txn
                if txn is not None and txn.data_reply is None:
                    txn.lost = True
                super().connection_lost(error)

        def factory():
            return _Smtp(self._handler, hostname=self.hostname, ident="ringmail-test-peer",
                         enable_SMTPUTF8=self.smtputf8, tls_context=self._tls_context,
                         timeout=60, loop=self.loop)

        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True, name=f"receiver-{self.ip}")
        self.thread.start()
        started.wait(5)

        async def listen():
            return await self.loop.create_server(factory, self.ip, self.port,
                                                 reuse_address=True)

        self.server = asyncio.run_coroutine_threadsafe(listen(), self.loop).result(10)
        return self

    def stop(self):
        if self.loop is None:
            return
        loop, self.loop = self.loop, None

        async def close():
            if self.server is not None:
                self.server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        except Exception:
            pass
        loop.call_soon_threadsafe(loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            loop.close()

    @staticmethod
    def _tls_of(server):
        transport = server.transport
        obj = transport.get_extra_info("ssl_object") if transport is not None else None
        return obj.version() if obj is not None else None

    # ---- what it saw (copies; safe from the test thread)

    def messages(self):
        """Transactions answered with 2xx at the end of DATA."""
        with self.lock:
            return [t for t in self.transactions if t.delivered]

    def all_transactions(self):
        with self.lock:
            return list(self.transactions)

    def connection_list(self):
        with self.lock:
            return list(self.connections)

    def delivered_to(self, address):
        """Delivered transactions that carried address."""
        address = address.lower()
        return [t for t in self.messages() if address in (a.lower() for a in t.accepted)]

    def waiting_in_data(self):
        with self.lock:
            return self.data_waiting

    def __repr__(self):
        return (f"<Receiver {self.ip}:{self.port} connections={len(self.connections)} "
                f"transactions={self.transactions}>")


# --------------------------------------------------------------------------
# smtp-sink

def smtp_greets(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            return s.recv(512).startswith(b"220")
    except OSError:
        return False


class SmtpSink:
    """`smtp-sink -c` on ip:port; count() reads its running counters.

    smtp-sink -c writes "sess=S quit=Q mesg=M\\r" whenever a "." (end of
    DATA), a QUIT or the end of a session arrives: M counts mail
    transactions. Only whole records (ending in \\r) are parsed."""

    TAIL = 256

    def __init__(self, case, ip="127.0.0.1", port=None, backlog=256):
        self.case = case
        self.ip = ip
        self.port = port
        self.backlog = backlog
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="ringmail-it-sink-")
        self.path = os.path.join(self.dir, "counts")
        case.addCleanup(self._cleanup)

    def start(self, timeout=10.0):
        for _ in range(3):
            port = self.port or free_port()
            argv = [SMTP_SINK, "-c"]
            if os.geteuid() == 0:
                argv += ["-u", "nobody"]
            argv += [f"{self.ip}:{port}", str(self.backlog)]
            out = open(self.path, "wb")
            err = open(self.path + ".err", "ab")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            out.close()
            err.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if smtp_greets(self.ip, port):
                    self.port = port
                    return self
                time.sleep(0.05)
            self.stop()
            if self.port:
                break
        self.case.fail(f"smtp-sink did not start: {self.stderr_tail()}")

    def count(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - self.TAIL))
                tail = f.read()
        except OSError:
            return 0
        found = re.findall(rb"mesg=(\d+)\r", tail)
        return int(found[-1]) if found else 0

    def stderr_tail(self, limit=2000):
        try:
            with open(self.path + ".err", "rb") as f:
                return f.read()[-limit:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def _cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# A hand-written SMTP responder, for what aiosmtpd cannot be made to do

class RawConnection:
    """One connection a ScriptedSmtp accepted."""

    def __init__(self, conn_id, peer):
        self.id = conn_id
        self.peer = peer
        self.time = time.monotonic()
        self.commands = []  # command lines as received (str)
        self.starttls = False  # the client asked for STARTTLS
        self.closed = False

    def __repr__(self):
        return (f"<RawConnection {self.id} commands={self.commands[:12]} "
                f"starttls={self.starttls} closed={self.closed}>")


class RawTransaction:
    """MAIL ... up to the end of DATA, as a ScriptedSmtp saw it."""

    def __init__(self, conn, mail_line):
        self.conn = conn  # RawConnection id
        self.mail_line = mail_line  # the whole MAIL command, parameters included
        self.rcpts = []  # addresses accepted
        self.raw = b""  # the DATA bytes read (dot-stuffed, end marker included)
        self.content = None  # the message (un-stuffed), once "." arrived
        self.data_reply = None
        self.lost = False  # dropped (or went away) before the end-of-DATA reply

    @property
    def delivered(self):
        return self.data_reply is not None and self.data_reply.startswith("2")

    def __repr__(self):
        return (f"<RawTransaction conn={self.conn} {self.mail_line!r} rcpts={self.rcpts} "
                f"read={len(self.raw)} data={self.data_reply!r} lost={self.lost}>")


class ScriptedSmtp:
    """A small SMTP responder on ip:port (blocking sockets, a thread per
    connection), for peer behaviour aiosmtpd cannot script:

    greeting: the greeting line ("220 ..." by default); None accepts and
      closes at once (a host that answers nothing). After a 4xx/5xx
      greeting the connection is closed (as a 421 must be).
    extensions: EHLO keywords (no PIPELINING by default: commands are
      answered one by one anyway).
    starttls: None (not offered), "garbage" (220; once the ClientHello came,
      bytes that are not TLS, then close), "garbage-at-once" (the 220 and
      the garbage in one write, then close) or "close" (220, then close).
    drop_data: callable(n) -> bool for the n-th DATA (1-based, over every
      connection): when true, the connection is closed without a reply once
      drop_after bytes of content were read (or the end marker came).
    Records every connection (RawConnection) and transaction (RawTransaction).
    """

    def __init__(self, case, ip, port, hostname=None, greeting="220 {host} ESMTP scripted",
                 extensions=("8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 20971520"),
                 starttls=None, drop_data=None, drop_after=16384,
                 data_reply="250 2.0.0 Ok: accepted"):
        self.case = case
        self.ip = ip
        self.port = port
        self.hostname = hostname or f"scripted-{ip}.test"
        self.greeting = greeting.format(host=self.hostname) if greeting else None
        self.extensions = list(extensions)
        if starttls:
            self.extensions.append("STARTTLS")
        self.starttls_mode = starttls
        self.drop_data = drop_data
        self.drop_after = drop_after
        self.data_reply = data_reply
        self.lock = threading.Lock()
        self.connections = []
        self.transactions = []
        self.data_count = 0
        self.sock = None
        self.threads = []
        self.open_socks = []
        self.stopping = False
        case.addCleanup(self.stop)

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.ip, self.port))
        s.listen(64)
        self.sock = s
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name=f"scripted-{self.ip}")
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        with self.lock:
            socks = list(self.open_socks)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(5)

    def _accept_loop(self):
        while not self.stopping:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            with self.lock:
                conn = RawConnection(len(self.connections) + 1, peer)
                self.connections.append(conn)
            if self.greeting is None:
                c.close()
                conn.closed = True
                continue
            with self.lock:
                self.open_socks.append(c)
            t = threading.Thread(target=self._serve, args=(c, conn), daemon=True)
            self.threads.append(t)
            t.start()

    # ---- one session

    def _serve(self, sock, conn):
        sock.settimeout(30)
        io = _LineIO(sock)
        try:
            self._session(io, conn)
        except (OSError, _Gone):
            pass
        finally:
            conn.closed = True
            try:
                sock.close()
            except OSError:
                pass
            with self.lock:
                if sock in self.open_socks:
                    self.open_socks.remove(sock)

    def _session(self, io, conn):
        io.send(self.greeting)
        if not self.greeting.startswith("2"):
            return
        txn = None
        while True:
            line = io.line().decode("utf-8", "replace")
            with self.lock:
                conn.commands.append(line)
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                lines = [self.hostname] + self.extensions
                for i, text in enumerate(lines):
                    io.send(("250 " if i == len(lines) - 1 else "250-") + text)
            elif verb == "HELO":
                io.send(f"250 {self.hostname}")
            elif verb == "STARTTLS" and self.starttls_mode:
                conn.starttls = True
                ready = b"220 2.0.0 Ready to start TLS\r\n"
                garbage = b"this is not a TLS record, sorry\r\n" * 4
                if self.starttls_mode == "garbage-at-once":
                    io.sock.sendall(ready + garbage)
                    return
                io.sock.sendall(ready)
                if self.starttls_mode == "garbage":
                    io.sock.settimeout(5)
                    if not io.buf:
                        io.sock.recv(65536)  # the ClientHello
                    io.sock.sendall(garbage)
                return
            elif verb == "MAIL":
                txn = RawTransaction(conn.id, line)
                with self.lock:
                    self.transactions.append(txn)
                io.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                if txn is None:
                    io.send("503 5.5.1 MAIL first")
                    continue
                m = re.search(r"<([^>]*)>", line)
                txn.rcpts.append(m.group(1) if m else line)
                io.send("250 2.1.5 Ok")
            elif verb == "DATA":
                if txn is None or not txn.rcpts:
                    io.send("503 5.5.1 no valid recipients")
                    continue
                with self.lock:
                    self.data_count += 1
                    n = self.data_count
                drop = bool(self.drop_data and self.drop_data(n))
                io.send("354 End data with <CR><LF>.<CR><LF>")
                if not self._read_data(io, txn, drop):
                    txn.lost = True
                    return  # dropped in the middle of DATA: no reply
                txn.data_reply = self.data_reply
                io.send(self.data_reply)
                txn = None
            elif verb == "RSET":
                txn = None
                io.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                io.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                io.send("221 2.0.0 Bye")
                return
            else:
                io.send("502 5.5.2 command not implemented")

    def _read_data(self, io, txn, drop):
        """Reads DATA up to the end marker; False if it dropped the connection."""
        lines = []
        while True:
            if drop and len(txn.raw) >= self.drop_after:
                return False
            line = io.line(keep_end=True)
            txn.raw += line
            if line == b".\r\n":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        if drop:
            return False
        txn.content = b"".join(lines)
        return True

    # ---- what it saw

    def connection_list(self):
        with self.lock:
            return list(self.connections)

    def all_transactions(self):
        with self.lock:
            return list(self.transactions)

    def messages(self):
        with self.lock:
            return [t for t in self.transactions if t.delivered]

    def __repr__(self):
        return (f"<ScriptedSmtp {self.ip}:{self.port} connections={self.connections} "
                f"transactions={self.transactions}>")


class _Gone(Exception):
    """The peer closed the connection."""


class _LineIO:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, line):
        self.sock.sendall(line.encode("utf-8") + b"\r\n")

    def line(self, keep_end=False):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise _Gone()
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        line += b"\n"
        return line if keep_end else line.rstrip(b"\r\n")


# --------------------------------------------------------------------------
# A recording TCP relay

class TcpProxy:
    """Relays every connection on listen_ip:<free port> to target (ip, port)
    and records what each direction carried: upstream (client -> target)
    and downstream bytes, per connection, in order."""

    def __init__(self, case, target, listen_ip="127.0.0.1"):
        self.case = case
        self.target = target
        self.ip = listen_ip
        self.port = None
        self.lock = threading.Lock()
        self.upstream = []  # bytearray per connection
        self.downstream = []
        self.sock = None
        self.socks = []
        self.threads = []
        case.addCleanup(self.stop)

    def start(self):
        self.port = free_port()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.ip, self.port))
        s.listen(16)
        self.sock = s
        t = threading.Thread(target=self._accept_loop, daemon=True, name="tcp-proxy")
        t.start()
        self.threads.append(t)
        return self

    def _accept_loop(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            up, down = bytearray(), bytearray()
            with self.lock:
                self.upstream.append(up)
                self.downstream.append(down)
                self.socks += [client, server]
            for src, dst, rec in ((client, server, up), (server, client, down)):
                t = threading.Thread(target=self._pump, args=(src, dst, rec), daemon=True)
                self.threads.append(t)
                t.start()

    def _pump(self, src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_WR if s is dst else socket.SHUT_RD)
            except OSError:
                pass

    def sent_upstream(self):
        """bytes the clients sent, one entry per connection."""
        with self.lock:
            return [bytes(b) for b in self.upstream]

    def sent_downstream(self):
        """bytes the target sent back, one entry per connection."""
        with self.lock:
            return [bytes(b) for b in self.downstream]

    def stop(self):
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(5)
        for s in socks:
            s.close()
