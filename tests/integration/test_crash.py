"""Crash points (fault-injection build): mppd or mppqueue is killed with
SIGKILL at a named point of the accept or delivery path; after a restart
every message that got 250 is queued or delivered, no index row lacks its
file, a file without a row ends in orphans/ (logged), and at most the
in-flight message is delivered twice."""

import os
import subprocess
import time

import pytest

from conftest import (FAULT_BIN, Client, Mppqueue, maildir_messages, message,
                      tmp_leftovers, wait_for)

pytestmark = pytest.mark.skipif(not (FAULT_BIN / "mppd").exists(),
                                reason="fault-injection build missing (make fault-build)")

ACCEPT_POINTS = ["after-tmp-write", "after-fsync", "after-rename",
                 "after-commit", "before-250"]


def post_until_crash(m, total=5):
    """Post messages one per session; returns subjects that got 250 and the
    subject of the one that did not."""
    acked, lost = [], None
    for i in range(total):
        subject = f"crash {i}"
        try:
            c = Client(m.port, timeout=5).greet()
            assert c.login("alice", "secret") == 250
            code = c.post(message(subject=subject))
            c.close()
        except (OSError, AssertionError, ValueError):
            code = None
        if code == 250:
            acked.append(subject)
        else:
            lost = subject
            break
    return acked, lost


def check_consistent(m):
    """No row without its file; no file in new/ or cur/ without a row."""
    rows = m.stored()
    assert all(r["text"] is not None for r in rows), "an index row lacks its file"
    ids = {r["id"] for r in rows}
    for sub in ("new", "cur"):
        for f in (m.spool / sub).iterdir():
            assert f.name in ids, f"{sub}/{f.name} has no row"
    return rows


def subjects(rows):
    return {r["text"].split(b"Subject: ", 1)[1].split(b"\n", 1)[0].decode()
            for r in rows}


@pytest.mark.parametrize("point", ACCEPT_POINTS)
def test_mppd_crash_point(mppd_factory, point):
    m = mppd_factory()
    m.add_user("alice", "secret")
    m.start(env={"MPP_CRASH_AT": point, "MPP_CRASH_AFTER": "3"}, bindir=FAULT_BIN)
    acked, lost = post_until_crash(m)
    assert len(acked) == 2 and lost == "crash 2", (acked, lost)
    wait_for(lambda: not m.running(), what="mppd to die at " + point)
    assert "crash point reached" in m.log()
    m.stop()
    # Files the crash left in new/ without a row: make them look old so the
    # restart treats them as orphans, not as a commit in flight.
    hour_ago = time.time() - 2 * 3600
    for f in (m.spool / "new").iterdir():
        os.utime(f, (hour_ago, hour_ago))
    m.start()
    rows = check_consistent(m)
    got = subjects(rows)
    assert set(acked) <= got, "a message that got 250 is missing"
    orphans = list((m.spool / "orphans").iterdir())
    if point == "after-rename":
        assert len(orphans) == 1 and "orphans/" in m.log()
        assert got == set(acked)
    elif point in ("after-commit", "before-250"):
        # Stored but unanswered: it will be delivered (a possible duplicate).
        assert got == set(acked) | {lost} and not orphans
    else:
        assert got == set(acked) and not orphans
    assert not tmp_leftovers(m.spool) or point in ("after-tmp-write", "after-fsync")
    # The daemon works again.
    c = m.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message(subject="after")) == 250


def test_mppqueue_crash_after_mta_accept(mppd, mppqueue):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    for i in range(4):
        assert c.post(message(subject=f"q {i}")) == 250
    r = mppqueue.once(env={"MPP_CRASH_AT": "after-mta-accept", "MPP_CRASH_AFTER": "2"},
                      bindir=FAULT_BIN, concurrency=1)
    assert r.returncode != 0
    assert len(maildir_messages(mppd)) == 2
    # The restarted runner releases the dead one's claims and finishes.
    assert mppqueue.once().returncode == 0
    delivered = maildir_messages(mppd)
    subj = [t.split(b"Subject: ", 1)[1].split(b"\n", 1)[0] for t in delivered]
    assert set(subj) == {f"q {i}".encode() for i in range(4)}
    assert len(delivered) <= 5, "only the in-flight message may arrive twice"
    assert sorted(m["state"] for m in mppd.stored()) == ["sent"] * 4
