"""policy.return_path end to end (CONTRACT "Feedback, suppression and
compliance in detail"): with verp: true a message to three recipients of one
site reaches the aiosmtpd receiver as three transactions, each from
b-TOKEN@returnpath.test whose token names the message and that recipient;
each copy starts with its own X-Ringmail-Ref and carries one Feedback-ID
(signed: a DKIM-signed message still verifies with dkimpy, and changing
the Feedback-ID breaks it); a bounce's DSN still goes from <> to the
original sender; with verp: false the batch and the sender stay; without
return_path nothing changes.

The tokens are checked here apart from the C++ code: base32 and HMAC-SHA256
with Python's base64 and hmac modules, as policy/feedback_token.cc makes
them (its unit tests hold known answers computed the same way)."""

import base64
import hmac
import os
import shutil
import subprocess
import tempfile
import uuid

from harness import send_message
from test_delivery import SENDER, DeliveryCase, parse_dsn
from test_dkim import PYTHON, KeyDir, dkim_signatures, run_verifier

KEY = b"verp-integration-test-key-0123456789abcdef"  # >= 32 octets
RETURN_DOMAIN = "returnpath.test"
TENANT = "127.0.0.0/8"  # relay mail's tenant: the relay_networks entry it matched
SEVERAL = 0xFFFFFFFF  # the ref token's recipient on a copy for several recipients


def b32decode(text):
    text = text.upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def open_token(text, context, mac_octets):
    """The payload of a version-1 token that KEY signed, or None."""
    if not text or text[0] != "1":
        return None
    try:
        raw = b32decode(text[1:])
    except ValueError:
        return None
    payload, mac = raw[:-mac_octets], raw[-mac_octets:]
    want = hmac.new(KEY, context + b"\0" + payload, "sha256").digest()[:mac_octets]
    return payload if hmac.compare_digest(mac, want) else None


def decode_verp(address):
    """(message id, recipient index) of b-TOKEN@returnpath.test, or None."""
    local, _, domain = address.rpartition("@")
    if domain.lower() != RETURN_DOMAIN or not local.lower().startswith("b-"):
        return None
    payload = open_token(local[2:], b"ringmail verp 1", 12)
    if payload is None or len(payload) != 14:
        return None
    return payload[:10].hex(), int.from_bytes(payload[10:14], "big")


def decode_ref(value):
    """(message id, recipient index, tenant, campaign) of an X-Ringmail-Ref."""
    payload = open_token(value.strip(), b"ringmail ref 1", 16)
    if payload is None:
        return None
    message, index = payload[:10].hex(), int.from_bytes(payload[10:14], "big")
    rest = payload[14:]
    tenant = rest[1:1 + rest[0]].decode()
    rest = rest[1 + rest[0]:]
    campaign = rest[1:1 + rest[0]].decode()
    assert len(rest) == 1 + rest[0], "bytes after the campaign"
    return message, index, tenant, campaign


def header_lines(content):
    """[(name, value)] of the header section, unfolded, in order."""
    head = content.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + line)
        else:
            name, _, value = line.partition(":")
            fields.append((name, value.strip()))
    return fields


def values(content, name):
    return [v for n, v in header_lines(content) if n.lower() == name.lower()]


def dkimpy(keys, name, content):
    """(exit code, output) of tests/dkim/verify_dkimpy.py on content."""
    path = os.path.join(keys.path, name)
    with open(path, "wb") as f:
        f.write(content)
    return run_verifier("dkimpy", keys.keys_file, path)


def campaign_message(rcpts, campaign="spring", sender=SENDER):
    tag = uuid.uuid4().hex
    return (f"From: Author <{sender}>\r\n"
            f"To: {', '.join(rcpts)}\r\n"
            f"Subject: verp test\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{tag}@sender.test>\r\n"
            f"X-Campaign-ID: {campaign}\r\n"
            f"\r\n"
            f"Hello from the VERP test.\r\n.a dot-stuffed line\r\n")


class VerpTest(DeliveryCase):

    def setUp(self):
        super().setUp()
        self.keydir = tempfile.mkdtemp(prefix="ringmail-it-verp-")
        self.addCleanup(shutil.rmtree, self.keydir, True)
        self.key_file = os.path.join(self.keydir, "return-path.key")
        with open(self.key_file, "wb") as f:
            f.write(KEY + b"\n")  # one trailing newline is stripped
        self.dns_server = self.dns(mx={"verp.test": [(10, "mx.verp.test")],
                                       "bounce.test": [(10, "mx.bounce.test")]},
                                   hosts={"mx.verp.test": "127.0.0.2",
                                          "mx.bounce.test": "127.0.0.3"})

    def return_path(self, verp=True):
        return {"return_path": {"domain": RETURN_DOMAIN, "verp": verp,
                                "key_file": self.key_file}}

    def start(self, policy=None, **top):
        if policy is not None:
            top["policy"] = policy
        return self.daemon(self.dns_server.address, **top)

    def submit(self, rm, rcpts, text=None):
        reply = send_message(rm.port("relay"), SENDER, rcpts, text or campaign_message(rcpts))
        self.assertEqual(reply.code, 250, reply)
        qid = reply.queued_id()
        self.assertTrue(qid, reply)
        return qid

    def delivered(self, rm, rx, qid, rcpts):
        for rcpt in rcpts:
            self.wait_record(rm, "Delivery", rcpt, qid=qid)
        return sorted(rx.messages(), key=lambda t: t.accepted)

    # ---- tests

    def test_three_recipients_go_as_three_verp_transactions(self):
        rx = self.receiver("127.0.0.2", hostname="mx.verp.test")
        rm = self.start(self.return_path())
        rcpts = ["u0@verp.test", "u1@verp.test", "u2@verp.test"]
        qid = self.submit(rm, rcpts)
        txns = self.delivered(rm, rx, qid, rcpts)

        self.assertEqual([t.accepted for t in txns], [[r] for r in rcpts], txns)
        bodies = set()
        for index, t in enumerate(txns):
            self.assertRegex(t.mail_from, r"^b-1[a-z2-7]+@returnpath\.test$")
            self.assertLessEqual(len(t.mail_from.split("@")[0]), 64)
            self.assertEqual(decode_verp(t.mail_from), (qid, index), t.mail_from)
            # X-Ringmail-Ref is the copy's first line, signed, naming it.
            first = t.content.split(b"\r\n", 1)[0].decode()
            self.assertTrue(first.startswith("X-Ringmail-Ref: "), first)
            refs = values(t.content, "X-Ringmail-Ref")
            self.assertEqual(len(refs), 1, refs)
            self.assertEqual(decode_ref(refs[0]), (qid, index, TENANT, "spring"))
            self.assertEqual(values(t.content, "Feedback-ID"),
                             [f"spring:{TENANT}:relay:ringmail"])
            self.assertIn(b"\r\n.a dot-stuffed line\r\n", t.content)
            bodies.add(t.content.split(b"\r\n", 1)[1])
        self.assertEqual(len(bodies), 1, "the copies differ only in X-Ringmail-Ref")

        # A forged or altered token does not decode (the check above can fail).
        local = txns[0].mail_from.split("@")[0]
        altered = local[:10] + ("a" if local[10] != "a" else "b") + local[11:]
        self.assertIsNone(decode_verp(altered + "@" + RETURN_DOMAIN))
        # The delivery log keeps the message's own sender.
        for rec in self.records(rm, "Delivery", qid=qid):
            self.assertEqual(rec["sender"], SENDER, rec)
        self.assert_spool_empty(rm)

    def test_verp_false_keeps_the_batch_and_the_sender(self):
        rx = self.receiver("127.0.0.2", hostname="mx.verp.test")
        rm = self.start(self.return_path(verp=False))
        rcpts = ["u0@verp.test", "u1@verp.test", "u2@verp.test"]
        qid = self.submit(rm, rcpts)
        txns = self.delivered(rm, rx, qid, rcpts)
        self.assertEqual(len(txns), 1, txns)
        self.assertEqual(sorted(txns[0].accepted), rcpts)
        self.assertEqual(txns[0].mail_from, SENDER)
        refs = values(txns[0].content, "X-Ringmail-Ref")
        self.assertEqual(len(refs), 1, refs)
        self.assertEqual(decode_ref(refs[0]), (qid, SEVERAL, TENANT, "spring"))
        self.assertEqual(len(values(txns[0].content, "Feedback-ID")), 1)

    def test_without_return_path_nothing_changes(self):
        rx = self.receiver("127.0.0.2", hostname="mx.verp.test")
        rm = self.start()
        rcpts = ["u0@verp.test", "u1@verp.test", "u2@verp.test"]
        text = campaign_message(rcpts)
        qid = self.submit(rm, rcpts, text)
        txns = self.delivered(rm, rx, qid, rcpts)
        self.assertEqual(len(txns), 1, txns)
        self.assertEqual(sorted(txns[0].accepted), rcpts)
        self.assertEqual(txns[0].mail_from, SENDER)
        self.assertEqual(values(txns[0].content, "X-Ringmail-Ref"), [])
        self.assertEqual(values(txns[0].content, "Feedback-ID"), [])
        # Received in front, the campaign header taken out, nothing else.
        names = [n.lower() for n, _ in header_lines(txns[0].content)]
        self.assertEqual(names[0], "received", names)
        want = [n.lower() for n, _ in header_lines(text.encode()) if n != "X-Campaign-ID"]
        self.assertEqual(names[1:], want)

    def test_signed_message_still_verifies_with_the_headers(self):
        if subprocess.run([PYTHON, "-c", "import dkim"], capture_output=True).returncode:
            self.skipTest("dkimpy missing (apt-get install python3-dkim)")
        keys = KeyDir()
        self.addCleanup(keys.remove)
        rsa = keys.key("rsa.pem", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        keys.publish("s1", "sender.test", rsa)
        rx = self.receiver("127.0.0.2", hostname="mx.verp.test")
        rm = self.start(self.return_path(),
                        dkim=[{"domain": "sender.test", "selector": "s1", "private_key": rsa}])
        rcpts = ["u0@verp.test", "u1@verp.test"]
        qid = self.submit(rm, rcpts)
        txns = self.delivered(rm, rx, qid, rcpts)
        self.assertEqual(len(txns), 2, txns)
        for index, t in enumerate(txns):
            self.assertEqual(decode_verp(t.mail_from), (qid, index))
            sigs = dkim_signatures(t.content)
            self.assertEqual(len(sigs), 1, sigs)
            signed = sigs[0]["h"].lower().split(":")
            self.assertIn("feedback-id", signed)
            self.assertNotIn("x-ringmail-ref", signed)
            rc, out = dkimpy(keys, f"copy{index}.eml", t.content)
            self.assertEqual(rc, 0, out)
            self.assertIn("1 signature(s)", out)
        # Feedback-ID is covered: changing it breaks the signature.
        tampered = txns[0].content.replace(b"Feedback-ID: spring:", b"Feedback-ID: autumn:", 1)
        self.assertNotEqual(tampered, txns[0].content)
        rc, out = dkimpy(keys, "tampered.eml", tampered)
        self.assertNotEqual(rc, 0, out)

    def test_a_bounce_dsn_goes_from_the_null_sender_to_the_original_sender(self):
        rcpt = "nobody@bounce.test"
        rx = self.receiver("127.0.0.3", hostname="mx.bounce.test",
                           rcpt={rcpt: "550 5.1.1 <nobody@bounce.test>: user unknown"})
        senders = self.sender_receiver()
        rm = self.start(self.return_path())
        qid = self.submit(rm, [rcpt])
        self.wait_record(rm, "Bounce", rcpt, qid=qid)
        refused = [t for t in rx.all_transactions() if t.rcpts]
        self.assertEqual(len(refused), 1, refused)
        self.assertEqual(decode_verp(refused[0].mail_from), (qid, 0), refused[0])

        dsn = self.wait_dsn(senders, rcpt)[0]
        self.assertEqual(dsn.mail_from, "", dsn)
        self.assertEqual(dsn.accepted, [SENDER], dsn)
        self.assertEqual(values(dsn.content, "X-Ringmail-Ref"), [])
        self.assertEqual(values(dsn.content, "Feedback-ID"), [])
        _, _, per_recipient = parse_dsn(dsn.content)
        self.assertEqual(per_recipient[0]["Final-Recipient"], f"rfc822; {rcpt}")
        self.assertEqual(per_recipient[0]["Action"], "failed")
        self.assert_spool_empty(rm)
