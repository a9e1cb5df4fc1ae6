"""mppqueue's sendmail transport with scripts as the program: fixed
arguments before `-i -f SENDER -- RCPT...`; a missing or non-executable
program refused at start (exit 78, naming it) by the daemon and by -1;
the child's stderr in last_error, the log line and `mppq show`, and a
child writing 100 KiB of it; a timeout that ends the child's whole
process group; the child's signal state and descriptors."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, Mppqueue, message

EX_CONFIG = 78


def script(tmp_path, name, body):
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


@pytest.fixture
def queued(mppd):
    """mppd with one message posted; (mppd, its queue id)."""
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message(to="bob@example.com", subject="sm")) == 250
    c.close()
    (row,) = mppd.stored()
    return mppd, row["id"]


def only_row(m):
    (row,) = m.stored()
    return row


def test_fixed_arguments_come_first(queued, tmp_path):
    m, qid = queued
    out = tmp_path / "argv"
    prog = script(tmp_path, "sm", f'for a in "$@"; do echo "$a"; done >{out}\n'
                  "cat >/dev/null\n")
    q = Mppqueue(m)
    r = q.once(transport=f"sendmail:{prog} -C /etc/postfix-out  -oem")
    assert r.returncode == 0, q.log()
    assert only_row(m)["state"] == "sent"
    assert out.read_text().split("\n") == [
        "-C", "/etc/postfix-out", "-oem", "-i", "-f", "alice@example.org",
        "--", "bob@example.com", ""]


def test_fixed_arguments_are_bounded(queued, tmp_path):
    m, _ = queued
    prog = script(tmp_path, "sm", "exit 0\n")
    q = Mppqueue(m)
    for bad in (" --", " -x" * 17, " " + "a" * 256):
        r = q.once(transport=f"sendmail:{prog}{bad}")
        assert r.returncode == EX_CONFIG
    assert "transport" in q.log()
    assert only_row(m)["state"] == "queued"


@pytest.mark.parametrize("how", ["missing", "not-executable", "directory"])
@pytest.mark.parametrize("mode", [["-1", "-d"], ["-d"]])
def test_program_refused_at_start(queued, tmp_path, how, mode):
    m, _ = queued
    path = {"missing": tmp_path / "nonexistent",
            "not-executable": tmp_path / "plain",
            "directory": tmp_path}[how]
    if how == "not-executable":
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o644)
    m.settings.update(transport=f"sendmail:{path}")
    q = Mppqueue(m)
    r = subprocess.run(q.args(*mode), capture_output=True, text=True, timeout=30)
    assert r.returncode == EX_CONFIG, r.stderr
    assert f"sendmail program {path}:" in r.stderr
    # Refused before any delivery: nothing deferred with "exit 71".
    row = only_row(m)
    assert row["state"] == "queued" and row["attempts"] == 0


def mppq_show(m, qid):
    m.write_config()
    return subprocess.run([str(BIN / "mppq"), "-d", "-c", str(m.config_path),
                           "show", qid], capture_output=True, text=True,
                          timeout=30)


def test_stderr_in_last_error_log_and_show(queued, tmp_path):
    m, qid = queued
    prog = script(tmp_path, "sm", "cat >/dev/null\n"
                  "echo 'postdrop: warning: uid=65534: File too large' >&2\n"
                  "printf 'postdrop: fatal: open file /etc/postfix/main.cf:"
                  "\\tNo such file\\r\\n\\033[1m' >&2\n"
                  "exit 75\n")
    q = Mppqueue(m)
    assert q.once(transport=f"sendmail:{prog}").returncode == 0
    want = ("sendmail exit 75: postdrop: warning: uid=65534: File too large "
            "postdrop: fatal: open file /etc/postfix/main.cf: No such file ?[1m")
    row = only_row(m)
    assert row["state"] == "deferred"
    assert row["last_error"] == want
    assert f'result=deferred reply="{want}"' in q.log()
    show = mppq_show(m, qid)
    assert show.returncode == 0 and want in show.stdout


def test_much_stderr_does_not_block(queued, tmp_path):
    m, _ = queued
    prog = script(tmp_path, "sm", "cat >/dev/null\n"
                  "head -c 102400 /dev/zero | tr '\\0' e >&2\nexit 0\n")
    q = Mppqueue(m)
    t0 = time.monotonic()
    assert q.once(transport=f"sendmail:{prog}", delivery_timeout=20).returncode == 0
    assert time.monotonic() - t0 < 15
    assert only_row(m)["state"] == "sent"
    line = [x for x in q.log().splitlines() if "result=sent" in x][0]
    assert 'reply="sendmail exit 0: eeee' in line and len(line) < 700


def marked(marker):
    """pids of processes whose command line holds marker."""
    out = []
    for p in Path("/proc").iterdir():
        try:
            if marker.encode() in (p / "cmdline").read_bytes():
                out.append(int(p.name))
        except (OSError, ValueError):
            continue
    return out


def test_timeout_kills_the_group(mppd, tmp_path):
    marker = f"hang-{os.getpid()}-{time.monotonic_ns()}@example.com"
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.post(message(to=marker)) == 250
    c.close()
    started = tmp_path / "started"
    # A grandchild deaf to SIGTERM that sleeps long, and a child that hangs.
    prog = script(tmp_path, "sm", "trap '' TERM\n"
                  "(sleep 300; echo never) &\n"
                  f"echo $! >{started}\n"
                  "echo 'waiting for godot' >&2\n"
                  "while :; do sleep 1; done\n")
    q = Mppqueue(mppd)
    t0 = time.monotonic()
    r = q.once(transport=f"sendmail:{prog}", delivery_timeout=2)
    took = time.monotonic() - t0
    assert r.returncode == 0, q.log()
    assert started.exists()
    assert took < 20
    deadline = time.monotonic() + 5
    while marked(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marked(marker) == []
    (row,) = mppd.stored()
    assert row["state"] == "deferred"
    assert row["last_error"] == "sendmail timed out after 2s: waiting for godot"


def test_child_state(queued, tmp_path):
    m, _ = queued
    out = tmp_path / "state"
    # Read by the shell itself: while it waits for a child of its own
    # (a grep), dash blocks signals for a moment.
    prog = script(tmp_path, "sm", "while read -r k v; do case $k in "
                  "SigBlk:|SigIgn:) echo \"$k\t$v\";; esac; done "
                  f"</proc/$$/status >{out}\n"
                  # In $(...): the shell's own fd 1 stays what it was given.
                  'fds=$(for f in /proc/$$/fd/*; do echo "$f $(readlink $f)"; done)\n'
                  f'echo "$fds" >>{out}\n'
                  f"cat >>{out}\n")
    q = Mppqueue(m)
    assert q.once(transport=f"sendmail:{prog}").returncode == 0
    text = out.read_text()
    assert "SigBlk:\t0000000000000000\n" in text
    # Signals 32 and 33 are the C library's own: one ignored by whoever
    # started the test stays so, since no program can reset it through
    # the library.
    ign = re.search(r"SigIgn:\t([0-9a-f]+)\n", text).group(1)
    assert int(ign, 16) & ~0x180000000 == 0, text
    fds = {}
    for line in text.splitlines():
        if line.startswith("/proc/"):
            f, _, target = line.partition(" ")
            fds[int(f.rsplit("/", 1)[1])] = target
    assert fds[1] == "/dev/null" and fds[2].startswith("pipe:")
    # The shell's own (it keeps its script open, at 10 and up) aside,
    # nothing of mppqueue's: no index, no trigger FIFO, no socket.
    assert "/spool/new/" in fds[0]      # a first attempt reads it there
    # Above 2 only the shell's own: its script, and the pipe of the
    # $(...) above; nothing of mppqueue's (index, trigger FIFO, sockets).
    # An fd listed but closed before its readlink (an empty target) is one
    # the shell opened and closed meanwhile: mppqueue's would stay open.
    rest = [t for f, t in fds.items() if f > 2 and t and t != str(prog)]
    assert len(rest) == 1 and rest[0].startswith("pipe:") and rest[0] != fds[2]
    assert "Subject: sm" in text
