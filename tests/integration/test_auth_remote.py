"""Remote password checks (RFC 1204 section 3.4) through the real mppd,
against a real Dovecot POP3 server and a real FTP server (pyftpdlib), each
started privately by the test on a loopback port with users of its own.

Dovecot needs root (it switches to its own users); the tests skip without
it, or without the servers installed (tests/deps-auth.txt lists them).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import Client, free_port, message, wait_for

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def _ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _have_pyftpdlib():
    return subprocess.run([PYTHON, "-c", "import pyftpdlib"],
                          capture_output=True).returncode == 0


# ---- private servers -------------------------------------------------------

# Dovecot as docs/auth.md tells an administrator to set it up for mppd:
# its auth penalty and failure delay left on (the defaults), and mppd's
# address (127.0.0.1) exempted from both by the first passdb, which never
# authenticates anyone and only marks a check from that address "nodelay".
DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = mpp-test-{port}
protocols = pop3
listen = {host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = {dir}/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
mail_location = maildir:{dir}/mail/%u
{exemption}passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {host}
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""

DOVECOT_EXEMPTION = """\
passdb {{
  driver = passwd-file
  args = username_format=%{{rip}} {dir}/mpp-gateways
}}
"""
# The file of that passdb: one line per address of mppd.
DOVECOT_GATEWAYS = "127.0.0.1:::::::noauthenticate nodelay=yes\n"

FTP_SERVER = r"""
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

host, port, home, users = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
auth = DummyAuthorizer()
for line in open(users):
    name, _, password = line.rstrip("\n").partition(":")
    # a long login message makes the 230 reply multi-line
    auth.add_user(name, password, home,
                  msg_login="Welcome, " + name + ". " + "x" * 80)
auth.add_anonymous(home)


class Handler(FTPHandler):
    authorizer = auth
    auth_failed_timeout = 0
    # over 75 characters: the 220 greeting is sent as a multi-line reply
    banner = "mpp test FTP server " + "-" * 70


FTPServer((host, port), Handler).serve_forever()
"""


class Server:
    """A POP3 or FTP server process of our own; spec is the auth entry."""

    kind = None

    def __init__(self, users, host="127.0.0.1"):
        self.host = host
        self.port = free_port(host)
        # Outside pytest's tmp_path: Dovecot's unprivileged processes must
        # reach it, and socket paths must stay short.
        self.dir = Path(tempfile.mkdtemp(prefix="mpp-auth-", dir="/tmp"))
        self.dir.chmod(0o755)
        self.users = users
        self.proc = None

    @property
    def spec(self):
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind}:{h}:{self.port}"

    def greeting(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            with socket.socket(fam) as s:
                s.settimeout(1)
                s.connect((self.host, self.port))
                return s.recv(512)
        except OSError:
            return b""

    def start(self):
        self.logf = open(self.dir / "server.out", "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self.logf,
                                     stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.kind} server exited: "
                                     + self.log())
            return self.greeting().startswith(self.ready_prefix)
        wait_for(ready, timeout=20, interval=0.1,
                 what=f"{self.kind} server to answer")
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.logf.close()
        wait_for(lambda: self.greeting() == b"", timeout=10,
                 what=f"{self.kind} server to stop listening")

    def log(self):
        text = ""
        for name in ("server.out", "dovecot.log"):
            p = self.dir / name
            if p.exists():
                text += p.read_text(errors="replace")
        return text

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Dovecot(Server):
    kind = "pop3"
    ready_prefix = b"+OK"
    exempt = True       # mppd's address exempted as docs/auth.md says

    def command(self):
        (self.dir / "users").write_text("".join(
            f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()))
        (self.dir / "mpp-gateways").write_text(DOVECOT_GATEWAYS)
        (self.dir / "mail").mkdir(exist_ok=True)
        (self.dir / "mail").chmod(0o1777)
        conf = self.dir / "dovecot.conf"
        exemption = DOVECOT_EXEMPTION.format(dir=self.dir) if self.exempt else ""
        conf.write_text(DOVECOT_CONF.format(
            dir=self.dir, host=self.host, port=self.port,
            uid=65534, gid=65534, exemption=exemption))
        return ["dovecot", "-F", "-c", str(conf)]


class PyFtpd(Server):
    kind = "ftp"
    ready_prefix = b"220"

    def command(self):
        (self.dir / "users").write_text("".join(
            f"{u}:{p}\n" for u, p in self.users.items()))
        (self.dir / "home").mkdir(exist_ok=True)
        script = self.dir / "ftpd.py"
        script.write_text(FTP_SERVER)
        return [PYTHON, str(script), self.host, str(self.port),
                str(self.dir / "home"), str(self.dir / "users")]


def _skip_unless_available(kind):
    if kind == "pop3":
        if shutil.which("dovecot") is None:
            pytest.skip("dovecot (dovecot-pop3d) is not installed")
        if os.geteuid() != 0:
            pytest.skip("a private Dovecot needs root")
        out = subprocess.run(["dovecot", "--version"], capture_output=True,
                             text=True).stdout
        if not out.startswith("2.3."):
            pytest.skip(f"config written for Dovecot 2.3, found {out.strip()}")
    elif not _have_pyftpdlib():
        pytest.skip("python3-pyftpdlib is not installed")


@pytest.fixture
def servers():
    """Start POP3 or FTP servers: servers("pop3", {"user": "pw"})."""
    made = []

    def start(kind, users, host="127.0.0.1"):
        _skip_unless_available(kind)
        s = (Dovecot if kind == "pop3" else PyFtpd)(users, host)
        made.append(s)
        return s.start()
    yield start
    for s in made:
        s.cleanup()


class Silent:
    """A backend that accepts TCP connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def silent():
    s = Silent()
    yield s
    s.close()


# ---- helpers ---------------------------------------------------------------

USERS = {"carol": "pop-carol-pw", "dave": "remote-dave-pw"}


def start_mppd(mppd_factory, auth, **settings):
    """mppd with local user alice ("secret") and auth (file: -> its file)."""
    m = mppd_factory(**{"auth_timeout": 5, **settings})
    m.settings["auth"] = auth.replace("FILE", f"file:{m.passwd}")
    m.add_user("alice", "secret")
    return m.start()


def login(m, user, password, timeout=20.0):
    c = m.client(timeout=timeout)
    return c, c.login(user, password)


def cache_hits(m):
    """Log lines saying a PASS was decided by the cache."""
    return re.findall(r"^.* backend=cache result=ok$", m.log(), re.M)


def assert_no_secret(m, *secrets):
    log = m.log()
    for s in secrets:
        assert s not in log, "a password reached the mppd log"


# ---- one backend -----------------------------------------------------------

@pytest.mark.parametrize("kind", ["pop3", "ftp"])
def test_right_password_posts(kind, servers, mppd_factory):
    srv = servers(kind, USERS)
    m = start_mppd(mppd_factory, srv.spec)
    c, code = login(m, "carol", USERS["carol"])
    assert code == 250
    assert c.post(message(to="bob@example.com", subject="via " + kind)) == 250
    assert c.cmd("QUIT") == 221
    [msg] = m.stored()
    assert msg["auth_user"] == "carol"
    assert msg["sender"] == "carol@example.org"
    assert msg["recipients"] == ["bob@example.com"]
    assert b"Subject: via " + kind.encode() in msg["text"]
    assert re.search(rf" backend={re.escape(srv.spec)} result=ok$", m.log(),
                     re.M), m.log()
    assert_no_secret(m, USERS["carol"])


@pytest.mark.parametrize("kind", ["pop3", "ftp"])
def test_wrong_password_530(kind, servers, mppd_factory):
    srv = servers(kind, USERS)
    m = start_mppd(mppd_factory, srv.spec)
    c, code = login(m, "carol", "not-carols-pw")
    assert code == 530
    assert c.cmd("DATA") == 503
    c2, code = login(m, "nobody-here", "whatever-pw")
    assert code == 530
    assert m.stored() == []
    assert re.search(rf" backend={re.escape(srv.spec)} result=rejected$",
                     m.log(), re.M), m.log()
    assert_no_secret(m, "not-carols-pw", "whatever-pw")


@pytest.mark.parametrize("kind", ["pop3", "ftp"])
def test_backend_down_451(kind, mppd_factory):
    port = free_port()
    m = start_mppd(mppd_factory, f"{kind}:127.0.0.1:{port}")
    c, code = login(m, "carol", USERS["carol"])
    assert code == 451
    assert (f'backend={kind}:127.0.0.1:{port} result=unavailable '
            'reason="connection refused"') in m.log()
    assert_no_secret(m, USERS["carol"])


@pytest.mark.parametrize("kind", ["pop3", "ftp"])
def test_silent_backend_times_out_while_others_post(kind, silent,
                                                    mppd_factory):
    timeout = 2
    m = start_mppd(mppd_factory, f"FILE, {kind}:127.0.0.1:{silent.port}",
                   auth_timeout=timeout)
    result = {}

    def slow_login():
        c = m.client(timeout=30)
        assert c.cmd("USER carol") == 250
        t0 = time.monotonic()
        result["code"] = c.cmd("PASS " + USERS["carol"])
        result["elapsed"] = time.monotonic() - t0
        result["done_at"] = time.monotonic()
        c.close()
    t = threading.Thread(target=slow_login)
    t.start()
    wait_for(lambda: silent.conns, what="mppd to reach the silent backend")
    # Meanwhile a local user logs in and posts on the same mppd.
    t0 = time.monotonic()
    c, code = login(m, "alice", "secret")
    assert code == 250
    assert c.post(message(subject="meanwhile")) == 250
    alice_done = time.monotonic()
    assert alice_done - t0 < timeout / 2
    t.join(30)
    assert not t.is_alive()
    assert result["code"] == 451
    assert timeout - 0.2 <= result["elapsed"] < timeout + 1.5
    assert alice_done < result["done_at"]
    assert [x["auth_user"] for x in m.stored()] == ["alice"]
    assert (f'backend={kind}:127.0.0.1:{silent.port} result=unavailable '
            f'reason="timeout after {timeout}s"') in m.log()


def test_ftp_anonymous_refused(servers, mppd_factory):
    """The FTP server lets anyone in as "anonymous"; mppd must not."""
    srv = servers("ftp", USERS)
    m = start_mppd(mppd_factory, srv.spec)
    c, code = login(m, "anonymous", "guest@example.org")
    assert code == 530
    c, code = login(m, "ftp", "guest@example.org")
    assert code == 530
    assert m.stored() == []


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_literal(servers, mppd_factory):
    srv = servers("ftp", USERS, host="::1")
    m = start_mppd(mppd_factory, srv.spec)
    assert srv.spec.startswith("ftp:[::1]:")
    c, code = login(m, "dave", USERS["dave"])
    assert code == 250


# ---- lists of backends -----------------------------------------------------

def test_list_order_and_fallback(servers, mppd_factory):
    pop = servers("pop3", USERS)
    m = start_mppd(mppd_factory, f"FILE, {pop.spec}")
    m.add_user("dave", "local-dave-pw")
    # known only to the POP3 server
    c, code = login(m, "carol", USERS["carol"])
    assert code == 250
    assert c.post(message(subject="carol")) == 250
    # rejected by the file, accepted by POP3
    c, code = login(m, "dave", USERS["dave"])
    assert code == 250
    # accepted by the file: the file's password works as well
    c, code = login(m, "dave", "local-dave-pw")
    assert code == 250
    # local user, local password
    c, code = login(m, "alice", "secret")
    assert code == 250
    # rejected by both
    c, code = login(m, "alice", "wrong-everywhere")
    assert code == 530
    assert [x["auth_user"] for x in m.stored()] == ["carol"]
    assert_no_secret(m, USERS["carol"], USERS["dave"], "local-dave-pw",
                     "wrong-everywhere")


def test_down_backend_and_rejection_451(servers, mppd_factory):
    down = f"pop3:127.0.0.1:{free_port()}"
    m = start_mppd(mppd_factory, f"FILE, {down}")
    # the file rejects, the other could not answer: try later, not "wrong"
    c, code = login(m, "alice", "wrong-pw")
    assert code == 451
    # the file accepts before the dead backend is asked
    c, code = login(m, "alice", "secret")
    assert code == 250
    # and after it, in the other order
    m.restart(auth=f"{down}, file:{m.passwd}")
    c, code = login(m, "alice", "secret")
    assert code == 250
    # two remote backends: one rejects, one is down
    ftp = servers("ftp", USERS)
    m.restart(auth=f"{ftp.spec}, {down}")
    c, code = login(m, "carol", "wrong-pw")
    assert code == 451
    c, code = login(m, "carol", USERS["carol"])
    assert code == 250


# ---- the cache -------------------------------------------------------------

def test_cache_on_survives_outage(servers, mppd_factory):
    pop = servers("pop3", USERS)
    m = start_mppd(mppd_factory, pop.spec, auth_cache_ttl=60)
    c, code = login(m, "carol", USERS["carol"])
    assert code == 250
    pop.stop()
    c, code = login(m, "carol", USERS["carol"])
    assert code == 250
    assert c.post(message(subject="from the cache")) == 250
    assert len(cache_hits(m)) == 1
    # only what was accepted is cached: anything else needs the server
    c, code = login(m, "carol", "wrong-pw")
    assert code == 451
    c, code = login(m, "dave", USERS["dave"])
    assert code == 451
    assert [x["auth_user"] for x in m.stored()] == ["carol"]
    assert_no_secret(m, USERS["carol"])


def test_cache_off_by_default(servers, mppd_factory):
    pop = servers("pop3", USERS)
    m = start_mppd(mppd_factory, pop.spec)
    c, code = login(m, "carol", USERS["carol"])
    assert code == 250
    pop.stop()
    c, code = login(m, "carol", USERS["carol"])
    assert code == 451
    assert cache_hits(m) == []


def test_cache_forgotten_on_reload(servers, mppd_factory):
    pop = servers("pop3", USERS)
    m = start_mppd(mppd_factory, f"FILE, {pop.spec}", auth_cache_ttl=60)
    c, code = login(m, "carol", USERS["carol"])
    assert code == 250
    pop.stop()
    m.add_user("erin", "erin-pw")   # SIGHUP: reload
    c, code = login(m, "carol", USERS["carol"])
    assert code == 451


# ---- Dovecot's auth penalty --------------------------------------------------

def _pop3_wrong_login(host, port, source):
    """Seconds Dovecot takes to refuse a wrong password from source."""
    with socket.create_connection((host, port), timeout=30,
                                  source_address=(source, 0)) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"USER carol\r\n")
        assert f.readline().startswith(b"+OK")
        t0 = time.monotonic()
        s.sendall(b"PASS not-carols-pw\r\n")
        assert f.readline().startswith(b"-ERR")
        return time.monotonic() - t0


def test_dovecot_penalty_spares_mppd(servers, mppd_factory):
    """Dovecot delays its answers to an address after failed logins (by
    1 to 2.5 s, then 2, 4, 8 and 15 s: its failure delay and its auth
    penalty), and every check comes from mppd's one address. Set up as
    docs/auth.md says, Dovecot exempts that address: five wrong passwords
    in a row get 530 and the right one 250, each at once. Without the
    exemption (login_trusted_networks alone gives none), the first wrong
    password takes 1.5 s and every answer after it, the right password's
    too, outlasts auth_timeout (5 s here): 451. The bound, 1 s, is under the least delay Dovecot adds (its failure
    delay counts whole seconds: over 1 s) and far over an undelayed answer
    (milliseconds)."""
    srv = servers("pop3", USERS)
    m = start_mppd(mppd_factory, srv.spec, auth_fail_limit=0)
    took = []
    for i in range(6):
        right = i == 5
        c = m.client(timeout=30)
        assert c.cmd("USER carol") == 250
        t0 = time.monotonic()
        code = c.cmd("PASS " + (USERS["carol"] if right else f"wrong-{i}"))
        took.append(round(time.monotonic() - t0, 3))
        assert code == (250 if right else 530), (i, code, took)
        c.close()
    assert max(took) < 1.0, took
    # The exemption is mppd's address alone: another still waits.
    assert _pop3_wrong_login(srv.host, srv.port, "127.0.0.2") > 0.5
