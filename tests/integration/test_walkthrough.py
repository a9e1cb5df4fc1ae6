"""A newcomer's walk-through, as docs/admin.md tells it: install into a
DESTDIR, create a user, write the configuration, start both daemons from
the installed tree, post with the installed mppsend, and find the message
at the MTA (Postfix's smtp-sink)."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, free_port, wait_for

SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


@pytest.mark.skipif(not os.path.exists(SINK), reason="smtp-sink (postfix) missing")
def test_walkthrough(tmp_path):
    dest = tmp_path / "root"
    r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "install",
                        f"DESTDIR={dest}", "PREFIX=/usr/local", "SYSCONFDIR=/etc"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    sbin, bin_ = dest / "usr/local/sbin", dest / "usr/local/bin"
    etc = dest / "etc/mpp"
    spool = dest / "var/spool/mpp"
    # 2. The spool: make install made it (its owner once the user exists).
    assert spool.stat().st_mode & 0o7777 == 0o2750

    # 3. Who may post.
    subprocess.run([str(sbin / "mpppasswd"), "-f", str(etc / "passwd"), "-s", "add", "alice"],
                   input="s3cret\n", text=True, check=True)
    assert (etc / "passwd").stat().st_mode & 0o777 == 0o640

    # 5. The MTA: smtp-sink dumps every message it takes into a file.
    sink_dir = tmp_path / "mta"
    sink_dir.mkdir()
    sink_port, mpp_port = free_port(), free_port()
    sink = subprocess.Popen([SINK, "-u", "root", "-d", f"{sink_dir}/%M.",
                             f"127.0.0.1:{sink_port}", "10"])

    # 4. The configuration (the installed example, with our values).
    conf = etc / "mpp.conf"
    assert conf.exists(), "make install puts an example configuration in place"
    conf.write_text(f"""spool_dir = {spool}
listen = 127.0.0.1:{mpp_port}
user =
hostname = post.example.org
sender_domain = example.org
auth = file:{etc / 'passwd'}
transport = smtp:127.0.0.1:{sink_port}
""")
    env = {**os.environ, "MPP_CONFIG": str(conf)}
    # 6. Start the daemons (foreground here; as root, user is empty).
    logs = tmp_path / "daemons.log"
    with open(logs, "wb") as log:
        mppd = subprocess.Popen([str(sbin / "mppd"), "-d"], env=env, stdout=log, stderr=log)
        queue = subprocess.Popen([str(sbin / "mppqueue"), "-d"], env=env, stdout=log, stderr=log)
    try:
        wait_for(lambda: logs.read_text().count("ready") >= 2, what="daemons ready")
        # 9. Post with mppsend.
        post = subprocess.run([str(bin_ / "mppsend"), "-s", f"127.0.0.1:{mpp_port}", "-u", "alice"],
                              input="To: bob@example.org\nSubject: walk-through\n\nHello Bob.\n",
                              text=True, capture_output=True, timeout=30,
                              env={**env, "MPP_PASSWORD": "s3cret"})
        assert post.returncode == 0, post.stderr
        # smtp-sink writes its dump as the text arrives: it is whole when
        # it ends with the empty line after the message (smtp-sink(1)).
        def dumped():
            files = list(sink_dir.iterdir())
            text = files[0].read_text() if files else ""
            return text if "Hello Bob." in text and text.endswith("\n\n") else None
        text = wait_for(dumped, timeout=10, what="the MTA to get it")
        assert "X-Mail-Args: <alice@example.org>" in text
        assert "X-Rcpt-Args: <bob@example.org>" in text
        assert "Subject: walk-through" in text and "Hello Bob." in text
        qid = text.split("with MPP id ", 1)[1].split(";", 1)[0]
        # The queue is empty once the delivery is recorded (a moment after
        # the MTA's reply); grep ID tells the story.
        def listed():
            return subprocess.run([str(bin_ / "mppq"), "list", "--json"], env=env,
                                  capture_output=True, text=True, check=True).stdout.strip()
        wait_for(lambda: listed() == "[]", timeout=10, what="the delivery to be recorded")
        story = [l for l in logs.read_text().splitlines() if qid in l]
        assert any("result=accepted" in l for l in story)
        assert any("result=sent" in l and "reply=" in l for l in story)
    finally:
        for p in (mppd, queue, sink):
            p.send_signal(signal.SIGTERM)
        for p in (mppd, queue, sink):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
