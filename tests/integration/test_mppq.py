"""mppq, the queue administration tool, against the spool of a real mppd:
messages are posted over MPP, then listed, shown, held, released, deleted,
requeued, flushed and counted, and the index is checked with sqlite3.

The mppd fixture comes from conftest.py; MPP_BIN names the bin directory.
No queue runner runs unless a test starts one, so posted messages stay
queued.
"""

import calendar
import shutil
import tempfile
import json
import os
import re
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import BIN, Client, Mppqueue, free_port, message, stop_pid, wait_for

MPPQ = BIN / "mppq"

EX_OK, EX_NOTDONE, EX_USAGE, EX_IOERR, EX_NOPERM, EX_CONFIG = 0, 1, 64, 74, 77, 78

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


# ---- bulk and filtered actions, JSON Lines, on large queues ----
#
# A large queue is made directly, as a test fixture: rows inserted with
# SQL as mppd's committer inserts them, and for each message still in the
# spool a file in new/ (queued) or cur/ (others) with the text and name
# mppd would give it. Posting 10,000 messages over MPP would take minutes.

BULK_STATES = ["queued", "deferred", "held", "failed", "sent"]
BULK_SENDERS = ["a@one.example", "b@two.example", ""]


def bulk_messages(n, now, base=1700000000):
    """n message descriptions, varied enough for every selector."""
    out = []
    for i in range(n):
        rcpts = [f"r{i % 7}@three.example"]
        if i % 2:
            rcpts.append(f"x{i % 5}@Four.example")
        out.append({
            "id": f"{base + i // 1000}.M{i:06d}P4242Q{i + 1}",
            "state": BULK_STATES[i % 5],
            "sender": BULK_SENDERS[i % 3],
            "auth_user": f"u{i % 4}",
            "rcpts": rcpts,
            "received_at": now - (i % 10) * 3600 - 60,
        })
    return out


def bulk_fill(mppd, msgs, files=True):
    """Insert msgs into mppd's index, with their files when asked."""
    rows, rrows = [], []
    for m in msgs:
        text = (f"Received: from [127.0.0.1] by mpp.test (MPP) id {m['id']}\n"
                f"From: {m['sender'] or 'MAILER-DAEMON@mpp.test'}\n"
                f"To: {', '.join(m['rcpts'])}\nSubject: {m['id']}\n\n"
                f"Body of {m['id']}.\n").encode()
        m["text"] = text
        rows.append((m["id"], m["state"], m["auth_user"], m["sender"], len(text),
                     "127.0.0.1", m["received_at"], m["received_at"],
                     "queued" if m["state"] == "held" else None,
                     1 if m["sender"] == "" else 0,
                     m["received_at"] if m["state"] in ("sent", "failed") else None))
        for seq, a in enumerate(m["rcpts"]):
            rrows.append((m["id"], seq, a, "failed" if m["state"] == "failed" else
                          "sent" if m["state"] == "sent" else "pending"))
        if files and m["state"] != "sent":
            sub = "new" if m["state"] == "queued" else "cur"
            (mppd.spool / sub / m["id"]).write_bytes(text)
    conn = sqlite3.connect(str(mppd.spool / "index.db"), timeout=30)
    with conn:
        conn.executemany(
            "INSERT INTO message (id, state, auth_user, sender, size, client_addr, "
            "received_at, next_attempt_at, held_from, is_bounce, done_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO recipient (message_id, seq, address, state) "
                         "VALUES (?, ?, ?, ?)", rrows)
    conn.close()
    return msgs


def addr_match(addr, pattern):
    """The selectors' address rule, as mppq.8 states it."""
    if pattern.startswith("@"):
        return addr.lower().endswith(pattern.lower())
    return addr.lower() == pattern.lower()


def bulk_pick(msgs, now, state=None, frm=None, to=None, user=None,
              older=None, newer=None):
    """The messages a selection picks, oldest first, as mppq must."""
    out = []
    for m in msgs:
        if state is None and m["state"] == "sent":
            continue
        if state not in (None, "all") and m["state"] != state:
            continue
        if frm is not None and not (m["sender"] == "" if frm == "<>"
                                    else addr_match(m["sender"], frm)):
            continue
        if to is not None and not any(addr_match(a, to) for a in m["rcpts"]):
            continue
        if user is not None and m["auth_user"] != user:
            continue
        if older is not None and not m["received_at"] <= now - older:
            continue
        if newer is not None and not m["received_at"] > now - newer:
            continue
        out.append(m)
    return sorted(out, key=lambda m: (m["received_at"], m["id"]))


TIME = shutil.which("time", path="/usr/bin:/bin")


def run_measured(args, stdin=None, env=None):
    """Run a program to its end: (returncode, stdout, stderr, max RSS KiB).
    The RSS comes from /usr/bin/time, whose child the program is: a child
    of this (large) Python process would report Python's own RSS, which
    Linux carries across fork and exec."""
    if TIME is None:
        pytest.skip("/usr/bin/time missing")
    env = {**os.environ, **(env or {})}
    # AddressSanitizer keeps freed memory in quarantine: bound it, so the
    # figure means what it does without the sanitizer.
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
    with tempfile.NamedTemporaryFile() as rss:
        r = subprocess.run([TIME, "-f", "%M", "-o", rss.name, *args],
                           input=stdin if stdin is not None else b"",
                           capture_output=True, env=env, timeout=300)
        kb = int(open(rss.name).read().split()[-1])
    return (r.returncode, r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace"), kb)


def mppq_measured(mppd, *args, stdin=None):
    mppd.write_config()
    return run_measured([str(MPPQ), "-d", "-c", str(mppd.config_path), *args],
                        stdin=stdin)


def db_states(mppd):
    with mppd.db() as conn:
        return {r["id"]: (r["state"], r["held_from"]) for r in
                conn.execute("SELECT id, state, held_from FROM message")}


def spool_files(mppd):
    return {p.name for sub in ("new", "cur") for p in (mppd.spool / sub).iterdir()}


SUMMARY = re.compile(r"^(\w+): (\d+) changed, (\d+) unchanged, (\d+) skipped, "
                     r"(\d+) unknown$", re.M)


def summary(out):
    mt = SUMMARY.search(out)
    assert mt, out
    return mt.group(1), tuple(int(x) for x in mt.groups()[1:])


# Max RSS, KiB, for any mppq run on a large queue: SQLite's page cache and
# sorter spill to files beyond a few MiB, and mppq holds one message at a
# time; a program that kept the queue in memory would need tens of MiB.
RSS_LIMIT_KB = 64 * 1024


def test_filtered_actions_on_10000(mppd):
    now = int(time.time())
    msgs = bulk_fill(mppd, bulk_messages(10000, now))
    sel = dict(state="deferred", frm="@two.example", older=2 * 3600)
    want = bulk_pick(msgs, now, **sel)
    assert 100 < len(want) < 1000
    args = ["--state", "deferred", "--from", "@TWO.example", "--older-than", "2h"]
    rc, out, err, rss = mppq_measured(mppd, "list", "--json-lines", *args)
    assert rc == EX_OK, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == \
        [m["id"] for m in want]
    rc, out, err, rss = mppq_measured(mppd, "hold", *args)
    assert rc == EX_OK, err
    assert summary(out) == ("hold", (len(want), 0, 0, 0))
    assert rss < RSS_LIMIT_KB, rss
    states = db_states(mppd)
    want_ids = {m["id"] for m in want}
    for m in msgs:
        if m["id"] in want_ids:
            assert states[m["id"]] == ("held", "deferred")
        else:
            assert states[m["id"]][0] == m["state"]
    for m in want:
        m["state"] = "held"
    # Release: held ones of user u1 change, the rest of u1's are skipped.
    picked = bulk_pick(msgs, now, user="u1")
    held = [m for m in picked if m["state"] == "held"]
    rc, out, err, rss = mppq_measured(mppd, "release", "--user", "u1")
    assert rc == EX_OK, err
    assert summary(out) == ("release", (len(held), 0, len(picked) - len(held), 0))
    assert rss < RSS_LIMIT_KB, rss
    for m in held:
        m["state"] = "deferred" if m["id"] in want_ids else "queued"
    states = db_states(mppd)
    assert all(states[m["id"]][0] == m["state"] for m in msgs)
    # Requeue, by recipient (any of them, case aside) and age.
    picked = bulk_pick(msgs, now, to="X3@four.EXAMPLE", newer=5 * 3600)
    failed = [m for m in picked if m["state"] == "failed"]
    assert failed
    rc, out, err, _ = mppq_measured(mppd, "requeue", "--to", "X3@four.EXAMPLE",
                                    "--newer-than", "5h")
    assert rc == EX_OK, err
    assert summary(out) == ("requeue", (len(failed), 0, len(picked) - len(failed), 0))
    states = db_states(mppd)
    assert all(states[m["id"]][0] == "queued" for m in failed)
    # Delete, combining selectors; files go after the commit.
    picked = bulk_pick(msgs, now, frm="<>", to="@four.example", state="all")
    rc, out, err, rss = mppq_measured(mppd, "delete", "--from", "<>", "--to",
                                      "@four.example", "--state", "all")
    assert rc == EX_OK, err
    assert summary(out) == ("delete", (len(picked), 0, 0, 0))
    assert rss < RSS_LIMIT_KB, rss
    gone = {m["id"] for m in picked}
    assert not gone & set(db_states(mppd))
    assert not gone & spool_files(mppd)
    assert len(db_states(mppd)) == 10000 - len(gone)
    # A change is logged per message, with the count at the end.
    assert err.count("action=delete old_state=") == len(gone)
    assert f"action=delete changed={len(gone)}" in err


def test_flush_all_wakes_and_counts(mppd):
    now = int(time.time())
    msgs = bulk_fill(mppd, bulk_messages(2000, now), files=False)
    sql(mppd, "UPDATE message SET next_attempt_at = ? WHERE state = 'deferred'",
        now + 3600)
    due = [m for m in msgs if m["state"] in ("queued", "deferred")]
    other = [m for m in msgs if m["state"] in ("held", "failed")]
    fd = open_trigger(mppd)
    try:
        for args in (["ALL"], []):
            r = mppq(mppd, "flush", *args)
            assert r.returncode == EX_OK, r.stderr
            assert summary(r.stdout) == ("flush", (len(due), 0, len(other), 0))
            assert os.read(fd, 16) == b"!"
    finally:
        os.close(fd)
    with mppd.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM message WHERE state = 'deferred' "
                            "AND next_attempt_at > ?", (now + 60,)).fetchone()[0] == 0


def test_delete_all_is_one_transaction(mppd):
    """Another connection sees the 10,000 messages, or none of them: never
    a part. A failure part way leaves every row and every file."""
    now = int(time.time())
    msgs = bulk_fill(mppd, bulk_messages(10000, now))
    sent = sum(1 for m in msgs if m["state"] == "sent")
    files = spool_files(mppd)
    assert len(files) == 10000 - sent
    # A row that cannot be deleted stops the whole delete.
    victim = msgs[7777]["id"]
    sql(mppd, f"CREATE TRIGGER keep BEFORE DELETE ON message WHEN old.id = "
        f"'{victim}' BEGIN SELECT RAISE(ABORT, 'kept by the test'); END")
    r = mppq(mppd, "delete", "ALL")
    assert r.returncode == EX_IOERR
    assert "kept by the test" in r.stderr
    assert len(db_states(mppd)) == 10000 and spool_files(mppd) == files
    sql(mppd, "DROP TRIGGER keep")
    seen, stop = set(), threading.Event()

    def watch():
        conn = sqlite3.connect(str(mppd.spool / "index.db"), timeout=30)
        while not stop.is_set():
            seen.add(conn.execute("SELECT COUNT(*) FROM message").fetchone()[0])
        conn.close()
    t = threading.Thread(target=watch)
    t.start()
    try:
        time.sleep(0.2)
        rc, out, err, rss = mppq_measured(mppd, "delete", "ALL")
        time.sleep(0.2)
    finally:
        stop.set()
        t.join(30)
    assert rc == EX_OK, err
    assert summary(out) == ("delete", (10000 - sent, 0, 0, 0))
    assert rss < RSS_LIMIT_KB, rss
    assert seen == {10000, sent}, sorted(seen)
    assert spool_files(mppd) == set()
    assert set(db_states(mppd)) == {m["id"] for m in msgs if m["state"] == "sent"}


def test_ids_on_stdin(mppd):
    now = int(time.time())
    msgs = bulk_fill(mppd, bulk_messages(50, now))
    queued = [m["id"] for m in msgs if m["state"] == "queued"]
    lines = [queued[0], "", f"  {queued[1]} \r", "x" * 2000, "bad/id",
             "1.M1P1Q1", queued[0], f"{queued[2]}\0tail", *queued[2:]]
    r = subprocess.run([str(MPPQ), "-d", "-c", str(mppd.config_path), "hold", "-"],
                       input="\n".join(lines), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == EX_NOTDONE
    assert summary(r.stdout) == ("hold", (len(queued), 0, 0, 1))
    assert "standard input, line 4: longer than 1024 bytes" in r.stderr
    assert "standard input, line 5: bad/id: not a valid queue id" in r.stderr
    assert "1.M1P1Q1: no such message" in r.stderr
    assert f"line 8: {queued[2]}?tail: not a valid queue id" in r.stderr
    states = db_states(mppd)
    assert all(states[q] == ("held", "queued") for q in queued)
    # Ids from a pipeline: every failed message, by way of JSON Lines.
    listing = mppq(mppd, "list", "--json-lines", "--state", "failed").stdout
    ids = "".join(json.loads(x)["id"] + "\n" for x in listing.splitlines())
    r = subprocess.run([str(MPPQ), "-d", "-c", str(mppd.config_path), "delete", "-"],
                       input=ids, capture_output=True, text=True, timeout=30)
    assert r.returncode == EX_OK, r.stderr
    failed = {m["id"] for m in msgs if m["state"] == "failed"}
    assert summary(r.stdout) == ("delete", (len(failed), 0, 0, 0))
    assert not failed & spool_files(mppd) and not failed & set(db_states(mppd))
    # A state that forbids the change is reported, by id.
    r = subprocess.run([str(MPPQ), "-d", "-c", str(mppd.config_path), "requeue", "-"],
                       input=queued[0] + "\n", capture_output=True, text=True)
    assert r.returncode == EX_NOTDONE
    assert f"{queued[0]}: cannot requeue a message in state held" in r.stderr
    assert summary(r.stdout) == ("requeue", (0, 0, 1, 0))


def test_stdin_ids_bounded(mppd):
    """More ids than mppq takes on stdin: refused whole, nothing changed."""
    (qid,) = post(mppd)
    text = qid + "\n" + "".join(f"1.M1P1Q{i}\n" for i in range(1000000))
    rc, out, err, rss = mppq_measured(mppd, "hold", "-", stdin=text.encode())
    assert rc == EX_USAGE, err
    assert "more than 1000000 ids" in err
    assert row(mppd, qid)["state"] == "queued"
    assert rss < RSS_LIMIT_KB, rss


def test_list_json_lines_100000_bounded_memory(mppd):
    """JSON Lines is written as the index is read: listing 100,000
    messages takes no more memory than listing 20,000 (by then SQLite's
    caches are full; a program holding the list would need some 30 MiB
    more). Rows only: list reads no message file."""
    now = int(time.time())
    bulk_fill(mppd, bulk_messages(20000, now), files=False)
    rc, out, err, rss_small = mppq_measured(mppd, "list", "--json-lines",
                                            "--state", "all")
    assert rc == EX_OK, err
    assert len(out.splitlines()) == 20000
    bulk_fill(mppd, bulk_messages(80000, now, base=1800000000), files=False)
    rc, out, err, rss_big = mppq_measured(mppd, "list", "--json-lines",
                                          "--state", "all")
    assert rc == EX_OK, err
    lines = out.splitlines()
    assert len(lines) == 100000
    ids = set()
    for line in lines:
        m = json.loads(line)
        ids.add(m["id"])
    assert len(ids) == 100000
    assert RFC3339.match(m["received_at"]) and m["recipients"], m
    assert rss_big - rss_small < 4 * 1024, (rss_small, rss_big)
    assert rss_big < RSS_LIMIT_KB


def test_list_selectors_and_json_lines_fields(mppd):
    (a,) = post(mppd, to="Bob <bob@example.com>")
    (b,) = post(mppd, to="carol@example.net")
    sql(mppd, "UPDATE message SET received_at = received_at - 7200 WHERE id = ?", a)
    r = mppq(mppd, "list", "--json-lines")
    assert r.returncode == EX_OK, r.stderr
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert [m["id"] for m in objs] == [a, b]
    assert objs[0] == list_json(mppd)[0]
    for args, want in [
        (["--to", "BOB@example.com"], [a]),
        (["--to", "@example.net"], [b]),
        (["--from", "alice@example.org"], [a, b]),
        (["--from", "<>"], []),
        (["--user", "alice"], [a, b]),
        (["--user", "bob"], []),
        (["--older-than", "1h"], [a]),
        (["--older-than=1h59m"], [a]),
        (["--newer-than", "3600"], [b]),
        (["--newer-than", "1w", "--older-than", "90m", "--state", "queued"], [a]),
        (["--state", "held"], []),
    ]:
        got = [m["id"] for m in list_json(mppd, *args)]
        assert got == want, args
        r = mppq(mppd, "list", *args)
        assert r.returncode == EX_OK
        if not want:
            assert r.stdout == "No messages\n", args
    assert mppq(mppd, "list", "--json-lines", "--state", "failed").stdout == ""


@pytest.mark.parametrize("args", [
    ["list", "ALL"], ["list", "-"], ["list", "--json", "--json-lines"],
    ["list", "--older-than", "3 h"], ["list", "--older-than", "5x"],
    ["list", "--older-than", "h"], ["list", "--older-than", ""],
    ["list", "--older-than", "99999999999d"], ["list", "--newer-than"],
    ["list", "--from", ""], ["list", "--from", "a b@c"], ["list", "--to", "<>"],
    ["list", "--to", "@"], ["list", "--to", "@a@b"], ["list", "--user", "x" * 65],
    ["list", "--user", "a\tb"], ["list", "--state", "queued", "--state", "held"],
    ["list", "--from", "x" * 321],
    ["delete"], ["hold", "ALL", "1.M1P1Q1"], ["hold", "--state", "held", "1.M1P1Q1"],
    ["delete", "-", "ALL"], ["release", "-", "-"], ["flush", "1.M1P1Q1", "--user", "u"],
    ["show", "-"], ["show", "1.M1P1Q1", "--state", "held"],
    ["stats", "--from", "a@b"], ["requeue", "--json"],
])
def test_selector_usage(mppd, args):
    r = mppq(mppd, *args)
    assert r.returncode == EX_USAGE, (args, r.stderr)
    assert "usage:" in r.stderr


# ---- show parts ----

def test_show_parts(mppd):
    (qid,) = post(mppd, to="bob@example.com", body="Line one.\r\n\r\nLine three.\r\n")
    text = mppd.file_of(qid).read_bytes().decode()
    head, _, body = text.partition("\n\n")
    r = mppq(mppd, "show", qid, "--headers")
    assert r.returncode == EX_OK, r.stderr
    assert r.stdout == head + "\n"
    assert "Subject: msg 0\n" in r.stdout and "Line one" not in r.stdout
    r = mppq(mppd, "show", qid, "--body")
    assert r.stdout == body == "Line one.\n\nLine three.\n"
    r = mppq(mppd, "show", qid, "--envelope")
    assert re.search(rf"^id: +{re.escape(qid)}$", r.stdout, re.M)
    assert "recipients:" in r.stdout and "Subject:" not in r.stdout
    assert not r.stdout.endswith("\n\n")
    r = mppq(mppd, "show", "--headers", "--body", qid)
    assert r.stdout == text
    r = mppq(mppd, "show", qid, "--envelope", "--body")
    assert r.stdout.endswith("\n\n" + body) and "Subject:" not in r.stdout
    assert mppq(mppd, "show", qid).stdout.endswith("\n\n" + text)


def test_show_parts_large_and_without_body(mppd):
    """The header/body split holds across read boundaries, and a text
    without an empty line is all header."""
    (qid,) = post(mppd, extra="X-Long: " + "y" * 70000 + "\r\n",
                  body="z" * 200000 + "\r\n")
    text = mppd.file_of(qid).read_bytes().decode()
    head, _, body = text.partition("\n\n")
    assert mppq(mppd, "show", qid, "--headers").stdout == head + "\n"
    assert mppq(mppd, "show", qid, "--body").stdout == body
    path = mppd.file_of(qid)
    path.write_text("Subject: only\nFrom: a@b\n")
    assert mppq(mppd, "show", qid, "--headers").stdout == "Subject: only\nFrom: a@b\n"
    assert mppq(mppd, "show", qid, "--body").stdout == ""
    path.write_text("\nbody only\n")
    assert mppq(mppd, "show", qid, "--headers").stdout == ""
    assert mppq(mppd, "show", qid, "--body").stdout == "body only\n"


# ---- the queue for users who are not root ----

class Site:
    """An installation as docs/admin.md sets one up, in a directory other
    users can reach: the daemons' user owns the spool, which is 2750 with
    the queue readers' group; the configuration is 0644."""

    def __init__(self, base, users):
        self.base, self.users = base, users
        self.group = users.group("q")
        self.daemon = users.user("d")
        self.reader = users.user("r", groups=[self.group[0]])
        self.other = users.user("o")
        self.spool = base / "spool"
        self.spool.mkdir()
        os.chown(self.spool, self.daemon[1], self.group[1])
        self.spool.chmod(0o2750)
        for sub in ("log", "maildir"):
            (base / sub).mkdir()
            os.chown(base / sub, self.daemon[1], self.daemon[2])
        self.passwd = base / "passwd"
        subprocess.run([str(BIN / "mpppasswd"), "-f", str(self.passwd), "-s", "-m",
                        "sha512", "add", "alice"], input="secret\n", text=True,
                       check=True, capture_output=True)
        os.chown(self.passwd, 0, self.daemon[2])
        self.log = base / "log" / "mpp.log"
        self.port = free_port()
        self.config = base / "mpp.conf"
        self.config.write_text(
            f"spool_dir = {self.spool}\nlisten = 127.0.0.1:{self.port}\n"
            f"user = {self.daemon[0]}\nhostname = mpp.test\n"
            f"sender_domain = example.org\nauth = file:{self.passwd}\n"
            f"transport = maildir:{base / 'maildir'}\nlog = file:{self.log}\n")
        self.config.chmod(0o644)
        self.pid = None

    def start(self):
        """mppd as an administrator starts it: detached, as root, dropping
        to the daemons' user."""
        mark = self.log.read_text().count("ready") if self.log.exists() else 0
        r = subprocess.run([str(BIN / "mppd"), "-c", str(self.config)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: self.log.exists() and self.log.read_text().count("ready") > mark,
                 what="mppd ready")
        self.pid = int(re.findall(r"mppd\[(\d+)\]: ready", self.log.read_text())[-1])

    def stop(self):
        stop_pid(self.pid)
        self.pid = None

    def post(self, n):
        before = set(self.ids())
        c = Client(self.port).greet()
        assert c.login("alice", "secret") == 250
        for i in range(n):
            assert c.post(message(subject=f"private {i}", body="Secret text.\r\n")) == 250
        assert c.cmd("QUIT") == 221
        c.close()
        return sorted(set(self.ids()) - before)

    def ids(self):
        db = self.spool / "index.db"
        if not db.exists():
            return []
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        ids = [r[0] for r in conn.execute("SELECT id FROM message ORDER BY id")]
        conn.close()
        return ids

    def state(self, qid):
        conn = sqlite3.connect(str(self.spool / "index.db"), timeout=10)
        (st,) = conn.execute("SELECT state FROM message WHERE id = ?", (qid,)).fetchone()
        conn.close()
        return st

    def mppq(self, who, *args, config=None):
        cmd = [str(MPPQ), "-c", str(config or self.config), *args]
        if who is None:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return self.users.run_as(who, cmd, capture_output=True, text=True, timeout=30)


@pytest.fixture
def site(system_users, shared_dir):
    s = Site(shared_dir, system_users)
    try:
        yield s
    finally:
        s.stop()


def test_group_member_reads_the_queue(site):
    site.start()
    a, b = site.post(2)
    # What the daemon made in the spool: readable by the group, no more.
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        st = (site.spool / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == \
            (site.daemon[1], site.group[1], 0o640), name
    for sub in ("new", "cur", "tmp"):
        assert (site.spool / sub).stat().st_mode & 0o077 == 0, sub
    # A member of the group: list, show (no text), stats, JSON.
    r = site.mppq(site.reader, "list")
    assert r.returncode == EX_OK, r.stderr
    assert a in r.stdout and b in r.stdout and "-> bob@example.com" in r.stdout
    r = site.mppq(site.reader, "list", "--json-lines", "--user", "alice")
    assert [json.loads(x)["id"] for x in r.stdout.splitlines()] == [a, b]
    r = site.mppq(site.reader, "stats", "--json")
    assert r.returncode == EX_OK and json.loads(r.stdout)["queued"] == 2
    r = site.mppq(site.reader, "show", a)
    assert r.returncode == EX_OK, r.stderr
    assert re.search(rf"^id: +{re.escape(a)}$", r.stdout, re.M)
    assert "Secret text" not in r.stdout and "Subject:" not in r.stdout
    assert "message text is shown to root and the spool's owner only" in r.stderr
    for part in ("--body", "--headers"):
        r = site.mppq(site.reader, "show", a, part)
        assert r.returncode == EX_NOPERM and "Secret" not in r.stdout
    # ... but no change, by any command.
    for args in (["delete", a], ["hold", "ALL"], ["flush"], ["release", "-"],
                 ["requeue", "--state", "failed"]):
        r = site.mppq(site.reader, *args)
        assert r.returncode == EX_NOPERM, args
        assert "only root and the spool's owner" in r.stderr
    assert site.ids() == [a, b] and site.state(a) == "queued"
    # Someone outside the group is told who may read it.
    for args in (["list"], ["stats"], ["show", a]):
        r = site.mppq(site.other, *args)
        assert r.returncode == EX_NOPERM, (args, r.stderr)
        assert f"members of group {site.group[0]} may read" in r.stderr
    # With the daemons stopped, the group still reads (-wal, -shm stay).
    site.stop()
    r = site.mppq(site.reader, "list", "--json")
    assert r.returncode == EX_OK, r.stderr
    assert [m["id"] for m in json.loads(r.stdout)] == [a, b]
    # The spool's owner and root change it.
    r = site.mppq(site.daemon, "hold", a)
    assert r.returncode == EX_OK, r.stderr
    assert site.state(a) == "held"
    r = site.mppq(None, "delete", b)
    assert r.returncode == EX_OK, r.stderr
    assert site.ids() == [a]
    # mppq logs to the daemons' file, appending as root, never making it.
    assert f"id={b} action=delete" in site.log.read_text()
    assert site.log.stat().st_uid == site.daemon[1]
    site.start()
    assert site.mppq(site.reader, "list").returncode == EX_OK


def test_unreadable_config_is_a_config_error(site):
    """A configuration only root may read stops mppq with 78, as mpp.conf
    installed 0640 root:root would: install makes it 0644."""
    private = site.base / "private.conf"
    private.write_text(site.config.read_text())
    private.chmod(0o600)
    r = site.mppq(site.reader, "list", config=private)
    assert r.returncode == EX_CONFIG
    assert "Permission denied" in r.stderr


def test_changes_logged_to_the_log_file(mppd, tmp_path):
    """Without -d, mppq logs its changes where the `log` key says. It only
    appends to a log file: a missing one is not made (it would be root's),
    and the lines go to stderr instead."""
    a, b = post(mppd, 2)
    log = tmp_path / "mpp.log"
    mppd.settings["log"] = f"file:{log}"
    mppd.write_config()
    cmd = [str(MPPQ), "-c", str(mppd.config_path)]
    r = subprocess.run(cmd + ["hold", a], capture_output=True, text=True)
    assert r.returncode == EX_OK
    assert f"log file {log}: No such file or directory; logging to standard error" \
        in r.stderr
    assert f"id={a} action=hold old_state=queued" in r.stderr
    assert not log.exists()
    log.write_text("")
    r = subprocess.run(cmd + ["hold", b], capture_output=True, text=True)
    assert r.returncode == EX_OK and r.stderr == ""
    assert re.search(rf"^\S+Z \S+ mppq\[\d+\]: id={re.escape(b)} action=hold "
                     rf"old_state=queued uid=0$", log.read_text(), re.M)
    # Reading commands log nothing.
    r = subprocess.run(cmd + ["list"], capture_output=True, text=True)
    assert r.returncode == EX_OK and r.stderr == ""
    assert log.read_text().count("\n") == 1
