"""tests/integration/harness.py -- run the real ringmaild on loopback for tests.

Owns: everything a test needs around one ringmaild process: free loopback
ports, a private temp dir (self-signed certificate, users file with crypt(3)
hashes made by mkpasswd, YAML config written from a dict, spool, delivery
log), starting the daemon with NOTIFY_SOCKET and waiting for READY=1 (the
only readiness signal used), stopping it (SIGTERM, SIGKILL), reading
--spool-dump, --spool-show and the delivery log, and a small raw-socket
SMTP client for probes that real clients refuse to send.

Every process a test starts is registered for cleanup with the TestCase, so
it is killed even when the test fails. Set RINGMAIL_KEEP_TMP=1 to keep the
temp dirs; the daemon's stderr is printed when a test fails.

Uses only the Python standard library and command-line tools from Debian
packages (openssl, mkpasswd); run with /usr/bin/python3.
"""

import copy
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
DEFAULT_PASSWORD = "s3cret-Passw0rd"
DEFAULT_USER = "app1"


def ringmaild_path():
    path = os.environ.get("RINGMAILD")
    if not path:
        raise RuntimeError("RINGMAILD is not set: point it at the ringmaild binary")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"RINGMAILD={path} is not an executable file")
    return path


# --------------------------------------------------------------------------
# Ports, certificates, password hashes

_ports_given = set()
_ports_lock = threading.Lock()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A TCP port nobody holds on any address right now (not reused in-process).

    Chosen below the kernel's ephemeral range, so that no outgoing connection
    (the daemon's, a client's) can be given it as its local port: a receiver
    binds the port on 127.0.0.N, and a TIME_WAIT left on 127.0.0.N:PORT by an
    earlier connection would refuse that bind.
    """
    low, _ = _ephemeral_range()
    first, last = (10000, low - 1) if low > 11000 else (low + 20000, 65000)
    with _ports_lock:
        for _ in range(500):
            port = random.randint(first, last)
            if port in _ports_given:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("0.0.0.0", port))  # no SO_REUSEADDR: TIME_WAIT counts too
                except OSError:
                    continue
            _ports_given.add(port)
            return port
    raise RuntimeError("no free port found")


_cert_dir = None
_cert_lock = threading.Lock()


def _shared_cert_dir():
    """One self-signed RSA certificate per test process (openssl req)."""
    global _cert_dir
    with _cert_lock:
        if _cert_dir is None:
            d = tempfile.mkdtemp(prefix="ringmail-it-cert-")
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-keyout", os.path.join(d, "key.pem"),
                 "-out", os.path.join(d, "cert.pem"),
                 "-days", "3", "-subj", "/CN=mx.ringmail.test",
                 "-addext", "subjectAltName=DNS:mx.ringmail.test,IP:127.0.0.1"],
                check=True, capture_output=True, timeout=60)
            _cert_dir = d
            import atexit
            atexit.register(shutil.rmtree, d, True)
        return _cert_dir


_hash_cache = {}


def crypt_hash(password, method="yescrypt"):
    key = (password, method)
    if key not in _hash_cache:
        out = subprocess.run(["mkpasswd", "-m", method, password], check=True,
                             capture_output=True, text=True, timeout=30)
        _hash_cache[key] = out.stdout.strip()
    return _hash_cache[key]


# --------------------------------------------------------------------------
# YAML (the subset a config needs), written by hand

def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a valid YAML double-quoted scalar
    raise TypeError(f"cannot write {v!r} as YAML")


def _is_scalar(v):
    return isinstance(v, (bool, int, float, str))


def _emit(value, indent):
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict):
                if not v:
                    lines.append(f"{pad}{k}: {{}}")
                else:
                    lines.append(f"{pad}{k}:")
                    lines += _emit(v, indent + 2)
            elif isinstance(v, list):
                if not v:
                    lines.append(f"{pad}{k}: []")
                elif all(_is_scalar(x) for x in v):
                    lines.append(f"{pad}{k}: [" + ", ".join(_scalar(x) for x in v) + "]")
                else:
                    lines.append(f"{pad}{k}:")
                    lines += _emit(v, indent + 2)
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                sub = _emit(item, indent + 2)
                if not sub:
                    lines.append(f"{pad}- {{}}")
                    continue
                sub[0] = pad + "- " + sub[0][indent + 2:]
                lines += sub
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(value))
    return lines


def to_yaml(value):
    return "\n".join(_emit(value, 0)) + "\n"


def deep_merge(base, overrides):
    """A copy of base with overrides applied; a None value deletes the key."""
    out = copy.deepcopy(base)
    for k, v in (overrides or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def line_of(text, needle):
    """1-based number of the first line of text containing needle."""
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in config text")


# --------------------------------------------------------------------------
# The daemon

DEFAULT_LISTENERS = [
    {"name": "submission", "mode": "submission", "tls": "starttls", "require_tls_for_auth": True},
    {"name": "relay", "mode": "relay", "tls": "starttls"},
    {"name": "smtps", "mode": "submission", "tls": "implicit"},
]


class Ringmail:
    """One ringmaild instance in its own temp dir, cleaned up with the test.

    listeners: dicts without "address" (a free port is assigned to each).
    overrides: merged into the default config (None deletes a key).
    users: {name: password}.
    """

    def __init__(self, case, listeners=None, overrides=None, users=None,
                 hostname="mx.ringmail.test"):
        self.case = case
        self.binary = ringmaild_path()
        self.dir = tempfile.mkdtemp(prefix="ringmail-it-")
        self.proc = None
        self.notify = None
        self.notifications = []
        self.stderr_path = os.path.join(self.dir, "ringmaild.stderr")
        self.config_path = os.path.join(self.dir, "ringmail.yaml")
        self.spool_dir = os.path.join(self.dir, "spool")
        self.delivery_log_path = os.path.join(self.dir, "delivery.jsonl")
        os.makedirs(os.path.join(self.dir, "tls"))
        os.makedirs(self.spool_dir)
        certs = _shared_cert_dir()
        for f in ("cert.pem", "key.pem"):
            shutil.copy(os.path.join(certs, f), os.path.join(self.dir, "tls", f))
        os.chmod(os.path.join(self.dir, "tls", "key.pem"), 0o600)
        self.users = dict(users if users is not None else {DEFAULT_USER: DEFAULT_PASSWORD})
        self.write_users()
        self.listeners = []
        self.ports = {}
        for lst in copy.deepcopy(listeners if listeners is not None else DEFAULT_LISTENERS):
            port = free_port()
            lst = dict(lst)
            lst["address"] = f"{HOST}:{port}"
            # Keep "name" first for readability of the YAML.
            ordered = {"name": lst.pop("name")}
            ordered.update(lst)
            self.listeners.append(ordered)
            self.ports[ordered["name"]] = port
        self.base_config = {
            "hostname": hostname,
            "listeners": self.listeners,
            "relay_networks": ["127.0.0.0/8"],
            "tls": {"certificate": "tls/cert.pem", "private_key": "tls/key.pem"},
            "auth": {"users_file": "users.yaml"},
            "limits": {
                "max_message_size": "10MiB",
                "max_recipients": 100,
                "max_connections": 200,
                # Every test client is 127.0.0.1; test_slow_clients.py sets
                # a per-address limit of its own.
                "max_connections_per_ip": 0,
                "idle_timeout": "60s",
                "shutdown_timeout": "10s",
            },
            "spool": {"path": "spool", "max_size": "256MiB"},
            # No test may query the machine's resolver (it is off this host):
            # by default DNS goes to a closed loopback port, so delivery
            # attempts fail at once and recipients stay in the spool,
            # deferred. Delivery tests point this at their own dnsmasq.
            "delivery": {"dns": {"nameservers": [f"127.0.0.1:{free_port()}"]}},
            "log": {"level": "info", "delivery_log": "delivery.jsonl"},
        }
        self.config = deep_merge(self.base_config, overrides)
        self.config_text = self.write_config(self.config)
        case.addCleanup(self._cleanup)

    # ---- files

    def write_users(self):
        entries = [{"name": n, "password": crypt_hash(p)} for n, p in self.users.items()]
        with open(os.path.join(self.dir, "users.yaml"), "w") as f:
            f.write(to_yaml(entries) if entries else "[]\n")

    def write_config(self, config=None, text=None):
        """Writes the config file from a dict (or raw text); returns the text."""
        if text is None:
            text = to_yaml(config if config is not None else self.config)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        self.config_text = text
        return text

    def port(self, listener):
        return self.ports[listener]

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, limit=6000):
        text = self.stderr_text()
        if len(text) > limit:
            text = "...\n" + text[-limit:]
        return f"\n--- ringmaild stderr ({self.stderr_path}) ---\n{text}--- end ---"

    # ---- process

    def _open_notify_socket(self):
        if self.notify is not None:
            self.notify.close()
        path = os.path.join(self.dir, "notify.sock")
        if os.path.exists(path):
            os.unlink(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.setblocking(False)
        self.notify = s
        self.notifications = []
        return path

    def _drain_notify(self):
        while self.notify is not None:
            try:
                data = self.notify.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            for line in data.decode("utf-8", "replace").splitlines():
                if line:
                    self.notifications.append(line)

    def wait_notification(self, wanted, timeout, stop_on_exit=True):
        """Waits for a notify line equal to `wanted`; True if it came."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain_notify()
            if wanted in self.notifications:
                return True
            if stop_on_exit and self.proc is not None and self.proc.poll() is not None:
                self._drain_notify()
                return wanted in self.notifications
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select([self.notify], [], [], min(left, 0.1))

    def spawn(self, args=None, env_extra=None):
        """Starts ringmaild -c CONFIG (plus args) with NOTIFY_SOCKET; no wait."""
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        notify_path = self._open_notify_socket()
        env = dict(os.environ)
        for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC"):
            env.pop(k, None)
        env["NOTIFY_SOCKET"] = notify_path
        env.update(env_extra or {})
        with open(self.stderr_path, "ab") as err:
            err.write(f"=== {time.strftime('%H:%M:%S')} start {args or []}\n".encode())
            err.flush()
            self.proc = subprocess.Popen(
                [self.binary, "-c", self.config_path] + list(args or []),
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env, cwd=self.dir)
        return self.proc

    def start(self, timeout=READY_TIMEOUT):
        """Starts the daemon and waits for READY=1 over NOTIFY_SOCKET."""
        self.spawn()
        t0 = time.monotonic()
        if not self.wait_notification("READY=1", timeout):
            rc = self.proc.poll()
            state = f"exited with {rc}" if rc is not None else "still running"
            self.kill9()
            self.case.fail(f"ringmaild sent no READY=1 within {timeout}s ({state}); "
                           f"notifications: {self.notifications}" + self.stderr_tail())
        self.ready_seconds = time.monotonic() - t0
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_running(self, msg=""):
        if not self.running():
            self.case.fail(f"ringmaild is not running (exit {self.proc.returncode}) {msg}"
                           + self.stderr_tail())

    def send_signal(self, sig):
        self.assert_running(f"before signal {sig}")
        self.proc.send_signal(sig)

    def reload(self):
        self.send_signal(signal.SIGHUP)

    def stop(self, sig=signal.SIGTERM, timeout=None, expect_rc=0):
        """Graceful stop; asserts the exit code; returns (rc, seconds)."""
        if timeout is None:
            timeout = 20.0
        self.send_signal(sig)
        t0 = time.monotonic()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            self.case.fail(f"ringmaild did not exit within {timeout}s of signal {sig}"
                           + self.stderr_tail())
        took = time.monotonic() - t0
        self._drain_notify()
        if expect_rc is not None:
            self.case.assertEqual(rc, expect_rc, f"ringmaild exit code after signal {sig}"
                                  + self.stderr_tail())
        return rc, took

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def _cleanup(self):
        outcome = getattr(self.case, "_outcome", None)
        failed = outcome is not None and not getattr(outcome, "success", True)
        self.kill9()
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        if failed:
            sys.stderr.write(self.stderr_tail(20000) + "\n")
        if os.environ.get("RINGMAIL_KEEP_TMP"):
            sys.stderr.write(f"kept {self.dir}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- command line and outputs

    def run_cli(self, *args, config=True, timeout=60):
        argv = [self.binary] + (["-c", self.config_path] if config else []) + list(args)
        return subprocess.run(argv, capture_output=True, timeout=timeout, cwd=self.dir)

    def spool_dump(self, live=False):
        """--spool-dump parsed: one dict per queued recipient. The daemon must
        be stopped unless live (ringmaild reads the spool beside it; the
        answer is a snapshot)."""
        assert live or not self.running(), "spool_dump needs the daemon stopped"
        out = self.run_cli("--spool-dump", timeout=120)
        err = out.stderr.decode("utf-8", "replace")
        self.case.assertEqual(out.returncode, 0, f"--spool-dump failed: {err}")
        rows = []
        for n, line in enumerate(out.stdout.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                self.case.fail(f"--spool-dump line {n} is not JSON ({e}): {line[:300]!r}")
            self.case.assertIsInstance(row, dict, f"--spool-dump line {n}: {line[:300]!r}")
            for key in ("id", "sender", "recipient", "state", "attempts"):
                self.case.assertIn(key, row, f"--spool-dump line {n} lacks {key}: {line[:300]!r}")
            rows.append(row)
        return rows

    def delivery_log(self, type_=None):
        """The delivery log as dicts (every line must be JSON); optionally one type."""
        rows = []
        try:
            with open(self.delivery_log_path, "rb") as f:
                data = f.read().decode("utf-8")
        except FileNotFoundError:
            return rows
        for n, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                self.case.fail(f"delivery log line {n} is not JSON ({e}): {line[:300]!r}")
        if type_ is not None:
            rows = [r for r in rows if r.get("type") == type_]
        return rows

    def spool_show(self, message_id):
        """The spooled message as stored (`--spool-show ID`), as bytes.

        Works while the daemon runs (LMDB readers do not block the writer)
        and after it stopped; fails the test when the id is unknown."""
        out = self.run_cli("--spool-show", message_id, timeout=120)
        self.case.assertEqual(out.returncode, 0,
                              f"--spool-show {message_id} failed: "
                              f"{out.stderr.decode('utf-8', 'replace')}")
        return out.stdout


# --------------------------------------------------------------------------
# A raw SMTP client for probes

QUEUED_RE = re.compile(r"queued as ([A-Za-z0-9._-]+)")


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enhanced(self):
        m = re.match(r"([245]\.\d{1,3}\.\d{1,3})\b", self.lines[-1] if self.lines else "")
        return m.group(1) if m else ""

    def queued_id(self):
        m = QUEUED_RE.search(self.text)
        return m.group(1) if m else None

    def __repr__(self):
        return " | ".join(f"{self.code} {l}" for l in self.lines)


class Closed(Exception):
    """The server closed the connection."""


class SmtpConn:
    """Line-oriented SMTP over a plain or TLS socket, with a read buffer."""

    def __init__(self, port, host=HOST, timeout=15.0, tls=False, source_ip=None):
        """source_ip: a local address to connect from (e.g. another loopback
        address, to appear as a second client)."""
        self.timeout = timeout
        source = (source_ip, 0) if source_ip else None
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=source)
        self.buf = b""
        self.tls = False
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
            self.tls = True

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except ssl.SSLError:
            data = b""
        if not data:
            raise Closed()
        self.buf += data

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete line")
            self._fill(left)
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def read_reply(self, timeout=None):
        lines = []
        while True:
            line = self.read_line(timeout)
            m = re.match(r"(\d{3})([ -]?)(.*)$", line)
            if not m:
                raise AssertionError(f"not an SMTP reply line: {line!r} (so far {lines})")
            lines.append(m.group(3))
            if m.group(2) != "-":
                return Reply(int(m.group(1)), lines)

    def cmd(self, line, timeout=None):
        self.send(line + "\r\n")
        return self.read_reply(timeout)

    def ehlo(self, name="client.ringmail.test"):
        return self.cmd(f"EHLO {name}")

    def starttls(self):
        r = self.cmd("STARTTLS")
        if r.code != 220:
            raise AssertionError(f"STARTTLS refused: {r}")
        return self.tls_handshake()

    def tls_handshake(self):
        """Client TLS handshake on this socket; returns clear-text bytes that
        had arrived before it (there should be none)."""
        leftover = self.buf
        self.buf = b""
        self.sock.settimeout(self.timeout)
        self.sock = client_tls_context().wrap_socket(self.sock)
        self.tls = True
        return leftover

    def wait_closed(self, timeout=10.0):
        """Reads until EOF; returns what came before it. Raises on timeout."""
        deadline = time.monotonic() + timeout
        got = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"connection still open; got {got!r}")
            try:
                self._fill(left)
            except Closed:
                got += self.buf
                self.buf = b""
                return got
            got += self.buf
            self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def client_tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def send_message(port, sender, recipients, body, ehlo="client.ringmail.test",
                 tls=False, starttls=False, auth=None, mail_params=""):
    """One full transaction over a raw connection; returns the final Reply.

    body: bytes or str with CRLF line ends, without the final dot line;
    dot-stuffing is done here.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    with SmtpConn(port, tls=tls) as c:
        r = c.read_reply()
        assert r.code == 220, r
        r = c.ehlo(ehlo)
        assert r.code == 250, r
        if starttls:
            c.starttls()
            r = c.ehlo(ehlo)
            assert r.code == 250, r
        if auth:
            import base64
            token = base64.b64encode(f"\0{auth[0]}\0{auth[1]}".encode()).decode()
            r = c.cmd(f"AUTH PLAIN {token}")
            assert r.code == 235, r
        r = c.cmd(f"MAIL FROM:<{sender}>{mail_params}")
        assert r.code == 250, r
        for rcpt in recipients:
            r = c.cmd(f"RCPT TO:<{rcpt}>")
            assert r.code == 250, r
        r = c.cmd("DATA")
        assert r.code == 354, r
        stuffed = re.sub(rb"(?m)^\.", b"..", body)
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        c.send(stuffed + b".\r\n")
        final = c.read_reply(timeout=30)
        try:
            c.cmd("QUIT")
        except (Closed, OSError):
            pass
        return final


class DaemonTestCase(unittest.TestCase):
    """Base class: self.ringmail(...) makes a Ringmail cleaned up with the test."""

    maxDiff = 4000

    def ringmail(self, **kwargs):
        return Ringmail(self, **kwargs)

    def assertReply(self, reply, code, enhanced=None, msg=""):
        self.assertEqual(reply.code, code, f"{msg} reply: {reply!r}")
        if enhanced is not None:
            self.assertEqual(reply.enhanced, enhanced, f"{msg} reply: {reply!r}")


def simple_message(subject="test", body="Hello.\r\n", extra_headers=""):
    return (f"From: Sender <sender@example.test>\r\n"
            f"To: rcpt@example.net\r\n"
            f"Subject: {subject}\r\n"
            f"{extra_headers}"
            f"\r\n{body}")
