"""Delivered messages' files kept in spool_dir/spare/ and reused (common/
spare.c): mppqueue empties a sent message's file into spare/ instead of
removing it, mppd writes the next message into it, the reused file holds
only the new text, and a start empties spare/ (a name there is trusted
only within one run)."""

import time

from conftest import maildir_messages, message, tmp_leftovers, wait_for

LONG = "x" * 8000 + "\r\n"
IDLE_S = 0.15       # past SPARE_IDLE_MS: mppd looks at an empty spare/ again


def post(mppd, subject, body):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message(subject=subject, body=body)) == 250
    assert c.cmd("QUIT") == 221
    c.close()


def files(mppd, sub):
    """{name: stat} of sub; a file the runner moves meanwhile is left out."""
    out = {}
    d = mppd.spool / sub
    for p in (d.iterdir() if d.exists() else ()):
        try:
            out[p.name] = p.stat()
        except FileNotFoundError:
            pass
    return out


def test_sent_files_become_spares_and_carry_the_next_messages(mppd, mppqueue):
    for i in range(3):
        post(mppd, f"long {i}", LONG)
    assert mppqueue.once().returncode == 0
    assert len(maildir_messages(mppd)) == 3
    spares = files(mppd, "spare")
    assert len(spares) == 3
    assert all(st.st_size == 0 for st in spares.values())
    assert not files(mppd, "new") and not files(mppd, "cur")
    inodes = {st.st_ino for st in spares.values()}
    time.sleep(IDLE_S)
    for i in range(3):
        post(mppd, f"short {i}", f"short body {i}\r\n")
    queued = files(mppd, "new")
    assert len(queued) == 3
    assert {st.st_ino for st in queued.values()} == inodes
    assert all(st.st_mode & 0o7777 == 0o600 for st in queued.values())
    assert not files(mppd, "spare") and not tmp_leftovers(mppd.spool)

    assert mppqueue.once().returncode == 0
    shorts = [m for m in maildir_messages(mppd) if b"Subject: short" in m]
    assert len(shorts) == 3
    for m in shorts:
        assert b"xxxx" not in m
        body = m.split(b"\n\n", 1)[1]
        assert body.startswith(b"short body ") and len(body) < 20
    assert len(files(mppd, "spare")) == 3


def test_a_start_empties_spare(mppd, mppqueue):
    post(mppd, "one", "one\r\n")
    assert mppqueue.once().returncode == 0
    assert len(files(mppd, "spare")) == 1
    mppd.restart()
    assert not files(mppd, "spare")
    post(mppd, "two", "two\r\n")
    assert len(files(mppd, "new")) == 1


def test_a_daemon_runner_keeps_spares_while_mppd_takes_them(mppd, mppqueue):
    """The daemon delivers each message as it comes; every later post
    finds a spare, so spare/ never holds more than the few in flight."""
    mppqueue.start()
    post(mppd, "first", "first\r\n")
    wait_for(lambda: len(files(mppd, "spare")) == 1, what="a spare")
    ino = next(iter(files(mppd, "spare").values())).st_ino
    time.sleep(IDLE_S)
    for i in range(20):
        post(mppd, f"m{i}", f"m{i}\r\n")
        wait_for(lambda: not files(mppd, "new"), what="delivery")
    wait_for(lambda: len(maildir_messages(mppd)) == 21, what="all delivered")
    spares = files(mppd, "spare")
    assert len(spares) == 1
    assert ino in {st.st_ino for st in spares.values()}
