"""ringmailctl against a running ringmaild: what an operator types and sees.

Each scenario runs the real binary (RINGMAILCTL, or ringmailctl beside
RINGMAILD) with the daemon's generated config, and compares its stdout,
stderr and exit status with what the admin API and the delivery log say:
tables and --json for status and queue, suspend/resume/bounce lines,
reload, the event stream, exit 1 for API errors and exit 2 for bad usage."""

import json
import os
import select
import subprocess
import time
import unittest

from harness import free_port, ringmaild_path
from peers import wait_until
from test_admin_api import AdminCase

WAIT = 20.0
HEADER = ["SITE", "SOURCE", "QUEUED", "DEFERRED", "IN-FLIGHT", "DELIVERED", "BOUNCED",
          "SUSPENDED-UNTIL", "DOMAINS"]


def ringmailctl_path():
    path = os.environ.get("RINGMAILCTL") or os.path.join(
        os.path.dirname(ringmaild_path()), "ringmailctl")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not an executable file: build ringmailctl "
                           f"or set RINGMAILCTL")
    return path


class CtlCase(AdminCase):
    def daemon_with_api(self, routes=None, intervals=("1h",)):
        return self.admin_daemon(routes=routes, intervals=intervals)

    def route_to(self, ip, port):
        return [{"domain": "*.ctl.test", "smarthost": f"{ip}:{port}"}]

    def ctl(self, *args, rm=None, config=True, timeout=40):
        """Runs ringmailctl [-c rm's config] ARGS; returns the CompletedProcess (text)."""
        argv = [ringmailctl_path()]
        if rm is not None and config:
            argv += ["-c", rm.config_path]
        argv += list(args)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              cwd=rm.dir if rm else None)

    def ok(self, *args, rm=None):
        p = self.ctl(*args, rm=rm)
        self.assertEqual(p.returncode, 0, f"ringmailctl {' '.join(args)}: {p.stderr}")
        self.assertEqual(p.stderr, "")
        return p.stdout

    def table_rows(self, text):
        """The sites table of a queue or status output as lists of cells."""
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.split() == HEADER)
        rows = []
        for line in lines[start + 1:]:
            if not line or line.startswith(("total:", "backoff ")):
                break
            rows.append(line.split())
        return rows

    def queued_with_dead_smarthost(self):
        """A daemon whose mail for *.ctl.test waits for a port nobody listens on."""
        dead = free_port()
        rm, api = self.daemon_with_api(routes=self.route_to("127.0.0.2", dead))
        site = f"127.0.0.2:{dead}"
        for r in ["a@one.ctl.test", "b@one.ctl.test", "c@two.ctl.test"]:
            self.send(rm, r, "ctl")
        q = wait_until(lambda: (lambda q: q if q["total"] == 3 and q["sites"] and
                                q["sites"][0]["deferred"] == 3 else None)(
            api.ok("GET", "/api/v1/queue")), WAIT)
        self.assertTrue(q, api.ok("GET", "/api/v1/queue"))
        return rm, api, site


class Tables(CtlCase):
    def test_queue_and_status_tables_and_json(self):
        rm, api, site = self.queued_with_dead_smarthost()

        out = self.ok("queue", rm=rm)
        self.assertEqual(self.table_rows(out),
                         [[site, "default", "3", "3", "0", "0", "0", "-",
                           "one.ctl.test,two.ctl.test"]], out)
        self.assertEqual(out.splitlines()[-1], "total: 3")
        # Columns line up: every row starts each column where the header does.
        lines = out.splitlines()
        header, row = lines[0], lines[1]
        self.assertEqual(row.index("default"), header.index("SOURCE"), out)
        self.assertEqual(row.index("one.ctl.test"), header.index("DOMAINS"), out)

        out = self.ok("queue", "--domain", "two.ctl.test", rm=rm)
        self.assertEqual(out.splitlines()[-1], "total: 1")
        self.assertEqual(self.ok("queue", "--site", "elsewhere", rm=rm).splitlines(),
                         ["  ".join(HEADER), "total: 0"])

        as_json = json.loads(self.ok("--json", "queue", rm=rm))
        self.assertEqual(as_json, api.ok("GET", "/api/v1/queue"))
        self.assertEqual(json.loads(self.ok("queue", "--json", "--site", site, rm=rm))["total"], 3)

        out = self.ok("status", rm=rm)
        totals = dict(line.split() for line in out.split("\n\n")[0].splitlines())
        self.assertEqual(totals["received"], "3")
        self.assertEqual(totals["queued"], "3")
        self.assertEqual(totals["delivered"], "0")
        self.assertEqual(totals["bounced"], "0")
        [row] = [r for r in self.table_rows(out) if r[0] == site]
        self.assertEqual(row[2], "3")
        stats = json.loads(self.ok("status", "--json", rm=rm))
        self.assertEqual(stats["received"], 3)
        self.assertEqual(stats["queued"], 3)
        self.assertIn("bounced_by_category", stats)

        # --admin and --token-file instead of the config.
        token_file = os.path.join(rm.dir, "admin.token")
        p = self.ctl("--admin", f"http://{rm.config['admin']['address']}",
                     "--token-file", token_file, "queue")
        self.assertEqual((p.returncode, p.stdout.splitlines()[-1]), (0, "total: 3"), p.stderr)
        rm.stop()


class QueueControl(CtlCase):
    def test_suspend_resume_and_bounce(self):
        rm, api, site = self.queued_with_dead_smarthost()

        out = self.ok("suspend", site, "2h", rm=rm)
        self.assertRegex(out, rf"^suspended {site} until \d{{4}}-\d\d-\d\dT[0-9:.]+Z\n$")
        until = out.split()[-1]
        [row] = self.table_rows(self.ok("queue", rm=rm))
        self.assertEqual(row[7], until)
        self.assertEqual(self.ok("resume", site, rm=rm), f"resumed {site}\n")
        [row] = self.table_rows(self.ok("queue", rm=rm))
        self.assertEqual(row[7], "-")

        out = self.ok("suspend", "--domain", "ONE.ctl.test", rm=rm)  # default 1h
        self.assertRegex(out, r"^suspended one\.ctl\.test until \S+Z\n$")
        self.assertEqual(self.ok("resume", "--domain", "one.ctl.test", rm=rm),
                         "resumed one.ctl.test\n")
        p = self.ctl("--json", "resume", site, rm=rm)
        self.assertEqual((p.returncode, json.loads(p.stdout)), (0, {"resumed": {"site": site}}))

        self.assertEqual(
            self.ok("bounce", "--domain", "two.ctl.test", "--reason", "operator test", rm=rm),
            "bounced 1 recipient\n")
        rec = self.wait_record(rm, "AdminBounce", "c@two.ctl.test")[0]
        self.assertIn("operator test", json.dumps(rec))
        self.assertEqual(self.ok("bounce", "--site", site, rm=rm), "bounced 2 recipients\n")
        self.assertEqual(self.ok("bounce", "--site", site, rm=rm), "bounced 0 recipients\n")
        self.assertEqual(self.ok("queue", rm=rm).splitlines()[-1], "total: 0")

        # What the API refuses is exit 1 with its error and detail.
        p = self.ctl("suspend", "--domain", "x" * 300, rm=rm)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith("ringmailctl: bad field: domain:"), p.stderr)
        rm.stop()


class Campaigns(CtlCase):
    def test_campaign_and_tenant_verbs(self):
        from harness import send_message
        from test_campaigns import campaign_text, TENANT
        from test_delivery import SENDER
        rm, api, site = self.queued_with_dead_smarthost()
        for r in ["s1@one.ctl.test", "s2@one.ctl.test"]:
            reply = send_message(rm.port("relay"), SENDER, [r], campaign_text(r, "spring"))
            self.assertEqual(reply.code, 250, reply)
        self.assertTrue(wait_until(lambda: api.ok("GET", "/api/v1/campaigns/spring")
                                   ["stats"]["received"] == 2, WAIT))
        lines = self.ok("campaigns", rm=rm).splitlines()
        self.assertEqual(lines[0].split(), ["ID", "STATE", "TENANT", "RECEIVED", "DELIVERED",
                                            "DEFERRED", "BOUNCED", "QUEUED", "NAME"])
        self.assertEqual(lines[1].split()[:4], ["spring", "active", TENANT, "2"])
        out = self.ok("campaign", "pause", "spring", rm=rm)
        self.assertIn("state         paused\n", out)
        self.assertEqual(api.ok("GET", "/api/v1/campaigns/spring")["state"], "paused")
        p = self.ctl("--json", "campaign", "show", "spring", rm=rm)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["stats"]["received"], 2)
        out = self.ok("campaign", "cancel", "spring", rm=rm)
        self.assertIn("state         cancelled\n", out)
        p = self.ctl("campaign", "resume", "spring", rm=rm)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith("ringmailctl: conflict:"), p.stderr)
        p = self.ctl("campaign", "show", "nope", rm=rm)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not found", p.stderr)

        out = self.ok("tenant", "pause", TENANT, rm=rm)
        self.assertIn("state  paused\n", out)
        rows = [line.split() for line in self.ok("tenants", rm=rm).splitlines()[1:]]
        self.assertEqual([(r[0], r[1]) for r in rows], [(TENANT, "paused")])
        self.ok("tenant", "resume", TENANT, rm=rm)
        self.assertEqual(api.ok("GET", "/api/v1/tenants")["tenants"][0]["state"], "active")
        rm.stop()


class Reload(CtlCase):
    def test_reload_good_then_broken_config(self):
        rm, api = self.daemon_with_api()
        self.assertEqual(self.ok("reload", rm=rm), "reloaded\n")
        p = self.ctl("--json", "reload", rm=rm)
        self.assertEqual((p.returncode, json.loads(p.stdout)), (0, {"status": "reloaded"}))

        with open(rm.config_path, "a") as f:
            f.write("bogus_key: 1\n")
        # Through --admin the daemon's own check answers: 400, config invalid.
        p = self.ctl("--admin", rm.config["admin"]["address"],
                     "--token-file", os.path.join(rm.dir, "admin.token"), "reload")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertTrue(p.stderr.startswith("ringmailctl: config invalid: "), p.stderr)
        self.assertIn("ringmail.yaml:", p.stderr)
        self.assertIn("bogus_key", p.stderr)
        # With -c, ringmailctl reads the same file first and says what is wrong in it.
        p = self.ctl("reload", rm=rm)
        self.assertEqual(p.returncode, 1)
        self.assertIn("ringmail.yaml:", p.stderr)
        self.assertIn("bogus_key", p.stderr)
        # The old config is still in force.
        self.assertEqual(api.get("/api/v1/stats")[0], 200)
        rm.stop()


class Events(CtlCase):
    def spawn_ctl(self, *args):
        proc = subprocess.Popen([ringmailctl_path()] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

        def cleanup():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            proc.stdout.close()
            proc.stderr.close()
        self.addCleanup(cleanup)
        return proc

    def read_line(self, proc, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                return proc.stdout.readline()
            if proc.poll() is not None:
                return ""
        return ""

    def test_events_follow_the_delivery_log_until_the_daemon_stops(self):
        self.receiver("127.0.0.2")  # where the route delivers
        rm, api = self.daemon_with_api(routes=self.route_to("127.0.0.2", self.smtp_port))
        site = f"127.0.0.2:{self.smtp_port}"
        human = self.spawn_ctl("-c", rm.config_path, "events", "--types", "Delivery")
        as_json = self.spawn_ctl("-c", rm.config_path, "--json", "tail")
        # A stream sees only what is written after it connects, and nothing
        # says when that is: send until the first record shows up.
        line = ""
        deadline = time.monotonic() + WAIT
        while not line and time.monotonic() < deadline and human.poll() is None:
            self.send(rm, "live@a.ctl.test", "live")
            line = self.read_line(human, 3.0)
        self.assertTrue(line, human.stderr.read() if human.poll() is not None else "no line")
        fields = line.split(" ", 5)
        self.assertTrue(fields[0].endswith("Z"), line)
        self.assertEqual(fields[1:5], ["Delivery", "live@a.ctl.test", site, "250"], line)

        records = []
        deadline = time.monotonic() + WAIT
        while not any(r["type"] == "Delivery" for r in records):
            self.assertLess(time.monotonic(), deadline, f"no Delivery on --json: {records}")
            line = self.read_line(as_json, 3.0)
            if line:
                records.append(json.loads(line))  # one compact record a line
            else:
                self.send(rm, "live@a.ctl.test", "live")
        self.assertEqual(records[-1]["recipient"], "live@a.ctl.test")
        self.assertEqual(records[-1]["response"]["code"], 250)

        rm.stop()
        for proc in (human, as_json):
            self.assertEqual(proc.wait(timeout=WAIT), 0, proc.stderr.read())


class Failures(CtlCase):
    def test_wrong_token_unreachable_api_and_missing_admin_section(self):
        rm, api = self.daemon_with_api()
        wrong = os.path.join(rm.dir, "wrong.token")
        with open(wrong, "w") as f:
            f.write("not-the-token\n")
        p = self.ctl("--token-file", wrong, "status", rm=rm)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertEqual(p.stderr,
                         "ringmailctl: unauthorized: the bearer token is not the admin token\n")

        # A 404 (no such message, or a route still to come) is exit 1 with its text.
        p = self.ctl("message", "no-such-message", rm=rm)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertRegex(p.stderr, r"^ringmailctl: [^\n]+: [^\n]+\n$")

        dead = free_port()
        p = self.ctl("--admin", f"http://127.0.0.1:{dead}", "--token-file", wrong, "status")
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith(f"ringmailctl: cannot reach http://127.0.0.1:{dead}: "),
                        p.stderr)
        rm.stop()

        plain = self.ringmail()  # no admin: section
        p = self.ctl("status", rm=plain)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, "ringmailctl: admin API not configured (admin.address)\n")

        p = self.ctl("-c", os.path.join(plain.dir, "missing.yaml"), "status")
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.yaml", p.stderr)

    def test_bad_usage_is_exit_2_with_the_usage(self):
        for args, message in [
            ([], "no verb given"),
            (["frobnicate"], 'unknown verb "frobnicate"'),
            (["suspend"], "suspend needs a site (or --domain DOMAIN)"),
            (["suspend", "gmail", "soon"], 'suspend: "soon" is not a duration like 30m, 4h, 2d'),
            (["bounce", "--reason", "x"],
             "bounce needs one of --site, --domain, --campaign, --tenant"),
            (["queue", "--colour", "red"], "queue: unknown option --colour"),
            (["--admin", "http://127.0.0.1:1", "status"], "--admin needs --token-file"),
        ]:
            p = self.ctl(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertEqual(p.stdout, "", args)
            self.assertTrue(p.stderr.startswith(f"ringmailctl: {message}\nusage: ringmailctl "),
                            (args, p.stderr))
        p = self.ctl("--help")
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith("usage: ringmailctl "))


if __name__ == "__main__":
    unittest.main()
