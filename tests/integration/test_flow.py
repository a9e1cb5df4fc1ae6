"""Posting paced to delivery (mppd/flow.c): while a runner is delivering
and more messages wait for it than FLOW_BACKLOG_LOW, mppd's committer
waits between batches; with no runner delivering (none started, or the
relays down, when it claims nothing) posting keeps its full pace. The
log says when the pace changes. Nothing here is timed: a post is
answered 250 either way, and the pause is at most 30 ms a batch."""

from conftest import message, wait_for

from test_bench_tools import fill

LOW, HIGH = 500, 2500       # mppd/flow.h


def post(mppd, subject):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message(subject=subject)) == 250
    assert c.cmd("QUIT") == 221
    c.close()


def set_sending(mppd, n):
    """n of the queued rows as claimed by a runner (the totals follow by
    their triggers), or none."""
    with mppd.db() as db:
        if n:
            db.execute("UPDATE message SET state = 'sending' WHERE id IN "
                       "(SELECT id FROM message WHERE state = 'queued' "
                       "LIMIT ?)", (n,))
        else:
            db.execute("UPDATE message SET state = 'queued' "
                       "WHERE state = 'sending'")


def test_posting_paced_only_while_a_runner_delivers(mppd):
    post(mppd, "first")
    fill(mppd.spool, HIGH, "queued")
    # A backlog and no runner: full pace (no line).
    post(mppd, "no runner")
    assert "flow=" not in mppd.log()
    # A runner delivering: paced, at once.
    set_sending(mppd, 4)
    post(mppd, "runner behind")
    # queued: the fill, the three posts, less the four claimed
    # (the committer paces after it has answered the batch)
    wait_for(lambda: f"flow=paced queued={HIGH + 3 - 4} sending=4" in mppd.log(),
             what="the paced line")
    post(mppd, "still behind")
    assert mppd.log().count("flow=paced") == 1, "logged once a change"
    # The runner stops (or the relays went down): full pace again.
    set_sending(mppd, 0)
    post(mppd, "runner away")
    wait_for(lambda: "flow=full" in mppd.log(), what="the full-pace line")
    assert len(mppd.stored()) == HIGH + 5


def test_small_backlog_keeps_full_pace(mppd):
    post(mppd, "first")
    fill(mppd.spool, LOW - 10, "queued")
    set_sending(mppd, 1)
    for i in range(5):
        post(mppd, f"post {i}")
    assert "flow=" not in mppd.log()
