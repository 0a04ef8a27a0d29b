"""One-click unsubscribe end to end (CONTRACT "Feedback, suppression and
compliance in detail"): with policy.list_unsubscribe, a campaign message to
two recipients reaches the aiosmtpd receiver as two copies, each with its
own List-Unsubscribe URL and List-Unsubscribe-Post, both fields in the DKIM
signature's h= and the copy valid under dkimpy; GET on the URL shows a
confirm page and changes nothing; a forged token is 404; the one-click POST
answers 200 once the recipient is suppressed, logs Feedback unsubscribe,
and the next message to that recipient is logged Suppressed and not
delivered; mail without a campaign gets no fields."""

import http.client
import os
import re
import shutil
import subprocess
import tempfile

from harness import free_port, send_message
from test_delivery import SENDER, DeliveryCase
from test_dkim import PYTHON, KeyDir, dkim_signatures
from test_verp import campaign_message, dkimpy, values

KEY = b"unsubscribe-integration-key-0123456789abcdef"


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, payload.decode("utf-8", "replace")


class UnsubscribeTest(DeliveryCase):

    def setUp(self):
        super().setUp()
        self.keydir = tempfile.mkdtemp(prefix="ringmail-it-unsub-")
        self.addCleanup(shutil.rmtree, self.keydir, True)
        self.key_file = os.path.join(self.keydir, "unsubscribe.key")
        with open(self.key_file, "wb") as f:
            f.write(KEY + b"\n")
        self.dns_server = self.dns(mx={"unsub.test": [(10, "mx.unsub.test")]},
                                   hosts={"mx.unsub.test": "127.0.0.2"})
        self.http_port = free_port()

    def start(self, **top):
        policy = {"list_unsubscribe": {
            "listen": f"127.0.0.1:{self.http_port}",
            "url": f"http://127.0.0.1:{self.http_port}/u",
            "mailto_domain": "unsubscribe.test",
            "key_file": self.key_file}}
        return self.daemon(self.dns_server.address, policy=policy, **top)

    def submit(self, rm, rcpts, text=None):
        reply = send_message(rm.port("relay"), SENDER, rcpts, text or campaign_message(rcpts))
        self.assertEqual(reply.code, 250, reply)
        return reply.queued_id()

    def test_per_recipient_signed_fields_and_the_one_click_post(self):
        if subprocess.run([PYTHON, "-c", "import dkim"], capture_output=True).returncode:
            self.skipTest("dkimpy missing (apt-get install python3-dkim)")
        keys = KeyDir()
        self.addCleanup(keys.remove)
        rsa = keys.key("rsa.pem", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        keys.publish("s1", "sender.test", rsa)
        rx = self.receiver("127.0.0.2", hostname="mx.unsub.test")
        rm = self.start(dkim=[{"domain": "sender.test", "selector": "s1", "private_key": rsa}])
        rcpts = ["u0@unsub.test", "u1@unsub.test"]
        qid = self.submit(rm, rcpts)
        for rcpt in rcpts:
            self.wait_record(rm, "Delivery", rcpt, qid=qid)
        txns = sorted(rx.messages(), key=lambda t: t.accepted)
        self.assertEqual([t.accepted for t in txns], [[r] for r in rcpts], txns)
        urls = []
        for index, t in enumerate(txns):
            lu = values(t.content, "List-Unsubscribe")
            self.assertEqual(len(lu), 1, lu)
            m = re.match(r"^<http://127\.0\.0\.1:\d+/u/(1[a-z2-7]+)>,\s*"
                         r"<mailto:u-1[a-z2-7]+@unsubscribe\.test\?subject=unsubscribe>$", lu[0])
            self.assertTrue(m, lu[0])
            urls.append("/u/" + m.group(1))
            self.assertEqual(values(t.content, "List-Unsubscribe-Post"),
                             ["List-Unsubscribe=One-Click"])
            sigs = dkim_signatures(t.content)
            self.assertEqual(len(sigs), 1, sigs)
            signed = sigs[0]["h"].lower().split(":")
            self.assertIn("list-unsubscribe", signed)
            self.assertIn("list-unsubscribe-post", signed)
            rc, out = dkimpy(keys, f"copy{index}.eml", t.content)
            self.assertEqual(rc, 0, out)
        self.assertNotEqual(urls[0], urls[1], "one token per recipient")
        # Covered by the signature: changing the URL breaks it.
        tampered = txns[0].content.replace(urls[0].encode(), urls[1].encode(), 1)
        rc, out = dkimpy(keys, "tampered.eml", tampered)
        self.assertNotEqual(rc, 0, out)

        # GET: a confirm page, nothing changes.
        status, page = request(self.http_port, "GET", urls[0])
        self.assertEqual(status, 200, page)
        self.assertIn('name="List-Unsubscribe" value="One-Click"', page)
        # A forged token.
        forged = urls[0][:-3] + ("aaa" if not urls[0].endswith("aaa") else "bbb")
        status, _ = request(self.http_port, "POST", forged, b"List-Unsubscribe=One-Click",
                         {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 404)
        self.assertEqual(self.records(rm, "Feedback", "u0@unsub.test", None), [])

        # The one-click POST, as a mail client sends it.
        status, page = request(self.http_port, "POST", urls[0], b"List-Unsubscribe=One-Click",
                            {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200, page)
        fb = self.wait_record(rm, "Feedback", "u0@unsub.test")
        self.assertEqual(fb[0]["feedback_type"], "unsubscribe", fb)
        self.assertEqual(fb[0]["campaign"], "spring", fb)
        # The next message to u0 is suppressed, u1 still delivered.
        before = len(rx.messages())
        qid2 = self.submit(rm, rcpts)
        self.wait_record(rm, "Suppressed", "u0@unsub.test", qid=qid2)
        self.wait_record(rm, "Delivery", "u1@unsub.test", qid=qid2)
        after = rx.messages()[before:]
        self.assertEqual([t.accepted for t in after], [["u1@unsub.test"]], after)
