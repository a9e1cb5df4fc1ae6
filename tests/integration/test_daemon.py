"""mppd as a daemon: idle timeout, listeners, concurrency, session limits,
inetd mode, signals, configuration errors and overrides, the warnings for
a password or config file others could read or change, the index's file
modes, and start-up reconciliation of the spool."""

import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import BIN, REPLY, Client, Mppqueue, free_port, message, wait_for

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
    return not list((m.spool / "tmp").iterdir())


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
    assert tmp_empty(mppd)
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
