"""swaks against ringmaild: STARTTLS + AUTH PLAIN/LOGIN on submission,
wrong password, AUTH refused before TLS, pipelining, relay from loopback."""

import base64
import subprocess

from harness import (DEFAULT_PASSWORD, DEFAULT_USER, QUEUED_RE, DaemonTestCase,
                     SmtpConn)


def swaks(port, *args, timeout=30):
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(port),
            "--helo", "client.ringmail.test", "--timeout", "20"] + list(args)
    p = subprocess.run(argv, capture_output=True, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    return p.returncode, out


# A line swaks received: "<- ", "<~ ", "<**" or "<~*" then the reply.
RECV = r"(?m)^ ?<\S* +"


def queued_ids(output):
    return QUEUED_RE.findall(output)


class SwaksTest(DaemonTestCase):

    def setUp(self):
        self.rm = self.ringmail()
        self.rm.start()
        self.sub = self.rm.port("submission")

    def submit(self, *extra, to="rcpt@example.net", frm="sender@example.test"):
        return swaks(self.sub, "--from", frm, "--to", to, *extra)

    def test_starttls_auth_plain_and_login(self):
        ids = {}
        for mech in ("PLAIN", "LOGIN"):
            rc, out = self.submit("--tls", "--auth", mech, "--auth-user", DEFAULT_USER,
                                  "--auth-password", DEFAULT_PASSWORD,
                                  "--header", f"Subject: swaks {mech}",
                                  to=f"{mech.lower()}@example.net")
            self.assertEqual(rc, 0, out)
            self.assertRegex(out, r"(?m)^ ?~> +AUTH " + mech, "AUTH must be sent over TLS")
            self.assertRegex(out, RECV + r"235 2\.7\.0", out)
            found = queued_ids(out)
            self.assertEqual(len(found), 1, out)
            self.assertRegex(out, RECV + r"250 2\.0\.0 Ok: queued as ")
            ids[mech] = found[0]
        self.assertNotEqual(ids["PLAIN"], ids["LOGIN"])
        self.rm.stop()
        dump = self.rm.spool_dump()
        by_id = {r["id"]: r for r in dump}
        for mech, qid in ids.items():
            self.assertIn(qid, by_id, f"{mech} message {qid} not in spool dump: {dump}")
            row = by_id[qid]
            self.assertEqual(row["recipient"], f"{mech.lower()}@example.net")
            self.assertEqual(row["sender"], "sender@example.test")
            self.assertEqual(row.get("tenant"), DEFAULT_USER, row)
            self.assertIn(row["state"], ("queued", "deferred"), row)
        self.assertEqual(len(dump), 2, dump)
        receptions = {r["id"]: r for r in self.rm.delivery_log("Reception")}
        for qid in ids.values():
            self.assertIn(qid, receptions)
            self.assertEqual(receptions[qid].get("tenant"), DEFAULT_USER)

    def test_wrong_password(self):
        rc, out = self.submit("--tls", "--auth", "PLAIN", "--auth-user", DEFAULT_USER,
                              "--auth-password", "not-the-password")
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, RECV + r"535 5\.7\.8", out)
        self.assertEqual(queued_ids(out), [])
        rc, out = self.submit("--tls", "--auth", "LOGIN", "--auth-user", "nosuchuser",
                              "--auth-password", DEFAULT_PASSWORD)
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, RECV + r"535 5\.7\.8", out)
        # Unauthenticated mail on submission: 530 5.7.0 at MAIL FROM.
        rc, out = self.submit("--tls")
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, RECV + r"530 5\.7\.0", out)
        self.rm.stop()
        self.assertEqual(self.rm.spool_dump(), [])

    def test_auth_refused_before_starttls(self):
        # swaks refuses on its own when AUTH is not advertised; either way no 235.
        rc, out = self.submit("--auth", "PLAIN", "--auth-user", DEFAULT_USER,
                              "--auth-password", DEFAULT_PASSWORD)
        self.assertNotEqual(rc, 0, out)
        self.assertNotRegex(out, RECV + r"235", out)
        self.assertEqual(queued_ids(out), [])
        # Force it over a raw connection: AUTH must be refused in clear text.
        with SmtpConn(self.sub) as c:
            self.assertEqual(c.read_reply().code, 220)
            ehlo = c.ehlo()
            self.assertEqual(ehlo.code, 250)
            self.assertTrue(any(l.upper().startswith("STARTTLS") for l in ehlo.lines), ehlo)
            self.assertFalse(any(l.upper().startswith("AUTH") for l in ehlo.lines),
                             f"AUTH advertised before TLS: {ehlo}")
            token = base64.b64encode(f"\0{DEFAULT_USER}\0{DEFAULT_PASSWORD}".encode()).decode()
            r = c.cmd("AUTH PLAIN " + token)
            self.assertGreaterEqual(r.code, 500, r)
            self.assertLess(r.code, 600, r)
            self.assertTrue(r.enhanced.startswith("5.7."), r)
            r = c.cmd("MAIL FROM:<sender@example.test>")
            self.assertReply(r, 530, "5.7.0")
            self.assertEqual(c.cmd("QUIT").code, 221)

    def test_pipelining(self):
        rc, out = self.submit("--tls", "--auth", "PLAIN", "--auth-user", DEFAULT_USER,
                              "--auth-password", DEFAULT_PASSWORD, "--pipeline",
                              "--to", "p1@example.net,p2@example.net,p3@example.net")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, RECV + r"250-PIPELINING", out)
        ids = queued_ids(out)
        self.assertEqual(len(ids), 1, out)
        self.rm.stop()
        rows = [r for r in self.rm.spool_dump() if r["id"] == ids[0]]
        self.assertEqual(sorted(r["recipient"] for r in rows),
                         ["p1@example.net", "p2@example.net", "p3@example.net"])

    def test_relay_from_loopback(self):
        relay = self.rm.port("relay")
        rc, out = swaks(relay, "--from", "app@example.test", "--to", "r1@example.net",
                        "--header", "X-Campaign-ID: swaks-relay")
        self.assertEqual(rc, 0, out)
        ids = queued_ids(out)
        self.assertEqual(len(ids), 1, out)
        # And with STARTTLS on the relay listener.
        rc, out = swaks(relay, "--tls", "--from", "app@example.test", "--to", "r2@example.net")
        self.assertEqual(rc, 0, out)
        ids += queued_ids(out)
        self.assertEqual(len(ids), 2, out)
        self.rm.stop()
        by_id = {r["id"]: r for r in self.rm.spool_dump()}
        self.assertEqual(by_id[ids[0]]["recipient"], "r1@example.net")
        self.assertEqual(by_id[ids[0]].get("campaign"), "swaks-relay")
        self.assertEqual(by_id[ids[1]]["recipient"], "r2@example.net")
        for qid in ids:
            self.assertTrue(by_id[qid].get("tenant"), by_id[qid])


if __name__ == "__main__":
    import unittest
    unittest.main()
