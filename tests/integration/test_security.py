"""Security properties: no user enumeration (USER replies, PASS timing),
per-address auth throttling, bounded memory for hostile input, many slow
clients, privilege handling, and no shell or string-built SQL in the tree."""

import ctypes
import ctypes.util
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPLY, ROOT, Client, message, wait_for

C_SOURCES = [p for d in ("common", "mppd", "mppqueue", "client")
             for p in (ROOT / d).glob("*.c")]


def test_no_shell_anywhere():
    bad = []
    for p in C_SOURCES:
        text = p.read_text()
        for pat in (r"\bsystem\s*\(", r"\bpopen\s*\(", r"\bexecl[pe]?\s*\(",
                    r"\bexecvp\s*\(", r"\bexeclp\s*\(", r"/bin/sh"):
            if re.search(pat, text):
                bad.append(f"{p.name}: {pat}")
    assert not bad, bad


def test_sql_is_never_built_from_strings():
    """Every statement is a literal with bound parameters: no printf-style
    formatting of SQL and no sqlite3_mprintf anywhere."""
    bad = []
    sql = re.compile(r'"[^"\n]*\b(SELECT|INSERT|UPDATE|DELETE)\b[^"\n]*%[sd]')
    for p in C_SOURCES:
        text = p.read_text()
        if "sqlite3_mprintf" in text or "sqlite3_vmprintf" in text:
            bad.append(f"{p.name}: mprintf")
        if sql.search(text):
            bad.append(f"{p.name}: formatted SQL")
    assert not bad, bad


def test_user_reply_does_not_reveal_existence(mppd):
    for name in ("alice", "nosuchuser", "root", "x" * 64):
        c = mppd.client()
        c.send(f"USER {name}\r\n")
        assert c.line() == REPLY[250], name
        c.close()


def _pass_time(port, user, password):
    c = Client(port).greet()
    assert c.cmd(f"USER {user}") == 250
    t0 = time.perf_counter()
    code = c.cmd(f"PASS {password}")
    dt = time.perf_counter() - t0
    c.close()
    assert code == 530
    return dt


@pytest.mark.parametrize("method", ["yescrypt", "sha512"])
def test_pass_timing_unknown_user_equals_wrong_password(mppd_factory, method):
    """In a file of one method, unknown user and wrong password cost one
    hash of that method and cost. Measured alternately, 25 each; the
    medians must agree within 25 % (an unknown user checked against no
    hash would be 10 to 1000 times faster, so the margin is wide but
    still decisive). A busy machine stretches some tries many times over
    and moves a median of 25 by more than that now and then: then 25
    more of each are taken, up to 100, and the medians of all of them
    must agree."""
    m = mppd_factory(auth_fail_limit="0")
    m.add_user("alice", "secret", method=method)
    m.start()
    known, unknown = [], []
    for _ in range(4):
        for _ in range(25):
            known.append(_pass_time(m.port, "alice", "wrong"))
            unknown.append(_pass_time(m.port, "nobody-here", "wrong"))
        k, u = statistics.median(known), statistics.median(unknown)
        if 0.75 < u / k < 1.33:
            break
    assert 0.75 < u / k < 1.33, (k, u, len(known))


def _crypt(password, prefix, count=0):
    """A hash made by libxcrypt (crypt_gensalt, crypt), as mpppasswd makes
    them, but at a cost of our choosing."""
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong,
                                  ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setting = lib.crypt_gensalt(prefix.encode(), count, None, 0)
    return lib.crypt(password.encode(), setting).decode()


MIXED_USERS = {
    # user: (password, hash); None: the user is not in the file
    "yes": ("yes-pw", lambda: _crypt("yes-pw", "$y$")),
    "sha": ("sha-pw", lambda: _crypt("sha-pw", "$6$")),
    "bf8": ("bf8-pw", lambda: _crypt("bf8-pw", "$2b$", 8)),
    "locked": (None, lambda: "!"),
    "nobody-here": (None, None),
}


def test_pass_timing_mixed_file(mppd_factory):
    """A file that mixes yescrypt, sha512-crypt and bcrypt (cost 8) and
    holds a locked entry: every refused PASS (unknown user, locked entry,
    wrong password for each method) takes the same time, through mppd
    over TCP. 100 tries of each, in a new random order every round so
    that whatever load the machine has falls on all alike; the medians
    must agree within 20 % pairwise.

    Why 20 %: before every refusal did one check of each kind of hash in
    the file, the medians differed by factors of 1.5 to 200 (locked
    0.1 ms, sha512-crypt 1 ms, bcrypt 13 ms, yescrypt and unknown 19 ms).
    Now each refusal does the same work, one check of each kind (about
    35 ms), and on an idle or moderately busy machine the medians of 100
    agree within 7 %. 20 % still catches a refusal that misses its
    yescrypt (55 % of the work) or bcrypt (35 %) check; a missing
    sha512-crypt check (3 %) is below what timing through TCP can show
    (the unit test test_pwfile measures the work as CPU time). On a
    machine whose cores are oversubscribed several times over, each try
    is stretched 2 to 5 times by preemption and the median of 100 wanders
    by some 7 %, so five medians stray 20 % apart now and then: then 100
    more tries of each are taken, up to 300, and the medians of all of
    them must agree. A real difference fails every time."""
    m = mppd_factory(auth_fail_limit="0")
    m.passwd.write_text("".join(
        f"{u}:{h()}\n" for u, (_, h) in MIXED_USERS.items() if h))
    m.start()
    for u, (pw, h) in MIXED_USERS.items():
        if pw is not None:
            assert m.client().login(u, pw) == 250, u
    times = {u: [] for u in MIXED_USERS}
    for _ in range(3):
        for _ in range(100):
            order = list(MIXED_USERS)
            random.shuffle(order)
            for u in order:
                times[u].append(_pass_time(m.port, u, "wrong"))
        med = {u: statistics.median(t) for u, t in times.items()}
        if max(med.values()) / min(med.values()) < 1.2:
            break
    assert max(med.values()) / min(med.values()) < 1.2, med


def test_kinds_of_hash_past_the_limit_warn(mppd_factory):
    """Refusals hide at most 8 kinds of hash (each one check more per
    refusal); a file with more is worth a warning, at start or, as here,
    at a reload, and its users still log in."""
    m = mppd_factory()
    lines = [f"u{i}:{_crypt('pw', '$6$', 1000 + i)}\n" for i in range(9)]
    m.passwd.write_text("".join(lines[:8]))
    m.start()
    mark = m.log().count("password data reloaded")
    m.passwd.write_text("".join(lines))
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: m.log().count("password data reloaded") > mark,
             what="password reload")
    log = m.log()
    assert log.count("mixes more than 8 kinds of hash") == 1, log
    assert log.index("mixes more than 8") > log.index("ready")
    assert m.client().login("u8", "pw") == 250
    assert m.client().login("u0", "pw") == 250


def test_auth_failures_throttled_per_address(mppd_factory):
    m = mppd_factory(auth_fail_limit="3", auth_fail_window="60")
    m.add_user("alice", "secret")
    m.start()
    for _ in range(3):
        c = m.client()
        assert c.login("alice", "wrong") == 530
        c.close()
    # Throttled now: even the right password gets 530, after a delay,
    # unchecked.
    c = m.client()
    t0 = time.monotonic()
    assert c.login("alice", "secret") == 530
    assert time.monotonic() - t0 >= 1.5
    assert "auth=throttled" in m.log()
    # Another address is not affected (127.0.0.2 is loopback too).
    s = socket.create_connection(("127.0.0.1", m.port), source_address=("127.0.0.2", 0))
    c2 = Client(m.port, sock=s).greet()
    assert c2.login("alice", "secret") == 250


def _rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_huge_line_and_garbage_bounded_memory(mppd):
    before = _rss_kb(mppd.proc.pid)
    c = mppd.client()
    chunk = b"A" * 65536
    for _ in range(16):                      # 1 MiB without a line end
        c.send(chunk)
    c.send(b"\r\n")
    assert c.line() == REPLY[500]
    c.send(b"\x00\x01\xff garbage \x00\r\n")
    assert c.line() == REPLY[500]
    c.send(b"USER \x00bob\r\n")
    assert c.line() == REPLY[501]
    c.send(os.urandom(200000).replace(b"\n", b"") + b"\n")
    assert c.line() == REPLY[500]
    assert c.login("alice", "secret") == 250
    assert c.post(message()) == 250
    assert _rss_kb(mppd.proc.pid) - before < 8 * 1024, "memory grew with input"


def test_many_trickling_clients_do_not_stop_a_normal_one(mppd):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip("needs 4096 file descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    mppd.restart(max_sessions="2000", max_sessions_per_ip="2000")
    socks = []
    for _ in range(1000):
        s = socket.create_connection(("127.0.0.1", mppd.port))
        s.setblocking(False)
        socks.append(s)
    try:
        stop = time.monotonic() + 3
        t_post = []

        def normal():
            while time.monotonic() < stop:
                t0 = time.monotonic()
                c = mppd.client()
                assert c.login("alice", "secret") == 250
                assert c.post(message()) == 250
                c.close()
                t_post.append(time.monotonic() - t0)
        th = threading.Thread(target=normal)
        th.start()
        while time.monotonic() < stop:       # one byte a second each
            for s in socks:
                try:
                    s.send(b"N")
                except BlockingIOError:
                    pass
            time.sleep(1)
        th.join()
        assert t_post and max(t_post) < 1.0, t_post
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_root_refuses_to_daemonize_without_user(mppd_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    m = mppd_factory()
    m.write_config()
    r = subprocess.run([str(m.bin / "mppd"), "-c", str(m.config_path)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 78
    assert "refusing to run as root" in r.stderr + m.log() or r.returncode == 78


@pytest.mark.parametrize("prog", ["mppd", "mppqueue"])
def test_root_policy_is_one_for_both_daemons(mppd_factory, prog):
    """With user empty, a daemon that would detach refuses to run as root
    (78, before the spool is made); mppqueue, like mppd with -d or -i,
    runs on as root and warns when it stays attached (-d, -1)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    m = mppd_factory()
    m.write_config()
    r = subprocess.run([str(m.bin / prog), "-c", str(m.config_path)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 78, r.stderr
    assert "refusing to run as root: set user" in r.stderr
    assert not m.spool.exists()
    if prog == "mppqueue":
        for flags in (["-1", "-d"], ["-1"], ["-d"]):
            args = [str(m.bin / prog), *flags, "-c", str(m.config_path)]
            if flags == ["-d"]:
                p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
                time.sleep(1)
                assert p.poll() is None
                p.terminate()
                err = p.communicate(timeout=20)[1]
                assert p.returncode == 0, err
            else:
                r = subprocess.run(args, stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True, timeout=30)
                assert r.returncode == 0, r.stderr
                err = r.stderr
            assert m.spool.is_dir()
            # With -d lines go to stderr; -1 alone (cron) sends them to syslog.
            if "-d" in flags:
                assert "running as root: user is empty" in err, err


def test_drops_to_configured_user(mppd_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    # The test's own tmp_path is private to root; nobody needs a way in.
    shared = Path(tempfile.mkdtemp(prefix="mpp-priv-"))
    shared.chmod(0o755)
    m = mppd_factory(user="nobody", spool_dir=str(shared / "spool"),
                     auth=f"file:{shared / 'passwd'}")
    m.spool, m.passwd = shared / "spool", shared / "passwd"
    m.passwd.write_text("")
    m.add_user("alice", "secret")
    m.spool.mkdir(mode=0o700)
    os.chown(m.spool, nobody.pw_uid, nobody.pw_gid)
    os.chmod(m.passwd, 0o644)
    m.start()
    status = Path(f"/proc/{m.proc.pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
    assert set(map(int, uids)) == {nobody.pw_uid}
    assert "readable by others" in m.log()
    c = m.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message()) == 250
    assert (m.spool.stat().st_mode & 0o777) == 0o700
    for sub in ("tmp", "new", "cur", "orphans", "spare"):
        assert ((m.spool / sub).stat().st_mode & 0o777) == 0o700


def _cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_pauses_instead_of_spinning(mppd_factory):
    """With the descriptors used up, accept() fails: mppd pauses its
    listeners instead of spinning on them, and serves again when
    descriptors free up."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("prlimit"):
        pytest.skip("needs root, setpriv and prlimit (root could raise the limit)")
    import tempfile
    shared = Path(tempfile.mkdtemp(prefix="mpp-fd-"))
    shared.chmod(0o777)
    m = mppd_factory(spool_dir=str(shared / "spool"), auth=f"file:{shared / 'passwd'}",
                     max_sessions="500", max_sessions_per_ip="500")
    m.passwd = shared / "passwd"
    m.passwd.write_text("")
    m.add_user("alice", "secret")
    m.passwd.chmod(0o644)
    m.config_path = shared / "mpp.conf"     # nobody must reach it
    m.write_config()
    m.config_path.chmod(0o644)
    log = open(m.logfile, "ab")
    proc = subprocess.Popen(["prlimit", "--nofile=64:64", "setpriv", "--reuid=nobody",
                             "--regid=nogroup", "--clear-groups", str(m.bin / "mppd"),
                             "-d", "-c", str(m.config_path)], stdout=log, stderr=log)
    try:
        wait_for(lambda: "ready" in m.log(), what="mppd")
        pid = int(re.search(r"mppd\[(\d+)\]: ready", m.log()).group(1))
        socks = []
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", m.port))
            socks.append(s)
        time.sleep(0.3)
        cpu0 = _cpu_seconds(pid)
        time.sleep(2)
        assert _cpu_seconds(pid) - cpu0 < 0.5, "mppd spins on accept"
        assert "accept failed, pausing" in m.log()
        for s in socks:
            s.close()
        c = Client(m.port).greet()
        assert c.login("alice", "secret") == 250
        assert c.post(message()) == 250
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
