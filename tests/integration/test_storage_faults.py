"""Storage that misbehaves: the index held locked by another process, an
unwritable spool at start, a sent message's file left behind; and the
purge of old sent rows."""

import os
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import Client, Mppqueue, maildir_messages, message, wait_for


def lock_index(mppd, seconds):
    """Hold the index's write lock from another process for a while, as a
    long administrator transaction would."""
    code = ("import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
            "c.execute('ROLLBACK')\n")
    p = subprocess.Popen(["/usr/bin/python3", "-c", code,
                          str(mppd.spool / "index.db"), str(seconds)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_index_locked_past_busy_timeout_gives_451(mppd):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    holder = lock_index(mppd, 8)
    t0 = time.monotonic()
    code = c.post(message(subject="blocked"))
    waited = time.monotonic() - t0
    holder.wait()
    assert code == 451
    assert 4.0 <= waited < 8.0, waited     # the busy timeout is 5 s
    assert c.cmd("NOOP") == 451
    # No 250 without a commit, and nothing half-stored left behind.
    assert mppd.stored() == []
    assert not list((mppd.spool / "new").iterdir())
    assert not list((mppd.spool / "tmp").iterdir())
    # The lock gone, posting works again.
    c2 = mppd.client()
    assert c2.login("alice", "secret") == 250
    assert c2.post(message(subject="after")) == 250
    assert len(mppd.stored()) == 1


def test_index_locked_briefly_waits_then_250(mppd):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    holder = lock_index(mppd, 1.5)
    t0 = time.monotonic()
    assert c.post(message(subject="waited")) == 250
    assert time.monotonic() - t0 >= 1.0
    holder.wait()
    assert [m["text"] is not None for m in mppd.stored()] == [True]


def test_unwritable_spool_at_start_is_a_clear_error(mppd_factory, tmp_path):
    m = mppd_factory()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    m.settings["spool_dir"] = str(blocker / "spool")
    m.write_config()
    r = subprocess.run([str(m.bin / "mppd"), "-d", "-c", str(m.config_path)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 73                       # EX_CANTCREAT
    assert "spool" in r.stderr and str(blocker) in r.stderr
    r = subprocess.run([str(m.bin / "mppqueue"), "-1", "-d", "-c", str(m.config_path)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 73 and "spool" in r.stderr


def test_unwritable_spool_for_the_daemon_user(mppd_factory, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    m = mppd_factory(user="nobody")
    m.spool.mkdir(mode=0o700)                       # owned by root
    os.chmod(m.dir, 0o755)
    m.write_config()
    r = subprocess.run([str(m.bin / "mppd"), "-d", "-c", str(m.config_path)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 73 and "Permission denied" in r.stderr


def test_sent_rows_purged_after_retention(mppd, mppqueue):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message()) == 250
    assert mppqueue.once(sent_retention=3600).returncode == 0
    assert [m["state"] for m in mppd.stored()] == ["sent"]
    # Pretend it was sent two hours ago: the next run purges its row.
    with mppd.db() as db:
        db.execute("UPDATE message SET done_at = done_at - 7200")
    assert mppqueue.once().returncode == 0
    assert mppd.stored() == []
    assert "purged 1 sent" in mppqueue.log()


# A sent message's file left behind (its unlink after the record failed):
# the next start removes it, and does not send it again.

def test_start_removes_the_file_of_a_sent_message(mppd, mppqueue):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message(subject="sent once")) == 250
    assert mppqueue.once().returncode == 0
    [row] = mppd.stored()
    assert row["state"] == "sent" and row["text"] is None
    leftover = mppd.spool / "cur" / row["id"]
    leftover.write_bytes(b"Subject: sent once\n\nHello.\n")
    old = time.time() - 7200               # past the orphan age too
    os.utime(leftover, (old, old))
    assert mppqueue.once().returncode == 0
    assert not leftover.exists()
    assert f"id={row['id']} removed the file of a sent message" in mppqueue.log()
    assert not (mppd.spool / "orphans" / row["id"]).exists()
    assert len(maildir_messages(mppd)) == 1, "not delivered again"
    # A message with a failed recipient keeps its file (for mppq show).
    assert c.post(message(subject="kept", to="bob@example.com, "
                          "carol@example.com")) == 250
    kept = [r for r in mppd.stored() if r["state"] == "queued"][0]
    os.rename(mppd.file_of(kept["id"]), mppd.spool / "cur" / kept["id"])
    with mppd.db() as db:
        db.execute("UPDATE message SET state = 'sent', done_at = ? "
                   "WHERE id = ?", (int(time.time()), kept["id"]))
        db.execute("UPDATE recipient SET state = 'failed' WHERE "
                   "message_id = ? AND seq = 1", (kept["id"],))
        db.execute("UPDATE recipient SET state = 'sent' WHERE "
                   "message_id = ? AND seq = 0", (kept["id"],))
    assert mppqueue.once().returncode == 0
    assert (mppd.spool / "cur" / kept["id"]).exists()
