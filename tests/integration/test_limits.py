"""What one client, or many from one address, can make mppd hold: replies
it never reads (memory), connections that trickle bytes (session slots),
and PASS sent on many connections at once (password guesses past
auth_fail_limit). Each test reads mppd's own figures: its RSS from
/proc, its log, and what a POP3 server of the test's own was asked."""

import os
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


# Under AddressSanitizer (make asan) freed memory is held in quarantine
# and counts in the RSS: off for the daemons whose memory is measured.
MEASURED_ENV = {"ASAN_OPTIONS": ":".join(
    x for x in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0",
                "thread_local_quarantine_size_kb=0") if x)}


def _measured(m):
    """Restart m so that its RSS is what it holds."""
    m.stop()
    return m.start(env=MEASURED_ENV)


# ------------------------------------------------------ unread replies

CHUNK = b"\n" * 16384


def _flood(socks, quota, seconds):
    """Send up to quota bare LFs on each non-blocking socket, reading
    nothing, for at most seconds; the bytes each one got out."""
    sent = [0] * len(socks)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and min(sent) < quota:
        moved = False
        for i, s in enumerate(socks):
            if sent[i] >= quota:
                continue
            try:
                sent[i] += s.send(CHUNK[:quota - sent[i]])
                moved = True
            except BlockingIOError:
                pass
        if not moved:
            time.sleep(0.02)
    return sent


def _read_replies(c, nbytes, timeout=30.0):
    """Exactly nbytes of replies (more is an error)."""
    c.sock.settimeout(timeout)
    data = c.buf
    while len(data) < nbytes:
        chunk = c.sock.recv(1 << 20)
        assert chunk, f"closed after {len(data)} of {nbytes} bytes"
        data += chunk
    c.buf = data[nbytes:]
    return data[:nbytes]


def _flood_within_32_mib(mppd, clients, quota, seconds):
    """_flood the clients' sockets (non-blocking from now on); mppd must
    still run, its peak RSS within 32 MiB of what it was before. The bytes
    each one got out."""
    for c in clients:
        c.sock.setblocking(False)
    before = _status_kb(mppd.proc.pid, "VmRSS")
    sent = _flood([c.sock for c in clients], quota, seconds)
    time.sleep(0.5)
    peak = _status_kb(mppd.proc.pid, "VmHWM")
    assert peak - before < 32 * 1024, (before, peak, sum(sent))
    assert mppd.running()
    return sent


def test_unread_replies_do_not_grow_memory(mppd):
    """50 connections send bare LFs (each one answered 500) and read
    nothing: mppd stops reading them once a few KiB of replies wait,
    instead of buffering every reply. The figures: its peak RSS stays
    within 32 MiB of what it was before (buffering would take 50 x 128
    KiB x 27 bytes, over 170 MB), and a client that then reads gets every
    reply, in order, and the session goes on."""
    mppd.settings["max_sessions_per_ip"] = "100"
    _measured(mppd)
    clients = [mppd.client() for _ in range(50)]
    sent = _flood_within_32_mib(mppd, clients, 128 * 1024, 4.0)
    for c, n in list(zip(clients, sent))[:5]:
        c.sock.setblocking(True)
        assert _read_replies(c, n * len(BARE_LF_REPLY)) == BARE_LF_REPLY * n
        assert c.cmd("QUIT") == 221
    for c in clients:
        c.close()


def test_unread_replies_behind_a_text_do_not_grow_memory(mppd):
    """The same behind a message text: 50 connections each send an 8 KiB
    text that is refused (no recipient: 550) and, in the same send, 60,000
    bare LFs, then more, reading nothing. A text's end stops mppd's
    feeding, and the commands behind it are taken a line at a time with
    their replies bounded, as anywhere else: the peak RSS stays within 32
    MiB, and the replies then come in order, the 550 first."""
    mppd.settings["max_sessions_per_ip"] = "100"
    _measured(mppd)
    # Longer than a socket read of libevent's (4 KiB), so that mppd reads
    # the rest of the text and what is behind it at once (server.c).
    refused = (b"Subject: nobody\r\n\r\n" + (b"x" * 78 + b"\r\n") * 100 +
               b".\r\n")
    behind = b"\n" * 60000
    clients = [mppd.client() for _ in range(50)]
    for c in clients:
        assert c.login("alice", "secret") == 250
        assert c.cmd("DATA") == 354
        c.sock.sendall(refused + behind)
    sent = _flood_within_32_mib(mppd, clients, 1024 * 1024, 6.0)
    for c, n in list(zip(clients, sent))[:3]:
        c.sock.setblocking(True)
        n += len(behind)
        want = REPLY[550] + BARE_LF_REPLY * n
        assert _read_replies(c, len(want)) == want
        assert c.cmd("QUIT") == 221
    for c in clients:
        c.close()
    assert mppd.stored() == []


def _minor_faults(pid):
    """Minor page faults of every thread of pid so far (field 10)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def test_long_texts_reuse_their_buffers(mppd):
    """Twenty texts of 100 KiB in one session: after the first few, mppd
    takes their buffers from memory it kept, not from pages the kernel
    faults in again for each text (glibc's default trim gave back and
    re-faulted about 34 pages a text). Bound: 8 faults a text on
    average. An allocator of a sanitizer's own ignores the tuning."""
    if "libasan" in Path(f"/proc/{mppd.proc.pid}/maps").read_text():
        pytest.skip("AddressSanitizer's allocator takes no mallopt tuning")
    body = ("x" * 98 + "\r\n") * 1000
    c = mppd.client(timeout=60)
    assert c.login("alice", "secret") == 250

    def post(n):
        for i in range(n):
            assert c.post(message(subject=f"long {i}", body=body)) == 250
    post(5)
    before = _minor_faults(mppd.proc.pid)
    post(20)
    per_text = (_minor_faults(mppd.proc.pid) - before) / 20
    assert per_text < 8, per_text
    assert c.cmd("QUIT") == 221


def test_unread_replies_unblock_when_read(mppd):
    """A client that sends everything first and reads only later (a
    sender thread that blocks while mppd has stopped reading): it gets
    every reply once it reads, nothing is lost or doubled."""
    c = mppd.client(timeout=30)
    n = 200000
    data = b"\n" * n + b"NOOP\r\nQUIT\r\n"
    sender = threading.Thread(target=c.send, args=(data,))
    sender.start()
    time.sleep(1.0)
    replies = _read_replies(c, n * len(BARE_LF_REPLY) + len(REPLY[250]))
    sender.join(30)
    assert replies == BARE_LF_REPLY * n + REPLY[250]
    assert c.line() == REPLY[221]


# TLS: the same bound on the plain bytes of a bufferevent_openssl.

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="the openssl command makes the "
                                          "test certificates")


@pytest.fixture
def tls_mppd(mppd_factory, pki):
    return _measured(start_tls_mppd(mppd_factory, pki,
                                    max_sessions_per_ip=100))


def _tls_client(m, pki):
    return TLSClient(m.tls_port, pki.ca_pem, timeout=10).greet()


class TLSPump:
    """A non-blocking TLS socket, written and read from one thread (an
    SSL object must not be used by two at once). A write that would block
    is kept and offered again with the same bytes, as OpenSSL requires."""

    def __init__(self, c):
        self.sock = c.sock
        self.got = bytearray(c.buf)
        c.buf = b""
        self.sock.setblocking(False)
        self.pending = None        # a chunk OpenSSL has begun to send
        self.sent = 0

    def try_send(self, data):
        """Offer data (or the pending chunk first); True when it went."""
        if self.pending is None:
            self.pending = data
        try:
            n = self.sock.send(self.pending)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return False
        self.sent += n
        self.pending = self.pending[n:] or None
        return self.pending is None

    def try_recv(self):
        try:
            b = self.sock.recv(1 << 20)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True
        if not b:
            return False
        self.got += b
        return True

    def exchange(self, data, until, timeout=60.0):
        """Send data while reading, until the replies end with until."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while not self.got.endswith(until):
            assert time.monotonic() < deadline, (len(self.got), self.sent)
            if self.pending is not None or view:
                chunk = bytes(view[:16384]) if self.pending is None else None
                if self.try_send(chunk) and chunk is not None:
                    view = view[len(chunk):]
            if not self.try_recv():
                break
            select.select([self.sock], [self.sock] if view else [], [],
                          0.01)
        return bytes(self.got)


@needs_openssl
def test_unread_replies_bounded_over_tls(tls_mppd, pki):
    """Ten TLS connections send bare LFs and read nothing: the bound holds
    inside TLS too (buffering would take 10 x 512 KiB x 27 bytes, over
    130 MB); then one of them reads every reply and ends its session."""
    pumps = [TLSPump(_tls_client(tls_mppd, pki)) for _ in range(10)]
    before = _status_kb(tls_mppd.proc.pid, "VmRSS")
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline and min(p.sent for p in pumps) < (512 << 10):
        moved = False
        for p in pumps:
            if p.sent < (512 << 10) and p.try_send(CHUNK):
                moved = True
        if not moved:
            time.sleep(0.02)
    time.sleep(0.5)
    peak = _status_kb(tls_mppd.proc.pid, "VmHWM")
    assert peak - before < 32 * 1024, (before, peak, [p.sent for p in pumps])
    p = pumps[0]
    while p.pending is not None:           # finish the write begun
        p.try_send(None)
        p.try_recv()
    n = p.sent
    got = p.exchange(b"QUIT\r\n", REPLY[221])
    assert got == BARE_LF_REPLY * n + REPLY[221]
    for q in pumps:
        q.sock.close()


@needs_openssl
def test_tls_pipelining_client_that_reads_gets_everything(tls_mppd, pki):
    """50,000 NOOPs pipelined over TLS by a client that reads as it
    writes: flow control never stalls it, and QUIT closes only once every
    reply is sent (a TLS bufferevent calls its write callback later, when
    more replies may be waiting: closing there lost some)."""
    n = 50000
    p = TLSPump(_tls_client(tls_mppd, pki))
    t0 = time.monotonic()
    got = p.exchange(b"NOOP\r\n" * n + b"QUIT\r\n", REPLY[221])
    elapsed = time.monotonic() - t0
    assert got == REPLY[250] * n + REPLY[221]
    assert elapsed < 20, elapsed


@pytest.mark.parametrize("split", range(6))
def test_text_end_split_across_reads(mppd, split):
    """A text is fed in whole chunks, cut where it may end: also when its
    end marker arrives in two reads, the commands behind it are read as
    commands, each answered once."""
    c = mppd.client()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert c.login("alice", "secret") == 250
    assert c.cmd("DATA") == 354
    end = b"\r\n.\r\n"
    c.send(message(subject=f"split {split}").encode().rstrip(b"\r\n") +
           end[:split])
    time.sleep(0.1)
    c.send(end[split:] + b"NOOP\r\n" * 3 + b"\n" * 3)
    assert [c.line() for _ in range(7)] == [REPLY[250]] * 4 + [REPLY[500]] * 3
    (stored,) = mppd.stored()
    assert stored["text"].endswith(b"Hello.\n")


# ------------------------------------------------- trickling connections

def _trickle(c, data, gap, until_closed_within):
    """Send data a byte every gap seconds; the seconds until mppd closed
    the connection (it must within until_closed_within), and what it sent
    back meanwhile."""
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sock.settimeout(gap)
    t0 = time.monotonic()
    got = b""
    i = 0
    while time.monotonic() - t0 < until_closed_within:
        try:
            c.sock.send(data[i % len(data):i % len(data) + 1])
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0, got
        i += 1
        end = time.monotonic() + gap
        while time.monotonic() < end:
            try:
                chunk = c.sock.recv(4096)
            except (socket.timeout, TimeoutError):
                break
            except ConnectionResetError:
                return time.monotonic() - t0, got
            if not chunk:
                return time.monotonic() - t0, got
            got += chunk
    raise AssertionError(f"still open after {until_closed_within} s; "
                         f"replies {got!r}")


def test_login_deadline_closes_a_client_that_never_logs_in(mppd_factory):
    """Complete NOOP lines, a byte every 0.5 s: never idle and every line
    ends in time, but there is no login by login_timeout (2 s) after the
    connect: closed without a reply, and the log says why."""
    m = mppd_factory(login_timeout=2, idle_timeout=30)
    m.add_user("alice", "secret")
    m.start()
    c = m.client()
    elapsed, got = _trickle(c, b"NOOP\r\n", 0.5, 6)
    assert 1.5 <= elapsed <= 4.0, elapsed
    assert got == REPLY[250] * (len(got) // len(REPLY[250]))
    wait_for(lambda: re.search(r"session=\w+ client=\[127\.0\.0\.1\] "
                               r"end=login-timeout$", m.log(), re.M),
             what="the login-timeout log line")


def test_login_deadline_also_after_530(mppd_factory):
    """A session spent by a wrong password can never log in: it too is
    closed at login_timeout, however busy it keeps."""
    m = mppd_factory(login_timeout=2, idle_timeout=30, auth_fail_limit=0)
    m.add_user("alice", "secret")
    m.start()
    c = m.client()
    t0 = time.monotonic()
    assert c.login("alice", "wrong") == 530
    elapsed, _ = _trickle(c, b"NOOP\r\n", 0.5, 6)
    assert 1.0 <= time.monotonic() - t0 <= 4.5, elapsed
    wait_for(lambda: "end=login-timeout" in m.log(), what="the log line")


@pytest.mark.parametrize("logged_in", [False, True])
def test_line_deadline_closes_a_byte_trickler(mppd_factory, logged_in):
    """A byte every 0.5 s and never an LF: not idle (idle_timeout 2 s),
    but the line must end within idle_timeout of its first byte. Before
    the login and after it (when login_timeout no longer applies)."""
    m = mppd_factory(login_timeout=60, idle_timeout=2)
    m.add_user("alice", "secret")
    m.start()
    c = m.client()
    if logged_in:
        assert c.login("alice", "secret") == 250
    elapsed, got = _trickle(c, b"NOOPNOOP", 0.5, 6)
    assert got == b""
    assert 1.5 <= elapsed <= 4.0, elapsed
    wait_for(lambda: re.search(r"session=\w+ client=\[127\.0\.0\.1\] "
                               r"end=line-timeout$", m.log(), re.M),
             what="the line-timeout log line")


def test_tricklers_cannot_hold_every_session(mppd_factory):
    """The attack: trickling connections from several addresses take all
    of max_sessions, so a real client gets 451. With the deadlines they
    are all gone within login_timeout and a margin, and the real client
    is served. The deadlines leave 3 s for the 30 connections and the
    real client's to be made: under ASan on a busy machine, 2 s were
    once too few, and a trickler's slot came free before the check."""
    m = mppd_factory(login_timeout=3, idle_timeout=3, max_sessions=30,
                     max_sessions_per_ip=10)
    m.add_user("alice", "secret")
    m.start()
    socks = []
    t0 = time.monotonic()
    for i in range(30):
        s = socket.create_connection(("127.0.0.1", m.port),
                                     source_address=(f"127.0.0.{2 + i % 3}", 0))
        s.setblocking(False)
        socks.append(s)
    wait_for(lambda: len(re.findall(r"\] connect$", m.log(), re.M)) >= 30,
             what="30 sessions")
    c = Client(m.port)
    assert c.line() == REPLY[451]
    c.close()
    closed = set()
    while len(closed) < len(socks) and time.monotonic() - t0 < 9:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                s.send(b"N")                    # never an LF
                while s.recv(4096):
                    pass
                closed.add(i)
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
        time.sleep(0.5)
    assert len(closed) == len(socks), f"{len(socks) - len(closed)} still open"
    assert time.monotonic() - t0 <= 6.5
    c = m.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message()) == 250
    for s in socks:
        s.close()


def test_slow_but_honest_client_is_served(mppd_factory):
    """Slow is not hostile: every command line is sent a byte at a time
    but ends within idle_timeout (2 s), the login is done before
    login_timeout (3 s), and the session then lives on well past it; the
    message text is no command line, so one of its lines may take longer
    than idle_timeout as long as the client is never silent that long."""
    m = mppd_factory(login_timeout=3, idle_timeout=2)
    m.add_user("alice", "secret")
    m.start()
    c = m.client()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def slowly(data, gap):
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(gap)

    t0 = time.monotonic()
    slowly(b"USER alice\r\n", 0.05)
    assert c.line() == REPLY[250]
    slowly(b"PASS secret\r\n", 0.05)
    assert c.line() == REPLY[250]
    time.sleep(1.5)                         # idle, but less than 2 s
    slowly(b"DATA\r\n", 0.2)
    assert c.line() == REPLY[354]
    head = message(subject="slow", body="").encode()
    c.send(head)
    slowly(b"a text line sent slower than idle_timeout\r\n", 0.1)
    c.send(b".\r\n")
    assert c.line() == REPLY[250]
    assert time.monotonic() - t0 > 6
    assert c.cmd("NOOP") == 250
    assert c.cmd("QUIT") == 221
    (stored,) = m.stored()
    assert b"a text line sent slower than idle_timeout\n" in stored["text"]
    assert "timeout" not in m.log()


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
    assert m.log().count(" backend=pop3:") == 10
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
    wait_for(lambda: m.log().count(" backend=pop3:") == 2, timeout=10,
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
