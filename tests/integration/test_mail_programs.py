"""Real mail programs with mppsend as their sendmail, through a real mppd
and mppqueue, to an MTA that keeps one copy per envelope recipient.

mutt and s-nail name every recipient, the blind ones too, only as
mppsend's operands: what each recipient gets shows that the operand
recipients reach the server, and that no stored copy gives a blind
recipient away.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, Mppqueue

MPPSEND = BIN / "mppsend"
MUTT = shutil.which("mutt")
S_NAIL = shutil.which("s-nail")

BODY = "Lunch at noon?\n.a line starting with a dot\n"

SINK = """\
import os, sys
args = sys.argv[1:]
rcpts = args[args.index("--") + 1:]
data = sys.stdin.buffer.read()
for rcpt in rcpts:
    box = os.path.join({dir!r}, rcpt)
    os.makedirs(box, exist_ok=True)
    n = len(os.listdir(box))
    with open(os.path.join(box, str(n)), "wb") as f:
        f.write(data)
"""


@pytest.fixture
def home(mppd, tmp_path):
    """A private HOME whose ~/.mpprc points mppsend at the mppd fixture."""
    h = tmp_path / "home"
    h.mkdir()
    (h / "pw").write_text("secret\n")
    (h / "pw").chmod(0o600)
    (h / ".mpprc").write_text(f"server = 127.0.0.1:{mppd.port}  # the test mppd\n"
                              f"user = alice\npassword_file = {h}/pw\n")
    return h


@pytest.fixture
def delivered(mppd, tmp_path):
    """Run the queue into a sendmail-like sink; return {rcpt: [copies]}."""
    sink_dir = tmp_path / "sink"
    script = tmp_path / "sink-sendmail"
    script.write_text(f"#!{sys.executable}\n" + SINK.format(dir=str(sink_dir)))
    script.chmod(0o755)
    queue = Mppqueue(mppd)

    def run():
        r = queue.once(transport=f"sendmail:{script}")
        assert r.returncode == 0, queue.log()
        if not sink_dir.exists():
            return {}
        return {box.name: [p.read_bytes() for p in sorted(box.iterdir())]
                for box in sink_dir.iterdir()}
    return run


def program_env(home):
    # MPP_RC too: s-nail gives its MTA the password database's home
    # directory as HOME when it runs as root, whatever HOME says.
    return {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C.UTF-8", "MPP_RC": str(home / ".mpprc")}


def check_copies(copies, body):
    """bob, carol and dave each got one copy; none shows dave or a Bcc."""
    assert sorted(copies) == ["bob@example.org", "carol@example.org",
                              "dave@example.org"], copies
    for rcpt, got in copies.items():
        assert len(got) == 1, (rcpt, got)
        head, _, text = got[0].partition(b"\n\n")
        assert b"dave" not in head.lower(), head
        assert b"\nbcc:" not in b"\n" + head.lower(), head
        assert b"To: bob@example.org" in head and b"Cc: carol@example.org" in head
        assert text == body.encode()


@pytest.mark.skipif(MUTT is None, reason="mutt is not installed")
@pytest.mark.parametrize("write_bcc", ["no", "yes"])
def test_mutt_bcc(mppd, home, delivered, write_bcc):
    # write_bcc=no (the default): the Bcc recipient is only an operand;
    # yes: mutt writes a Bcc: field too, which mppd removes.
    (home / ".muttrc").write_text(
        f'set sendmail="{MPPSEND}"\n'
        'set from="alice@example.org"\nset use_from=yes\n'
        'set record=""\nset copy=no\n'
        f"set write_bcc={write_bcc}\n")
    r = subprocess.run([MUTT, "-n", "-F", str(home / ".muttrc"),
                        "-s", "lunch", "-c", "carol@example.org",
                        "-b", "dave@example.org", "--", "bob@example.org"],
                       input=BODY.encode(), env=program_env(home),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    (msg,) = mppd.stored()
    assert msg["auth_user"] == "alice"
    check_copies(delivered(), BODY)


@pytest.mark.skipif(S_NAIL is None, reason="s-nail is not installed")
def test_s_nail_bcc(mppd, home, delivered):
    r = subprocess.run([S_NAIL, "-#", "-:", "/", "-S", f"mta={MPPSEND}",
                        "-S", f"DEAD={home}/dead.letter",
                        "-S", "from=alice@example.org", "-s", "lunch",
                        "-c", "carol@example.org", "-b", "dave@example.org",
                        "bob@example.org"],
                       input=BODY.encode(), env=program_env(home),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (home / "dead.letter").exists()
    (msg,) = mppd.stored()
    assert msg["auth_user"] == "alice"
    check_copies(delivered(), BODY)
