"""What one client, or many from one address, can make mppd hold: replies
it never reads (memory), connections that trickle bytes (session slots),
and PASS sent on many connections at once (password guesses past
auth_fail_limit). Each test reads mppd's own figures: its RSS from
/proc, its log, and what a POP3 server of the test's own was asked."""

import re
import select
import shutil
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

import pytest

from conftest import REPLY, Client, message, wait_for

if shutil.which("openssl"):
    # the test certificates, made once per run by test_tls's fixture
    from test_tls import TLSClient, pki, start_tls_mppd  # noqa: F401

BARE_LF_REPLY = REPLY[500]          # what each empty line draws


def _status_kb(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _connect(port, source="127.0.0.1", timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0))
    return Client(port, sock=s, timeout=timeout)


# ------------------------------------------- concurrent password checks

class FakePop3:
    """A POP3 server of the test's own (USER, PASS, QUIT): it counts the
    passwords it is asked to check and the most it checked at once, and
    answers each PASS after delay seconds."""

    def __init__(self, users, delay):
        self.users = users
        self.delay = delay
        self.lock = threading.Lock()
        self.checks = 0
        self.running = 0
        self.peak = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def spec(self):
        return f"pop3:127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _pass(self, user, password):
        with self.lock:
            self.checks += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
        return self.users.get(user) == password

    def _serve(self, conn):
        with conn, conn.makefile("rwb") as f:
            try:
                f.write(b"+OK test POP3 ready\r\n")
                f.flush()
                user = None
                for raw in f:
                    verb, _, arg = raw.decode().rstrip("\r\n").partition(" ")
                    verb = verb.upper()
                    if verb == "USER":
                        user = arg
                        f.write(b"+OK\r\n")
                    elif verb == "PASS":
                        ok = self._pass(user, arg)
                        f.write(b"+OK logged in\r\n" if ok else
                                b"-ERR [AUTH] Authentication failed.\r\n")
                    elif verb == "QUIT":
                        f.write(b"+OK bye\r\n")
                        f.flush()
                        return
                    else:
                        f.write(b"-ERR unknown command\r\n")
                    f.flush()
            except OSError:
                pass

    def close(self):
        self.sock.close()


@pytest.fixture
def pop3():
    made = []

    def make(users, delay):
        p = FakePop3(users, delay)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def _pop3_mppd(mppd_factory, backend, **settings):
    m = mppd_factory(auth=backend.spec, auth_timeout=10,
                     max_sessions_per_ip=100, **settings)
    return m.start()


def _send_pass_all(clients, user, password):
    for c in clients:
        c.send(f"USER {user}\r\nPASS {password}\r\n")
    return [(c.code(), c.code()) for c in clients]


def test_concurrent_pass_cannot_exceed_the_failure_limit(mppd_factory, pop3):
    """45 connections from one address send a wrong password at once
    with auth_fail_limit = 10: the POP3 server is asked exactly 10 times
    (a check in flight counts as a failure that may come), every client
    gets 530, and the other 35 are throttled."""
    backend = pop3({"carol": "right"}, delay=0.5)
    m = _pop3_mppd(mppd_factory, backend, auth_fail_limit=10,
                   auth_fail_window=60)
    clients = [m.client(timeout=30) for _ in range(45)]
    assert _send_pass_all(clients, "carol", "wrong") == [(250, 530)] * 45
    assert backend.checks == 10
    assert m.log().count("auth backends:") == 10
    assert m.log().count("auth=throttled") == 35


def test_right_passwords_wait_for_a_slot_instead_of_failing(mppd_factory,
                                                           pop3):
    """Twelve logins at once from one address with auth_fail_limit = 3:
    never more than 3 checks run, the others wait for a slot (not 530), a
    success gives its slot back uncounted, and all twelve get 250. A
    wrong password afterwards is still checked: nothing was counted."""
    backend = pop3({"carol": "right"}, delay=0.3)
    m = _pop3_mppd(mppd_factory, backend, auth_fail_limit=3,
                   auth_fail_window=60)
    clients = [m.client(timeout=30) for _ in range(12)]
    assert _send_pass_all(clients, "carol", "right") == [(250, 250)] * 12
    assert backend.checks == 12
    assert backend.peak <= 3
    c = m.client()
    assert c.login("carol", "wrong") == 530
    assert backend.checks == 13
    assert "auth=throttled" not in m.log()


def _reset(c):
    """Hang up with a reset: mppd sees an error at once, not an end of
    input it would read after the pending answer."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      struct.pack("ii", 1, 0))
    c.close()


def test_connections_closed_mid_check_release_their_slot(mppd_factory, pop3):
    """auth_fail_limit = 2. A (right password, then a reset) and B
    (wrong, then a close) hang up while being checked; C's PASS waits for
    a slot and C resets. A's success is not counted, B's failure is (as
    any finished failure), C is never checked, and no slot stays taken:
    D logs in at once, E's wrong password is checked and is the second
    failure, and then F is throttled."""
    backend = pop3({"carol": "right"}, delay=1.0)
    m = _pop3_mppd(mppd_factory, backend, auth_fail_limit=2,
                   auth_fail_window=60)
    a, b, c = (m.client(timeout=30) for _ in range(3))
    a.send("USER carol\r\nPASS right\r\n")
    b.send("USER carol\r\nPASS wrong\r\n")
    wait_for(lambda: backend.running == 2, what="two checks running")
    c.send("USER carol\r\nPASS right\r\n")
    wait_for(lambda: "auth waits" in m.log(), what="C waiting for a slot")
    _reset(a)
    b.close()
    _reset(c)
    wait_for(lambda: m.log().count("auth backends:") == 2, timeout=10,
             what="both checks to end")
    time.sleep(0.3)
    assert backend.checks == 2
    d = m.client(timeout=30)
    t0 = time.monotonic()
    assert d.login("carol", "right") == 250
    assert time.monotonic() - t0 < 1.9        # one check, no waiting
    e = m.client(timeout=30)
    assert e.login("carol", "wrong") == 530
    assert backend.checks == 4
    f = m.client(timeout=30)
    assert f.login("carol", "right") == 530
    assert backend.checks == 4
    assert "auth=throttled" in m.log()
