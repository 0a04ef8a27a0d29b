"""The HTTP injection API (POST /api/v1/messages) against a running ringmaild:
raw and built messages go the SMTP submission path (Received, campaign,
milters, DKIM, spool, Reception records with listener "api") and are
delivered through a static route to an aiosmtpd receiver on loopback.

What is checked is what an application and its recipients see: the status
and JSON of each answer, the bytes the receiver got (parsed back with
Python's email package), DKIM verified by dkimpy, the delivery log, and what
is left in the spool after a refusal (nothing)."""

import email
import email.policy
import hashlib
import json
import os
import secrets
import subprocess
import tempfile
import unittest

from admin_client import Api, write_token
from harness import free_port
from peers import wait_until
from test_delivery import DeliveryCase, short_timeouts
from test_dkim import KeyDir, run_verifier
from test_milter import start_test_milter
from test_ringmailctl import ringmailctl_path

WAIT = 20.0
HOSTNAME = "mx.ringmail.test"
RX_IP = "127.0.0.2"


def dkimpy_missing():
    if subprocess.run(["/usr/bin/python3", "-c", "import dkim"],
                      capture_output=True).returncode != 0:
        return "dkimpy missing (apt-get install python3-dkim)"
    return None


class InjectionCase(DeliveryCase):
    """A daemon with the admin API, one tenant API key, a DKIM key for
    example.test and every *.inject.test domain routed to one receiver."""

    @classmethod
    def setUpClass(cls):
        missing = dkimpy_missing()
        if missing:
            raise unittest.SkipTest(missing)
        cls.keys = KeyDir()
        cls.dkim_key = cls.keys.key("inject.pem", "-algorithm", "RSA",
                                    "-pkeyopt", "rsa_keygen_bits:2048")
        cls.keys.publish("inj", "example.test", cls.dkim_key)

    @classmethod
    def tearDownClass(cls):
        cls.keys.remove()

    def daemon(self, limits=None, milters=None, keys=None, start=True):
        """(rm, api, api_key): keys is {tenant: key} (default one key for app1)."""
        self.rx = self.receiver(RX_IP)
        if keys is None:
            keys = {"app1": "key-" + secrets.token_hex(16)}
        overrides = {
            "delivery": {
                "dns": {"nameservers": [f"127.0.0.1:{free_port()}"]},
                "smtp_port": self.smtp_port,
                "retry": {"intervals": ["1s", "2s"], "max_age": "1h"},
                "idle_timeout": "2s",
                "timeouts": short_timeouts(),
                "routes": [{"domain": "*.inject.test",
                            "smarthost": f"{RX_IP}:{self.smtp_port}"}],
            },
            "admin": {"address": f"127.0.0.1:{free_port()}", "token_file": "admin.token",
                      "api_keys_file": "api-keys.yaml"},
            "dkim": [{"domain": "example.test", "selector": "inj",
                      "private_key": self.dkim_key}],
        }
        if limits:
            overrides["limits"] = limits
        if milters:
            overrides["milters"] = milters
        rm = self.ringmail(overrides=overrides)
        token = write_token(rm)
        with open(os.path.join(rm.dir, "api-keys.yaml"), "w") as f:
            f.write("# tenant API keys: only their SHA-256\n")
            for tenant, key in keys.items():
                f.write(f"- {{tenant: {tenant}, sha256: "
                        f"{hashlib.sha256(key.encode()).hexdigest()}}}\n")
        if start:
            rm.start()
        self.rm, self.api = rm, Api(rm, token)
        return rm, self.api, next(iter(keys.values()), None)

    def inject(self, body, key=None, expect=200):
        status, parsed, resp, payload = self.api.post(
            "/api/v1/messages", body, **({"token": key} if key else {}))
        self.assertEqual(status, expect, f"{body!r:.300} -> {status} {payload[:500]!r}")
        return parsed, resp

    def delivered(self, count):
        got = wait_until(lambda: len(self.rx.messages()) >= count and self.rx.messages(), WAIT)
        self.assertTrue(got, f"receiver got {self.rx!r}" + self.rm.stderr_tail())
        return got

    def receptions(self, qid):
        return wait_until(lambda: [r for r in self.rm.delivery_log("Reception")
                                   if r["id"] == qid], WAIT)

    def assert_dkim_verifies(self, content):
        path = os.path.join(self.rm.dir, "delivered.eml")
        with open(path, "wb") as f:
            f.write(content)
        rc, out = run_verifier("dkimpy", self.keys.keys_file, path)
        self.assertEqual(rc, 0, out)
        self.assertIn("PASS", out)


RAW = ("From: App <app@example.test>\n"
       "To: one@a.inject.test, two@b.inject.test\n"
       "Subject: raw injection\n"
       "X-Campaign-ID: spring-sale\n"
       "\n"
       "First line with a bare LF.\n"
       ".a line that SMTP would dot-stuff\n"
       "Last line\n")


class Forms(InjectionCase):
    def test_raw_form_is_delivered_byte_correct_signed_and_logged(self):
        self.daemon()
        answer, _ = self.inject({"envelope_sender": "bounces@example.test",
                                 "recipients": ["one@a.inject.test", "two@b.inject.test"],
                                 "content": RAW})
        self.assertEqual(set(answer), {"id", "recipients"})
        self.assertEqual(answer["recipients"], 2)
        qid = answer["id"]
        txns = self.delivered(2)  # one transaction per domain
        self.assertEqual([t.mail_from for t in txns], ["bounces@example.test"] * 2)
        self.assertEqual(sorted(a for t in txns for a in t.accepted),
                         ["one@a.inject.test", "two@b.inject.test"])
        self.assertEqual(txns[0].content, txns[1].content)
        content = txns[0].content
        # Received and DKIM-Signature above the message as given, in CRLF,
        # without the campaign header, Message-ID and Date added at the end
        # of the header section.
        head, _, body = content.partition(b"\r\n\r\n")
        self.assertEqual(body, b"First line with a bare LF.\r\n"
                               b".a line that SMTP would dot-stuff\r\nLast line\r\n")
        self.assertNotIn(b"\n", content.replace(b"\r\n", b""), "a bare LF was delivered")
        self.assertNotIn(b"X-Campaign-ID", content)
        lines = head.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"DKIM-Signature:"), lines[0])
        received = head[head.index(b"Received:"):].split(b"\r\nFrom:")[0]
        self.assertIn(b"from api", received)
        self.assertIn(b"with HTTP id " + qid.encode(), received.replace(b"\r\n\t", b" "))
        self.assertIn(b"by " + HOSTNAME.encode() + b" (Ringmail)", received)
        given = (b"From: App <app@example.test>\r\nTo: one@a.inject.test, two@b.inject.test\r\n"
                 b"Subject: raw injection\r\n")
        self.assertIn(b"\r\n" + given + b"Message-ID: <" + qid.encode() + b"@" +
                      HOSTNAME.encode() + b">\r\nDate: ", head + b"\r\n")
        self.assert_dkim_verifies(content)

        receptions = self.receptions(qid)
        self.assertEqual(len(receptions), 2, receptions)
        for r in receptions:
            self.assertEqual(r["listener"], "api")
            self.assertEqual(r["tenant"], "api")
            self.assertEqual(r["campaign"], "spring-sale")
            self.assertEqual(r["sender"], "bounces@example.test")
            self.assertEqual(r["client_ip"], "127.0.0.1")
        deliveries = wait_until(lambda: len(self.records(self.rm, "Delivery", qid=qid)) == 2, WAIT)
        self.assertTrue(deliveries, self.rm.delivery_log())
        status, text, _, metrics = self.api.get("/metrics", token=False)
        self.assertIn(b'ringmail_messages_received_total{listener="api"} 1', metrics)
        self.assertIn(b'ringmail_dkim_signatures_total{algorithm="rsa-sha256",'
                      b'domain="example.test"} 1', metrics)
        self.rm.stop()

    def test_built_form_is_mime_the_receiver_can_read(self):
        self.daemon()
        # Mostly ASCII: quoted-printable; mostly not: base64.
        text = ("Greetings from Köln, in a text that is mostly plain ASCII.\n"
                "A second line, and a snowman ☃ at the end.\n")
        html = "<p>日本語のテキスト</p>\n<p>second <b>part</b></p>\n"
        subject = "Résumé of the café ☃ — a subject long enough to need folding " * 2
        answer, _ = self.inject({
            "from": "Élodie Ünicöde <elodie@example.test>",
            "to": ["Bob Example <bob@a.inject.test>", "plain@a.inject.test"],
            "cc": ["\"Doe, Carol\" <carol@b.inject.test>"],
            "bcc": ["hidden@c.inject.test", "Bob Again <bob@A.INJECT.TEST>"],
            "reply_to": "Replies <replies@example.test>",
            "subject": subject.strip(),
            "text": text,
            "html": html,
            "headers": {"List-Unsubscribe": "<mailto:unsub@example.test>",
                        "X-Order": "Nº 42"},
            "campaign": "autumn",
        })
        # bob@ twice (to and bcc, domain in other case) is one recipient.
        self.assertEqual(answer["recipients"], 4)
        qid = answer["id"]
        txns = self.delivered(3)  # one transaction per domain, one message for all
        self.assertEqual(len({t.content for t in txns}), 1)
        accepted = sorted(a for t in txns for a in t.accepted)
        self.assertEqual(accepted, ["bob@a.inject.test", "carol@b.inject.test",
                                    "hidden@c.inject.test", "plain@a.inject.test"])
        content = txns[0].content
        self.assertNotIn(b"\n", content.replace(b"\r\n", b""), "a bare LF was delivered")
        self.assertTrue(all(len(line) <= 998 for line in content.split(b"\r\n")))
        self.assertTrue(all(b < 0x80 for b in content), "8-bit bytes in a built message")
        msg = email.message_from_bytes(content, policy=email.policy.default)
        self.assertEqual(str(msg["subject"]), subject.strip())
        [sender] = msg["from"].addresses
        self.assertEqual(sender.display_name, "Élodie Ünicöde")
        self.assertEqual(sender.addr_spec, "elodie@example.test")
        self.assertEqual([a.addr_spec for a in msg["to"].addresses],
                         ["bob@a.inject.test", "plain@a.inject.test"])
        self.assertEqual(msg["cc"].addresses[0].display_name, "Doe, Carol")
        self.assertEqual(msg["reply-to"].addresses[0].addr_spec, "replies@example.test")
        self.assertIsNone(msg["bcc"])
        self.assertNotIn(b"hidden@", content)
        self.assertEqual(msg["message-id"], f"<{qid}@{HOSTNAME}>")
        self.assertIsNotNone(msg["date"].datetime)
        self.assertEqual(str(msg["x-order"]), "Nº 42")
        self.assertEqual(str(msg["list-unsubscribe"]), "<mailto:unsub@example.test>")
        self.assertNotIn("x-campaign-id", (k.lower() for k in msg.keys()))
        self.assertEqual(msg.get_content_type(), "multipart/alternative")
        parts = list(msg.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts], ["text/plain", "text/html"])
        self.assertEqual([p.get_content_charset() for p in parts], ["utf-8", "utf-8"])
        self.assertEqual(parts[0]["content-transfer-encoding"], "quoted-printable")
        self.assertEqual(parts[1]["content-transfer-encoding"], "base64")
        self.assertEqual(parts[0].get_content().replace("\r\n", "\n"), text)
        self.assertEqual(parts[1].get_content().replace("\r\n", "\n"), html)
        self.assert_dkim_verifies(content)
        receptions = self.receptions(qid)
        self.assertEqual(len(receptions), 4)
        self.assertEqual({r["campaign"] for r in receptions}, {"autumn"})
        self.assertEqual({r["listener"] for r in receptions}, {"api"})
        self.assertEqual({r["sender"] for r in receptions}, {"elodie@example.test"})
        self.rm.stop()

    def test_text_only_and_html_only(self):
        self.daemon()
        self.inject({"from": "a@example.test", "to": ["t@a.inject.test"], "subject": "ascii",
                     "text": "just ascii\nin two lines\n"})
        self.inject({"from": "a@example.test", "to": "h@a.inject.test", "subject": "",
                     "html": "<p>only html</p>"})
        txns = self.delivered(2)
        by_rcpt = {t.accepted[0]: email.message_from_bytes(t.content, policy=email.policy.default)
                   for t in txns}
        plain = by_rcpt["t@a.inject.test"]
        self.assertEqual(plain.get_content_type(), "text/plain")
        self.assertIn(plain["content-transfer-encoding"], (None, "7bit"))
        self.assertEqual(plain.get_content().replace("\r\n", "\n"), "just ascii\nin two lines\n")
        html = by_rcpt["h@a.inject.test"]
        self.assertEqual(html.get_content_type(), "text/html")
        self.assertEqual(html.get_content().strip(), "<p>only html</p>")
        self.rm.stop()


class Auth(InjectionCase):
    def test_api_keys_good_wrong_and_admin_only_routes(self):
        rm, api, key = self.daemon(keys={"app1": "k1-" + secrets.token_hex(8),
                                         "app2": "k2-" + secrets.token_hex(8)})
        body = {"envelope_sender": "a@example.test", "recipients": ["k@a.inject.test"],
                "content": "Subject: by key\r\n\r\nhi\r\n"}
        answer, _ = self.inject(body, key=key)
        self.assertEqual([r["tenant"] for r in self.receptions(answer["id"])], ["app1"])
        # Its own tenant may be named; another may not.
        self.inject(dict(body, tenant="app1"), key=key)
        refused, _ = self.inject(dict(body, tenant="app2"), key=key, expect=400)
        self.assertIn("tenant", refused["detail"])
        # The admin token picks any tenant.
        answer, _ = self.inject(dict(body, tenant="t9"))
        self.assertEqual([r["tenant"] for r in self.receptions(answer["id"])], ["t9"])

        for wrong in ("not-a-key", key + "x", key[:-1]):
            status, parsed, resp, _ = api.post("/api/v1/messages", body, token=wrong)
            self.assertEqual(status, 401, wrong)
            self.assertEqual(resp.getheader("WWW-Authenticate"), 'Bearer realm="ringmail"')
            self.assertEqual(set(parsed), {"error", "detail"})
        status, _, _, _ = api.post("/api/v1/messages", body, token=False)
        self.assertEqual(status, 401)
        # A key injects and does nothing else.
        for method, path, payload in [("GET", "/api/v1/stats", None),
                                      ("GET", "/api/v1/queue", None),
                                      ("POST", "/api/v1/reload", None),
                                      ("POST", "/api/v1/queue/bounce", {"site": "x"}),
                                      ("GET", "/api/v1/messages", None)]:
            status, parsed, _, _ = api.request(method, path, body=payload, token=key)
            self.assertEqual(status, 401, f"{method} {path} with an API key")
            self.assertIn("may only inject", parsed["detail"])
        self.assertEqual(api.get("/api/v1/stats")[0], 200)
        rm.stop()

    def test_keys_file_is_checked_and_reread_on_reload(self):
        rm, api, key = self.daemon(start=False)
        keys_path = os.path.join(rm.dir, "api-keys.yaml")
        with open(keys_path, "w") as f:
            f.write("- {tenant: app1, sha256: nothex}\n- {tenant: app2}\n")
        out = rm.run_cli("--check-config")
        self.assertEqual(out.returncode, 1)
        err = out.stderr.decode()
        self.assertIn(f"{keys_path}:1: api_keys[0].sha256: not a SHA-256", err)
        self.assertIn(f"{keys_path}:2: api_keys[1].sha256: required", err)
        self.assertIn("admin.api_keys_file: the API keys file", err)

        first, second = "first-" + secrets.token_hex(8), "second-" + secrets.token_hex(8)
        with open(keys_path, "w") as f:
            f.write(f"- {{tenant: app1, sha256: {hashlib.sha256(first.encode()).hexdigest()}}}\n")
        self.assertEqual(rm.run_cli("--check-config").returncode, 0)
        rm.start()
        body = {"envelope_sender": "a@example.test", "recipients": ["r@a.inject.test"],
                "content": "Subject: x\r\n\r\nx\r\n"}
        self.inject(body, key=first)
        with open(keys_path, "w") as f:
            f.write(f"- {{tenant: app1, sha256: {hashlib.sha256(second.encode()).hexdigest()}}}\n")
        self.assertEqual(api.ok("POST", "/api/v1/reload"), {"status": "reloaded"})
        self.inject(body, key=first, expect=401)
        self.inject(body, key=second)
        rm.stop()


class Refusals(InjectionCase):
    LIMITS = {"max_message_size": "64KiB", "max_recipients": 5, "max_connections": 200,
              "max_connections_per_ip": 0, "idle_timeout": "60s", "shutdown_timeout": "10s"}

    def test_every_400_and_413_names_the_field_and_queues_nothing(self):
        rm, api, _ = self.daemon(limits=self.LIMITS)
        raw = {"envelope_sender": "a@example.test", "recipients": ["r@a.inject.test"],
               "content": "Subject: x\r\n\r\nbody\r\n"}
        built = {"from": "A <a@example.test>", "to": ["r@a.inject.test"], "subject": "s",
                 "text": "t"}

        def without(d, key):
            return {k: v for k, v in d.items() if k != key}

        cases = [
            # (name, body, status, field that the detail starts with)
            ("missing sender", without(raw, "envelope_sender"), 400, "envelope_sender"),
            ("bad sender", dict(raw, envelope_sender="not an address"), 400, "envelope_sender"),
            ("sender type", dict(raw, envelope_sender=5), 400, "envelope_sender"),
            ("missing recipients", without(raw, "recipients"), 400, "recipients"),
            ("recipients type", dict(raw, recipients="r@a.inject.test"), 400, "recipients"),
            ("no recipient", dict(raw, recipients=[]), 400, "recipients"),
            ("bad recipient", dict(raw, recipients=["r@a.inject.test", "x@@y"]), 400,
             "recipients[1]"),
            ("recipient type", dict(raw, recipients=[7]), 400, "recipients[0]"),
            ("too many", dict(raw, recipients=[f"r{i}@a.inject.test" for i in range(6)]), 400,
             "recipients"),
            ("content type", dict(raw, content=["x"]), 400, "content"),
            ("NUL", dict(raw, content="Subject: x\r\n\r\na\0b\r\n"), 400, "content"),
            ("long line", dict(raw, content="Subject: x\r\n\r\n" + "x" * 999 + "\r\n"), 400,
             "content"),
            ("malformed head", dict(raw, content=" folded first\r\n\r\nx\r\n"), 400, "content"),
            ("built field in raw", dict(raw, subject="s"), 400, "subject"),
            ("missing from", without(built, "from"), 400, "from"),
            ("from not mailbox", dict(built, **{"from": "Name <not an address>"}), 400, "from"),
            ("from group", dict(built, **{"from": "group: a@example.test;"}), 400, "from"),
            ("two froms", dict(built, **{"from": "a@example.test, b@example.test"}), 400,
             "from"),
            ("no to", without(built, "to"), 400, "to"),
            ("to type", dict(built, to=5), 400, "to"),
            ("bad to", dict(built, to=["ok@a.inject.test", "nope"]), 400, "to[1]"),
            ("bad cc", dict(built, cc=["x@"]), 400, "cc[0]"),
            ("bad bcc", dict(built, bcc=[None]), 400, "bcc[0]"),
            ("too many built", dict(built, bcc=[f"b{i}@a.inject.test" for i in range(5)]), 400,
             "recipients"),
            ("bad reply_to", dict(built, reply_to="nobody"), 400, "reply_to"),
            ("missing subject", without(built, "subject"), 400, "subject"),
            ("subject newline", dict(built, subject="a\r\nBcc: x@y.test"), 400, "subject"),
            ("no body", without(built, "text"), 400, "text"),
            ("html type", dict(built, html=True), 400, "html"),
            ("headers type", dict(built, headers=["X-A: b"]), 400, "headers"),
            ("reserved header", dict(built, headers={"Bcc": "x@y.test"}), 400, "headers.Bcc"),
            ("content header", dict(built, headers={"Content-Type": "text/x"}), 400,
             "headers.Content-Type"),
            ("bad header name", dict(built, headers={"X Space": "v"}), 400, "headers"),
            ("header newline", dict(built, headers={"X-A": "v\r\nBcc: x@y.test"}), 400,
             "headers.X-A"),
            ("header value type", dict(built, headers={"X-A": 1}), 400, "headers.X-A"),
            ("recipients in built", dict(built, recipients=["r@a.inject.test"]), 400,
             "recipients"),
            ("campaign type", dict(built, campaign=3), 400, "campaign"),
            ("tenant spaces", dict(built, tenant="a b"), 400, "tenant"),
            ("unknown field", dict(built, colour="red"), 400, "\"colour\""),
            ("raw too large", dict(raw, content="Subject: x\r\n\r\n" +
                                   ("y" * 70 + "\r\n") * 1000), 413, "limits.max_message_size"),
            # 60 KB of text in the body, over 64 KiB once base64-encoded.
            ("built too large", dict(built, text=("ü" * 300 + "\n") * 100), 413,
             "the built message"),
        ]
        for name, body, status, field in cases:
            with self.subTest(name):
                got, parsed, _, payload = api.request(
                    "POST", "/api/v1/messages", raw=json.dumps(body, ensure_ascii=False).encode(),
                    headers={"Content-Type": "application/json"})
                self.assertEqual(got, status, f"{name}: {payload[:300]!r}")
                self.assertEqual(set(parsed), {"error", "detail"}, name)
                if status == 400:
                    self.assertTrue(parsed["detail"].startswith(field),
                                    f"{name}: {parsed['detail']!r}")
                else:
                    self.assertIn(field, parsed["detail"], name)
        for raw_body, why in [(b"{not json", "malformed JSON"), (b"[1,2]", "bad request"),
                              (b"", "bad request")]:
            got, parsed, _, _ = api.request("POST", "/api/v1/messages", raw=raw_body,
                                            headers={"Content-Type": "application/json"})
            self.assertEqual((got, parsed["error"]), (400, why))
        got, _, resp, _ = api.get("/api/v1/messages")
        self.assertEqual((got, resp.getheader("Allow")), (405, "POST"))
        # A body over limits.max_message_size is refused from its
        # Content-Length, before it is read.
        status, parsed, resp, _ = api.request(
            "POST", "/api/v1/messages",
            raw=json.dumps(dict(raw, content="x" * (70 * 1024))).encode())
        self.assertEqual(status, 413)
        self.assertIn("limits.max_message_size", parsed["detail"])

        rm.stop()
        self.assertEqual(rm.spool_dump(), [], "a refused request left mail in the spool")
        self.assertEqual(rm.delivery_log("Reception"), [])
        self.assertEqual(self.rx.all_transactions(), [])

    def test_milter_verdicts(self):
        port = start_test_milter(self)
        rm, api, _ = self.daemon(milters=[{"name": "test", "address": f"127.0.0.1:{port}",
                                           "on_failure": "tempfail", "timeout": "5s"}])

        def raw(action):
            return {"envelope_sender": "a@example.test", "recipients": ["m@a.inject.test"],
                    "content": f"From: a@example.test\r\nSubject: milter\r\n"
                               f"X-Test-Action: {action}\r\n\r\nbody\r\n"}

        accepted, _ = self.inject(raw("continue"))
        refused, _ = self.inject(raw("reject"), expect=422)
        self.assertTrue(refused["detail"].startswith("550"), refused)
        later, resp = self.inject(raw("tempfail"), expect=503)
        self.assertTrue(later["detail"].startswith("451"), later)
        self.assertEqual(resp.getheader("Retry-After"), "60")
        custom, _ = self.inject(raw("replycode"), expect=422)
        self.assertIn("5.7.9", custom["detail"])
        discarded, _ = self.inject(raw("discard"))
        quarantined, _ = self.inject(raw("quarantine"))
        self.delivered(1)
        rm.stop()
        states = {r["id"]: r["state"] for r in rm.spool_dump()}
        self.assertNotIn(discarded["id"], states)
        self.assertEqual(states.get(quarantined["id"]), "quarantined")
        ids = {r["id"] for r in rm.delivery_log("Reception")}
        self.assertEqual(ids, {accepted["id"], quarantined["id"]})


class Ctl(InjectionCase):
    def ctl(self, *args, stdin=None):
        return subprocess.run([ringmailctl_path(), "-c", self.rm.config_path, *args],
                              capture_output=True, text=True, timeout=40, cwd=self.rm.dir,
                              input=stdin)

    def test_send_a_file_and_a_built_message(self):
        self.daemon()
        path = os.path.join(self.rm.dir, "message.eml")
        with open(path, "w") as f:
            f.write(RAW)
        p = self.ctl("send", "--from", "app@example.test", "--to", "one@a.inject.test",
                     "--to", "two@b.inject.test", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^queued as [0-9a-f]{20} \(2 recipients\)\n$")
        p = self.ctl("--json", "send", "--from", "Élodie <app@example.test>", "--to",
                     "three@a.inject.test", "--subject", "from ctl ☃", "--text", "hello",
                     "--html", "<p>hello</p>", "--campaign", "ctl")
        self.assertEqual(p.returncode, 0, p.stderr)
        answer = json.loads(p.stdout)
        self.assertEqual(answer["recipients"], 1)
        p = self.ctl("send", "--from", "app@example.test", "--to", "four@a.inject.test", "-",
                     stdin="Subject: stdin\n\nfrom stdin\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        txns = self.delivered(3)
        built = next(t for t in txns if "three@a.inject.test" in t.accepted)
        msg = email.message_from_bytes(built.content, policy=email.policy.default)
        self.assertEqual(str(msg["subject"]), "from ctl ☃")
        self.assertEqual(msg.get_content_type(), "multipart/alternative")
        self.assertEqual([r["campaign"] for r in self.receptions(answer["id"])], ["ctl"])
        bad = self.ctl("send", "--from", "app@example.test", "--to", "nope", path)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("recipients[0]", bad.stderr)
        usage = self.ctl("send", "--to", "x@a.inject.test", path)
        self.assertEqual(usage.returncode, 2)
        self.rm.stop()


if __name__ == "__main__":
    unittest.main()
