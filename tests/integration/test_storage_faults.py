"""Storage that misbehaves: the index held locked by another process, an
unwritable spool at start, the index removed or replaced while in use, a
sent message's file left behind; and the purge of old sent rows."""

import os
import re
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import Client, Mppqueue, maildir_messages, message, tmp_leftovers, wait_for


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
    assert not tmp_leftovers(mppd.spool)
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


# A message sent at its first attempt is delivered from new/ and removed
# from there: it never enters cur/, whose fsync it would cost.

def test_sent_at_first_attempt_never_enters_cur(mppd, mppqueue):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message(subject="straight through")) == 250
    cur = mppd.spool / "cur"
    os.utime(cur, ns=(10**18, 10**18))     # any link or unlink in it moves this
    assert mppqueue.once().returncode == 0
    [row] = mppd.stored()
    assert row["state"] == "sent" and row["text"] is None
    assert cur.stat().st_mtime_ns == 10**18, "a file went through cur/"
    assert len(maildir_messages(mppd)) == 1


# A sent message's file left behind (its unlink after the record failed,
# or a power cut undid it): the next start removes it from new/ (sent at
# its first attempt) or cur/ (after a deferral), and does not send it
# again.

@pytest.mark.parametrize("sub", ["new", "cur"])
def test_start_removes_the_file_of_a_sent_message(mppd, mppqueue, sub):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message(subject="sent once")) == 250
    assert mppqueue.once().returncode == 0
    [row] = mppd.stored()
    assert row["state"] == "sent" and row["text"] is None
    leftover = mppd.spool / sub / row["id"]
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


# index.db removed or replaced while mppd runs (issue 12: 250s went on
# into the unlinked file, and the messages became orphans an hour later).

def backup_index(mppd, dest):
    """A copy of the live index, as an administrator's backup would be."""
    src = sqlite3.connect(str(mppd.spool / "index.db"))
    dst = sqlite3.connect(str(dest))
    src.backup(dst)
    dst.close()
    src.close()


def post_code(mppd, subject):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    code = c.post(message(subject=subject))
    c.close()
    return code


def stored_subjects(mppd):
    return sorted(re.search(rb"(?m)^Subject: (.*)$", r["text"]).group(1).decode()
                  for r in mppd.stored() if r["text"] is not None)


def test_index_removed_while_running_gives_451_until_back(mppd, tmp_path):
    assert post_code(mppd, "before") == 250
    backup = tmp_path / "backup.db"
    backup_index(mppd, backup)
    idx = mppd.spool / "index.db"
    idx.unlink()
    assert post_code(mppd, "while missing") == 451
    assert "index=missing path=" + str(idx) in mppd.log()
    assert not idx.exists(), "no new empty index made while running"
    # The old file's -wal and -shm belong to no database now: set aside,
    # so that an index made at the path later does not read them.
    wait_for(lambda: not (mppd.spool / "index.db-shm").exists(),
             what="the old -shm to go")
    assert not (mppd.spool / "index.db-wal").exists()
    assert (mppd.spool / "index.db-wal.lost").exists()
    time.sleep(1.5)
    assert post_code(mppd, "still missing") == 451
    # A valid index is back: mppd opens it and accepts again.
    os.rename(backup, idx)
    wait_for(lambda: "index=reopened" in mppd.log(), timeout=30,
             what="the index to be reopened")
    assert post_code(mppd, "after") == 250
    assert stored_subjects(mppd) == ["after", "before"]
    assert mppd.log().count("index=missing") == 1


def test_index_replaced_while_running_gives_451_until_its_files_go(mppd, tmp_path):
    assert post_code(mppd, "in both") == 250
    backup = tmp_path / "backup.db"
    backup_index(mppd, backup)
    assert post_code(mppd, "in the old only") == 250
    idx = mppd.spool / "index.db"
    os.replace(backup, idx)
    assert post_code(mppd, "while replaced") == 451
    assert "index=replaced path=" + str(idx) in mppd.log()
    # -wal and -shm beside the new file are the old one's: opening the new
    # index beside them would show the old one's pages. mppd waits.
    wait_for(lambda: "index=waiting" in mppd.log(), what="the wait to be logged")
    wal, shm = mppd.spool / "index.db-wal", mppd.spool / "index.db-shm"
    assert wal.exists() and shm.exists()
    assert post_code(mppd, "still replaced") == 451
    wal.unlink()
    shm.unlink()
    # Not a database: still 451, and the reason is logged.
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not an SQLite database\n" * 200)
    good = tmp_path / "good.db"
    os.rename(idx, good)
    os.rename(junk, idx)
    wait_for(lambda: "index=unusable" in mppd.log(), timeout=30,
             what="the unusable file to be logged")
    assert post_code(mppd, "junk in place") == 451
    os.replace(good, idx)
    wait_for(lambda: "index=reopened" in mppd.log(), timeout=30,
             what="the index to be reopened")
    assert post_code(mppd, "after") == 250
    rows = {r["id"]: r for r in mppd.stored()}
    assert stored_subjects(mppd) == ["after", "in both"]
    for sub in ("new", "cur"):
        for p in (mppd.spool / sub).iterdir():
            if p.name not in rows:       # only the lost index knew it
                assert b"Subject: in the old only" in p.read_bytes()
    with mppd.db() as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_runner_follows_a_replaced_index(mppd, mppqueue, tmp_path):
    mppqueue.start()
    assert post_code(mppd, "first") == 250
    wait_for(lambda: [r["state"] for r in mppd.stored()] == ["sent"],
             what="delivery")
    backup = tmp_path / "backup.db"
    backup_index(mppd, backup)
    # The careful way: the new file in place, the old one's -wal and -shm
    # removed at once. Every program notices within a second, and none
    # opens the new index before INDEX_LOST_GRACE is over.
    os.replace(backup, mppd.spool / "index.db")
    (mppd.spool / "index.db-wal").unlink()
    (mppd.spool / "index.db-shm").unlink()
    wait_for(lambda: "index=replaced" in mppqueue.log(), what="the runner to notice")
    wait_for(lambda: "index=reopened" in mppqueue.log() and
             "index=reopened" in mppd.log(), timeout=30,
             what="both to reopen the index")
    assert post_code(mppd, "second") == 250
    wait_for(lambda: len(maildir_messages(mppd)) == 2, what="delivery via the new index")
    wait_for(lambda: [r["state"] for r in mppd.stored()] == ["sent", "sent"],
             what="the result recorded in the new index")
    with mppd.db() as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# mppqueue -1 whose index goes away during a delivery: the result is not
# recorded into the lost file, the message's file stays, and the run ends
# with EX_IOERR.

REMOVING_SENDMAIL = r'''#!/bin/sh
cat > /dev/null
rm -f "$SPOOL/index.db"
exit 0
'''


def test_oneshot_runner_whose_index_goes_away(mppd, mppqueue, tmp_path):
    script = tmp_path / "sendmail"
    script.write_text(REMOVING_SENDMAIL)
    script.chmod(0o755)
    mppd.settings["transport"] = f"sendmail:{script}"
    assert post_code(mppd, "index goes") == 250
    [row] = mppd.stored()
    r = mppqueue.once(env={"SPOOL": str(mppd.spool)})
    assert r.returncode == 74, mppqueue.log()
    log = mppqueue.log()
    assert f"id={row['id']} to=<bob@example.com> attempt=1 result=sent" in log
    assert f"id={row['id']} attempt not recorded: the index is no longer at its path" in log
    assert "index=missing" in log
    assert (mppd.spool / "new" / row["id"]).exists()
