"""mppqueue's relay health: while the relay is down, no message is attempted
one by one against it; one probe tests it, after waits of 1 s doubling up
to relay_probe_max; when a probe gets through, the messages the outage
deferred fall due at once and the queue drains.

The relay is Postfix's smtp-sink behind a gate on another loopback port:
open, the gate passes each connection to smtp-sink; closed, it accepts
each one, notes its time and hangs up before any greeting (to mppqueue, a
relay that does not greet). So every connection mppqueue makes during the
outage is counted.
"""

import os
import re
import select
import socket
import threading
import time

import pytest

from conftest import message, wait_for
from test_smtp_sink import SMTP_SINK, Sink

pytestmark = pytest.mark.skipif(not os.access(SMTP_SINK, os.X_OK),
                                reason="smtp-sink (Debian package postfix) not installed")

CONCURRENCY = 4


class Gate:
    """A loopback port in front of a relay, opened and closed by the test."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.is_open = False
        self.refused = []       # time.time() of each connection while closed
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self):
        with self.lock:
            self.is_open = True
        return time.time()

    def refusals(self):
        with self.lock:
            return list(self.refused)

    def close(self):
        self.lsock.close()

    def _accept(self):
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                passing = self.is_open
                if not passing:
                    self.refused.append(time.time())
            if passing:
                threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()
            else:
                conn.close()

    def _pipe(self, conn):
        try:
            up = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        except OSError:
            conn.close()
            return
        peers = {conn: up, up: conn}
        try:
            while True:
                ready, _, _ = select.select(list(peers), [], [], 30)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
        except OSError:
            return
        finally:
            conn.close()
            up.close()


@pytest.fixture
def relay(tmp_path):
    sink = Sink(tmp_path).start()
    gate = Gate(sink.port)
    yield sink, gate
    gate.close()
    sink.stop()


def post_many(mppd, subjects, sessions=4):
    """Post one message per subject over a few parallel sessions."""
    errors = []

    def worker(part):
        try:
            c = mppd.client(timeout=30)
            assert c.login("alice", "secret") == 250
            for s in part:
                assert c.post(message(subject=s)) == 250
            assert c.cmd("QUIT") == 221
            c.close()
        except Exception as e:   # reported below, in the test's thread
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(subjects[i::sessions],))
               for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def rows(mppd):
    with mppd.db() as conn:
        return [dict(r) for r in conn.execute(
            "SELECT id, state, attempts, next_attempt_at, last_error FROM message "
            "WHERE is_bounce = 0")]


def setup_runner(mppd, mppqueue, gate, **keys):
    mppd.settings.update({"transport": f"smtp:127.0.0.1:{gate.port}",
                          "delivery_timeout": "10",
                          "concurrency": str(CONCURRENCY), **keys})
    mppqueue.start()


def test_probe_backoff_one_probe_per_step(mppd, mppqueue, relay):
    """Relay down: the deliveries in flight find it so, then only probes
    connect, after 1, 2 and 4 s; the messages keep the one attempt each."""
    sink, gate = relay
    setup_runner(mppd, mppqueue, gate)      # relay_probe_max: 60 (default)
    post_many(mppd, [f"early {i}" for i in range(3)], sessions=1)
    wait_for(lambda: "relay=down" in mppqueue.log(), what="relay=down")
    wait_for(lambda: len(gate.refusals()) >= 1, what="a connection")
    t0 = gate.refusals()[0]
    # A later post wakes the threads, but claims nothing: the relay is down.
    post_many(mppd, [f"later {i}" for i in range(3)], sessions=1)
    time.sleep(max(0.0, t0 + 9.0 - time.time()))
    times = gate.refusals()
    attempted = [r for r in rows(mppd) if r["attempts"] > 0]
    # One connection per delivery attempted (one relay, one address),
    # all at the outage's start; every later one is a probe.
    assert 1 <= len(attempted) <= CONCURRENCY
    assert all(r["attempts"] == 1 for r in attempted)
    assert all(t - t0 < 0.5 for t in times[:len(attempted)]), times
    probes = times[len(attempted):]
    assert len(probes) == 3, f"probes at {[round(t - t0, 2) for t in probes]}"
    # 1 s after the outage began, then 2 s and 4 s after each failure.
    for got, want in zip((probes[0] - t0, probes[1] - probes[0],
                          probes[2] - probes[1]), (1, 2, 4)):
        assert want - 0.1 <= got <= want + 1.5, [round(t - t0, 2) for t in probes]
    log = mppqueue.log()
    assert log.count("relay=down transport=") == 1
    assert 'reason="' in log.split("relay=down transport=")[1].splitlines()[0]
    # One line per step of the backoff (2, 4 and 8 s next).
    assert len(re.findall(r"relay=down probe=failed .* next_probe=\d+s", log)) == 3
    # Posted while down: not attempted at all.
    assert all(r["attempts"] == 0 for r in rows(mppd) if r["id"] not in
               {a["id"] for a in attempted})
    assert list(sink.dump.iterdir()) == []


def test_outage_500_messages_recovered_within_seconds(mppd, mppqueue, relay):
    """500 messages posted while the relay is down; it comes back: the
    first delivery within 5 s (a probe is due at most relay_probe_max = 2 s
    after the return, the rest is margin for a busy machine), every message
    delivered exactly once, each attempted at most once during the outage."""
    sink, gate = relay
    setup_runner(mppd, mppqueue, gate, relay_probe_max="2")
    subjects = [f"outage {i}" for i in range(500)]
    post_many(mppd, subjects)
    wait_for(lambda: "relay=down" in mppqueue.log(), what="relay=down")
    start = gate.refusals()[0]
    # Let the outage last a few probes.
    wait_for(lambda: len(gate.refusals()) >= CONCURRENCY + 3, timeout=20,
             what="probes")
    during = rows(mppd)
    assert len(during) == 500
    assert all(r["state"] in ("queued", "deferred") for r in during)
    deferred = {r["id"] for r in during if r["attempts"] > 0}
    assert 1 <= len(deferred) <= CONCURRENCY, "attempts only until marked down"
    assert max(r["attempts"] for r in during) == 1, "not one attempt per probe"
    back = gate.open()
    refused = gate.refusals()
    # At most one probe per step: the first after 1 s, then every 2 s.
    outage = back - start
    assert len(refused) - len(deferred) <= 1 + int(outage / 2 + 0.5) + 1, \
        [round(t - start, 2) for t in refused]
    wait_for(lambda: len(sink.subjects()) >= 1, timeout=30, what="a first delivery")
    first = min(p.stat().st_mtime for p in sink.dump.iterdir())
    assert first - back < 5.0, f"first delivery {first - back:.2f} s after the return"
    wait_for(lambda: len(sink.subjects()) >= 500, timeout=180, interval=0.2,
             what="all 500 at the relay")
    time.sleep(0.5)     # anything sent twice would arrive by now
    got = sink.subjects()
    assert sorted(got) == sorted(subjects), "every message exactly once"
    wait_for(lambda: all(r["state"] == "sent" for r in rows(mppd)),
             what="every row sent")
    after = rows(mppd)
    # Deferred by the outage: attempted once in it, once after; the others once.
    assert all(r["attempts"] == (2 if r["id"] in deferred else 1) for r in after)
    log = mppqueue.log()
    assert log.count("relay=down transport=") == 1
    up = re.findall(r"relay=up transport=\S+ outage=(\d+\.\d)s due_now=(\d+)", log)
    assert len(up) == 1
    assert float(up[0][0]) >= outage - 3.0
    assert int(up[0][1]) == len(deferred)


def test_new_outage_after_recovery(mppd, mppqueue, relay):
    """Down, back, down again: each outage is logged once and its
    deferrals are released by its own return."""
    sink, gate = relay
    setup_runner(mppd, mppqueue, gate, relay_probe_max="1")
    post_many(mppd, ["one"], sessions=1)
    wait_for(lambda: "relay=down" in mppqueue.log(), what="relay=down")
    gate.open()
    wait_for(lambda: len(sink.subjects()) == 1, timeout=15, what="one delivered")
    with gate.lock:
        gate.is_open = False
    post_many(mppd, ["two"], sessions=1)
    wait_for(lambda: mppqueue.log().count("relay=down transport=") == 2,
             what="the second outage")
    gate.open()
    wait_for(lambda: len(sink.subjects()) == 2, timeout=15, what="two delivered")
    assert sorted(sink.subjects()) == ["one", "two"]
    assert mppqueue.log().count("relay=up transport=") == 2
    # The sink has the text before mppqueue records the reply: wait.
    wait_for(lambda: all(r["state"] == "sent" for r in rows(mppd)), what="both sent")
    assert [r["attempts"] for r in rows(mppd)] == [2, 2]
