"""tests/integration/test_auth_throttle.py -- password guessing over many
parallel connections from one address stays at about one guess a second,
while a legitimate login from another address stays prompt.

The attacker: 50 connections from 127.0.0.1 to a clear-text submission
listener, each sending wrong AUTH PLAIN passwords in a loop for 15 s (and
reconnecting when the server closes after too many errors). A 535 reply is
one verified guess; 454 (admission refused: the wait would be too long) is
not. Meanwhile, once a second, a client bound to 127.0.0.2 logs in as
another user with the right password and must get 235 within 200 ms.
"""

import base64
import socket
import threading
import time
import unittest

from harness import Closed, DaemonTestCase, SmtpConn

ATTACK_SECONDS = 15.0
CONNECTIONS = 50
BURST = 10  # AuthServiceOptions::attempt_burst
MAX_GUESS_RATE = 1.5  # per second, after the burst
MAX_LOGIN_SECONDS = 0.2


def plain_token(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class AuthThrottleTest(DaemonTestCase):

    def test_parallel_guessing_is_bounded_per_address(self):
        rm = self.ringmail(
            listeners=[{"name": "plain", "mode": "submission", "tls": "none",
                        "require_tls_for_auth": False}],
            users={"app1": "s3cret-Passw0rd", "app2": "other-Passw0rd"})
        rm.start()
        port = rm.port("plain")

        stop = threading.Event()
        lock = threading.Lock()
        failures = []     # monotonic times of 535 replies
        refusals = [0]    # 454 replies
        problems = []     # anything unexpected, reported at the end
        conns = []

        def attacker(n):
            guess = 0
            while not stop.is_set():
                try:
                    c = SmtpConn(port, timeout=60.0)
                except OSError:
                    time.sleep(0.1)  # e.g. at a per-address connection limit
                    continue
                with lock:
                    conns.append(c)
                try:
                    if c.read_reply().code != 220 or c.ehlo().code != 250:
                        continue
                    while not stop.is_set():
                        guess += 1
                        r = c.cmd(f"AUTH PLAIN {plain_token('app1', f'guess-{n}-{guess}')}",
                                  timeout=60.0)
                        if r.code == 535:
                            with lock:
                                failures.append(time.monotonic())
                        elif r.code == 454:
                            with lock:
                                refusals[0] += 1
                            time.sleep(0.1)
                        elif r.code == 421:
                            break  # too many errors: reconnect
                        else:
                            with lock:
                                problems.append(f"attacker {n}: {r!r}")
                            return
                except (Closed, OSError):
                    pass  # closed by the server or by the end of the test
                finally:
                    c.close()

        latencies = []

        def legitimate():
            next_at = time.monotonic() + 1.0
            while not stop.is_set():
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += 1.0
                if stop.is_set():
                    return
                try:
                    with SmtpConn(port, source_ip="127.0.0.2", timeout=10.0) as c:
                        c.read_reply()
                        c.ehlo()
                        t0 = time.monotonic()
                        r = c.cmd(f"AUTH PLAIN {plain_token('app2', 'other-Passw0rd')}")
                        took = time.monotonic() - t0
                        if r.code != 235:
                            problems.append(f"legitimate login: {r!r}")
                        latencies.append(took)
                        c.cmd("QUIT")
                except (Closed, OSError) as e:
                    problems.append(f"legitimate login: {e!r}")

        threads = [threading.Thread(target=attacker, args=(n,), daemon=True)
                   for n in range(CONNECTIONS)]
        threads.append(threading.Thread(target=legitimate, daemon=True))
        start = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(ATTACK_SECONDS)
        stop.set()
        end = time.monotonic()
        with lock:
            for c in conns:
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)  # wakes a reader waiting for a reply
                except OSError:
                    pass
        for t in threads:
            t.join(15)
        # The daemon cancels the admission waits of the closed connections.
        rm.stop()

        with lock:
            times = sorted(failures)
        self.assertGreater(len(times), BURST, f"too few guesses answered: {len(times)}")
        after_burst = times[BURST:]  # the failures after the first ten
        window = end - times[BURST - 1]
        rate = len(after_burst) / window
        worst = max(latencies) if latencies else float("inf")
        print(f"\n{CONNECTIONS} connections, {ATTACK_SECONDS:.0f} s: {len(times)} guesses answered "
              f"535 ({len(after_burst)} after the first {BURST}, {rate:.2f}/s over "
              f"{window:.1f} s), {refusals[0]} answered 454; {len(latencies)} logins from "
              f"127.0.0.2, worst {worst * 1000:.0f} ms; took {end - start:.1f} s")
        self.assertEqual(problems, [])
        self.assertLessEqual(rate, MAX_GUESS_RATE)
        self.assertGreaterEqual(len(latencies), int(ATTACK_SECONDS) - 3)
        self.assertLessEqual(worst, MAX_LOGIN_SECONDS,
                             f"logins from 127.0.0.2 took {[round(x, 3) for x in latencies]}")


if __name__ == "__main__":
    unittest.main()
