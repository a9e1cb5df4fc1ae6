"""mppqueue's sendmail transport through the real Postfix /usr/sbin/sendmail,
run the way docs/systemd/mppqueue-once.service runs it, and the ways that
break it.

systemd is not running here, so the unit is stood in for by mta.confined():
a private mount namespace with every mount read-only but the unit's
ReadWritePaths= (ProtectSystem=strict), the capability bounding set of its
CapabilityBoundingSet=, no_new_privs for NoNewPrivileges=, the user it
starts as, and the end of every leftover process when the run ends (the
unit's cgroup). The private Postfix of mta.py stands in for the system's:
its config directory is /etc/postfix inside the namespace, and its
maildrop/ for /var/spool/postfix/maildrop."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import mta
from conftest import BIN, ROOT, message

DELIVERY_TIMEOUT = 5


def unit_settings(path):
    """The unit's [Service] settings: {key: [values]}."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


@pytest.fixture
def queued(postfix, mppd_factory):
    """A spool with one message for rcpt-NAME@example.com, owned by
    nobody (the stand-in for mpp), and a config with the sendmail
    transport; yields (mppd, config path, spool, recipient maker)."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    # Outside the test's tmp_path, which only root may enter.
    shared = Path(tempfile.mkdtemp(prefix="mpp-unit-", dir="/tmp"))
    shared.chmod(0o755)
    spool = shared / "spool"
    m = mppd_factory(spool_dir=str(spool), transport=f"sendmail:{mta.SENDMAIL}",
                     delivery_timeout=DELIVERY_TIMEOUT)
    m.spool = spool
    m.config_path = shared / "mpp.conf"
    m.add_user("alice", "secret")
    m.start()           # as root (user empty); mppqueue will drop to nobody

    def post(to):
        c = m.client()
        assert c.login("alice", "secret") == 250
        assert c.post(message(to=to, subject=f"for {to}")) == 250
        c.close()
    yield m, post, spool, nobody
    m.stop()
    shutil.rmtree(shared, ignore_errors=True)


def run_queue(m, spool, nobody, postfix, **confine):
    """mppqueue -1 over m's spool, confined as asked; its log text."""
    m.stop()
    for d, _, files in os.walk(spool):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    m.settings["user"] = "nobody"
    m.write_config()
    m.config_path.chmod(0o644)
    confine.setdefault("rw_paths", [spool, postfix.queue_dir / "maildrop"])
    argv, env = mta.confined([str(BIN / "mppqueue"), "-1", "-d", "-c",
                              str(m.config_path)], postfix=postfix, **confine)
    r = subprocess.run(argv, env=env, capture_output=True, text=True,
                       timeout=120)
    m.settings["user"] = ""
    return r


def row(m, to):
    return [r for r in m.stored() if to in r["recipients"]][0]


def test_unit_has_no_setting_that_breaks_setgid(tmp_path):
    """What the stand-in below assumes of the shipped units."""
    for name in ("mppqueue.service", "mppqueue-once.service"):
        s = unit_settings(ROOT / "docs/systemd" / name)
        assert "NoNewPrivileges" not in s, name
        assert "User" not in s, f"{name}: User= implies NoNewPrivileges"
        assert s["CapabilityBoundingSet"] == ["CAP_SETUID CAP_SETGID"], name
        assert s["ProtectSystem"] == ["strict"], name
        rw = s["ReadWritePaths"][0].split()
        assert "/var/spool/mpp" in rw and "-/var/spool/postfix/maildrop" in rw
        assert "RestrictSUIDSGID" in s and "PrivateDevices" in s, name


# Settings with which systemd turns on NoNewPrivileges= for a unit with
# User= (systemd.exec(5): they need seccomp, which an unprivileged process
# may only install with no_new_privs).
SECCOMP_KEYS = ("PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectKernelLogs", "ProtectClock", "ProtectHostname",
                "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime",
                "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute",
                "SystemCallArchitectures", "SystemCallFilter")


def as_the_unit(path, spool, postfix):
    """confined()'s arguments for what the unit at path sets: its user (mpp
    played by nobody), bounding set, no_new_privs as systemd would set
    it, ProtectSystem=strict with its ReadWritePaths= (the spool and
    Postfix's maildrop/ mapped to this test's)."""
    s = unit_settings(path)
    user = "nobody" if "User" in s else None
    nnp = s.get("NoNewPrivileges", ["no"])[-1] == "yes" or (
        user is not None and any(k in s for k in SECCOMP_KEYS))
    caps = [c.lower().removeprefix("cap_")
            for c in s.get("CapabilityBoundingSet", [""])[-1].split()]
    where = {"/var/spool/mpp": spool,
             "/var/spool/postfix/maildrop": postfix.queue_dir / "maildrop"}
    rw = []
    for p in " ".join(s.get("ReadWritePaths", [])).split():
        p = where.get(p.lstrip("-"), p.lstrip("-"))
        if os.path.isdir(p):
            rw.append(p)
    return {"user": user, "caps": caps, "no_new_privs": nnp,
            "read_only": s.get("ProtectSystem") == ["strict"], "rw_paths": rw}


@pytest.mark.parametrize("unit", ["mppqueue-once.service", "mppqueue.service"])
def test_postfix_sendmail_delivers_under_the_unit(postfix, queued, unit):
    m, post, spool, nobody = queued
    to = f"unit-1-{unit.split('.')[0]}@example.com"
    post(to)
    confine = as_the_unit(ROOT / "docs/systemd" / unit, spool, postfix)
    r = run_queue(m, spool, nobody, postfix, **confine)
    assert r.returncode == 0, r.stderr
    assert row(m, to)["state"] == "sent", r.stderr
    assert "postdrop" not in r.stderr
    got = postfix.wait_mail(to)
    # Postfix's sendmail ran as nobody: mppqueue dropped to its user.
    assert b"from userid 65534" in got[0]
    assert f"Subject: for {to}".encode() in got[0]
    assert confine["no_new_privs"] is False and confine["read_only"]


def check_deferred(m, r, to, why):
    """Deferred by the timeout, with postdrop's own words (its stderr) in
    last_error and the log."""
    assert r.returncode == 0
    rec = row(m, to)
    assert rec["state"] == "deferred"
    said = (f"sendmail timed out after {DELIVERY_TIMEOUT}s: postdrop: warning: "
            "mail_queue_enter: create file maildrop/")
    assert rec["last_error"].startswith(said), rec["last_error"]
    assert why in rec["last_error"]
    assert said in r.stderr and why in r.stderr


def test_no_new_privileges_breaks_it(postfix, queued):
    """The issue's failure, seen by the same run: the old unit (User=mpp,
    NoNewPrivileges=yes) as `setpriv --no-new-privs` as that user."""
    m, post, spool, nobody = queued
    post("unit-2@example.com")
    r = run_queue(m, spool, nobody, postfix, user="nobody", no_new_privs=True)
    check_deferred(m, r, "unit-2@example.com", "Permission denied")
    assert postfix.mailbox("unit-2@example.com") == []


def test_readonly_maildrop_breaks_it(postfix, queued):
    """ProtectSystem=strict without postdrop's maildrop/ writable."""
    m, post, spool, nobody = queued
    post("unit-3@example.com")
    r = run_queue(m, spool, nobody, postfix, user=None,
                  caps=["setuid", "setgid"], rw_paths=[spool])
    check_deferred(m, r, "unit-3@example.com", "Read-only file system")
    assert postfix.mailbox("unit-3@example.com") == []


def test_fixed_arguments_pick_the_instance(postfix, queued):
    """`sendmail:/usr/sbin/sendmail -C DIR` instead of MAIL_CONFIG: the
    argument alone sends the mail to the private instance (run as root,
    whom postdrop lets name another configuration directory)."""
    m, post, spool, nobody = queued
    to = "unit-4@example.com"
    post(to)
    m.stop()
    m.settings["transport"] = f"sendmail:{mta.SENDMAIL} -C {postfix.conf_dir}"
    m.write_config()
    env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}
    r = subprocess.run([str(BIN / "mppqueue"), "-1", "-d", "-c",
                        str(m.config_path)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert row(m, to)["state"] == "sent", r.stderr
    got = postfix.wait_mail(to)
    assert f"Subject: for {to}".encode() in got[0]


def test_no_leftover_postdrop(postfix):
    """The failing runs above leave no postdrop behind (the confined
    run's processes end with it, as a unit's cgroup does)."""
    left = []
    for p in Path("/proc").iterdir():
        try:
            if os.readlink(p / "exe") == "/usr/sbin/postdrop" and \
                    str(postfix.queue_dir) in os.readlink(p / "cwd"):
                left.append(p.name)
        except OSError:
            continue
    assert left == []
