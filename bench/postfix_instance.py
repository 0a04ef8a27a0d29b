"""bench/postfix_instance.py — a private, throw-away Postfix instance for benchmarks.

Owns: a scratch directory with its own config_directory (conf/), queue_directory
(queue/), data_directory (data/) and maillog file. Nothing under /etc/postfix or
/var/spool/postfix is touched; `postfix -c DIR start|stop` drives it. Must run as
root (Postfix's master runs as root and drops to mail_owner=postfix).

Modes (how the mail ends up after acceptance; Postfix always fsyncs the queue
file before it answers 250 to end-of-DATA, so acceptance is durable in all):
  hold   every message is put in the hold queue by an smtpd restriction
         (check_client_access static:HOLD). cleanup writes and fsyncs the
         queue file straight into queue/hold and the queue manager never sees
         it: the cost measured is acceptance + durable spool only, which is
         exactly what ringmaild does today (it has no delivery yet). Default.
  relay  relayhost = [127.0.0.1]:SINK_PORT (an smtp-sink run by the caller):
         Postfix accepts and delivers at the same time, as in BENCH-NOTES.md.

Milter: PostfixInstance(milter_socket=PATH) adds smtpd_milters = unix:PATH,
milter_protocol = 6, milter_default_action = tempfail. OpenDkimMilter runs
Debian's opendkim (Mode s, one Domain/Selector/KeyFile, relaxed/relaxed,
rsa-sha256 or ed25519-sha256) in the foreground on such a socket, so that the
caller can put it in Postfix's cgroup (bench --dkim).

Thread/process: used from the single-threaded bench driver. Not network-facing
beyond the loopback listener it configures.
"""

import os
import shutil
import subprocess
import time

POSTFIX = "/usr/sbin/postfix"

MASTER_CF = """\
# Private benchmark instance: no chroot, smtpd on a loopback port.
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
# Private benchmark instance (bench/postfix_instance.py). Generated; do not edit.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localdomain
mydomain = localdomain
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
relayhost = {relayhost}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = {recipient_restrictions}
# Enough smtpd processes for every client session, no per-client caps, and
# no in_flow_delay throttling (a load-shedding feature, not durability).
default_process_limit = {process_limit}
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
in_flow_delay = 0
smtp_destination_concurrency_limit = 100
default_destination_concurrency_limit = 100
smtp_connection_cache_on_demand = yes
# No syslog on these machines: log to a file under the scratch dir.
maillog_file = {maillog}
maillog_file_prefixes = {scratch}
{milter}"""

MILTER_CF = """\
# Mail filter (bench --dkim: OpenDKIM signing). A milter that fails tempfails.
smtpd_milters = unix:{socket}
milter_protocol = 6
milter_default_action = tempfail
"""

OPENDKIM_CONF = """\
# OpenDKIM signing milter for the benchmark (bench/postfix_instance.py).
Mode                    s
Socket                  local:{socket}
Domain                  {domain}
Selector                {selector}
KeyFile                 {key}
Canonicalization        relaxed/relaxed
SignatureAlgorithm      {algorithm}
InternalHosts           127.0.0.1
RequireSafeKeys         false
Syslog                  no
UMask                   0000
PidFile                 {pidfile}
AutoRestart             no
Background              no
"""


class PostfixInstance:
    """A private Postfix instance under `scratch`, listening on 127.0.0.1:`port`."""

    def __init__(self, scratch, port, mode="hold", sink_port=None, process_limit=200,
                 milter_socket=None):
        if mode not in ("hold", "relay"):
            raise ValueError("mode must be hold or relay")
        if mode == "relay" and not sink_port:
            raise ValueError("relay mode needs sink_port")
        self.scratch = os.path.abspath(scratch)
        self.port = port
        self.mode = mode
        self.sink_port = sink_port
        self.process_limit = process_limit
        self.milter_socket = milter_socket  # unix socket of an smtpd milter, or None
        self.conf_dir = os.path.join(self.scratch, "conf")
        self.queue_dir = os.path.join(self.scratch, "queue")
        self.data_dir = os.path.join(self.scratch, "data")
        self.maillog = os.path.join(self.scratch, "maillog")
        self.running = False

    def _postfix(self, *args, preexec_fn=None):
        return subprocess.run([POSTFIX, "-c", self.conf_dir, *args], capture_output=True,
                              text=True, preexec_fn=preexec_fn)

    def create(self):
        """Writes a fresh config and an empty queue (removes any previous one)."""
        if os.path.exists(self.scratch):
            shutil.rmtree(self.scratch)
        os.makedirs(self.conf_dir)
        os.makedirs(self.queue_dir)
        os.makedirs(self.data_dir)
        shutil.chown(self.data_dir, "postfix", "postfix")
        if self.mode == "hold":
            restrictions = "check_client_access static:HOLD, permit_mynetworks, reject"
            relayhost = ""
        else:
            restrictions = "permit_mynetworks, reject"
            relayhost = "[127.0.0.1]:%d" % self.sink_port
        with open(os.path.join(self.conf_dir, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(queue=self.queue_dir, data=self.data_dir,
                                   relayhost=relayhost, recipient_restrictions=restrictions,
                                   process_limit=self.process_limit, maillog=self.maillog,
                                   scratch=self.scratch,
                                   milter=MILTER_CF.format(socket=self.milter_socket)
                                   if self.milter_socket else ""))
        with open(os.path.join(self.conf_dir, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(listen="127.0.0.1:%d" % self.port))
        # Creates the queue sub-directories with Postfix's own ownership/modes.
        r = self._postfix("set-permissions")
        if r.returncode != 0:
            raise RuntimeError("postfix set-permissions failed: " + r.stderr.strip())

    def start(self, preexec_fn=None, timeout=20):
        """Starts master (in the caller's cgroup via preexec_fn) and waits for the port."""
        r = self._postfix("start", preexec_fn=preexec_fn)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: %s %s\nmaillog tail:\n%s"
                               % (r.stdout.strip(), r.stderr.strip(), self.maillog_tail()))
        self.running = True
        deadline = time.monotonic() + timeout
        import socket
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("postfix did not listen on port %d\n%s" % (self.port, self.maillog_tail()))

    def stop(self):
        if not self.running:
            return
        self._postfix("stop")
        # master exits asynchronously; wait for its pid file to go away.
        pid_file = os.path.join(self.queue_dir, "pid", "master.pid")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and os.path.exists(pid_file):
            try:
                pid = int(open(pid_file).read().split()[0])
                os.kill(pid, 0)
            except (OSError, ValueError, IndexError):
                break
            time.sleep(0.1)
        self.running = False

    def queued_count(self):
        """Messages in the queue (hold, incoming, active, deferred), counted as files."""
        n = 0
        for sub in ("hold", "incoming", "active", "deferred"):
            for _root, _dirs, files in os.walk(os.path.join(self.queue_dir, sub)):
                n += len(files)
        return n

    def held_files(self):
        """Paths of the queue files in queue/hold (hold mode)."""
        out = []
        for root, _dirs, files in os.walk(os.path.join(self.queue_dir, "hold")):
            out.extend(os.path.join(root, f) for f in files)
        return out

    def message_of(self, queue_file):
        """Header and body of one queue file as `postcat -bh` prints them."""
        r = subprocess.run(["/usr/sbin/postcat", "-c", self.conf_dir, "-bh", queue_file],
                           capture_output=True)
        if r.returncode != 0:
            raise RuntimeError("postcat %s failed: %s" % (queue_file, r.stderr.decode()[-300:]))
        return r.stdout

    def maillog_tail(self, lines=15):
        try:
            with open(self.maillog, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no maillog)"

    def destroy(self):
        self.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)


class OpenDkimMilter:
    """OpenDKIM (Debian `opendkim`) as a signing milter on a unix socket, run
    in the foreground as a child of the bench driver (in the caller's cgroup
    via preexec_fn, so its CPU counts towards Postfix). Used with
    PostfixInstance(milter_socket=...)."""

    BINARY = "/usr/sbin/opendkim"

    def __init__(self, scratch, domain, selector, key_file, algorithm="rsa-sha256"):
        self.scratch = os.path.abspath(scratch)
        self.socket = os.path.join(self.scratch, "opendkim.sock")
        self.conf = os.path.join(self.scratch, "opendkim.conf")
        self.log_path = os.path.join(self.scratch, "opendkim.log")
        self.domain, self.selector, self.key_file = domain, selector, key_file
        self.algorithm = algorithm
        self.proc = None

    def create(self):
        os.makedirs(self.scratch, exist_ok=True)
        os.chmod(self.scratch, 0o755)  # smtpd (user postfix) reaches the socket
        with open(self.conf, "w") as f:
            f.write(OPENDKIM_CONF.format(socket=self.socket, domain=self.domain,
                                         selector=self.selector, key=self.key_file,
                                         algorithm=self.algorithm,
                                         pidfile=os.path.join(self.scratch, "opendkim.pid")))

    def start(self, preexec_fn=None, timeout=15):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.BINARY, "-f", "-x", self.conf], stdout=logf,
                                     stderr=logf, preexec_fn=preexec_fn)
        logf.close()
        import socket
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("opendkim exited with %d:\n%s" % (self.proc.returncode,
                                                                     self.log_tail()))
            if os.path.exists(self.socket):
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(self.socket)
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("opendkim did not open %s:\n%s" % (self.socket, self.log_tail()))

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no opendkim log)"
