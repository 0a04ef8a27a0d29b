"""Delivery across kill -9: messages that ringmaild acknowledged are
delivered after a crash, none lost (at least once; duplicates are allowed,
counted and printed).

The receiver stalls before answering the end of DATA, so when ringmaild is
killed some messages are in flight (the receiver has their content but has
not said 250) and others wait in the queue behind the per-site connection
limit. The receiver is then made fast and ringmaild restarted on the same
spool: every acknowledged message must reach the receiver, every recipient
must get a Delivery record, and the spool must end empty."""

import sys
import time
import unittest

from peers import wait_until
from test_delivery import WAIT, DeliveryCase, short_timeouts

MESSAGES = 12
CONNECTIONS = 4  # per site: MESSAGES - CONNECTIONS wait in the queue at the crash
STALL = 3.0  # seconds the receiver sits on the end of DATA before the crash


class DeliveryCrashTest(DeliveryCase):

    def test_in_flight_messages_are_delivered_after_kill9(self):
        dns = self.dns(mx={"crash.test": [(10, "mx.crash.test")]},
                       hosts={"mx.crash.test": "127.0.0.2"}, sender_domain=False)
        rx = self.receiver("127.0.0.2", hostname="mx.crash.test", stall=STALL)
        rm = self.daemon(dns.address, intervals=("1s",),
                         delivery={"max_connections_per_site": CONNECTIONS,
                                   # every connection at once: none answered before the kill
                                   "initial_connections": CONNECTIONS,
                                   "timeouts": short_timeouts(data_term="30s")})
        acked = {}
        for i in range(MESSAGES):
            rcpt = f"crash{i}@crash.test"
            acked[rcpt] = self.send(rm, rcpt, f"crash {i}")

        in_flight = wait_until(lambda: rx.waiting_in_data() >= CONNECTIONS, WAIT)
        self.assertTrue(in_flight, f"the receiver never had {CONNECTIONS} messages waiting at "
                        f"the end of DATA: {rx}")
        answered_before = len(rx.messages())
        rm.kill9()
        self.assertEqual(rm.proc.returncode, -9)
        rx.stall = 0.0
        # The transactions in flight died with the daemon, unanswered.
        lost = wait_until(lambda: rx.waiting_in_data() == 0 and
                          [t for t in rx.all_transactions() if t.lost], 10)
        self.assertTrue(lost, f"no transaction was cut by the crash: {rx}")
        lost_count = len([t for t in rx.all_transactions() if t.lost])
        sys.stderr.write(f"\n[delivery-crash] killed with {lost_count} transactions in flight "
                         f"(content received, end of DATA unanswered), {answered_before} "
                         f"answered before the kill, {MESSAGES} acknowledged\n")

        # Nothing acknowledged is lost at the crash point: every recipient is
        # still in the spool, waiting to be delivered.
        dump = rm.spool_dump()
        state = {(r["id"], r["recipient"]): r["state"] for r in dump}
        for rcpt, qid in acked.items():
            self.assertIn(state.get((qid, rcpt)), ("queued", "deferred"),
                          f"{rcpt} ({qid}) after kill -9: {dump}")

        rm.start()  # same spool
        t_restart = time.monotonic()

        def all_received():
            got = {a.lower() for t in rx.messages() for a in t.accepted}
            return all(r in got for r in acked)
        ok = wait_until(all_received, WAIT, interval=0.1)
        got = {}
        for t in rx.messages():
            for a in t.accepted:
                got[a.lower()] = got.get(a.lower(), 0) + 1
        missing = sorted(r for r in acked if r not in got)
        self.assertTrue(ok, f"{len(missing)} acknowledged messages never reached the receiver "
                        f"after the restart: {missing}\nreceiver: {rx}\ndelivery log:\n"
                        + "\n".join(map(str, rm.delivery_log())))
        duplicates = {r: n for r, n in got.items() if n > 1}
        sys.stderr.write(f"[delivery-crash] all {len(acked)} received "
                         f"{time.monotonic() - t_restart:.1f}s after the restart; "
                         f"{sum(n - 1 for n in duplicates.values())} duplicates {duplicates}\n")
        for rcpt, qid in acked.items():
            recs = self.wait_record(rm, "Delivery", rcpt, qid=qid)
            self.assertEqual(recs[0]["mx"], "mx.crash.test", recs[0])
        # The content that arrived is the message that was sent.
        for t in rx.messages():
            for a in t.accepted:
                i = a.split("@")[0][len("crash"):]
                self.assertIn(f"Subject: crash {i}\r\n".encode(), t.content, t)
        self.assertEqual(self.records(rm, "Bounce"), [])
        self.assertEqual(self.records(rm, "Expiration"), [])
        self.assert_spool_empty(rm)


if __name__ == "__main__":
    unittest.main()
