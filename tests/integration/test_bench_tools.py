"""The tools of make bench's large-queue, Postfix+SASL and steady-state
runs, checked without timing anything finer than the machine allows:
mppfill makes files and rows as mppd and mppqueue do (the runner reads
and delivers them); mppbench --smtp speaks an authenticated SMTP
dialogue, one command at a time and pipelined, to a server here that
checks every step, or none with --no-auth; mppbench -D posts for a
duration, open-loop with -r, and -T names every message it posted; the
one-session ceiling's probe leaves what a durable post leaves."""

import base64
import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from conftest import BIN, ROOT, maildir_messages, tmp_leftovers

# The steady phase's own reader of mppbench -T files, tested with it.
sys.path.insert(0, str(ROOT / "tests" / "bench"))
from steady import chosen_systems, times_of  # noqa: E402
import lone  # noqa: E402

MPPFILL = BIN / "mppfill"
MPPBENCH = BIN / "mppbench"


def fill(spool, n, state, *extra):
    r = subprocess.run([str(MPPFILL), "-d", str(spool), "-n", str(n), "-s", state,
                        *extra], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def field_names(text):
    head = text.split(b"\n\n", 1)[0].decode()
    return [line.split(":", 1)[0] for line in head.split("\n")
            if line and not line[0].isspace()]


def test_mppfill_deferred_as_mppd_and_mppqueue_leave_them(mppd, mppqueue):
    mppd.stop()
    out = fill(mppd.spool, 1200, "deferred", "-a", "3600")
    assert "1200 messages deferred" in out
    mppd.start()
    c = mppd.client()
    c.login("alice", "secret")
    assert c.post("To: <bench@example.net>\r\nSubject: mppfill\r\n\r\nHi.\r\n") == 250
    c.close()
    mppd.stop()
    (posted,) = [r for r in mppd.stored() if r["state"] == "queued"]
    # Due messages would be claimed as its own: refused.
    r = subprocess.run([str(MPPFILL), "-d", str(mppd.spool), "-n", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 65 and "due messages" in r.stderr
    rows = [r for r in mppd.stored() if r["id"] != posted["id"]]
    assert len(rows) == 1200
    for r in rows:
        assert (r["state"], r["attempts"], r["auth_user"]) == ("deferred", 1, "alice")
        assert r["sender"] == "alice@bench.example"
        assert r["recipients"] == ["bench@example.net"]
        assert r["next_attempt_at"] >= r["received_at"] + 3600
        f = mppd.spool / "cur" / r["id"]
        assert f.is_file() and f.stat().st_mode & 0o777 == 0o600
        assert f.stat().st_size == r["size"]
        # The header block mppd writes, field for field.
        assert field_names(r["text"]) == field_names(posted["text"])
        assert f"with MPP id {r['id']};".encode() in r["text"]
    assert [p.name for p in (mppd.spool / "new").iterdir()] == [posted["id"]]
    assert not tmp_leftovers(mppd.spool)
    with mppd.db() as conn:
        totals = dict(conn.execute("SELECT state, n FROM state_total"))
        counters = dict(conn.execute("SELECT name, value FROM counter"))
    assert totals["deferred"] == 1200 and totals["queued"] == 1
    assert counters["accepted"] == 1201 and counters["attempts"] == 1200
    # The runner takes them as its own: flushed, they are delivered.
    r = subprocess.run([str(BIN / "mppq"), "-c", str(mppd.config_path), "flush", "ALL"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert mppqueue.once().returncode == 0, mppqueue.log()
    assert len(maildir_messages(mppd)) == 1201
    with mppd.db() as conn:
        assert conn.execute("SELECT n FROM state_total WHERE state = 'sent'"
                            ).fetchone()[0] == 1201


def test_mppfill_sent_and_queued(mppd):
    mppd.stop()
    fill(mppd.spool, 700, "sent")
    fill(mppd.spool, 30, "queued")
    rows = mppd.stored()
    assert sorted(r["state"] for r in rows) == ["queued"] * 30 + ["sent"] * 700
    assert all(r["text"] is None for r in rows if r["state"] == "sent")
    assert all((mppd.spool / "new" / r["id"]).is_file()
               for r in rows if r["state"] == "queued")
    with mppd.db() as conn:
        assert conn.execute("SELECT done_at IS NOT NULL FROM message WHERE "
                            "state = 'sent' LIMIT 1").fetchone()[0] == 1


@pytest.mark.parametrize("args", [["-n", "x"], ["-s", "held"], ["-z", "1"], []])
def test_mppfill_usage(tmp_path, args):
    a = ["-d", str(tmp_path / "s"), "-n", "1", *args] if args else []
    r = subprocess.run([str(MPPFILL), *a], capture_output=True, text=True)
    assert r.returncode == 64, r.stderr
    assert "usage" in r.stderr


class AuthSmtp:
    """A submission server on loopback that checks the dialogue: EHLO
    (offering PIPELINING and AUTH PLAIN), AUTH PLAIN with the right
    credentials before any MAIL, then MAIL, RCPT, DATA, text, QUIT. It
    reads whatever arrives and answers every command in order, so
    pipelined groups come out as they would from a real MTA; it notes
    how many commands arrived in one read."""

    def __init__(self, user, password, require_auth=True, delay=0.0):
        self.creds = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.require_auth, self.delay = require_auth, delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.messages, self.errors, self.max_batch = [], [], 0
        self.auths = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def fail(self, why):
        with self.lock:
            self.errors.append(why)

    def session(self, conn):
        conn.sendall(b"220 sink ESMTP\r\n")
        buf, authed, in_data, text, state = b"", False, False, b"", "start"
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                out, cmds = [], 0
                while True:
                    if in_data:
                        end = buf.find(b"\r\n.\r\n")
                        if end < 0:
                            break
                        text, buf = buf[:end], buf[end + 5:]
                        with self.lock:
                            self.messages.append(text)
                        in_data, state = False, "start"
                        if self.delay:      # a slow MTA: the 250 comes late
                            time.sleep(self.delay)
                        out.append(b"250 queued\r\n")
                        continue
                    if b"\r\n" not in buf:
                        break
                    line, buf = buf.split(b"\r\n", 1)
                    cmds += 1
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        out.append(b"250-sink\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n")
                    elif verb == b"AUTH":
                        with self.lock:
                            self.auths += 1
                        ok = line.decode() == f"AUTH PLAIN {self.creds}"
                        authed = authed or ok
                        out.append(b"235 ok\r\n" if ok else b"535 no\r\n")
                    elif verb == b"MAIL":
                        if not authed and self.require_auth:
                            self.fail("MAIL before AUTH")
                        state = "mail"
                        out.append(b"250 ok\r\n")
                    elif verb == b"RCPT":
                        if state != "mail":
                            self.fail("RCPT out of order")
                        state = "rcpt"
                        out.append(b"250 ok\r\n")
                    elif verb == b"DATA":
                        if state != "rcpt":
                            self.fail("DATA out of order")
                        in_data = True
                        out.append(b"354 go\r\n")
                    elif verb == b"QUIT":
                        conn.sendall(b"".join(out) + b"221 bye\r\n")
                        return
                    else:
                        self.fail(f"unknown command {line[:40]!r}")
                        out.append(b"500 what\r\n")
                with self.lock:
                    self.max_batch = max(self.max_batch, cmds)
                if out:
                    conn.sendall(b"".join(out))

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("pipelined", [False, True])
def test_mppbench_smtp_auth_dialogue(pipelined):
    srv = AuthSmtp("alice", "s3cret")
    try:
        cmd = [str(MPPBENCH), "--smtp", "-s", f"127.0.0.1:{srv.port}", "-u", "alice",
               "-p", "s3cret", "-F", "alice@bench.example", "-c", "3", "-n", "30",
               "-m", "5", "-z", "2048", "--json"]
        if pipelined:
            cmd.insert(2, "--pipelining")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert '"messages": 30' in r.stdout and '"sessions": 6' in r.stdout
        assert srv.errors == []
        assert len(srv.messages) == 30
        seqs = sorted(int(re.search(rb"X-Bench-Seq: (\d+)", m).group(1))
                      for m in srv.messages)
        assert seqs == list(range(1, 31))
        # The text as sent: exactly -z bytes with its CRLF before the dot.
        assert all(len(m) + 2 == 2048 for m in srv.messages)
        # Pipelined: MAIL, RCPT and DATA came in one read.
        assert (srv.max_batch >= 3) == pipelined
    finally:
        srv.close()


def test_mppbench_smtp_wrong_password_fails():
    srv = AuthSmtp("alice", "s3cret")
    try:
        r = subprocess.run([str(MPPBENCH), "--smtp", "-s", f"127.0.0.1:{srv.port}",
                            "-u", "alice", "-p", "wrong", "-n", "2"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        assert "AUTH: expected 235" in r.stderr
        assert srv.messages == []
    finally:
        srv.close()


def test_mppbench_pipelining_needs_smtp():
    r = subprocess.run([str(MPPBENCH), "--pipelining", "-p", "x", "-u", "a"],
                       capture_output=True, text=True)
    assert r.returncode == 64


def bench_json(r):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_mppbench_duration_posts_for_its_time(mppd, tmp_path):
    """-D 2 without a rate: as fast as the sessions go for 2 s, every
    message in the index and named in the -T file, whose moments are in
    order (response time begins at DATA, before the "." and the 250)."""
    times = tmp_path / "times"
    t0 = time.monotonic()
    r = subprocess.run([str(MPPBENCH), "-s", f"127.0.0.1:{mppd.port}", "-u", "alice",
                        "-p", "secret", "-c", "4", "-m", "10", "-D", "2", "-T",
                        str(times), "--json"], capture_output=True, text=True,
                       timeout=60)
    wall = time.monotonic() - t0
    fig = bench_json(r)
    assert fig["duration"] == 2 and fig["failed_sessions"] == 0
    assert 2.0 <= fig["elapsed_s"] < 2.0 + 10 and wall < 30
    n = fig["messages"]
    assert n >= 4 and fig["sessions"] >= n // 10
    assert fig["resp_p99_ms"] >= fig["latency_p99_ms"] > 0
    sent = times_of(times)
    assert len(sent) == n
    assert all(due <= s <= ok for s, ok, due in sent.values())
    first = min(due for _, _, due in sent.values())
    # Nothing claimed after the end. A session claims its first message
    # before it logs in, and its response time begins after the login,
    # so the last can begin somewhat past 2 s after the first: a wide
    # margin (2 s more) for a loaded machine.
    assert max(due for _, _, due in sent.values()) - first < 4e9
    mppd.stop()
    rows = mppd.stored()
    assert len(rows) == n
    seqs = sorted(int(re.search(rb"X-Bench-Seq: (\d+)", row["text"]).group(1))
                  for row in rows)
    assert seqs == sorted(sent)


def test_mppbench_open_loop_rate_over_a_duration(mppd, tmp_path):
    """-r 50 -D 2: exactly 100 messages, message i due at i/50 s whichever
    session takes it; each one's response time begins when it was due."""
    times = tmp_path / "times"
    r = subprocess.run([str(MPPBENCH), "-s", f"127.0.0.1:{mppd.port}", "-u", "alice",
                        "-p", "secret", "-c", "4", "-m", "25", "-r", "50", "-D", "2",
                        "-T", str(times), "--json"], capture_output=True, text=True,
                       timeout=60)
    fig = bench_json(r)
    assert fig["messages"] == 100 and fig["total"] == 101
    sent = times_of(times)
    assert sorted(sent) == list(range(1, 101))
    due0 = sent[1][2]
    for seq, (s, ok, due) in sent.items():
        assert abs(due - due0 - (seq - 1) * 20_000_000) < 1_000
        assert due <= s + 1_000 and s <= ok
    assert len(mppd.stored()) == 100


def test_mppbench_open_loop_counts_the_wait_for_a_slow_server(tmp_path):
    """Offered 100/s to an MTA that takes 50 ms per message from one
    session: the latency from "." to 250 stays near 50 ms, but the
    response time from when each message was due grows with the backlog
    (a closed-loop client would have just posted fewer)."""
    srv = AuthSmtp("alice", "s3cret", require_auth=False, delay=0.05)
    try:
        r = subprocess.run([str(MPPBENCH), "--smtp", "--no-auth", "-s",
                            f"127.0.0.1:{srv.port}", "-c", "1", "-m", "20", "-n", "20",
                            "-r", "100", "--json"], capture_output=True, text=True,
                           timeout=60)
        fig = bench_json(r)
        assert fig["messages"] == 20 and srv.errors == []
        assert fig["latency_p50_ms"] >= 45
        # The 20th was due at 190 ms and answered after about 1,000.
        assert fig["resp_p99_ms"] > fig["latency_p99_ms"] + 400
    finally:
        srv.close()


@pytest.mark.parametrize("pipelined", [False, True])
def test_mppbench_smtp_no_auth(tmp_path, pipelined):
    """--no-auth: no AUTH, no user or password needed; with -D, sessions
    that pipeline end cleanly (no envelope left open behind the last
    text), and every message the -T file names reached the server."""
    srv = AuthSmtp("alice", "s3cret", require_auth=False)
    times = tmp_path / "times"
    try:
        cmd = [str(MPPBENCH), "--smtp", "--no-auth", "-s", f"127.0.0.1:{srv.port}",
               "-c", "3", "-m", "1000", "-D", "1", "-T", str(times), "--json"]
        if pipelined:
            cmd.insert(2, "--pipelining")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin"})
        fig = bench_json(r)
        assert fig["failed_sessions"] == 0 and fig["sessions"] >= 3
        assert srv.auths == 0 and srv.errors == []
        assert len(srv.messages) == fig["messages"] > 3
        seqs = sorted(int(re.search(rb"X-Bench-Seq: (\d+)", m).group(1))
                      for m in srv.messages)
        assert seqs == sorted(times_of(times))
    finally:
        srv.close()


@pytest.mark.parametrize("args", [["--no-auth"], ["-D", "0"], ["-D", "x"]])
def test_mppbench_steady_usage(args):
    r = subprocess.run([str(MPPBENCH), "-u", "a", "-p", "x", *args],
                       capture_output=True, text=True)
    assert r.returncode == 64


def test_steady_systems_chosen_or_refused():
    """BENCH_STEADY_SYSTEMS: all by default, the named ones in the table's
    order, and an unknown name refused rather than a run of nothing."""
    assert chosen_systems("") == ("mpp", "postfix-sasl", "postfix")
    assert chosen_systems("postfix,mpp") == ("mpp", "postfix")
    with pytest.raises(SystemExit, match="unknown mp "):
        chosen_systems("mp")


def test_lone_chain_probe_leaves_what_a_durable_post_leaves(tmp_path):
    us = lone.chain_probe(tmp_path, 2048, seconds=0.05)
    d = tmp_path / f"chain-{lone.chain_probe.n}"
    names = sorted(p.name for p in (d / "new").iterdir())
    assert us > 0 and len(names) >= 20 and not any((d / "tmp").iterdir())
    assert all((d / "new" / n).stat().st_size == 2048 for n in names)
    db = sqlite3.connect(d / "index.db")
    rows = sorted(r[0] for r in db.execute("SELECT id FROM m"))
    assert rows == names
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_lone_ceiling_adds_the_check_once_a_session():
    assert lone.ceiling(500, 0, 50) == pytest.approx(2000)
    assert lone.ceiling(500, 1500, 1) == pytest.approx(500)
    assert lone.ceiling(500, 1500, 50) == pytest.approx(50e6 / 26500)
