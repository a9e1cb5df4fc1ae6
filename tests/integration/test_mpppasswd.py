"""mpppasswd: every subcommand, its exit codes, the file's mode, owner and
group kept across rewrites, and concurrent changes not lost."""

import grp
import os
import subprocess
import threading

import pytest

from conftest import BIN


def pw(f, *args, stdin=None):
    return subprocess.run([str(BIN / "mpppasswd"), "-f", str(f), *args],
                          input=stdin, capture_output=True, text=True, timeout=30)


def test_subcommands_and_exit_codes(tmp_path):
    f = tmp_path / "passwd"
    assert pw(f, "-s", "add", "alice", stdin="one\n").returncode == 0
    assert (f.stat().st_mode & 0o777) == 0o640
    line = f.read_text()
    assert line.startswith("alice:$y$") and "one" not in line
    assert pw(f, "-s", "add", "alice", stdin="two\n").returncode == 65   # exists
    assert pw(f, "-s", "check", "alice", stdin="one\n").returncode == 0
    assert pw(f, "-s", "check", "alice", stdin="two\n").returncode == 1
    assert pw(f, "-s", "check", "bob", stdin="one\n").returncode == 1
    assert pw(f, "-s", "passwd", "alice", stdin="two\n").returncode == 0
    assert pw(f, "-s", "check", "alice", stdin="two\n").returncode == 0
    assert pw(f, "-s", "passwd", "bob", stdin="x\n").returncode == 67
    assert pw(f, "-s", "-m", "sha512", "add", "bob", stdin="b\n").returncode == 0
    assert "bob:$6$" in f.read_text()
    assert pw(f, "-s", "-m", "bcrypt", "add", "carol", stdin="c\n").returncode == 0
    assert "carol:$2b$" in f.read_text()
    assert pw(f, "list").stdout.split() == ["alice", "bob", "carol"]
    assert pw(f, "del", "bob").returncode == 0
    assert pw(f, "del", "bob").returncode == 67
    assert pw(f, "list").stdout.split() == ["alice", "carol"]
    assert pw(f, "-s", "add", "bad:name", stdin="x\n").returncode == 65
    assert pw(f, "-s", "add", "dave", stdin="\n").returncode == 65       # empty
    assert pw(f, "frobnicate", "x").returncode == 64
    assert pw(f, "-m", "md5", "add", "x").returncode == 64


def test_comments_and_foreign_lines_survive_a_rewrite(tmp_path):
    f = tmp_path / "passwd"
    f.write_text("# staff\nzed:$6$abc$def:1000:extra\n\n")
    assert pw(f, "-s", "add", "alice", stdin="one\n").returncode == 0
    text = f.read_text()
    assert text.startswith("# staff\nzed:$6$abc$def:1000:extra\n\n")
    assert "alice:" in text


def test_rewrite_keeps_owner_and_group(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to set a group")
    f = tmp_path / "passwd"
    assert pw(f, "-s", "add", "alice", stdin="one\n").returncode == 0
    gid = grp.getgrnam("nogroup").gr_gid
    os.chown(f, 0, gid)
    assert pw(f, "-s", "add", "bob", stdin="two\n").returncode == 0
    st = f.stat()
    assert (st.st_uid, st.st_gid) == (0, gid), "the daemon's group must keep read access"
    assert (st.st_mode & 0o777) == 0o640


def test_world_readable_file_warns(tmp_path):
    f = tmp_path / "passwd"
    f.write_text("")
    f.chmod(0o644)
    r = pw(f, "list")
    assert r.returncode == 0 and "readable by others" in r.stderr


def test_concurrent_adds_are_not_lost(tmp_path):
    f = tmp_path / "passwd"
    names = [f"user{i}" for i in range(12)]
    threads = [threading.Thread(target=pw, args=(f, "-s", "-m", "sha512", "add", n),
                                kwargs={"stdin": "x\n"}) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(pw(f, "list").stdout.split()) == sorted(names)
