"""The tools of make bench's large-queue and Postfix+SASL runs, checked
without timing anything: mppfill makes files and rows as mppd and
mppqueue do (the runner reads and delivers them), and mppbench --smtp
speaks an authenticated SMTP dialogue, one command at a time and
pipelined, to a server here that checks every step."""

import base64
import re
import socket
import subprocess
import threading

import pytest

from conftest import BIN, maildir_messages

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
    assert not list((mppd.spool / "tmp").iterdir())
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

    def __init__(self, user, password):
        self.creds = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.messages, self.errors, self.max_batch = [], [], 0
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
                        ok = line.decode() == f"AUTH PLAIN {self.creds}"
                        authed = authed or ok
                        out.append(b"235 ok\r\n" if ok else b"535 no\r\n")
                    elif verb == b"MAIL":
                        if not authed:
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
