"""SIGHUP to the mppqueue daemon: the configuration is read again and each
delivery thread takes up the new transport between two messages, so a
delivery in flight is neither lost nor made twice; a configuration that
does not load is logged and the one in use kept; a key a reload cannot
change is logged and ignored; the log file is reopened as before.

The relays are two smtp-sink processes (A and B) on loopback ports.
"""

import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIN, message, pid_from_log, stop_pid, wait_for
from test_smtp_sink import SMTP_SINK, Sink

pytestmark = pytest.mark.skipif(not os.access(SMTP_SINK, os.X_OK),
                                reason="smtp-sink (Debian package postfix) not installed")


@pytest.fixture
def sinks(tmp_path):
    made = [Sink(tmp_path).start(), Sink(tmp_path).start()]
    yield made
    for s in made:
        s.stop()


class Poster:
    """Posts messages "NAME i" one after the other in a thread, noting for
    each whether the reload was already in the log when it was posted."""

    def __init__(self, mppd, name, n, pause=0.01, marker=None, log=None):
        self.mppd, self.name, self.n, self.pause = mppd, name, n, pause
        self.marker, self.log = marker, log
        self.after = set()      # subjects posted once the marker was logged
        self.error = None
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        try:
            c = self.mppd.client(timeout=30)
            assert c.login("alice", "secret") == 250
            for i in range(self.n):
                seen = self.marker is not None and self.marker in self.log()
                subject = f"{self.name} {i}"
                assert c.post(message(subject=subject)) == 250
                if seen:
                    self.after.add(subject)
                time.sleep(self.pause)
            assert c.cmd("QUIT") == 221
            c.close()
        except Exception as e:   # reported by join()
            self.error = e

    def join(self):
        self.thread.join()
        assert self.error is None, self.error


def sighup(mppqueue, marker):
    """SIGHUP, then wait for one more marker line in the log."""
    before = mppqueue.log().count(marker)
    mppqueue.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: mppqueue.log().count(marker) > before, what=marker)


def all_sent(mppd, n):
    with mppd.db() as conn:
        states = [r[0] for r in conn.execute(
            "SELECT state FROM message WHERE is_bounce = 0")]
    return len(states) == n and all(s == "sent" for s in states)


def attempts(mppd):
    with mppd.db() as conn:
        return [r[0] for r in conn.execute(
            "SELECT attempts FROM message WHERE is_bounce = 0")]


def test_reload_moves_deliveries_to_the_new_relay(mppd, mppqueue, sinks):
    """Deliveries run to relay A; the config names B and SIGHUP comes:
    every message once, across A and B, each posted after the reload
    through B; then a bad config is logged and B kept."""
    a, b = sinks
    mppd.settings.update(transport=f"smtp:127.0.0.1:{a.port}",
                         delivery_timeout="10", concurrency="4")
    mppqueue.start()
    poster = Poster(mppd, "run", 300, marker="reload=done", log=mppqueue.log)
    wait_for(lambda: len(a.subjects()) >= 50, timeout=30, what="deliveries to A")
    mppd.settings["transport"] = f"smtp:127.0.0.1:{b.port}"
    mppd.write_config()
    sighup(mppqueue, "reload=done")
    assert f"reload=done config={mppd.config_path} transport smtp:127.0.0.1:{b.port}" \
        in mppqueue.log()
    poster.join()
    wait_for(lambda: all_sent(mppd, 300), timeout=60, what="all 300 sent")
    time.sleep(0.3)     # anything sent twice would arrive by now
    at_a, at_b = a.subjects(), b.subjects()
    assert sorted(at_a + at_b) == sorted(f"run {i}" for i in range(300)), \
        "every message exactly once across A and B"
    assert at_a and at_b
    assert poster.after, "some were posted after the reload"
    assert poster.after <= set(at_b), "posted after the reload: through B"
    assert attempts(mppd) == [1] * 300

    # A bad configuration: logged, and B still used.
    good = mppd.config_path.read_text()
    mppd.config_path.write_text(good + "no_such_key = 1\n")
    sighup(mppqueue, "reload=failed")
    line = [x for x in mppqueue.log().splitlines() if "reload=failed" in x][-1]
    assert "no_such_key" in line and "the configuration in use is kept" in line
    tail = Poster(mppd, "tail", 20)
    tail.join()
    wait_for(lambda: all_sent(mppd, 320), timeout=30, what="the 20 sent")
    assert sorted(b.subjects()).count("tail 0") == 1
    assert not [s for s in a.subjects() if s.startswith("tail")]
    assert mppqueue.running()


def test_reload_refuses_a_transport_it_cannot_make(mppd, mppqueue, sinks, tmp_path):
    """A configuration that loads, but whose transport cannot be made (a
    maildir under a plain file): logged, the old relay kept."""
    a, _ = sinks
    mppd.settings.update(transport=f"smtp:127.0.0.1:{a.port}")
    mppqueue.start()
    (tmp_path / "plain").write_text("")
    mppd.settings["transport"] = f"maildir:{tmp_path}/plain/md"
    mppd.write_config()
    sighup(mppqueue, "reload=failed")
    assert f"maildir {tmp_path}/plain/md" in mppqueue.log()
    Poster(mppd, "kept", 3).join()
    wait_for(lambda: len(a.subjects()) == 3, timeout=30, what="three at A")


def test_reload_ignores_keys_fixed_at_start(mppd, mppqueue, sinks):
    """concurrency, spool_dir, hostname: a change is logged and ignored;
    the rest of the file still applies."""
    a, b = sinks
    mppd.settings.update(transport=f"smtp:127.0.0.1:{a.port}", concurrency="2")
    mppqueue.start()
    spool = mppd.settings["spool_dir"]
    mppd.settings.update(transport=f"smtp:127.0.0.1:{b.port}", concurrency="3",
                         spool_dir=spool + "-elsewhere", hostname="other.test")
    mppd.write_config()
    sighup(mppqueue, "reload=done")
    log = mppqueue.log()
    for key in ("concurrency", "spool_dir", "hostname"):
        assert f"reload: {key} changed; ignored until mppqueue is restarted" in log
    assert "reload: user changed" not in log
    mppd.settings.update(spool_dir=spool, hostname="mpp.test")
    Poster(mppd, "fixed", 3).join()
    wait_for(lambda: len(b.subjects()) == 3, timeout=30, what="three at B")
    # EHLO still names the host of the start (smtp-sink's Received: line).
    raw = b"".join(p.read_bytes() for p in b.dump.iterdir())
    assert b"mpp.test" in raw and b"other.test" not in raw
    assert not os.path.exists(spool + "-elsewhere")


def test_sighup_still_reopens_the_log_file(system_users, shared_dir, sinks):
    """The detached daemon (root, dropping to its user), log = file: after
    a rename (logrotate's), SIGHUP sends later lines, the reload's among
    them, to a new file at the path, and reloads the configuration too."""
    a, b = sinks
    user, uid, gid = system_users.user("q")
    spool = shared_dir / "spool"
    spool.mkdir()
    os.chown(spool, uid, gid)
    os.chown(shared_dir, uid, gid)
    log = shared_dir / "queue.log"
    conf = shared_dir / "mpp.conf"
    text = (f"spool_dir = {spool}\nuser = {user}\nhostname = mpp.test\n"
            f"log = file:{log}\n")
    conf.write_text(text + f"transport = smtp:127.0.0.1:{a.port}\n")
    conf.chmod(0o644)
    subprocess.run([str(BIN / "mppqueue"), "-c", str(conf)], check=True,
                   capture_output=True, timeout=30)
    pid = pid_from_log(log, "ready")
    try:
        os.rename(log, shared_dir / "queue.log.1")
        conf.write_text(text + f"transport = smtp:127.0.0.1:{b.port}\n")
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: log.exists() and "reload=done" in log.read_text(),
                 what="the reload's line in the new file")
        new = log.read_text()
        assert "log file reopened" in new
        assert f"transport smtp:127.0.0.1:{b.port}" in new
        assert "reload=done" not in (shared_dir / "queue.log.1").read_text()
        assert os.stat(log).st_uid == uid
    finally:
        stop_pid(pid)
