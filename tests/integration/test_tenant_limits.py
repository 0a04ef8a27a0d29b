"""Tenant submission limits and weighted egress pools, end to end.

policy.tenants[].max_messages caps what a tenant may submit: over SMTP the
MAIL FROM that is one too many gets 452 4.7.1 naming the limit, over the
injection API the request gets 429 with Retry-After; other tenants go on,
and a reload that raises the limit lets the tenant in at once (what it had
spent is kept, not forgiven). The tenant of relayed mail is the
relay_networks entry it matched: a client on 127.0.0.1 and one on
127.0.0.8 are two tenants with relay_networks [127.0.0.1/32, 127.0.0.0/8].

policy.pools[].sources with weights: a receiver on loopback records the
address each connection came from; the share of messages per source
follows the weights.

What is checked is what a client sees (replies, HTTP status, headers and
JSON), what the receiver got and from where, and the delivery log."""

import hashlib
import os
import secrets
import unittest

from admin_client import Api, write_token
from harness import Closed, SmtpConn, free_port
from peers import wait_until
from test_delivery import SENDER, WAIT, DeliveryCase, message_text

RX_IP = "127.0.0.20"  # the receiver; 127.0.0.2-4 are egress sources below
DOMAIN = "limits.test"
LIMITED = "127.0.0.1/32"  # the tenant of a client on 127.0.0.1
OTHER_IP = "127.0.0.8"  # a client of the tenant 127.0.0.0/8


class SmtpClient:
    """One relay connection from a given address, for several transactions."""

    def __init__(self, case, port, source_ip=None):
        self.conn = SmtpConn(port, source_ip=source_ip)
        case.addCleanup(self.conn.close)
        r = self.conn.read_reply()
        assert r.code == 220, r
        r = self.conn.ehlo()
        assert r.code == 250, r

    def transaction(self, rcpt, subject):
        """MAIL, RCPT, DATA; returns (MAIL reply, final reply or None)."""
        mail = self.conn.cmd(f"MAIL FROM:<{SENDER}>")
        if mail.code != 250:
            return mail, None
        r = self.conn.cmd(f"RCPT TO:<{rcpt}>")
        assert r.code == 250, r
        r = self.conn.cmd("DATA")
        assert r.code == 354, r
        self.conn.send(message_text(subject, rcpt) + ".\r\n")
        return mail, self.conn.read_reply(timeout=30)

    def quit(self):
        try:
            self.conn.cmd("QUIT")
        except (Closed, OSError):
            pass


class LimitsCase(DeliveryCase):
    def limits_daemon(self, policy, keys=None):
        """A daemon routing *.limits.test to one receiver, with the admin API
        and tenant API keys ({tenant: key})."""
        self.rx = self.receiver(RX_IP)
        smarthost = f"{RX_IP}:{self.smtp_port}"
        rm = self.daemon(
            f"127.0.0.1:{free_port()}", start=False,
            routes=[{"domain": f"*.{DOMAIN}", "smarthost": smarthost},
                    {"domain": DOMAIN, "smarthost": smarthost}],
            relay_networks=[LIMITED, "127.0.0.0/8"], policy=policy,
            admin={"address": f"127.0.0.1:{free_port()}", "token_file": "admin.token",
                   "api_keys_file": "api-keys.yaml"})
        token = write_token(rm)
        with open(os.path.join(rm.dir, "api-keys.yaml"), "w") as f:
            f.write("[]\n" if not keys else "".join(
                f"- {{tenant: {t}, sha256: {hashlib.sha256(k.encode()).hexdigest()}}}\n"
                for t, k in keys.items()))
        rm.start()
        self.rm, self.api = rm, Api(rm, token)
        return rm

    def reload_with(self, rm, policy):
        """Rewrites policy: and reloads through the API (answered once in force)."""
        rm.config["policy"] = policy
        rm.write_config(rm.config)
        status, parsed, _, payload = self.api.post("/api/v1/reload")
        self.assertEqual(status, 200, payload)

    def wait_delivered(self, rcpts):
        got = wait_until(lambda: all(self.rx.delivered_to(r) for r in rcpts), WAIT)
        self.assertTrue(got, f"not all of {rcpts} delivered: {self.rx!r}" + self.rm.stderr_tail())


class SmtpLimits(LimitsCase):
    def test_fourth_mail_from_gets_452_other_tenant_goes_on_reload_lets_in(self):
        rm = self.limits_daemon({"tenants": [{"name": LIMITED, "max_messages": "3/h"}]})
        limited = SmtpClient(self, rm.port("relay"))
        sent = []
        for i in range(3):
            rcpt = f"a{i}@{DOMAIN}"
            mail, final = limited.transaction(rcpt, f"limited {i}")
            self.assertReply(mail, 250, msg=f"MAIL {i}")
            self.assertReply(final, 250, "2.0.0", msg=f"DATA {i}")
            sent.append(rcpt)
        mail, _ = limited.transaction(f"a3@{DOMAIN}", "one too many")
        self.assertReply(mail, 452, "4.7.1")
        self.assertEqual(mail.text, "4.7.1 Tenant 127.0.0.1/32 is over its submission limit "
                                    "of 3/h; try again later")
        # The session goes on: the same refusal again, other commands fine.
        self.assertReply(limited.conn.cmd("NOOP"), 250)
        self.assertReply(limited.transaction(f"a3@{DOMAIN}", "again")[0], 452, "4.7.1")

        # Another tenant (another relay network) is unaffected, and delivered.
        other = SmtpClient(self, rm.port("relay"), source_ip=OTHER_IP)
        for i in range(4):
            mail, final = other.transaction(f"b{i}@{DOMAIN}", f"other {i}")
            self.assertReply(mail, 250, msg=f"other tenant's MAIL {i}")
            self.assertReply(final, 250, "2.0.0")
        other.quit()
        self.wait_delivered(sent + [f"b{i}@{DOMAIN}" for i in range(4)])
        tenants = {r["recipient"]: r["tenant"] for r in rm.delivery_log("Reception")}
        self.assertEqual(tenants[f"a0@{DOMAIN}"], LIMITED)
        self.assertEqual(tenants[f"b0@{DOMAIN}"], "127.0.0.0/8")

        # A reload raising the limit to 5/h: the 3 spent stay spent, 2 more go.
        self.reload_with(rm, {"tenants": [{"name": LIMITED, "max_messages": "5/h"}]})
        fresh = SmtpClient(self, rm.port("relay"))
        replies = [fresh.transaction(f"c{i}@{DOMAIN}", f"after reload {i}")[0].code
                   for i in range(3)]
        self.assertEqual(replies, [250, 250, 452])
        fresh.quit()
        limited.quit()
        self.wait_delivered([f"c0@{DOMAIN}", f"c1@{DOMAIN}"])
        self.assertEqual(self.rx.delivered_to(f"a3@{DOMAIN}"), [])
        self.assertEqual(self.rx.delivered_to(f"c2@{DOMAIN}"), [])
        self.assert_spool_empty(rm)


class InjectionLimits(LimitsCase):
    def inject(self, key, n, tenant=None):
        body = {"envelope_sender": SENDER, "recipients": [f"inj{n}@{DOMAIN}"],
                "content": message_text(f"injected {n}", f"inj{n}@{DOMAIN}")}
        if tenant:
            body["tenant"] = tenant
        return self.api.post("/api/v1/messages", body, **({"token": key} if key else {}))

    def test_over_the_limit_is_429_with_retry_after(self):
        keys = {"app1": "key-" + secrets.token_hex(16), "app2": "key-" + secrets.token_hex(16)}
        rm = self.limits_daemon({"tenants": [{"name": "app1", "max_messages": "3/h"},
                                      {"name": "app2", "max_messages": "100/h"}]}, keys)
        for n in range(3):
            status, parsed, _, payload = self.inject(keys["app1"], n)
            self.assertEqual(status, 200, payload)
        status, parsed, resp, payload = self.inject(keys["app1"], 3)
        self.assertEqual(status, 429, payload)
        self.assertEqual(parsed, {"error": "over submission limit",
                                  "detail": "tenant \"app1\" is over its submission limit of "
                                            "3/h; try again later"})
        # 3/h: a token every 1200 s, the first due 1200 s after the first
        # injection (a second or so ago).
        retry_after = int(resp.getheader("Retry-After"))
        self.assertTrue(1190 <= retry_after <= 1200, retry_after)
        # Other tenants: another key, and the admin token's default tenant.
        status, _, _, payload = self.inject(keys["app2"], 4)
        self.assertEqual(status, 200, payload)
        status, _, _, payload = self.inject(None, 5)
        self.assertEqual(status, 200, payload)
        self.wait_delivered([f"inj{n}@{DOMAIN}" for n in (0, 1, 2, 4, 5)])
        self.assertEqual(self.rx.delivered_to(f"inj3@{DOMAIN}"), [])

        self.reload_with(rm, {"tenants": [{"name": "app1", "max_messages": "4/h"}]})
        status, _, _, payload = self.inject(keys["app1"], 6)
        self.assertEqual(status, 200, payload)
        status, _, _, payload = self.inject(keys["app1"], 7)
        self.assertEqual(status, 429, payload)
        self.wait_delivered([f"inj6@{DOMAIN}"])


class WeightedPools(LimitsCase):
    SOURCES = {"ip2": "127.0.0.2", "ip3": "127.0.0.3", "ip4": "127.0.0.4"}

    def test_sources_share_the_jobs_by_weight(self):
        """Weights 3:1:1 over 200 messages, one job each. The selector is
        deterministic per job (smooth weighted round robin: x y x z x ...),
        so the shares are exactly 120/40/40 when every job is routed once;
        a job routed again (a retry after a failed connection) takes one
        more pick, so each share may move by the few retries there are: a
        tolerance of 4 messages, far below the 80 that would separate
        weight 3 from weight 1."""
        rm = self.limits_daemon({
            "sources": [{"name": n, "address": a} for n, a in self.SOURCES.items()],
            "pools": [{"name": "default",
                       "sources": [{"source": "ip2", "weight": 3}, "ip3",
                                   {"source": "ip4", "weight": 1}]}]})
        total = 200
        client = SmtpClient(self, rm.port("relay"), source_ip=OTHER_IP)
        for i in range(total):
            mail, final = client.transaction(f"w{i}@{DOMAIN}", f"weighted {i}")
            self.assertReply(final, 250, msg=f"message {i}")
        client.quit()
        got = wait_until(lambda: len(self.rx.messages()) >= total, 60)
        self.assertTrue(got, f"{len(self.rx.messages())} of {total} delivered" + rm.stderr_tail())
        peer_of = {c.id: c.peer[0] for c in self.rx.connection_list()}
        counts = {}
        for t in self.rx.messages():
            counts[peer_of[t.conn]] = counts.get(peer_of[t.conn], 0) + 1
        self.assertEqual(sum(counts.values()), total, counts)
        expected = {"127.0.0.2": 120, "127.0.0.3": 40, "127.0.0.4": 40}
        for address, share in expected.items():
            self.assertAlmostEqual(counts.get(address, 0), share, delta=4,
                                   msg=f"{address}: {counts}")
        # The delivery log names the same sources.
        by_source = {}
        for r in rm.delivery_log("Delivery"):
            by_source[r["source"]] = by_source.get(r["source"], 0) + 1
        self.assertEqual({self.SOURCES[s]: n for s, n in by_source.items()}, counts)
        self.assert_spool_empty(rm)


if __name__ == "__main__":
    unittest.main()
