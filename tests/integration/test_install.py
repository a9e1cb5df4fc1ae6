"""make install into a DESTDIR, the modes and owners it sets up, make
uninstall, systemd units verified, man pages lint-clean. (The logrotate
example is run by logrotate in test_daemon.py.)"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, system_users  # noqa: F401 (a fixture)

MANPAGES = ["docs/mppd.8", "docs/mppqueue.8", "docs/mppq.8", "docs/mpppasswd.8",
            "docs/mppsend.1", "docs/mpp.conf.5"]


def make(*args, **kw):
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args],
                          capture_output=True, text=True, timeout=600, **kw)


def test_install_and_uninstall(tmp_path):
    dest = tmp_path / "dest"
    r = make("install", f"DESTDIR={dest}", "PREFIX=/usr/local", "SYSCONFDIR=/etc")
    assert r.returncode == 0, r.stderr
    for p in ["usr/local/sbin/mppd", "usr/local/sbin/mppqueue", "usr/local/sbin/mpppasswd",
              "usr/local/bin/mppsend", "usr/local/bin/mppq"]:
        f = dest / p
        assert f.is_file() and os.access(f, os.X_OK), p
    for m in MANPAGES:
        sec = m.rsplit(".", 1)[1]
        assert (dest / f"usr/local/share/man/man{sec}" / Path(m).name).is_file(), m
    assert (dest / "usr/local/share/mpp/schema.sql").is_file()
    assert (dest / "usr/local/share/mpp/mppd.service").is_file()
    assert (dest / "usr/local/share/mpp/mpp.logrotate").is_file()
    conf = dest / "etc/mpp/mpp.conf"
    assert conf.is_file()
    # An installed config is never overwritten.
    conf.write_text("# mine\n")
    assert make("install", f"DESTDIR={dest}").returncode == 0
    assert conf.read_text() == "# mine\n"
    r = make("uninstall", f"DESTDIR={dest}")
    assert r.returncode == 0, r.stderr
    assert not (dest / "usr/local/sbin/mppd").exists()
    assert not (dest / "usr/local/share/mpp").exists()
    assert conf.read_text() == "# mine\n", "uninstall keeps the configuration"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze missing")
def test_systemd_units_verify(tmp_path):
    bin_dir = Path(os.environ.get("MPP_BIN", ROOT / "bin"))
    units = sorted((ROOT / "docs/systemd").iterdir())
    assert {u.name for u in units} >= {"mppd.service", "mppd.socket", "mppd@.service",
                                       "mppqueue.service", "mppqueue.timer"}
    for u in units:
        # Point ExecStart at the built programs: verify checks they exist.
        text = u.read_text().replace("/usr/local/sbin/", f"{bin_dir}/")
        (tmp_path / u.name).write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        *[str(tmp_path / u.name) for u in units]],
                       capture_output=True, text=True, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    for name in ("mppd.service", "mppd@.service", "mppqueue.service"):
        text = (ROOT / "docs/systemd" / name).read_text()
        for key in ("NoNewPrivileges=yes", "ProtectSystem=strict",
                    "ReadWritePaths=/var/spool/mpp", "PrivateTmp=yes", "CapabilityBoundingSet="):
            assert key in text, (name, key)


@pytest.mark.skipif(not shutil.which("mandoc"), reason="mandoc missing")
@pytest.mark.parametrize("page", MANPAGES)
def test_man_page_lint(page):
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", str(ROOT / page)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def mode(path):
    return path.stat().st_mode & 0o7777


def test_install_modes(tmp_path):
    """mppq works for users who are not root: the configuration is
    readable by all, the spool by its group; made only when missing."""
    dest = tmp_path / "dest"
    r = make("install", f"DESTDIR={dest}", "MPP_USER=nosuchuser-mpp",
             "QUEUE_GROUP=nosuchgroup-mpp")
    assert r.returncode == 0, r.stderr
    assert mode(dest / "etc/mpp") == 0o2755
    assert mode(dest / "etc/mpp/mpp.conf") == 0o644
    assert mode(dest / "var/spool/mpp") == 0o2750
    assert "should belong to nosuchuser-mpp:nosuchgroup-mpp" in r.stdout
    # An administrator's own modes are kept.
    (dest / "var/spool/mpp").chmod(0o700)
    (dest / "etc/mpp").chmod(0o750)
    assert make("install", f"DESTDIR={dest}").returncode == 0
    assert mode(dest / "var/spool/mpp") == 0o700
    assert mode(dest / "etc/mpp") == 0o750


def test_install_owners(tmp_path, system_users):
    dest = tmp_path / "dest"
    group, gid = system_users.group("q")
    user, uid, ugid = system_users.user("d")
    r = make("install", f"DESTDIR={dest}", f"MPP_USER={user}", f"MPP_GROUP={user}",
             f"QUEUE_GROUP={group}")
    assert r.returncode == 0, r.stderr
    st = (dest / "var/spool/mpp").stat()
    assert (st.st_uid, st.st_gid) == (uid, gid)
    st = (dest / "etc/mpp").stat()
    assert (st.st_uid, st.st_gid) == (0, ugid)
    assert "should belong" not in r.stdout

