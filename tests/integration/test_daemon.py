"""mppd as a daemon: idle timeout, listeners, concurrency, session limits,
inetd mode, signals, configuration errors and overrides, the warnings for
a password or config file others could read or change, the index's file
modes, start-up reconciliation of the spool, and logging (with mppqueue):
syslog, stderr, a log file reopened for logrotate, a missing /dev/log."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import (BIN, REPLY, ROOT, Client, Mppqueue, free_port, message,
                      pid_from_log, shared_dir, stop_pid, system_users,
                      tmp_leftovers, wait_for)  # noqa: F401

MPPD = BIN / "mppd"
EX_CONFIG = 78


# Helpers

def rest_of_stream(c, timeout=10.0):
    """Everything the server still sends until it closes the connection."""
    c.sock.settimeout(timeout)
    data, c.buf = c.buf, b""
    while True:
        try:
            chunk = c.sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def subjects(m):
    out = []
    for r in m.stored():
        assert r["text"] is not None, f"row {r['id']} without its file"
        found = re.search(rb"(?m)^Subject: (.*)$", r["text"])
        out.append(found.group(1).decode() if found else None)
    return out


def tmp_empty(m):
    return not tmp_leftovers(m.spool)


def try_greeting(port, host="127.0.0.1", source=None, timeout=5.0):
    """A Client when the server greets with 220, else None (closed)."""
    try:
        s = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
    except OSError:
        return None
    c = Client(port, sock=s, timeout=timeout)
    line = c.line()
    if line == REPLY[220]:
        return c
    c.close()
    return None


def greeted(port, source=None):
    """Wait until a connection (from source) is accepted and greeted."""
    return wait_for(lambda: try_greeting(port, source=source),
                    what=f"a greeting for a client from {source or 'default'}")


def launch(m, args, env=None, port=None, host="127.0.0.1"):
    """Start bin/mppd with exactly args (no -c added); log to m's log.
    m.stop() ends it. Waits until port greets."""
    m.logf = open(m.logfile, "ab")
    m.proc = subprocess.Popen([str(MPPD), *args], stdout=m.logf,
                              stderr=subprocess.STDOUT, env=env)
    port = port or m.port

    def up():
        if m.proc.poll() is not None:
            raise AssertionError("mppd exited: " + m.log())
        c = try_greeting(port, host=host, timeout=0.5)
        if c:
            c.close()
        return c is not None
    wait_for(up, what="mppd to listen")
    return m


def run_mppd(args, env=None, timeout=10):
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    return subprocess.run([str(MPPD), *args], capture_output=True,
                          timeout=timeout, env=e, stdin=subprocess.DEVNULL)


def post_session(c, subject):
    assert c.login("alice", "secret") == 250
    assert c.post(message(subject=subject)) == 250
    assert c.cmd("QUIT") == 221


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# Idle timeout

def test_idle_client_closed_without_reply(mppd):
    mppd.restart(idle_timeout=1)
    for state in ("start", "authed"):
        c = mppd.client()
        if state == "authed":
            assert c.login("alice", "secret") == 250
        t0 = time.monotonic()
        assert rest_of_stream(c) == b"", "a reply was sent before closing"
        elapsed = time.monotonic() - t0
        # idle_timeout=1: closed after about 1 s (margins: 0.5 s .. 8 s)
        assert 0.5 <= elapsed <= 8, elapsed
    wait_for(lambda: mppd.log().count("idle-timeout") >= 2,
             what="idle-timeout log lines")


@pytest.mark.parametrize("size", [100, 200 * 1024], ids=["small", "spilled"])
def test_idle_in_text_not_stored(mppd, size):
    mppd.restart(idle_timeout=1)
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.cmd("DATA") == 354
    text = message(body="").encode()
    text += (b"p" * 98 + b"\r\n") * (size // 100) + b"unfinished line"
    c.send(text)
    assert rest_of_stream(c) == b""
    wait_for(lambda: "idle-timeout" in mppd.log(), what="idle-timeout in log")
    wait_for(lambda: tmp_empty(mppd), timeout=5, what="tmp/ to be emptied")
    assert mppd.stored() == []
    # the daemon still works
    post_session(mppd.client(), "after idle")
    assert subjects(mppd) == ["after idle"]


def test_trickling_client_is_not_idle(mppd):
    """Idle means silence: a byte every 0.2 s keeps a 2 s timeout away
    for 2.8 s (the margin: 10 times the gap between bytes). Each line ends
    within the 2 s, as a command line must (test_limits.py)."""
    mppd.restart(idle_timeout=2)
    c = mppd.client()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.monotonic()
    for line in (b"NOOP x\r\n", b"NOOP\r\n"):
        for b in line:
            c.send(bytes([b]))
            time.sleep(0.2)
    assert time.monotonic() - t0 > 2.5
    assert c.line() == REPLY[501]
    assert c.line() == REPLY[250]
    assert c.cmd("NOOP") == 250


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("size", [100, 200 * 1024], ids=["small", "spilled"])
def test_disconnect_in_text_not_stored(mppd, size, how):
    # one session per address: the next greeting proves the server has
    # dealt with the cut connection
    mppd.restart(max_sessions_per_ip=1)
    c = greeted(mppd.port)
    assert c.login("alice", "secret") == 250
    assert c.cmd("DATA") == 354
    text = message(subject="cut").encode()
    text += (b"k" * 98 + b"\r\n") * (size // 100) + b"no end"
    c.send(text)
    if how == "reset":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack("ii", 1, 0))
    c.close()
    c2 = greeted(mppd.port)
    # A spilled text's file is removed by a store writer, just after the
    # connection's slot is free: allow it that moment.
    wait_for(lambda: tmp_empty(mppd), timeout=5, what="tmp/ to be emptied")
    assert mppd.stored() == []
    post_session(c2, "next")
    assert subjects(mppd) == ["next"]


def test_close_right_after_end_marker_still_stored(mppd):
    """The text was finished: the client leaving before it reads the
    reply does not undo the message."""
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.cmd("DATA") == 354
    c.send(message(subject="hasty").encode() + b".\r\nQUIT\r\n")
    c.close()
    wait_for(lambda: subjects(mppd) == ["hasty"], what="the message stored")
    assert mppd.running()
    assert tmp_empty(mppd)


def test_idle_timeout_frees_session_slot(mppd):
    mppd.restart(idle_timeout=1, max_sessions_per_ip=1)
    c1 = greeted(mppd.port)
    assert rest_of_stream(Client(mppd.port)) == REPLY[451]
    assert rest_of_stream(c1) == b""              # idle: closed
    c2 = greeted(mppd.port)
    assert c2.cmd("NOOP") == 250


# Listeners

def test_ipv6_listener(mppd_factory):
    if not ipv6_loopback():
        pytest.skip("::1 is not available")
    p6 = free_port("::1")
    m = mppd_factory(listen=f"[::1]:{p6}")
    m.add_user("alice", "secret")
    m.port = p6
    m.start()
    c = Client(p6, host="::1")
    assert c.line() == REPLY[220]
    post_session(c, "over v6")
    (r,) = m.stored()
    assert r["client_addr"] == "::1"
    received = r["text"].split(b"\nFrom:")[0]
    assert b"::1" in received
    # not listening on IPv4
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p6), timeout=2).close()


def test_two_listeners_v4_and_v6(mppd_factory):
    if not ipv6_loopback():
        pytest.skip("::1 is not available")
    p4, p6 = free_port(), free_port("::1")
    m = mppd_factory(listen=f"127.0.0.1:{p4}, [::1]:{p6}")
    m.add_user("alice", "secret")
    m.port = p4
    m.start()
    post_session(Client(p4).greet(), "v4")
    post_session(Client(p6, host="::1").greet(), "v6")
    assert sorted(r["client_addr"] for r in m.stored()) == ["127.0.0.1", "::1"]


# Concurrency

def test_concurrent_sessions_all_stored(mppd):
    nthreads, per = 20, 5
    errors = []
    start = threading.Barrier(nthreads)

    def worker(t):
        try:
            c = mppd.client(timeout=30)
            start.wait(timeout=30)
            assert c.login("alice", "secret") == 250
            for i in range(per):
                assert c.post(message(subject=f"c{t}-{i}",
                                      body=f"from {t} #{i}\r\n" * (1 + i * 50))) == 250
            assert c.cmd("QUIT") == 221
        except Exception as e:  # reported below
            errors.append(f"thread {t}: {e!r}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    got = subjects(mppd)
    assert sorted(got) == sorted(f"c{t}-{i}" for t in range(nthreads)
                                 for i in range(per))
    assert len({r["id"] for r in mppd.stored()}) == nthreads * per
    assert tmp_empty(mppd)


def test_slow_clients_do_not_delay_others(mppd):
    """Clients that are connected and silent, or trickle bytes, never hold
    up another client's post (measured: well under a second; a normal post
    takes a few tens of milliseconds here)."""
    silent = mppd.client()
    half_cmd = mppd.client()
    half_cmd.send(b"NOO")
    in_text = mppd.client()
    assert in_text.login("alice", "secret") == 250
    assert in_text.cmd("DATA") == 354
    in_text.send(message(subject="slow").encode()[:40])
    long_line = mppd.client()
    long_line.send(b"PASS " + b"q" * 100000)
    stop = threading.Event()

    def trickle():
        i = 0
        while not stop.is_set():
            for c in (half_cmd, in_text, long_line):
                c.send(b"x")
            i += 1
            time.sleep(0.02)

    th = threading.Thread(target=trickle)
    th.start()
    try:
        times = []
        for n in range(3):
            t0 = time.monotonic()
            post_session(mppd.client(), f"fast {n}")
            times.append(time.monotonic() - t0)
        assert max(times) < 1.0, times
    finally:
        stop.set()
        th.join()
    assert sorted(subjects(mppd)) == ["fast 0", "fast 1", "fast 2"]
    # the slow ones are still alive and in sync
    assert silent.cmd("NOOP") == 250
    half_cmd.send(b"\r\n")
    assert half_cmd.line() == REPLY[500]          # "NOOxxx...x"
    long_line.send(b"\r\n")
    assert long_line.line() == REPLY[500]


# Session limits

def test_max_sessions_per_ip(mppd):
    mppd.restart(max_sessions_per_ip=2)
    c1 = greeted(mppd.port)
    c2 = greeted(mppd.port)
    for _ in range(3):
        c3 = Client(mppd.port)
        assert rest_of_stream(c3) == REPLY[451]
    # another address is not limited by this one
    other = greeted(mppd.port, source="127.0.0.2")
    assert other.cmd("NOOP") == 250
    # the ones already in are served
    assert c1.cmd("NOOP") == 250 and c2.cmd("NOOP") == 250
    # a freed slot can be taken again
    assert c1.cmd("QUIT") == 221
    c4 = greeted(mppd.port)
    post_session(c4, "after limit")
    assert subjects(mppd) == ["after limit"]


def test_max_sessions(mppd):
    mppd.restart(max_sessions=3)
    held = [greeted(mppd.port, source=f"127.0.0.{i}") for i in (1, 2, 3)]
    for src in ("127.0.0.4", "127.0.0.1"):
        s = socket.create_connection(("127.0.0.1", mppd.port), timeout=10,
                                     source_address=(src, 0))
        assert rest_of_stream(Client(mppd.port, sock=s)) == REPLY[451]
    for c in held:
        assert c.cmd("NOOP") == 250
    held[1].close()
    c = greeted(mppd.port, source="127.0.0.4")
    post_session(c, "in again")


# inetd mode

def test_inetd_socketpair(mppd_factory):
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.write_config()
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([str(MPPD), "-i", "-c", str(m.config_path)],
                         stdin=theirs, stdout=theirs, stderr=subprocess.PIPE)
    theirs.close()
    try:
        c = Client(None, sock=ours)
        assert c.line() == REPLY[220]
        assert c.login("alice", "secret") == 250
        assert c.post(message(subject="inetd 1")) == 250
        assert c.post(message(subject="inetd 2")) == 250
        assert c.cmd("QUIT") == 221
        assert rest_of_stream(c) == b""
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert subjects(m) == ["inetd 1", "inetd 2"]
    assert tmp_empty(m)


def test_inetd_exits_when_client_goes(mppd_factory):
    m = mppd_factory()
    m.write_config()
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([str(MPPD), "-i", "-c", str(m.config_path)],
                         stdin=theirs, stdout=theirs, stderr=subprocess.PIPE)
    theirs.close()
    try:
        c = Client(None, sock=ours)
        assert c.line() == REPLY[220]
        c.send(b"USER alice\r\nDATA\r\n")
        assert c.line() == REPLY[250]
        assert c.line() == REPLY[503]
        ours.shutdown(socket.SHUT_WR)
        assert p.wait(10) == 0
    finally:
        ours.close()
        if p.poll() is None:
            p.kill()
            p.wait()


def test_inetd_on_accepted_tcp_socket_knows_client_address(mppd_factory):
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.write_config()
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        c = Client(lsock.getsockname()[1])
        conn, _ = lsock.accept()
    p = subprocess.Popen([str(MPPD), "-i", "-c", str(m.config_path)],
                         stdin=conn, stdout=conn, stderr=subprocess.PIPE)
    conn.close()
    try:
        assert c.line() == REPLY[220]
        post_session(c, "inetd tcp")
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    (r,) = m.stored()
    assert r["client_addr"] == "127.0.0.1"


def test_inetd_from_pipe_prints_replies(mppd_factory):
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.write_config()
    script = (r"USER alice\r\nPASS secret\r\nDATA\r\n"
              r"From: alice@example.org\r\nTo: bob@example.com\r\n"
              r"Subject: piped\r\n\r\n..dotted\r\n.\r\nNOOP\r\nQUIT\r\n")
    r = subprocess.run(
        ["sh", "-c", f"printf '{script}' | '{MPPD}' -i -c '{m.config_path}'"],
        capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (REPLY[220] + REPLY[250] + REPLY[250] + REPLY[354] +
                        REPLY[250] + REPLY[250] + REPLY[221])
    (row,) = m.stored()
    assert row["text"].endswith(b"\n\n.dotted\n")
    assert subjects(m) == ["piped"]


def test_inetd_pipe_eof_in_text_not_stored(mppd_factory):
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.write_config()
    session = (b"USER alice\r\nPASS secret\r\nDATA\r\n" +
               message(subject="cut").encode() + b"no end marker\r\n")
    r = subprocess.run([str(MPPD), "-i", "-c", str(m.config_path)],
                       input=session, capture_output=True, timeout=20)
    assert r.stdout == REPLY[220] + REPLY[250] + REPLY[250] + REPLY[354]
    assert r.returncode == 0
    assert m.stored() == []
    assert tmp_empty(m)


def test_inetd_idle_timeout(mppd_factory):
    m = mppd_factory()
    m.write_config()
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([str(MPPD), "-i", "-c", str(m.config_path),
                          "-o", "idle_timeout=1"],
                         stdin=theirs, stdout=theirs, stderr=subprocess.PIPE)
    theirs.close()
    try:
        c = Client(None, sock=ours)
        assert c.line() == REPLY[220]
        assert rest_of_stream(c) == b""
        assert p.wait(10) == 0
    finally:
        ours.close()
        if p.poll() is None:
            p.kill()
            p.wait()


# Signals

def test_sighup_rereads_password_file(mppd):
    c = mppd.client()
    assert c.login("carol", "pw-c") == 530
    subprocess.run([str(BIN / "mpppasswd"), "-f", str(mppd.passwd), "-s",
                    "add", "carol"], input="pw-c\n", text=True, check=True,
                   capture_output=True)
    mark = mppd.log().count("password data reloaded")
    mppd.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: mppd.log().count("password data reloaded") > mark,
             what="reload log line")
    c = mppd.client()
    assert c.login("carol", "pw-c") == 250
    assert c.post(message()) == 250
    # and a removed user can no longer log in
    subprocess.run([str(BIN / "mpppasswd"), "-f", str(mppd.passwd), "del",
                    "alice"], check=True, capture_output=True)
    mark = mppd.log().count("password data reloaded")
    mppd.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: mppd.log().count("password data reloaded") > mark,
             what="reload log line")
    assert mppd.client().login("alice", "secret") == 530
    assert mppd.running()


def test_sighup_with_missing_file_keeps_old_data(mppd):
    saved = mppd.passwd.read_text()
    mppd.passwd.unlink()
    before = mppd.log()
    mppd.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(mppd.log()) > len(before) and
             str(mppd.passwd) in mppd.log()[len(before):],
             what="a log line about the failed reload")
    assert "password data reloaded" not in mppd.log()[len(before):]
    assert mppd.running()
    assert mppd.client().login("alice", "secret") == 250
    mppd.passwd.write_text(saved)


def test_sigterm_exits_0(mppd):
    idle = mppd.client()
    mid = mppd.client()
    assert mid.login("alice", "secret") == 250
    assert mid.cmd("DATA") == 354
    mid.send(message(subject="half").encode())
    t0 = time.monotonic()
    assert mppd.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 10
    assert rest_of_stream(idle, timeout=5) == b""
    assert mppd.stored() == []
    assert tmp_empty(mppd)


def test_sigterm_idle_daemon_exits_0(mppd):
    assert mppd.stop(signal.SIGTERM) == 0


# Configuration

def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("bad,key", [
    ("bogus_key = 1", "bogus_key"),
    ("idle_timeout = soon", "idle_timeout"),
    ("idle_timeout = -5", "idle_timeout"),
    ("max_message_size = 12abc", "max_message_size"),
    ("listen = nowhere:port", "listen"),
    ("auth = ldap:server", "auth"),
    ("spool_dir = relative/path", "spool_dir"),
])
def test_bad_config_exits_78_naming_file_line_key(mppd_factory, bad, key):
    m = mppd_factory()
    m.write_config()
    lines = m.config_path.read_text().splitlines()
    lines.insert(2, bad)
    write(m.config_path, "\n".join(lines) + "\n")
    for args in (["-c", str(m.config_path)], ["-d", "-c", str(m.config_path)]):
        r = run_mppd(args)
        assert r.returncode == EX_CONFIG, r
        err = r.stderr.decode()
        assert str(m.config_path) in err
        assert re.search(rf"{re.escape(str(m.config_path))}\D{{0,3}}3\b", err) \
            or re.search(r"line\s*3\b", err), err
        assert key in err


def test_config_file_missing_exits_78(tmp_path):
    missing = tmp_path / "no-such.conf"
    r = run_mppd(["-c", str(missing)])
    assert r.returncode == EX_CONFIG
    assert str(missing) in r.stderr.decode()


def test_config_file_unreadable_exits_78(tmp_path):
    """Root reads any mode, so a directory stands in for an unreadable file."""
    d = tmp_path / "conf.d"
    d.mkdir()
    r = run_mppd(["-c", str(d)])
    assert r.returncode == EX_CONFIG
    assert str(d) in r.stderr.decode()


def test_bad_override_exits_78(mppd_factory):
    m = mppd_factory()
    m.write_config()
    r = run_mppd(["-c", str(m.config_path), "-o", "no_such_key=1"])
    assert r.returncode == EX_CONFIG
    assert "no_such_key" in r.stderr.decode()
    r = run_mppd(["-c", str(m.config_path), "-o", "idle_timeout=never"])
    assert r.returncode == EX_CONFIG
    assert "idle_timeout" in r.stderr.decode()


def test_o_overrides_config(mppd_factory):
    m = mppd_factory()
    m.add_user("alice", "secret")
    p2 = free_port()
    m.write_config()
    launch(m, ["-d", "-c", str(m.config_path),
               "-o", "hostname=override.test",
               "-o", "sender_domain=over.example",
               "-o", f"listen=127.0.0.1:{p2}"], port=p2)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", m.port), timeout=2).close()
    m.port = p2
    post_session(m.client(), "overridden")
    (r,) = m.stored()
    assert r["sender"] == "alice@over.example"
    received = r["text"].split(b"\nFrom:")[0]
    assert b"override.test" in received and b"mpp.test" not in received


def test_mpp_config_environment_used(mppd_factory):
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.write_config()
    env = dict(os.environ, MPP_CONFIG=str(m.config_path))
    launch(m, ["-d"], env=env)
    post_session(m.client(), "via env")
    assert subjects(m) == ["via env"]


def test_mpp_config_bad_named_in_error_and_c_wins(mppd_factory, tmp_path):
    bad = write(tmp_path / "bad.conf", "spool_dir = /tmp\nwhat = ever\n")
    r = run_mppd(["-d"], env={"MPP_CONFIG": str(bad)})
    assert r.returncode == EX_CONFIG
    assert str(bad) in r.stderr.decode() and "what" in r.stderr.decode()
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.write_config()
    env = dict(os.environ, MPP_CONFIG=str(bad))
    launch(m, ["-d", "-c", str(m.config_path)], env=env)
    post_session(m.client(), "-c wins")


def test_config_syntax_comments_blank_lines_no_spaces(mppd_factory):
    m = mppd_factory()
    m.add_user("alice", "secret")
    body = "".join(f"{k}={v}\n" if i % 2 else f"  {k}\t=  {v}  \n"
                   for i, (k, v) in enumerate(m.settings.items()))
    write(m.config_path, "# mpp test config\n\n" + body + "\n# end\n")
    launch(m, ["-d", "-c", str(m.config_path)])
    post_session(m.client(), "syntax")
    assert subjects(m) == ["syntax"]


def made_ahead(m):
    """{name: inode} of the empty files mppd made ahead in tmp/."""
    out = {}
    for p in (m.spool / "tmp").iterdir():
        if p.name.endswith(".ready"):
            st = p.stat()
            assert st.st_size == 0 and st.st_mode & 0o777 == 0o600, p.name
            out[p.name] = st.st_ino
    return out


def test_files_made_ahead_carry_the_next_texts_and_go_at_stop(mppd):
    """While idle, mppd keeps two empty files in tmp/ for the next texts
    (mppd/store.c, store_make_ahead): a text is written into one, which
    is then in new/ under the text's id, and another is made in its
    place. A clean stop removes them."""
    wait_for(lambda: len(made_ahead(mppd)) == 2, what="two files made ahead")
    before = made_ahead(mppd)
    post_session(mppd.client(), "into a file made ahead")
    (row,) = mppd.stored()
    assert os.stat(mppd.file_of(row["id"])).st_ino in before.values()
    assert subjects(mppd) == ["into a file made ahead"]
    wait_for(lambda: len(made_ahead(mppd)) == 2, what="the one used made again")
    assert len(set(made_ahead(mppd)) - set(before)) == 1
    assert not tmp_leftovers(mppd.spool)
    assert mppd.stop() == 0
    assert not list((mppd.spool / "tmp").iterdir())


def test_spool_created_mode_0700(mppd_factory):
    m = mppd_factory()
    m.add_user("alice", "secret")
    assert not m.spool.exists()
    m.start()
    for sub in ("", "tmp", "new", "cur"):
        mode = (m.spool / sub).stat().st_mode & 0o777
        assert mode == 0o700, (sub, oct(mode))
    assert (m.spool / "index.db").exists()
    post_session(m.client(), "fresh spool")
    assert subjects(m) == ["fresh spool"]


def test_index_files_created_0600(mppd_factory):
    """docs/security.md: the index and its -wal and -shm are 0600, made by
    mppd, mppqueue or mppq, whatever the umask allows."""
    old = os.umask(0o022)
    try:
        m = mppd_factory()
        m.add_user("alice", "secret")
        m.start()
        post_session(m.client(), "private")
        q = Mppqueue(mppd_factory("b"))
        q.start()
        c = mppd_factory("c")
        c.spool.mkdir(mode=0o700)
        c.write_config()
        r = subprocess.run([str(BIN / "mppq"), "-c", str(c.config_path),
                            "stats"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        for spool, names in ((m.spool, ("", "-wal", "-shm")),
                             (q.mppd.spool, ("", "-wal", "-shm")),
                             (c.spool, ("",))):
            for name in names:
                f = spool / ("index.db" + name)
                assert oct(f.stat().st_mode & 0o777) == oct(0o600), f
        q.stop()
    finally:
        os.umask(old)


def config_warnings(text, m):
    return [l for l in text.splitlines() if f"config file {m.config_path} " in l]


@pytest.mark.parametrize("mode,says", [
    (0o666, "is writable by others"),
    (0o620, "is writable by its group"),
    (0o644, None),
    (0o600, None),
], ids=["0666", "0620", "0644", "0600"])
def test_config_file_writable_by_others_warns(mppd_factory, mode, says):
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.write_config()
    m.config_path.chmod(mode)
    m.write_config = lambda: None          # keep the mode for the start
    m.start()
    post_session(m.client(), "config mode")
    r = subprocess.run([str(BIN / "mppq"), "-d", "-c", str(m.config_path),
                        "stats"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    for text in (m.log(), r.stderr):
        warned = config_warnings(text, m)
        if says is None:
            assert warned == [], warned
        else:
            assert len(warned) == 1 and says in warned[0], text


def test_config_file_owned_by_another_user_warns(mppd_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to another user")
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.write_config()
    m.config_path.chmod(0o644)
    os.chown(m.config_path, 65534, -1)      # nobody, who could rewrite it
    m.write_config = lambda: None
    m.start()
    [warned] = config_warnings(m.log(), m)
    assert "is owned by uid 65534" in warned


def readable_warnings(m):
    return [l for l in m.log().splitlines()
            if str(m.passwd) in l and re.search(r"readable|world|others", l)]


def test_world_readable_password_file_warns(mppd_factory):
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.passwd.chmod(0o644)
    m.start()
    assert readable_warnings(m), m.log()
    assert m.client().login("alice", "secret") == 250


def test_private_password_file_no_warning(mppd_factory):
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.passwd.chmod(0o640)
    m.start()
    assert m.client().login("alice", "secret") == 250
    assert readable_warnings(m) == []


# Start-up reconciliation

def age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_startup_reconciliation(mppd):
    post_session(mppd.client(), "kept")
    (kept,) = mppd.stored()
    mppd.stop()
    sp = mppd.spool
    files = {
        "tmp_old": sp / "tmp" / "1700000000.M000001P1Q1",
        "tmp_young": sp / "tmp" / "1700000000.M000002P1Q2",
        "new_old": sp / "new" / "1700000000.M000003P1Q3",
        "new_young": sp / "new" / "1700000000.M000004P1Q4",
        "cur_old": sp / "cur" / "1700000000.M000005P1Q5",
    }
    for name, p in files.items():
        p.write_bytes(f"Subject: {name}\n\nstray\n".encode())
    age(files["tmp_old"], 40 * 3600)
    age(files["tmp_young"], 3600)
    age(files["new_old"], 2 * 3600)
    age(files["new_young"], 60)
    age(files["cur_old"], 2 * 3600)
    kept_file = mppd.file_of(kept["id"])
    age(kept_file, 2 * 3600)          # old, but it has its row
    mppd.start()
    orphans = sp / "orphans"
    assert not files["tmp_old"].exists()
    assert files["tmp_young"].exists()
    assert not files["new_old"].exists()
    assert (orphans / files["new_old"].name).read_bytes() == \
        b"Subject: new_old\n\nstray\n"
    assert files["new_young"].exists()
    assert not files["cur_old"].exists()
    assert (orphans / files["cur_old"].name).exists()
    assert kept_file.exists()
    assert [r["id"] for r in mppd.stored()] == [kept["id"]]
    log = mppd.log()
    for key in ("new_old", "cur_old"):
        assert any(files[key].name in l and "orphan" in l
                   for l in log.splitlines()), key
    assert not any(files["new_young"].name in l for l in log.splitlines())
    # and it still posts
    post_session(mppd.client(), "after")
    assert sorted(subjects(mppd)) == ["after", "kept"]


def test_startup_releases_dead_and_expired_leases(mppd):
    """A 'sending' row goes back to 'deferred' when its lease ran out or
    its owner (this host, a pid) no longer exists; a live lease stays."""
    for n in range(3):
        post_session(mppd.client(), f"lease {n}")
    ids = [r["id"] for r in mppd.stored()]
    mppd.stop()
    dead = subprocess.Popen(["true"])
    dead.wait()
    now = int(time.time())
    host = mppd.settings["hostname"]
    rows = [(host, dead.pid, now + 3600),        # owner gone
            (host, os.getpid(), now - 10),       # lease ran out
            (host, os.getpid(), now + 3600)]     # alive and valid
    with mppd.db() as conn:
        for qid, (h, pid, until) in zip(ids, rows):
            conn.execute("UPDATE message SET state = 'sending', "
                         "lease_host = ?, lease_pid = ?, lease_until = ? "
                         "WHERE id = ?", (h, pid, until, qid))
    conn.close()
    mppd.start()
    states = {r["id"]: r["state"] for r in mppd.stored()}
    assert [states[i] for i in ids] == ["deferred", "deferred", "sending"]


def test_inetd_refuses_a_regular_file_as_stdin(mppd_factory):
    m = mppd_factory()
    m.write_config()
    with open(os.devnull) as devnull:
        r = subprocess.run([str(m.bin / "mppd"), "-i", "-d", "-c", str(m.config_path)],
                           stdin=devnull, capture_output=True, text=True, timeout=10)
    assert r.returncode == 64
    assert "socket or a pipe" in r.stderr + m.log()


# Logging: syslog, stderr, a file; reopening it; a missing /dev/log

MPPQUEUE = BIN / "mppqueue"
EX_CANTCREAT = 73

# A log file's line: time, host, program[pid], message.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [^ .]+ "
                      r"(mppd|mppqueue|mppq)\[(\d+)\]: \S.*$")


def log_lines(path):
    """Every line of a log file, each checked whole and well-formed."""
    text = path.read_text(errors="replace") if path.exists() else ""
    assert text == "" or text.endswith("\n"), text[-200:]
    lines = text.splitlines()
    for line in lines:
        assert LOG_LINE.match(line), line
    return lines


def inetd_session(m, env=None, prefix=()):
    """mppd -i on a socketpair (stderr piped); the process and a Client."""
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([*prefix, str(MPPD), "-i", "-c", str(m.config_path)],
                         stdin=theirs, stdout=theirs, stderr=subprocess.PIPE,
                         env=env)
    theirs.close()
    c = Client(None, sock=ours)
    assert c.line() == REPLY[220]
    return p, c


def end_session(p, c):
    assert c.cmd("QUIT") == 221
    c.close()
    assert p.wait(20) == 0
    return p.stderr.read().decode(errors="replace")


def test_log_file_reopened_after_rename(mppd_factory):
    """log = file: each line whole, with time, host and mppd[pid]; after a
    rename (logrotate's), SIGUSR1 or SIGHUP sends later lines to a new
    file at the path, none to the old one."""
    m = mppd_factory()
    log = m.dir / "mpp.log"
    m.settings["log"] = f"file:{log}"
    m.add_user("alice", "secret")
    m.write_config()
    p, c = inetd_session(m)
    try:
        assert c.login("alice", "secret") == 250
        assert c.post(message(subject="one")) == 250
        wait_for(lambda: "result=accepted" in log.read_text(), what="accept line")
        for sig, old in ((signal.SIGUSR1, "mpp.log.1"), (signal.SIGHUP, "mpp.log.2")):
            os.rename(log, m.dir / old)
            p.send_signal(sig)
            wait_for(lambda: log.exists() and "log file reopened" in log.read_text(),
                     what=f"reopen on {sig.name}")
            assert c.post(message(subject="later")) == 250
            wait_for(lambda: "result=accepted" in log.read_text(), what="new accept line")
            assert "result=accepted" in (m.dir / old).read_text()
        err = end_session(p, c)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # Before the file is open (after the privilege drop) lines go to stderr.
    assert all("running as root" in x for x in err.splitlines()), err
    first, second, now = (log_lines(m.dir / "mpp.log.1"), log_lines(m.dir / "mpp.log.2"),
                          log_lines(log))
    assert sum("result=accepted" in x for x in first) == 1
    assert sum("result=accepted" in x for x in second) == 1
    assert sum("result=accepted" in x for x in now) == 1
    assert all(f"mppd[{p.pid}]: " in x for x in first + second + now)
    assert any("end=quit" in x for x in now)
    assert "log file reopened" not in " ".join(first)
    # The SIGHUP still reloads the password file, as it always did.
    assert "password data reloaded" in " ".join(now)


def test_log_file_shared_by_many_writers(mppd_factory):
    """Sessions in several mppd -i processes and a queue runner write to
    one file at once: every line arrives whole."""
    m = mppd_factory()
    log = m.dir / "mpp.log"
    # The runner detaches: as root it must be told to stay root.
    m.settings.update(log=f"file:{log}", user="root")
    m.add_user("alice", "secret")
    m.write_config()
    runner = subprocess.Popen([str(MPPQUEUE), "-v", "-c", str(m.config_path)])
    assert runner.wait(20) == 0
    rpid = pid_from_log(log, "ready")
    procs = []
    try:
        for i in range(4):
            p, c = inetd_session(m)
            procs.append((p, c))
            assert c.login("alice", "secret") == 250
        for k in range(10):
            for p, c in procs:
                assert c.post(message(subject=f"s{k}", extra="X-Pad: " + "p" * 1500 +
                                      "\r\n")) == 250
        for p, c in procs:
            end_session(p, c)
        wait_for(lambda: sum("result=sent" in x for x in log_lines(log)) >= 40,
                 timeout=30, what="40 deliveries logged")
    finally:
        stop_pid(rpid)
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    lines = log_lines(log)
    assert sum("result=accepted" in x for x in lines) == 40
    assert {LOG_LINE.match(x).group(1) for x in lines} == {"mppd", "mppqueue"}


def test_log_stderr_from_cron(mppd_factory):
    """log = stderr: mppqueue -1 with no terminal (as from cron) writes
    its lines to standard error, which cron mails."""
    m = mppd_factory(log="stderr")
    m.write_config()
    r = subprocess.run([str(MPPQUEUE), "-1", "-v", "-c", str(m.config_path)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^\S+Z mppqueue\[\d+\]: ", r.stderr, re.M), r.stderr


def test_log_file_that_cannot_be_opened(mppd_factory, tmp_path):
    m = mppd_factory(log=f"file:{tmp_path / 'no' / 'dir' / 'mpp.log'}")
    m.write_config()
    r = subprocess.run([str(MPPQUEUE), "-1", "-c", str(m.config_path)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == EX_CANTCREAT
    assert "mpp.log: No such file or directory" in r.stderr
    link = tmp_path / "link.log"
    link.symlink_to(tmp_path / "target.log")
    m.settings["log"] = f"file:{link}"
    m.write_config()
    ours, theirs = socket.socketpair()
    r = subprocess.run([str(MPPD), "-i", "-c", str(m.config_path)], stdin=theirs,
                       stdout=theirs, capture_output=False, stderr=subprocess.PIPE,
                       timeout=30)
    ours.close()
    theirs.close()
    assert r.returncode == EX_CANTCREAT
    assert b"is a symbolic link" in r.stderr
    assert not (tmp_path / "target.log").exists()


# A /dev of its own for one program: a mount namespace whose /dev holds
# null, zero, full, random and urandom and, when a socket is given, that
# socket as /dev/log; else no /dev/log, as in a container or chroot
# without a syslog daemon. (The host's /dev/log cannot be taken away.)
PRIVATE_DEV = r'''
set -e
d=$1 sock=$2
shift 2
mkdir -p "$d"
mount -t tmpfs -o mode=0755,size=64k mppdev "$d"
for n in null zero full random urandom; do
	: > "$d/$n"
	mount --bind "/dev/$n" "$d/$n"
done
if [ -n "$sock" ]; then
	: > "$d/log"
	mount --bind "$sock" "$d/log"
fi
mount --move "$d" /dev
exec "$@"
'''


def private_dev(tmp_path, sock=None):
    """The command prefix that runs a program with such a /dev (root)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a mount namespace needs root and unshare")
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              PRIVATE_DEV, "sh", str(tmp_path / f"dev{len(list(tmp_path.glob('dev*')))}"),
              str(sock or "")]
    probe = subprocess.run(prefix + ["test", "-c", "/dev/null"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private /dev: {probe.stderr.strip()}")
    return prefix


def syslog_socket(path):
    """A datagram socket standing in for a syslog daemon's /dev/log."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    os.chmod(path, 0o666)
    s.settimeout(0.5)
    return s


def datagrams(s, until, timeout=10.0):
    """Datagrams received until one contains until."""
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(s.recv(65536).decode(errors="replace"))
        except socket.timeout:
            continue
        if until in got[-1]:
            return got
    raise AssertionError(f"no datagram with {until!r}: {got}")


def test_log_syslog(mppd_factory, tmp_path):
    """log = syslog (the default): lines reach /dev/log as mail.info,
    tagged mppd[pid]; no warning when a syslog daemon listens."""
    sock_path = tmp_path / "syslog.sock"
    s = syslog_socket(sock_path)
    prefix = private_dev(tmp_path, sock_path)
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.write_config()
    p, c = inetd_session(m, prefix=prefix)
    try:
        assert c.login("alice", "secret") == 250
        assert c.post(message()) == 250
        got = datagrams(s, "result=accepted")
        err = end_session(p, c)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        s.close()
    assert "warning" not in err
    line = next(x for x in got if "result=accepted" in x)
    assert re.match(r"^<22>\w{3} [ \d]\d \d\d:\d\d:\d\d mppd\[\d+\]: id=", line), line
    # mppqueue -1 from cron (no terminal) logs there too, silently.
    s = syslog_socket(tmp_path / "syslog2.sock")
    prefix = private_dev(tmp_path, tmp_path / "syslog2.sock")
    r = subprocess.run([*prefix, str(MPPQUEUE), "-1", "-c", str(m.config_path)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    got = datagrams(s, "result=sent")
    s.close()
    assert any(re.match(r"^<22>.* mppqueue\[\d+\]: id=.*result=sent", x) for x in got)


def test_syslog_missing_warns(mppd_factory, tmp_path):
    """Without /dev/log every line sent to syslog is lost: the daemons
    and a cron run of mppqueue say so on stderr when they start."""
    prefix = private_dev(tmp_path)
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.write_config()
    warning = "warning: /dev/log: No such file or directory: lines logged to syslog are lost"
    p, c = inetd_session(m, prefix=prefix)
    try:
        assert c.login("alice", "secret") == 250
        assert c.post(message()) == 250
        err = end_session(p, c)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert f"mppd: {warning}" in err
    assert err.count("warning") == 1
    r = subprocess.run([*prefix, str(MPPQUEUE), "-1", "-c", str(m.config_path)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    assert f"mppqueue: {warning}" in r.stderr
    # Lines that go elsewhere need no syslog: no warning.
    for setting in ("stderr", f"file:{tmp_path / 'q.log'}"):
        m.settings["log"] = setting
        m.write_config()
        r = subprocess.run([*prefix, str(MPPQUEUE), "-1", "-c", str(m.config_path)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0 and "warning" not in r.stderr, (setting, r.stderr)


@pytest.mark.skipif(not shutil.which("logrotate"), reason="logrotate missing")
def test_detached_daemons_log_file_and_logrotate(system_users, shared_dir):
    """Both daemons detached as root, dropping to their user, write one
    log file that user opened; logrotate with the shipped example
    (docs/mpp.logrotate) rotates it, and the lines after go to the new
    file, which belongs to the daemons' user."""
    user, uid, gid = system_users.user("d")
    logdir = shared_dir / "log"
    spool = shared_dir / "spool"
    for d in (logdir, spool, shared_dir / "maildir"):
        d.mkdir()
        os.chown(d, uid, gid)
    log = logdir / "mpp.log"
    passwd = shared_dir / "passwd"
    subprocess.run([str(BIN / "mpppasswd"), "-f", str(passwd), "-s", "-m", "sha512",
                    "add", "alice"], input="secret\n", text=True, check=True,
                   capture_output=True)
    os.chown(passwd, 0, gid)
    port = free_port()
    conf = shared_dir / "mpp.conf"
    conf.write_text(f"spool_dir = {spool}\nlisten = 127.0.0.1:{port}\nuser = {user}\n"
                    f"hostname = mpp.test\nauth = file:{passwd}\n"
                    f"transport = maildir:{shared_dir / 'maildir'}\nlog = file:{log}\n")
    pids = []
    try:
        for prog in (MPPD, MPPQUEUE):
            r = subprocess.run([str(prog), "-c", str(conf)], capture_output=True,
                               text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            pids.append(pid_from_log(log, "ready"))
            if len(pids) == 2 and pids[0] == pids[1]:
                pids[1] = pid_from_log(log, "ready: transport")
        st = log.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (uid, 0o640)

        def post(subject):
            c = Client(port).greet()
            assert c.login("alice", "secret") == 250
            assert c.post(message(subject=subject)) == 250
            c.close()
            wait_for(lambda: sum("result=sent" in x for x in log_lines(log)) >= 1,
                     what="a delivery in the log")
        post("before")
        example = (ROOT / "docs/mpp.logrotate").read_text()
        example = example.replace("/var/log/mpp/mpp.log", str(log))
        example = example.replace("create 0640 mpp adm", f"create 0640 {user} adm")
        example = re.sub(r"postrotate\n.*?endscript",
                         f"postrotate\n\t\tkill -USR1 {pids[0]} {pids[1]}\n\tendscript",
                         example, flags=re.S)
        assert f"kill -USR1 {pids[0]}" in example
        (shared_dir / "logrotate.conf").write_text(example)
        r = subprocess.run(["logrotate", "-f", "-s", str(shared_dir / "state"),
                            str(shared_dir / "logrotate.conf")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: sum("log file reopened" in x for x in log_lines(log)) == 2,
                 what="both daemons reopened")
        st = log.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (uid, 0o640)
        old = logdir / "mpp.log.1"
        assert any("Subject" not in x and "result=accepted" in x for x in log_lines(old))
        post("after")
        new = log_lines(log)
        assert sum("result=accepted" in x for x in new) == 1
        assert sum("result=accepted" in x for x in log_lines(old)) == 1
        assert {f"[{pid}]" for pid in pids} <= {x[x.index("["):x.index("]") + 1]
                                                for x in new}
    finally:
        for pid in pids:
            stop_pid(pid)


def test_log_stderr_kept_when_detached(mppd_factory):
    """log = stderr: a detached daemon keeps its standard error (for a
    supervisor that reads it) instead of sending it to /dev/null."""
    m = mppd_factory(log="stderr", user="root")   # detached root: said so
    m.write_config()
    out = m.dir / "stderr.txt"
    with open(out, "wb") as f:
        r = subprocess.run([str(MPPQUEUE), "-c", str(m.config_path)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=f, timeout=30)
    assert r.returncode == 0
    pid = None
    try:
        # "ready" is logged after the runner detached.
        mt = wait_for(lambda: re.search(r"mppqueue\[(\d+)\]: ready", out.read_text()),
                      what="the ready line on stderr")
        pid = int(mt.group(1))
        assert os.getsid(pid) == pid       # detached: a session of its own
    finally:
        stop_pid(pid)


def test_inetd_stderr_socket_gets_no_log_line(mppd_factory):
    """From inetd, standard error may be the client's socket: no log line
    (not the one of an empty user, before the log file is open) and no
    warning may reach the client."""
    m = mppd_factory()
    log = m.dir / "mpp.log"
    m.settings["log"] = f"file:{log}"
    m.add_user("alice", "secret")
    m.write_config()
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([str(MPPD), "-i", "-c", str(m.config_path)],
                         stdin=theirs, stdout=theirs, stderr=theirs)
    theirs.close()
    try:
        c = Client(None, sock=ours)
        assert c.line() == REPLY[220]
        post_session(c, "quiet")
        assert rest_of_stream(c) == b""
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert any("result=accepted" in x for x in log_lines(log))
