"""Each state move of a message, cut at its worst instant on plfs: the
daemons or mppq make one move, the test then syncs the directories as
any later commit of another program would (mppd fsyncs new/ for every
batch it accepts, a runner cur/ for every message it takes), and the
power is cut. The image must still hold the message: a row that is not
`sent` keeps its file, and a file without a row is never lost."""

import os
import signal
import sqlite3
import subprocess
import time

import pytest

from plharness import Plfs, fuse_unusable, tree

from conftest import BIN, Client, free_port, message, wait_for

pytestmark = pytest.mark.skipif(fuse_unusable() is not None,
                                reason=str(fuse_unusable()))


class Spool:
    """A spool under plfs with the programs' config beside it."""

    def __init__(self, base, transport="maildir", made=True):
        self.base = base
        (base / "disk").mkdir()
        if made:
            # On disk already, as an installation would make it: each
            # test then checks its own move alone.
            for sub in ("tmp", "new", "cur", "orphans", "spare"):
                (base / "disk" / "spool" / sub).mkdir(parents=True, mode=0o700)
        self.fs = Plfs(base / "disk", base / "mnt", base / "image").mount()
        self.spool = base / "mnt" / "spool"
        self.port = free_port()
        self.passwd = base / "passwd"
        self.passwd.write_text("")
        self.passwd.chmod(0o640)
        subprocess.run([str(BIN / "mpppasswd"), "-f", str(self.passwd), "-s",
                        "-m", "sha512", "add", "alice"], input="secret\n",
                       text=True, check=True, capture_output=True)
        if transport == "defer":
            script = base / "sendmail"
            script.write_text("#!/bin/sh\nexit 75\n")
            script.chmod(0o755)
            transport = f"sendmail:{script}"
        else:
            transport = f"maildir:{base / 'maildir'}"
        self.conf = base / "mpp.conf"
        self.conf.write_text(
            f"spool_dir = {self.spool}\nlisten = 127.0.0.1:{self.port}\n"
            f"user =\nhostname = mpp.test\nsender_domain = example.org\n"
            f"auth = file:{self.passwd}\ntransport = {transport}\n"
            "retry_min = 60\n")
        self.mppd = None
        self.holder = None

    def post(self, n=1):
        """Start mppd, post n messages (each must get 250), kill mppd."""
        self.start_mppd()
        self.post_more(n, "move")
        self.kill_mppd()

    def start_mppd(self):
        self.mppd = subprocess.Popen(
            [str(BIN / "mppd"), "-d", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                Client(self.port, timeout=1).greet().close()
                return True
            except (OSError, AssertionError):
                return False
        wait_for(up, what="mppd")

    def post_more(self, n, subject):
        """n messages to the running mppd, each answered 250."""
        c = Client(self.port).greet()
        assert c.login("alice", "secret") == 250
        for i in range(n):
            assert c.post(message(subject=f"{subject} {i}")) == 250
        c.close()

    def kill_mppd(self):
        self.mppd.send_signal(signal.SIGKILL)
        self.mppd.wait()
        self.mppd = None
        self.hold_index()

    def run(self, prog, *args):
        r = subprocess.run([str(BIN / prog), "-c", str(self.conf), *args],
                           capture_output=True, text=True, timeout=60)
        return r

    def ids(self):
        return [p.name for sub in ("new", "cur") for p in (self.spool / sub).iterdir()]

    def sync(self, *subs):
        for sub in subs:
            fd = os.open(self.spool / sub, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

    def hold_index(self):
        """Another program's connection stays open, as mppd's does: the
        last connection to close would checkpoint, syncing everything."""
        self.holder = sqlite3.connect(str(self.spool / "index.db"))
        self.holder.execute("SELECT count(*) FROM message").fetchone()

    def cut(self):
        """Cut; returns the image's spool tree and its index rows."""
        self.fs.freeze()
        if self.holder is not None:
            self.holder.close()
            self.holder = None
        img = self.fs.unmount()
        spool = img / "spool"
        rows = {}
        if (spool / "index.db").exists():
            conn = sqlite3.connect(str(spool / "index.db"))
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = dict(conn.execute("SELECT id, state FROM message"))
            conn.close()
        return tree(spool) if spool.exists() else {}, rows

    def close(self):
        if self.holder is not None:
            self.holder.close()
        if self.mppd is not None:
            self.mppd.kill()
            self.mppd.wait()
        self.fs.abort()


@pytest.fixture
def spool_factory(tmp_path):
    made = []

    def make(**kw):
        s = Spool(tmp_path, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def has_file(files, qid):
    return f"new/{qid}" in files or f"cur/{qid}" in files


def test_first_message_on_a_new_spool(spool_factory):
    """mppd creates the spool; the 250 must not depend on a later sync of
    the directories it made."""
    s = spool_factory(made=False)
    s.post()
    [qid] = s.ids()
    files, rows = s.cut()
    assert rows == {qid: "queued"}
    assert f"new/{qid}" in files


def test_move_to_cur(spool_factory):
    """The runner takes a message (new/ -> cur/), the MTA defers it;
    mppd's next commit fsyncs new/."""
    s = spool_factory(transport="defer")
    s.post()
    [qid] = s.ids()
    assert s.run("mppqueue", "-1").returncode == 0
    assert (s.spool / "cur" / qid).exists()
    s.sync("new")
    files, rows = s.cut()
    assert qid in rows and has_file(files, qid), (rows, sorted(files))


def test_sent_file_removed_after_durable_record(spool_factory):
    """A delivered message's file goes; a later sync of cur/ and new/
    must not leave its unsent row without it."""
    s = spool_factory()
    s.post()
    [qid] = s.ids()
    assert s.run("mppqueue", "-1").returncode == 0
    assert not has_file({f"{p.parent.name}/{p.name}" for p in s.spool.glob("*/*")}, qid)
    s.sync("new", "cur")
    files, rows = s.cut()
    assert rows.get(qid) == "sent" or has_file(files, qid), (rows, sorted(files))


def test_mppq_delete(spool_factory):
    s = spool_factory()
    s.post(2)
    qid = sorted(s.ids())[0]
    r = s.run("mppq", "delete", qid)
    assert r.returncode == 0, r.stderr
    s.sync("new")
    files, rows = s.cut()
    assert qid not in rows or has_file(files, qid), (rows, sorted(files))


@pytest.mark.parametrize("action", ["hold", "release"])
def test_mppq_hold_release_durable_when_done(spool_factory, action):
    s = spool_factory()
    s.post()
    [qid] = s.ids()
    assert s.run("mppq", "hold", qid).returncode == 0
    if action == "release":
        assert s.run("mppq", "release", qid).returncode == 0
    files, rows = s.cut()
    assert rows[qid] == ("held" if action == "hold" else "queued")
    assert has_file(files, qid)


def test_orphan_move(spool_factory):
    """Reconciliation moves an old file without a row to orphans/; mppd's
    next commit fsyncs new/."""
    s = spool_factory()
    s.post()
    name = "1000000000.M000001P1Q1"
    fd = os.open(s.spool / "new" / name, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"Subject: orphan\n\nbody\n")
    os.fsync(fd)
    os.close(fd)
    s.sync("new")
    old = time.time() - 7200
    os.utime(s.spool / "new" / name, (old, old))
    assert s.run("mppqueue", "-1").returncode == 0
    assert (s.spool / "orphans" / name).exists()
    s.sync("new")
    files, rows = s.cut()
    assert f"orphans/{name}" in files or f"new/{name}" in files, sorted(files)


def test_spare_reused_with_its_old_name_on_disk(spool_factory):
    """mppd writes a message into a sent one's spare file whose name in
    spare/ reached the disk (its directory synced after the runner put it
    there) and whose removal from spare/ did not: after the cut both names
    are of one file. The message keeps its text, and the next start
    removes the stale name, not the message."""
    s = spool_factory()
    s.start_mppd()
    s.post_more(1, "first")
    [first] = s.ids()
    assert s.run("mppqueue", "-1").returncode == 0
    assert (s.spool / "spare" / first).exists()
    s.sync("spare", "new")
    time.sleep(0.15)                    # past SPARE_IDLE_MS
    s.post_more(1, "second")
    [second] = s.ids()
    assert not list((s.spool / "spare").iterdir())
    text = (s.spool / "new" / second).read_bytes()
    assert b"Subject: second 0" in text
    s.kill_mppd()
    files, rows = s.cut()
    assert rows == {first: "sent", second: "queued"}
    assert files[f"new/{second}"] == text
    img = s.base / "image" / "spool"
    assert os.stat(img / "spare" / first).st_ino == os.stat(
        img / "new" / second).st_ino      # the worst case: both names
    conf = s.base / "image.conf"
    conf.write_text(s.conf.read_text().replace(str(s.spool), str(img)))
    defer = s.base / "defer"
    defer.write_text("#!/bin/sh\nexit 75\n")
    defer.chmod(0o755)
    r = subprocess.run([str(BIN / "mppqueue"), "-1", "-c", str(conf), "-o",
                        f"transport=sendmail:{defer}"], capture_output=True,
                       text=True, timeout=60)
    assert not list((img / "spare").iterdir()), r.stderr
    [kept] = [img / sub / second for sub in ("new", "cur")
              if (img / sub / second).exists()]
    assert kept.read_bytes() == text
