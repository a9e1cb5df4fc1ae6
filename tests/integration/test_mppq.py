"""mppq, the queue administration tool, against the spool of a real mppd:
messages are posted over MPP, then listed, shown, held, released, deleted,
requeued, flushed and counted, and the index is checked with sqlite3.

The mppd fixture comes from conftest.py; MPP_BIN names the bin directory.
No queue runner runs unless a test starts one, so posted messages stay
queued.
"""

import calendar
import json
import os
import re
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import BIN, Mppqueue, message, wait_for

MPPQ = BIN / "mppq"

EX_OK, EX_NOTDONE, EX_USAGE, EX_IOERR, EX_CONFIG = 0, 1, 64, 74, 78

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
STATES = ["queued", "sending", "deferred", "held", "sent", "failed"]


def mppq(mppd, *args, config=None, timeout=30):
    """Run mppq -d over mppd's config; returns the CompletedProcess."""
    mppd.write_config()
    cfg = str(config or mppd.config_path)
    return subprocess.run([str(MPPQ), "-d", "-c", cfg, *args],
                          capture_output=True, text=True, timeout=timeout)


def post(mppd, n=1, **kw):
    """Post n messages as alice; returns their queue ids, oldest first."""
    before = {m["id"] for m in mppd.stored()}
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    for i in range(n):
        assert c.post(message(subject=f"msg {i}", **kw)) == 250
    assert c.cmd("QUIT") == 221
    c.close()
    return [m["id"] for m in mppd.stored() if m["id"] not in before]


def sql(mppd, statement, *params):
    conn = sqlite3.connect(str(mppd.spool / "index.db"), timeout=10)
    with conn:
        conn.execute(statement, params)
    conn.close()


def row(mppd, qid):
    with mppd.db() as conn:
        r = conn.execute("SELECT * FROM message WHERE id = ?", (qid,)).fetchone()
    return dict(r) if r else None


def rcpts(mppd, qid):
    with mppd.db() as conn:
        return [dict(r) for r in conn.execute(
            "SELECT * FROM recipient WHERE message_id = ? ORDER BY seq", (qid,))]


def list_json(mppd, *args):
    r = mppq(mppd, "list", "--json", *args)
    assert r.returncode == EX_OK, r.stderr
    return json.loads(r.stdout)


def parse_time(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


# ---- list ----

def test_list_table(mppd):
    ids = post(mppd, 2, to="bob@example.com, carol@example.net")
    r = mppq(mppd, "list")
    assert r.returncode == EX_OK, r.stderr
    out = r.stdout
    assert out.splitlines()[0].split() == ["ID", "SIZE", "ARRIVAL", "STATE",
                                           "TRIES", "SENDER"]
    for qid in ids:
        line = next(x for x in out.splitlines() if x.startswith(qid))
        fields = line.split()
        assert fields[1] == str(row(mppd, qid)["size"])
        assert RFC3339.match(fields[2])
        assert fields[3:] == ["queued", "0", "alice@example.org"]
    assert out.count("-> bob@example.com") == 2
    assert out.count("-> carol@example.net") == 2
    assert out.splitlines()[-1].startswith("-- 2 messages, ")


def test_list_empty(mppd):
    r = mppq(mppd, "list")
    assert r.returncode == EX_OK
    assert r.stdout == "Mail queue is empty\n"
    assert list_json(mppd) == []


def test_list_json_fields(mppd):
    t0 = int(time.time())
    (qid,) = post(mppd, to="Bob <bob@example.com>",
                  extra="Cc: carol@example.net\r\n")
    (m,) = list_json(mppd)
    db = row(mppd, qid)
    for key in ("id", "state", "auth_user", "sender", "recipients", "size",
                "received_at", "attempts", "next_attempt_at", "last_error",
                "client_addr", "rcpt_states"):
        assert key in m, key
    assert m["id"] == qid
    assert m["state"] == "queued"
    assert m["auth_user"] == "alice"
    assert m["sender"] == "alice@example.org"
    assert m["recipients"] == ["bob@example.com", "carol@example.net"]
    assert m["size"] == db["size"] == len(mppd.file_of(qid).read_bytes())
    assert RFC3339.match(m["received_at"])
    assert parse_time(m["received_at"]) == db["received_at"]
    assert abs(db["received_at"] - t0) < 60
    assert RFC3339.match(m["next_attempt_at"])
    assert parse_time(m["next_attempt_at"]) == db["next_attempt_at"]
    assert m["attempts"] == 0
    assert m["last_error"] is None
    assert m["client_addr"] == db["client_addr"]
    assert "127.0.0.1" in m["client_addr"]
    assert m["rcpt_states"] == [
        {"address": "bob@example.com", "state": "pending", "last_error": None,
         "bounced": False},
        {"address": "carol@example.net", "state": "pending", "last_error": None,
         "bounced": False},
    ]
    assert m["is_bounce"] is False
    assert m["held_from"] is None


def test_list_state_filter(mppd):
    a, b, c = post(mppd, 3)
    sql(mppd, "UPDATE message SET state = 'sent' WHERE id = ?", a)
    sql(mppd, "UPDATE message SET state = 'held', held_from = 'queued' "
        "WHERE id = ?", b)
    assert [m["id"] for m in list_json(mppd)] == [b, c]
    assert [m["id"] for m in list_json(mppd, "--state", "sent")] == [a]
    assert [m["id"] for m in list_json(mppd, "--state=held")] == [b]
    assert [m["id"] for m in list_json(mppd, "--state", "all")] == [a, b, c]
    assert list_json(mppd, "--state", "failed") == []
    r = mppq(mppd, "list", "--state", "held")
    assert b in r.stdout and c not in r.stdout
    r = mppq(mppd, "list", "--state", "failed")
    assert r.returncode == EX_OK and r.stdout == "No messages\n"
    assert mppq(mppd, "list", "--state", "bogus").returncode == EX_USAGE
    assert mppq(mppd, "list", "--state").returncode == EX_USAGE


def test_json_escaping(mppd):
    (qid,) = post(mppd)
    # Quotes, backslash, control characters, valid UTF-8, and bytes that
    # are not UTF-8, stored as TEXT the way a runner might store a reply.
    sql(mppd, "UPDATE message SET last_error = CAST(? AS TEXT) WHERE id = ?",
        b'451 "busy" \\ \x01\x1b\n\t caf\xc3\xa9 \xff\xc0\xaf end', qid)
    sql(mppd, "UPDATE recipient SET last_error = ? WHERE message_id = ?",
        "550 \u00fcber \u2603 \U0001F600", qid)
    r = mppq(mppd, "list", "--json")
    assert r.returncode == EX_OK
    raw = r.stdout
    assert "\\u0001" in raw and "\\u001b" in raw
    assert all(ord(ch) >= 0x20 for ch in raw.rstrip("\n"))
    (m,) = json.loads(raw)
    assert m["last_error"] == ('451 "busy" \\ \x01\x1b\n\t caf\u00e9 '
                               '\ufffd\ufffd\ufffd end')
    assert m["rcpt_states"][0]["last_error"] == "550 \u00fcber \u2603 \U0001F600"
    # The human table shows the same text made printable.
    r = mppq(mppd, "list")
    assert r.returncode == EX_OK
    assert "\x1b" not in r.stdout and "\x01" not in r.stdout


# ---- show ----

def test_show(mppd):
    (qid,) = post(mppd, to="bob@example.com, carol@example.net",
                  body="The body line.\r\n")
    sql(mppd, "UPDATE recipient SET state = 'failed', last_error = "
        "'550 no such user' WHERE message_id = ? AND seq = 1", qid)
    r = mppq(mppd, "show", qid)
    assert r.returncode == EX_OK, r.stderr
    out = r.stdout
    assert re.search(rf"^id: +{re.escape(qid)}$", out, re.M)
    assert re.search(r"^state: +queued$", out, re.M)
    assert re.search(r"^auth_user: +alice$", out, re.M)
    assert re.search(r"^sender: +alice@example.org$", out, re.M)
    assert re.search(r"^attempts: +0$", out, re.M)
    assert re.search(r"^  pending +bob@example.com$", out, re.M)
    assert re.search(r"^  failed +carol@example.net +550 no such user$", out, re.M)
    text = mppd.file_of(qid).read_text()
    assert out.endswith(text)
    assert "Subject: msg 0\n" in out and "The body line.\n" in out


def test_show_errors(mppd):
    post(mppd)
    r = mppq(mppd, "show", "1.M1P1Q1")
    assert r.returncode == EX_NOTDONE
    assert "1.M1P1Q1" in r.stderr
    r = mppq(mppd, "show", "../../etc/passwd")
    assert r.returncode == EX_NOTDONE
    assert "not a valid queue id" in r.stderr
    assert mppq(mppd, "show").returncode == EX_USAGE
    assert mppq(mppd, "show", "1.M1P1Q1", "2.M1P1Q1").returncode == EX_USAGE


def test_show_missing_file(mppd):
    a, b = post(mppd, 2)
    os.unlink(mppd.file_of(a))
    assert mppq(mppd, "show", a).returncode == EX_IOERR
    sql(mppd, "UPDATE message SET state = 'sent' WHERE id = ?", b)
    os.unlink(mppd.file_of(b))
    r = mppq(mppd, "show", b)
    assert r.returncode == EX_OK
    assert "no longer kept" in r.stdout


# ---- hold, release ----

def test_hold_release(mppd):
    a, b = post(mppd, 2)
    sql(mppd, "UPDATE message SET state = 'deferred', next_attempt_at = ? "
        "WHERE id = ?", int(time.time()) + 3600, b)
    r = mppq(mppd, "hold", a, b)
    assert r.returncode == EX_OK, r.stderr
    assert f"id={a} action=hold" in r.stderr
    assert (row(mppd, a)["state"], row(mppd, a)["held_from"]) == ("held", "queued")
    assert (row(mppd, b)["state"], row(mppd, b)["held_from"]) == ("held", "deferred")
    assert [m["id"] for m in list_json(mppd, "--state", "held")] == [a, b]
    # Holding twice is harmless.
    assert mppq(mppd, "hold", a).returncode == EX_OK
    t0 = int(time.time())
    r = mppq(mppd, "release", a, b)
    assert r.returncode == EX_OK, r.stderr
    assert (row(mppd, a)["state"], row(mppd, a)["held_from"]) == ("queued", None)
    assert row(mppd, b)["state"] == "deferred"
    assert t0 - 1 <= row(mppd, b)["next_attempt_at"] <= int(time.time())
    # Release of a message that is not held is refused.
    r = mppq(mppd, "release", a)
    assert r.returncode == EX_NOTDONE
    assert a in r.stderr and "queued" in r.stderr


def test_hold_refused_while_sending(mppd):
    (qid,) = post(mppd)
    sql(mppd, "UPDATE message SET state = 'sending', lease_host = 'h', "
        "lease_pid = 1, lease_until = ? WHERE id = ?", int(time.time()) + 600, qid)
    r = mppq(mppd, "hold", qid)
    assert r.returncode == EX_NOTDONE
    assert qid in r.stderr and "sending" in r.stderr
    assert row(mppd, qid)["state"] == "sending"


def test_unknown_id_others_processed(mppd):
    a, b = post(mppd, 2)
    r = mppq(mppd, "hold", a, "1.M1P1Q1", "bad/id", b)
    assert r.returncode == EX_NOTDONE
    assert "1.M1P1Q1" in r.stderr and "no such message" in r.stderr
    assert "bad/id" in r.stderr and "not a valid queue id" in r.stderr
    assert row(mppd, a)["state"] == "held"
    assert row(mppd, b)["state"] == "held"
    for cmd in ("release", "delete", "requeue", "flush"):
        r = mppq(mppd, cmd, "1.M1P1Q1")
        assert r.returncode == EX_NOTDONE, cmd
        assert "1.M1P1Q1" in r.stderr


# ---- delete ----

def test_delete(mppd):
    a, b = post(mppd, 2)
    path = mppd.file_of(a)
    r = mppq(mppd, "delete", a)
    assert r.returncode == EX_OK, r.stderr
    assert f"id={a} action=delete" in r.stderr
    assert not path.exists()
    assert row(mppd, a) is None and rcpts(mppd, a) == []
    assert row(mppd, b) is not None and mppd.file_of(b) is not None
    assert mppq(mppd, "delete", a).returncode == EX_NOTDONE


def test_delete_refused_while_sending(mppd):
    (qid,) = post(mppd)
    sql(mppd, "UPDATE message SET state = 'sending' WHERE id = ?", qid)
    r = mppq(mppd, "delete", qid)
    assert r.returncode == EX_NOTDONE
    assert "sending" in r.stderr
    assert row(mppd, qid) is not None and mppd.file_of(qid) is not None


def test_delete_failed_message(mppd):
    (qid,) = post(mppd)
    sql(mppd, "UPDATE message SET state = 'failed' WHERE id = ?", qid)
    assert mppq(mppd, "delete", qid).returncode == EX_OK
    assert row(mppd, qid) is None and mppd.file_of(qid) is None


# ---- requeue ----

def test_requeue(mppd):
    (qid,) = post(mppd, to="bob@example.com, carol@example.net")
    sql(mppd, "UPDATE message SET state = 'failed', attempts = 9, "
        "last_error = '550 rejected', done_at = 1, next_attempt_at = 1 "
        "WHERE id = ?", qid)
    sql(mppd, "UPDATE recipient SET state = 'sent' WHERE message_id = ? "
        "AND seq = 0", qid)
    sql(mppd, "UPDATE recipient SET state = 'failed', last_error = "
        "'550 no such user', bounced = 1 WHERE message_id = ? AND seq = 1", qid)
    assert mppq(mppd, "list", "--state", "failed").stdout.count(qid) == 1
    t0 = int(time.time())
    r = mppq(mppd, "requeue", qid)
    assert r.returncode == EX_OK, r.stderr
    m = row(mppd, qid)
    assert (m["state"], m["attempts"], m["last_error"], m["done_at"]) == \
        ("queued", 0, None, None)
    assert t0 - 1 <= m["next_attempt_at"] <= int(time.time())
    rs = rcpts(mppd, qid)
    assert [(x["state"], x["last_error"], x["bounced"]) for x in rs] == \
        [("sent", None, 0), ("pending", None, 0)]
    # Only a failed message can be requeued.
    r = mppq(mppd, "requeue", qid)
    assert r.returncode == EX_NOTDONE and "queued" in r.stderr


# ---- flush and the wake-up ----

def open_trigger(mppd):
    """Listen on the runner's trigger FIFO as a runner would."""
    path = mppd.spool / "trigger"
    if not path.exists():
        os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def test_flush(mppd):
    a, b, c = post(mppd, 3)
    later = int(time.time()) + 3600
    sql(mppd, "UPDATE message SET state = 'deferred', next_attempt_at = ?", later)
    sql(mppd, "UPDATE message SET state = 'held', held_from = 'deferred' "
        "WHERE id = ?", c)
    fd = open_trigger(mppd)
    try:
        r = mppq(mppd, "flush", a)
        assert r.returncode == EX_OK, r.stderr
        assert row(mppd, a)["next_attempt_at"] <= int(time.time())
        assert row(mppd, b)["next_attempt_at"] == later
        assert os.read(fd, 16) == b"!"
        # A held message is not flushed.
        r = mppq(mppd, "flush", c)
        assert r.returncode == EX_NOTDONE and "held" in r.stderr
        # Without ids: every queued or deferred message.
        assert mppq(mppd, "flush").returncode == EX_OK
        assert row(mppd, b)["next_attempt_at"] <= int(time.time())
        assert row(mppd, c)["next_attempt_at"] == later
        assert os.read(fd, 16) == b"!"
    finally:
        os.close(fd)


def test_release_and_requeue_wake(mppd):
    a, b = post(mppd, 2)
    assert mppq(mppd, "hold", a).returncode == EX_OK
    sql(mppd, "UPDATE message SET state = 'failed' WHERE id = ?", b)
    fd = open_trigger(mppd)
    try:
        assert mppq(mppd, "release", a).returncode == EX_OK
        assert os.read(fd, 16) == b"!"
        assert mppq(mppd, "requeue", b).returncode == EX_OK
        assert os.read(fd, 16) == b"!"
    finally:
        os.close(fd)


# ---- stats ----

def set_states(mppd, ids, states):
    for qid, st in zip(ids, states):
        sql(mppd, "UPDATE message SET state = ? WHERE id = ?", st, qid)


def test_stats_json(mppd):
    ids = post(mppd, 6)
    set_states(mppd, ids, ["queued", "queued", "deferred", "held", "sent",
                           "failed"])
    oldest = int(time.time()) - 500
    sql(mppd, "UPDATE message SET received_at = ? WHERE id = ?", oldest, ids[3])
    sql(mppd, "UPDATE message SET received_at = ? WHERE id = ?", oldest - 999,
        ids[4])     # sent: does not count for the age
    r = mppq(mppd, "stats", "--json")
    assert r.returncode == EX_OK, r.stderr
    s = json.loads(r.stdout)
    assert {k: s[k] for k in STATES} == {"queued": 2, "sending": 0,
                                         "deferred": 1, "held": 1, "sent": 1,
                                         "failed": 1}
    sizes = {m["id"]: m["size"] for m in mppd.stored()}
    assert s["bytes"] == sum(v for k, v in sizes.items() if k != ids[4])
    assert 500 <= s["oldest_age"] < 560
    r = mppq(mppd, "stats")
    assert r.returncode == EX_OK
    assert re.search(r"^queued +2$", r.stdout, re.M)
    assert re.search(r"^bytes +\d+$", r.stdout, re.M)


def test_stats_empty(mppd):
    r = mppq(mppd, "stats", "--json")
    assert json.loads(r.stdout) == {**{k: 0 for k in STATES},
                                    "oldest_age": 0, "bytes": 0,
                                    "totals": {k: 0 for k in TOTALS}}


TOTALS = ["accepted", "bounces", "attempts", "rcpt_sent", "rcpt_deferred",
          "rcpt_failed"]


@pytest.mark.skipif(not (BIN / "mppqueue").exists(), reason="no mppqueue")
def test_stats_totals_survive_purge_and_delete(mppd):
    """The totals count what happened since the index was made: they
    never go down when rows are purged or deleted."""
    post(mppd, 2)
    runner = Mppqueue(mppd)
    assert runner.once().returncode == 0
    totals = json.loads(mppq(mppd, "stats", "--json").stdout)["totals"]
    assert totals == {"accepted": 2, "bounces": 0, "attempts": 2,
                      "rcpt_sent": 2, "rcpt_deferred": 0, "rcpt_failed": 0}
    # A sendmail that fails for good: the recipient fails, a bounce is
    # made (and fails too, never bounced itself).
    [qid] = post(mppd, 1)
    assert runner.once(transport="sendmail:/bin/false").returncode == 0
    assert row(mppd, qid)["state"] == "failed"
    totals = json.loads(mppq(mppd, "stats", "--json").stdout)["totals"]
    assert totals["accepted"] == 3 and totals["bounces"] == 1
    assert totals["rcpt_sent"] == 2 and totals["rcpt_failed"] == 2
    assert totals["attempts"] == 4
    for r in mppd.stored():
        assert mppq(mppd, "delete", r["id"]).returncode == EX_OK
    after = json.loads(mppq(mppd, "stats", "--json").stdout)
    assert after["totals"] == totals and after["sent"] == 0
    r = mppq(mppd, "stats")
    assert re.search(r"^rcpt_failed +2$", r.stdout, re.M), r.stdout


PROM_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
                         r'(\{(state|result)="([a-z]+)"\})? (-?\d+)$')


def test_stats_prometheus(mppd):
    ids = post(mppd, 3)
    set_states(mppd, ids, ["queued", "held", "sent"])
    r = mppq(mppd, "stats", "--prometheus")
    assert r.returncode == EX_OK, r.stderr
    helps, types, samples = {}, {}, {}
    for line in r.stdout.splitlines():
        if line.startswith("# HELP "):
            name, _, text = line[7:].partition(" ")
            helps[name] = text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            types[name] = kind
        else:
            mt = PROM_SAMPLE.match(line)
            assert mt, line
            name, _, _, state, value = mt.groups()
            # Every sample comes after its family's HELP and TYPE.
            assert name in helps and name in types, line
            samples[(name, state)] = int(value)
    gauges = {"mpp_queue_messages", "mpp_queue_bytes",
              "mpp_queue_oldest_age_seconds"}
    counters = {"mpp_messages_accepted_total", "mpp_bounces_total",
                "mpp_delivery_attempts_total", "mpp_recipients_total"}
    assert set(helps) == set(types) == gauges | counters
    assert all(types[n] == "gauge" for n in gauges)
    assert all(types[n] == "counter" for n in counters)
    assert all(helps[n] for n in helps)
    assert samples[("mpp_messages_accepted_total", None)] == 3
    assert samples[("mpp_delivery_attempts_total", None)] == 0
    for result in ("sent", "deferred", "failed"):
        assert samples[("mpp_recipients_total", result)] == 0
    for st in STATES:
        want = 1 if st in ("queued", "held", "sent") else 0
        assert samples[("mpp_queue_messages", st)] == want
    sizes = {m["id"]: m["size"] for m in mppd.stored()}
    assert samples[("mpp_queue_bytes", "queued")] == sizes[ids[0]]
    assert samples[("mpp_queue_bytes", "held")] == sizes[ids[1]]
    assert ("mpp_queue_bytes", "sent") not in samples
    assert samples[("mpp_queue_oldest_age_seconds", None)] >= 0
    assert r.stdout.endswith("\n")
    assert mppq(mppd, "stats", "--json", "--prometheus").returncode == EX_USAGE


# ---- usage, config, index errors ----

@pytest.mark.parametrize("args", [
    [], ["bogus"], ["hold"], ["release"], ["delete"], ["requeue"],
    ["list", "extra"], ["list", "--bogus"], ["stats", "--state", "queued"],
    ["show", "--json", "1.M1P1Q1"], ["stats", "x"],
])
def test_usage(mppd, args):
    r = mppq(mppd, *args)
    assert r.returncode == EX_USAGE
    assert "usage:" in r.stderr


def test_bad_config(mppd, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text(f"spool_dir = {mppd.spool}\nno_such_key = 1\n")
    r = mppq(mppd, "list", config=bad)
    assert r.returncode == EX_CONFIG
    assert "no_such_key" in r.stderr
    r = mppq(mppd, "list", config=tmp_path / "missing.conf")
    assert r.returncode == EX_CONFIG
    r = subprocess.run([str(MPPQ), "-c", str(mppd.config_path), "-o",
                        "queue_interval=banana", "stats"],
                       capture_output=True, text=True)
    assert r.returncode == EX_CONFIG


def test_config_from_environment_and_override(mppd, tmp_path):
    (qid,) = post(mppd)
    mppd.write_config()
    env = {**os.environ, "MPP_CONFIG": str(mppd.config_path)}
    r = subprocess.run([str(MPPQ), "list", "--json"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == EX_OK, r.stderr
    assert [m["id"] for m in json.loads(r.stdout)] == [qid]
    other = tmp_path / "other-spool"
    other.mkdir()
    r = subprocess.run([str(MPPQ), "-o", f"spool_dir={other}", "list",
                        "--json"], capture_output=True, text=True, env=env)
    assert r.returncode == EX_OK and json.loads(r.stdout) == []


def test_index_error(mppd, tmp_path):
    cfg = tmp_path / "nospool.conf"
    cfg.write_text(f"spool_dir = {tmp_path / 'no' / 'such' / 'dir'}\n")
    r = mppq(mppd, "list", config=cfg)
    assert r.returncode == EX_IOERR
    assert r.stderr
    assert not (tmp_path / "no").exists()


# ---- alongside the daemons ----

def test_concurrent_with_mppd(mppd):
    """mppq reads and writes while sessions keep committing messages."""
    stop = threading.Event()
    errors = []
    posted = []

    def poster():
        try:
            c = mppd.client()
            assert c.login("alice", "secret") == 250
            while not stop.is_set():
                assert c.post(message(subject=f"c{len(posted)}")) == 250
                posted.append(1)
            c.cmd("QUIT")
            c.close()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=poster) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(posted) >= 5, what="first posts")
        for _ in range(10):
            r = mppq(mppd, "list", "--json")
            assert r.returncode == EX_OK, r.stderr
            msgs = json.loads(r.stdout)
            assert msgs
            r = mppq(mppd, "stats", "--json")
            assert r.returncode == EX_OK, r.stderr
            qid = msgs[0]["id"]
            assert mppq(mppd, "hold", qid).returncode == EX_OK
            assert mppq(mppd, "release", qid).returncode == EX_OK
            assert mppq(mppd, "flush").returncode == EX_OK
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    s = json.loads(mppq(mppd, "stats", "--json").stdout)
    assert s["queued"] == len(posted) == len(mppd.stored())


@pytest.mark.skipif(not (BIN / "mppqueue").exists(), reason="no mppqueue")
def test_held_message_stays_until_released(mppd):
    """A runner leaves a held message alone; released, it is delivered."""
    a, b = post(mppd, 2)
    assert mppq(mppd, "hold", a).returncode == EX_OK
    runner = Mppqueue(mppd)
    assert runner.once().returncode == 0
    assert row(mppd, a)["state"] == "held"
    assert row(mppd, b)["state"] == "sent"
    assert mppq(mppd, "release", a).returncode == EX_OK
    assert runner.once().returncode == 0
    assert row(mppd, a)["state"] == "sent"
    r = mppq(mppd, "list")
    assert r.returncode == EX_OK and r.stdout == "Mail queue is empty\n"
