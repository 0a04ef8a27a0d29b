"""bench/bench_util.py — small helpers for bench/run_inbound.py and run_relay.py.

Owns: per-process-group CPU accounting through transient cgroups, idle
waiting, free-port picking, readiness waiting (sd_notify socket or port),
reading a process's RSS, the smtp-source command line, and a counting
smtp-sink (CountingSink). Used from the single-threaded bench driver
only; not network-facing beyond loopback probes.
"""

import base64
import os
import re
import subprocess
import socket
import time

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"


class CpuCgroup:
    """A transient cgroup that accounts the CPU of the processes put in it.

    Prefers cgroup v2 (cpu.stat usage_usec) at /sys/fs/cgroup or, on hybrid
    hosts, /sys/fs/cgroup/unified; falls back to v1 cpuacct (cpuacct.usage,
    ns). Exited processes stay accounted, which /proc sampling would miss.
    """

    def __init__(self, name):
        self.path = None
        self.kind = None
        candidates = []
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            candidates.append(("v2", "/sys/fs/cgroup"))
        if os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
            candidates.append(("v2", "/sys/fs/cgroup/unified"))
        if os.path.exists("/sys/fs/cgroup/cpuacct/cpuacct.usage"):
            candidates.append(("v1", "/sys/fs/cgroup/cpuacct"))
        for kind, root in candidates:
            path = os.path.join(root, name)
            try:
                os.makedirs(path, exist_ok=True)
                self.usage_usec_of(kind, path)
            except OSError:
                continue
            self.path, self.kind = path, kind
            return
        raise RuntimeError("no writable cgroup (v2 cpu.stat or v1 cpuacct) for CPU accounting")

    @staticmethod
    def usage_usec_of(kind, path):
        if kind == "v2":
            with open(os.path.join(path, "cpu.stat")) as f:
                for line in f:
                    key, value = line.split()
                    if key == "usage_usec":
                        return int(value)
            raise OSError("no usage_usec in cpu.stat")
        with open(os.path.join(path, "cpuacct.usage")) as f:
            return int(f.read()) // 1000

    def usage_usec(self):
        return self.usage_usec_of(self.kind, self.path)

    def add_pid(self, pid):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def preexec(self):
        """A preexec_fn for subprocess: the child joins this cgroup before exec."""
        procs = os.path.join(self.path, "cgroup.procs")

        def join():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        return join

    def pids(self):
        with open(os.path.join(self.path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]

    def remove(self):
        # Move leftovers (there should be none) to the root, then remove.
        root = os.path.dirname(self.path)
        for pid in self.pids():
            try:
                with open(os.path.join(root, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError:
                pass
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def system_busy_usec():
    """(busy, total) CPU time of the whole machine in µs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    tick = 1_000_000 // os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) * tick, total * tick


def wait_idle(cgroup, max_wait=30.0, interval=0.5, threshold=0.03, machine_threshold=0.35):
    """Waits until `cgroup` uses < threshold of one core and the machine is
    mostly idle (busy < machine_threshold of all cores). Returns the
    machine's busy fraction of the last interval (other workers share it)."""
    deadline = time.monotonic() + max_wait
    quiet = 0
    busy_frac = 1.0
    while time.monotonic() < deadline:
        c0 = cgroup.usage_usec()
        b0, t0 = system_busy_usec()
        time.sleep(interval)
        c1 = cgroup.usage_usec()
        b1, t1 = system_busy_usec()
        own = (c1 - c0) / (interval * 1e6)
        busy_frac = (b1 - b0) / max(1, t1 - t0)
        # The MTA must be quiet; the machine should be, but other workers may
        # keep it busy: after half the wait, settle for a quiet MTA alone.
        machine_ok = busy_frac < machine_threshold or time.monotonic() > deadline - max_wait / 2
        quiet = quiet + 1 if own < threshold and machine_ok else 0
        if quiet >= 2:
            break
    return busy_frac


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smtp_greets(port, timeout=1.0, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            ok = s.recv(512).startswith(b"220")
            s.sendall(b"QUIT\r\n")
            return ok
    except OSError:
        return False


class NotifySocket:
    """A unix datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages = []

    def poll(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode(errors="replace"))
            except BlockingIOError:
                return

    def ready(self):
        self.poll()
        return any("READY=1" in m.split("\n") for m in self.messages)

    def close(self):
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def smtp_source_cmd(port, messages, sessions, size):
    """smtp-source: `sessions` connections, each reused (-d) for many of the
    `messages` messages of `size` bytes, one recipient each, From bench@bench.test."""
    return [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size), "-d",
            "-M", "bench.test", "-f", "bench@bench.test", "-t", "rcpt@example.test",
            "127.0.0.1:%d" % port]


class CountingSink:
    """`smtp-sink -c` on a free loopback port, in `cgroup`, its running
    counters going to a file that count() reads.

    smtp-sink -c writes "sess=S quit=Q mesg=M\\r" and flushes it every time a
    "." (end of DATA), a QUIT or the end of a session is received: M is the
    number of mail transactions received so far (not recipients). Only whole
    records (ending in \\r) are parsed, so a read racing a write never sees a
    truncated number.
    """

    TAIL = 256  # bytes read from the end of the counter file

    def __init__(self, path, cgroup, backlog=1000):
        self.path = path  # counter file; its stderr goes to path + ".err"
        self.cgroup = cgroup
        self.backlog = backlog
        self.port = None
        self.proc = None

    def start(self, timeout=10.0):
        for _attempt in range(3):  # free_port() can race with another process
            self.port = free_port()
            out = open(self.path, "wb")
            err = open(self.path + ".err", "ab")
            self.proc = subprocess.Popen([SMTP_SINK, "-c", "-u", "postfix",
                                          "127.0.0.1:%d" % self.port, str(self.backlog)],
                                         stdout=out, stderr=err,
                                         preexec_fn=self.cgroup.preexec())
            out.close()
            err.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if smtp_greets(self.port):
                    return self.port
                time.sleep(0.05)
            self.stop()
        raise RuntimeError("smtp-sink did not start:\n" + self.stderr_tail())

    def count(self):
        """Mail transactions received so far."""
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

    def wait_count(self, target, stall_timeout, max_seconds=None, poll=0.002, busy=None):
        """Waits until count() >= target. Gives up when the count has not
        moved for `stall_timeout` seconds while `busy()` (e.g. "smtp-source
        still runs") is false, or after `max_seconds`. Returns (reached,
        count, monotonic time the target was seen)."""
        start = last_change = time.monotonic()
        last = self.count()
        while True:
            now = time.monotonic()
            n = self.count()
            running = busy() if busy is not None else False  # called every turn
            if n >= target:
                return True, n, now
            if n != last or running:
                last, last_change = n, now
            if now - last_change > stall_timeout or (max_seconds and now - start > max_seconds):
                return False, n, now
            if self.proc.poll() is not None:
                raise RuntimeError("smtp-sink exited with %d:\n%s" % (self.proc.returncode,
                                                                      self.stderr_tail()))
            time.sleep(poll)

    def stderr_tail(self, n=10):
        try:
            with open(self.path + ".err", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no smtp-sink stderr)"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def median(values):
    v = sorted(values)
    n = len(v)
    if n == 0:
        return 0.0
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


# --- DKIM helpers (run_inbound.py --dkim) ---------------------------------

def gen_dkim_key(path, algorithm):
    """Writes a fresh PEM private key (PKCS#8) with `openssl genpkey`:
    algorithm "rsa" (2048 bits) or "ed25519"."""
    if algorithm == "rsa":
        args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    elif algorithm == "ed25519":
        args = ["-algorithm", "ed25519"]
    else:
        raise ValueError("algorithm must be rsa or ed25519")
    subprocess.run(["openssl", "genpkey", *args, "-out", path], check=True, capture_output=True)
    os.chmod(path, 0o644)  # milter and MTA users read it; throw-away bench key


def dkim_txt_record(private_key_path, algorithm):
    """The DNS TXT record (v=DKIM1; k=…; p=…) of the key's public half."""
    der = subprocess.run(["openssl", "pkey", "-in", private_key_path, "-pubout",
                          "-outform", "DER"], check=True, capture_output=True).stdout
    if algorithm == "ed25519":
        # RFC 8463: p= is the raw 32-byte key, the tail of the SubjectPublicKeyInfo.
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def dkim_verify(message, txt_record):
    """Verifies every DKIM-Signature of `message` (bytes, CRLF or LF) with
    dkimpy, answering every key lookup with `txt_record`. Returns
    (signature_count, all_verified) or (count, None) when dkimpy is missing."""
    count = len(re.findall(rb"(?mi)^DKIM-Signature:", message))
    try:
        import dkim  # python3-dkim
    except ImportError:
        return count, None
    if count == 0:
        return 0, False
    message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def dnsfunc(_name, timeout=5):
        return txt_record.encode()
    ok = True
    for idx in range(count):
        try:
            if not dkim.DKIM(message).verify(idx=idx, dnsfunc=dnsfunc):
                ok = False
        except dkim.DKIMException:  # e.g. "body hash mismatch" is raised, not returned
            ok = False
    return count, ok


def openssl_sign_per_s(algorithm, seconds=3):
    """Signatures per second of ONE core, from `openssl speed -seconds S`
    (single process): algorithm "rsa" (rsa2048) or "ed25519"."""
    name = "rsa2048" if algorithm == "rsa" else "ed25519"
    r = subprocess.run(["openssl", "speed", "-seconds", str(seconds), name],
                       capture_output=True, text=True, check=True)
    # Table lines: "rsa 2048 bits 0.000804s 0.000024s   1243.4  41528.1"
    #              " 253 bits EdDSA (Ed25519)   0.0000s   0.0001s  19750.2   7003.1"
    for line in r.stdout.splitlines():
        low = line.lower()
        if (name == "rsa2048" and low.startswith("rsa 2048 bits")) or \
           (name == "ed25519" and "ed25519" in low and "bits" in low):
            # The last two numbers are sign/s and verify/s.
            nums = re.findall(r"\d+(?:\.\d+)?", line)
            return float(nums[-2])
    raise RuntimeError("cannot parse openssl speed %s output:\n%s" % (name, r.stdout[-800:]))
