"""make run: the packages it installs, and the banner of tests/run-local.sh,
whose nc line must work as printed."""

import os
import re
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import BIN, ROOT, free_port, wait_for

DIALOGUE = (b"USER demo\nPASS demo\nDATA\nTo: you@localhost\nSubject: hi\n\n"
            b"Hello by hand.\n.\nQUIT\n")


def greets(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(64).startswith(b"220 ")
    except OSError:
        return False


def test_make_run_packages_include_netcat(tmp_path):
    """deps.sh build (what make run calls) wants netcat-openbsd: shown with
    a dpkg-query that knows no package, run by a user who is not root."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (fake / "id").write_text("#!/bin/sh\necho 1000\n")
    for f in fake.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    r = subprocess.run(["sh", "tests/deps.sh", "build"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    line = [l for l in r.stderr.splitlines() if "apt-get install" in l][0]
    assert "netcat-openbsd" in line.split() and "gcc" in line.split()
    r = subprocess.run(["sh", "tests/deps.sh"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=30)
    words = r.stderr.split()
    assert "mutt" in words and "s-nail" in words and "netcat-openbsd" in words


@pytest.mark.skipif(shutil.which("nc") is None, reason="nc is not installed")
def test_banner_nc_line_posts(tmp_path):
    top = tmp_path / "top"
    top.mkdir()
    (top / "bin").symlink_to(BIN)
    port = free_port()
    p = subprocess.Popen(["sh", str(ROOT / "tests" / "run-local.sh")], cwd=top,
                         env={**os.environ, "MPP_PORT": str(port)},
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        banner = b""
        while b"Ctrl-C stops both daemons." not in banner:
            line = p.stdout.readline()
            assert line, banner
            banner += line
        m = re.search(rb"\b(nc(?: -\w+)* 127\.0\.0\.1 \d+)", banner)
        assert m, banner
        cmd = m.group(1).decode().split()
        assert cmd[-1] == str(port)
        wait_for(lambda: greets(port), timeout=10, what="mppd to listen")

        def posted():
            try:
                return subprocess.run(cmd, input=DIALOGUE, capture_output=True,
                                      timeout=10).stdout
            except subprocess.TimeoutExpired as e:
                # without -C the final "." is no end of the text: stuck
                raise AssertionError(f"{cmd} hung: {e.stdout!r}")
        out = posted()
        assert out.count(b"250 Command OK.") == 3, out
        assert out.endswith(b"221 Closing Connection.\r\n"), out
        new = top / "run" / "maildir" / "new"
        got = wait_for(lambda: list(new.iterdir()) if new.exists() else None,
                       timeout=10, what="the delivery")
        assert b"Hello by hand." in got[0].read_bytes()
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
