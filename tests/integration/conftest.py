"""Fixtures for integration tests: a real bin/mppd on a loopback port with
its own spool, password file and config under the test's tmp_path."""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("MPP_BIN", ROOT / "bin"))
FAULT_BIN = Path(os.environ.get("MPP_FAULT_BIN", ROOT / "build" / "fault" / "bin"))
# MPP_VALGRIND=1 runs the daemons under valgrind (make valgrind); any
# report fails the test, as does a sanitizer report in a daemon's log.
VALGRIND = os.environ.get("MPP_VALGRIND") == "1"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer")


def wrap(cmd, logdir):
    """The command line, under valgrind when asked."""
    if not VALGRIND:
        return cmd
    return ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
            "--trace-children=no", f"--log-file={logdir}/valgrind.%p.log"] + cmd


# Syscalls this valgrind may not know, which the daemons try and do
# without when they fail with ENOSYS (pidfd_open: the sendmail transport
# polls for its child instead).  Valgrind's five-line notice about one
# of them is not a finding.
VALGRIND_KNOWN_UNHANDLED = {434}
UNHANDLED_NOTICE = re.compile(
    r"^--\d+-- WARNING: unhandled \S+ syscall: (\d+)\n"
    r"(?:--\d+-- (?:You may be able|Read the file|Nevertheless we consider"
    r"|it at http).*\n?){0,4}", re.M)


def valgrind_findings(text):
    """The log without the notices about syscalls we expect it to miss."""
    return UNHANDLED_NOTICE.sub(
        lambda m: "" if int(m.group(1)) in VALGRIND_KNOWN_UNHANDLED
        else m.group(0), text + "\n").strip()


def memory_reports(logdir, logs):
    """Valgrind and sanitizer findings left by the daemons of one test."""
    found = []
    for f in Path(logdir).glob("valgrind.*.log"):
        text = valgrind_findings(f.read_text(errors="replace"))
        if text:
            found.append(f"{f.name}:\n{text}")
    for text in logs:
        for mark in SANITIZER_MARKS:
            if mark in text:
                found.append(text[text.index(mark) - 200 if text.index(mark) > 200 else 0:][:4000])
                break
    return found

REPLY = {
    220: b"220 Message Posting Service Ready.\r\n",
    221: b"221 Closing Connection.\r\n",
    250: b"250 Command OK.\r\n",
    354: b"354 Enter mail, end with <CRLF>.<CRLF>\r\n",
    451: b"451 Local error encountered.\r\n",
    500: b"500 Command unrecognized.\r\n",
    501: b"501 Argument syntax error.\r\n",
    503: b"503 Illegal command sequence.\r\n",
    530: b"530 Authentication Failure.\r\n",
    550: b"550 Error.\r\n",
}


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Client:
    """A raw MPP client: send lines, read one reply line at a time."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, sock=None):
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        """One reply line with its CRLF; b'' when the server closed."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                rest, self.buf = self.buf, b""
                return rest
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def code(self):
        line = self.line()
        assert line, "connection closed, expected a reply"
        return int(line[:3])

    def cmd(self, text):
        """Send one command line (CRLF added) and return the reply code."""
        self.send(text.encode() + b"\r\n" if isinstance(text, str) else text + b"\r\n")
        return self.code()

    def greet(self):
        assert self.line() == REPLY[220]
        return self

    def login(self, user, password):
        assert self.cmd(f"USER {user}") == 250
        return self.cmd(f"PASS {password}")

    def post(self, text):
        """DATA, the text (bytes, CRLF lines, stuffed by the caller), end."""
        assert self.cmd("DATA") == 354
        if isinstance(text, str):
            text = text.encode()
        if text and not text.endswith(b"\r\n"):
            text += b"\r\n"
        self.send(text + b".\r\n")
        return self.code()

    def closed(self, timeout=5.0):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def message(to="bob@example.com", subject="test", body="Hello.\r\n", extra=""):
    """A small message text with CRLF line ends."""
    head = f"From: alice@example.org\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}"
    return head + "\r\n" + body


class Mppd:
    """One mppd instance: config, password file, spool, process."""

    def __init__(self, tmp_path, **overrides):
        self.dir = tmp_path
        self.bin = BIN
        self.spool = tmp_path / "spool"
        self.passwd = tmp_path / "passwd"
        self.config_path = tmp_path / "mpp.conf"
        self.logfile = tmp_path / "mppd.log"
        self.port = free_port()
        self.proc = None
        self.settings = {
            "spool_dir": str(self.spool),
            "listen": f"127.0.0.1:{self.port}",
            "user": "",
            "hostname": "mpp.test",
            "sender_domain": "example.org",
            "auth": f"file:{self.passwd}",
            "idle_timeout": "30",
            "transport": f"maildir:{tmp_path / 'maildir'}",
        }
        self.settings.update({k: str(v) for k, v in overrides.items()})
        if not self.passwd.exists():
            self.passwd.write_text("")
            self.passwd.chmod(0o640)

    def write_config(self):
        # Atomically: a program starting now must never read half a file.
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text("".join(f"{k} = {v}\n" for k, v in self.settings.items()))
        os.replace(tmp, self.config_path)

    def add_user(self, name, password, method=None):
        args = [str(self.bin / "mpppasswd"), "-f", str(self.passwd), "-s"]
        if method is None and VALGRIND:
            method = "sha512"      # yescrypt is very slow under valgrind
        if method:
            args += ["-m", method]
        subprocess.run(args + ["add", name], input=password + "\n",
                       text=True, check=True, capture_output=True)
        if self.running():
            mark = self.log().count("password data reloaded")
            self.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: self.log().count("password data reloaded") > mark,
                     what="password reload")

    def start(self, extra_args=(), env=None, bindir=None):
        """Start mppd; env adds environment variables, bindir picks
        another build (the fault-injection one)."""
        self.write_config()
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            wrap([str((bindir or self.bin) / "mppd"), "-d", "-v", "-c",
                  str(self.config_path), *extra_args], self.dir),
            stdout=self.logf, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})})
        host, _, port = self.settings["listen"].split(",")[0].strip().rpartition(":")
        host = host.strip("[]")

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("mppd exited: " + self.log())
            try:
                fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                with socket.socket(fam) as s:
                    s.settimeout(0.2)
                    s.connect((host, int(port)))
                    s.recv(64)
                return True
            except OSError:
                return False
        wait_for(up, timeout=60 if VALGRIND else 10, what="mppd to listen")
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        rc, self.proc = self.proc.returncode, None
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self, **overrides):
        self.stop()
        self.settings.update({k: str(v) for k, v in overrides.items()})
        return self.start()

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def client(self, timeout=10.0):
        return Client(self.port, timeout=timeout).greet()

    def db(self):
        conn = sqlite3.connect(str(self.spool / "index.db"), timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def file_of(self, qid):
        for sub in ("new", "cur"):
            p = self.spool / sub / qid
            if p.exists():
                return p
        return None

    def stored(self):
        """Every message in the index, oldest first, with its file text."""
        if not (self.spool / "index.db").exists():
            return []
        with self.db() as conn:
            rows = conn.execute(
                "SELECT * FROM message ORDER BY received_at, rowid").fetchall()
            out = []
            for r in rows:
                d = dict(r)
                d["recipients"] = [x["address"] for x in conn.execute(
                    "SELECT address FROM recipient WHERE message_id = ? "
                    "ORDER BY seq", (r["id"],))]
                f = self.file_of(r["id"])
                d["text"] = f.read_bytes() if f else None
                out.append(d)
        conn.close()
        return out


@pytest.fixture
def mppd_factory(tmp_path):
    """Make (unstarted) instances; every one is stopped at the end."""
    made = []

    def make(sub="a", **overrides):
        d = tmp_path / sub
        d.mkdir(exist_ok=True)
        m = Mppd(d, **overrides)
        made.append(m)
        return m
    yield make
    for m in made:
        m.stop()
    logs = [m.log() for m in made] + [
        f.read_text(errors="replace") for m in made for f in m.dir.glob("*.log")]
    reports = [r for m in made for r in memory_reports(m.dir, logs)]
    assert not reports, "memory errors:\n" + "\n".join(reports[:3])


@pytest.fixture
def mppd(mppd_factory):
    """A running mppd with user alice (password "secret")."""
    m = mppd_factory()
    m.add_user("alice", "secret")
    return m.start()


class Mppqueue:
    """bin/mppqueue over an Mppd's config and spool."""

    def __init__(self, mppd):
        self.mppd = mppd
        self.proc = None
        self.logfile = mppd.dir / "mppqueue.log"

    def args(self, *extra):
        self.mppd.write_config()
        return wrap([str(self.mppd.bin / "mppqueue"), "-v", "-c",
                     str(self.mppd.config_path), *extra], self.mppd.dir)

    def once(self, timeout=60, env=None, bindir=None, **overrides):
        """mppqueue -1: deliver what is due; returns the CompletedProcess."""
        self.mppd.settings.update({k: str(v) for k, v in overrides.items()})
        args = self.args("-1", "-d")
        if bindir:
            args[args.index(str(self.mppd.bin / "mppqueue"))] = str(bindir / "mppqueue")
        with open(self.logfile, "ab") as logf:
            return subprocess.run(args, stdout=logf, stderr=subprocess.STDOUT,
                                  timeout=timeout, env={**os.environ, **(env or {})})

    def start(self, **overrides):
        self.mppd.settings.update({k: str(v) for k, v in overrides.items()})
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen(self.args("-d"), stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: "ready" in self.log() or self.proc.poll() is not None,
                 what="mppqueue to start")
        assert self.proc.poll() is None, self.log()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        rc, self.proc = self.proc.returncode, None
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""


def tmp_leftovers(spool):
    """Names in spool/tmp/ but mppd's files made ahead (empty, named
    *.ready, at most two: mppd/store.c), which wait there for texts."""
    left, made = [], 0
    for p in Path(spool, "tmp").iterdir():
        try:
            ahead = p.name.endswith(".ready") and p.stat().st_size == 0
        except FileNotFoundError:
            continue
        if ahead:
            made += 1
        else:
            left.append(p.name)
    assert made <= 2, f"{made} files made ahead in tmp/"
    return left


def maildir_messages(mppd):
    """Files delivered by the maildir transport, oldest first."""
    new = mppd.dir / "maildir" / "new"
    if not new.exists():
        return []
    return [p.read_bytes() for p in sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns)]


@pytest.fixture
def mppqueue(mppd):
    """An (unstarted) queue runner for the `mppd` fixture's instance."""
    q = Mppqueue(mppd)
    yield q
    q.stop()


class SystemUsers:
    """Real users and groups made for one test (useradd, groupadd), named
    with a prefix no system account has; all removed at the end."""

    def __init__(self):
        self.prefix = f"mppt{os.getpid() % 100000}"
        self.users, self.groups = [], []

    def group(self, name):
        """A new group; its name and gid."""
        full = self.prefix + name
        subprocess.run(["groupadd", "--system", full], check=True,
                       capture_output=True)
        self.groups.append(full)
        return full, grp.getgrnam(full).gr_gid

    def user(self, name, groups=()):
        """A new user with a group of its own (and groups); (name, uid, gid)."""
        full = self.prefix + name
        args = ["useradd", "--system", "--user-group", "--no-create-home",
                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
        if groups:
            args += ["--groups", ",".join(groups)]
        subprocess.run(args + [full], check=True, capture_output=True)
        self.users.append(full)
        pw = pwd.getpwnam(full)
        return full, pw.pw_uid, pw.pw_gid

    def run_as(self, user, cmd, **kw):
        """Run cmd as user (name, uid, gid) with that user's groups."""
        name, uid, gid = user
        return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}",
                               "--init-groups", *cmd], **kw)

    def remove(self):
        for u in self.users:
            subprocess.run(["userdel", u], capture_output=True)
        for g in self.groups:
            subprocess.run(["groupdel", g], capture_output=True)


@pytest.fixture
def system_users():
    """Make real users for a test that needs several (root only)."""
    if os.geteuid() != 0:
        pytest.skip("making users needs root")
    for prog in ("useradd", "groupadd", "setpriv"):
        if not shutil.which(prog):
            pytest.skip(f"{prog} missing")
    made = SystemUsers()
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture
def shared_dir():
    """A directory other users can reach (tmp_path is root's only)."""
    d = Path(tempfile.mkdtemp(prefix="mpp-test-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def pid_from_log(path, marker, timeout=10.0):
    """The pid of the program whose line in the log file at path holds
    marker (a detached daemon logs its own pid there)."""
    pat = re.compile(r" \S+\[(\d+)\]: " + re.escape(marker))

    def find():
        if not path.exists():
            return None
        for line in path.read_text(errors="replace").splitlines():
            mt = pat.search(line)
            if mt:
                return int(mt.group(1))
        return None
    return wait_for(find, timeout=timeout, what=f"{marker!r} in {path}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_pid(pid, timeout=20.0):
    """SIGTERM to a detached daemon (not our child), then wait for it."""
    if pid is None or not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: not pid_alive(pid), timeout=timeout, what=f"pid {pid} to exit")
    except AssertionError:
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def postfix():
    """A running private Postfix with TLS and Dovecot SASL
    (tests/integration/mta.py), shared by the tests of one module: give
    each test recipients of its own."""
    import mta
    reason = mta.unavailable()
    if reason:
        pytest.skip(reason)
    pf = mta.Postfix()
    try:
        yield pf.start()
    finally:
        pf.cleanup()
