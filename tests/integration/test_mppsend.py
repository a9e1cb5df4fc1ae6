"""mppsend against the real mppd, against small scripted servers for the
failures a real server will not produce on demand, and under git send-email.

The mppd fixture comes from conftest.py; MPP_BIN names the bin directory.
"""

import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("MPP_BIN", REPO / "bin"))
MPPSEND = BIN / "mppsend"

EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_IOERR = 0, 64, 65, 66, 74
EX_SOFTWARE, EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM, EX_CONFIG = 70, 75, 76, 77, 78

PASSWORD = "secret"  # alice's, as the mppd fixture makes her


def run_mppsend(args, stdin=b"", env=None, home=None, timeout=30):
    """Run mppsend with a clean environment; returns CompletedProcess."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if home is not None:
        e["HOME"] = str(home)
    e.update(env or {})
    return subprocess.run(
        [str(MPPSEND), *args],
        input=stdin,
        env=e,
        capture_output=True,
        timeout=timeout,
        start_new_session=True,  # no controlling terminal: no prompt
    )


def mpp_env(mppd, user="alice", password=PASSWORD):
    return {
        "MPP_SERVER": f"127.0.0.1:{mppd.port}",
        "MPP_USER": user,
        "MPP_PASSWORD": password,
    }


def split_stored(text):
    """(header section, body) of a stored message (LF line ends)."""
    head, sep, body = text.partition(b"\n\n")
    assert sep, "stored message has no header/body separator"
    return head + b"\n", body


def free_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer:
    """One-connection TCP server running script(conn, rfile) in a thread."""

    def __init__(self, script, family=socket.AF_INET, host="127.0.0.1"):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.received = []
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        try:
            self.sock.settimeout(20)
            conn, _ = self.sock.accept()
            with conn, conn.makefile("rb") as rfile:
                self.script(self, conn, rfile)
        except Exception as exc:  # reported by the test through .error
            self.error = exc

    def readline(self, rfile):
        line = rfile.readline()
        self.received.append(line)
        return line

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(20)
        self.sock.close()


GREETING = b"220 Message Posting Service Ready.\r\n"
OK = b"250 Command OK.\r\n"
GO = b"354 Enter mail, end with <CRLF>.<CRLF>\r\n"


def read_text(server, rfile):
    """Read message text up to the final dot; return it (CRLF, stuffed)."""
    lines = []
    while True:
        line = server.readline(rfile)
        if line in (b".\r\n", b""):
            return b"".join(lines)
        lines.append(line)


@pytest.fixture
def alice(mppd):
    """The fixture's mppd, whose user alice has the password PASSWORD."""
    return mppd


# ---------------------------------------------------------------- real mppd

HEADERS = (
    b"From: Alice Example <alice@example.org>\n"
    b"To: Bob <bob@example.org>\n"
    b"Cc: carol@example.org\n"
    b"Subject: dots, long lines and 8-bit text\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n"
)
BODY = (
    b".\n"
    b"..\n"
    b".leading dot\n"
    b"..two leading dots\n"
    b". \n"
    b"a line that ends in a dot.\n"
    + b"L" * 990 + b"\n"
    + (b"long line " * 500).rstrip() + b"\n"
    + "Grüße, Ωμέγα, 日本語, emoji \U0001F4EC\n".encode()
    + b"latin-1 bytes: \xe9\xe8\xff\n"
    b"\n"
    b"\ttabbed line\n"
    b"last line\n"
)


def test_posts_byte_exact(alice, tmp_path):
    r = run_mppsend([], stdin=HEADERS + b"\n" + BODY, env=mpp_env(alice),
                    home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    assert r.stderr == b""
    (msg,) = alice.stored()
    assert msg["auth_user"] == "alice"
    assert sorted(msg["recipients"]) == ["bob@example.org",
                                         "carol@example.org"]
    head, body = split_stored(msg["text"])
    assert body == BODY
    assert HEADERS in head  # the original headers, unchanged and together


def test_crlf_input_stored_the_same(alice, tmp_path):
    text = (HEADERS + b"\n" + BODY).replace(b"\n", b"\r\n")
    r = run_mppsend([], stdin=text, env=mpp_env(alice), home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    (msg,) = alice.stored()
    head, body = split_stored(msg["text"])
    assert body == BODY
    assert HEADERS in head


def test_last_line_without_newline(alice, tmp_path):
    text = HEADERS + b"\nfirst\n.second, no line end"
    r = run_mppsend([], stdin=text, env=mpp_env(alice), home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    (msg,) = alice.stored()
    assert split_stored(msg["text"])[1] == b"first\n.second, no line end\n"


def test_several_files_one_session(alice, tmp_path):
    files = []
    for i in range(3):
        f = tmp_path / f"msg{i}.eml"
        f.write_bytes(b"To: bob@example.org\nSubject: number %d\n\n"
                      b".body %d\n" % (i, i))
        files.append(str(f))
    args = [a for f in files for a in ("-l", f)]
    r = run_mppsend(["-v", *args], env=mpp_env(alice), home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    trace = r.stderr.decode()
    assert trace.count("-> USER alice") == 1
    assert trace.count("-> PASS ****") == 1
    assert trace.count("-> DATA") == 3
    assert trace.count("-> QUIT") == 1
    assert trace.count("connected to") == 1
    bodies = sorted(split_stored(m["text"])[1] for m in alice.stored())
    assert bodies == [b".body %d\n" % i for i in range(3)]


def test_stdin_among_files(alice, tmp_path):
    f = tmp_path / "one.eml"
    f.write_bytes(b"To: bob@example.org\nSubject: file\n\nfrom a file\n")
    r = run_mppsend(["-l", str(f), "-l", "-"], env=mpp_env(alice),
                    home=tmp_path,
                    stdin=b"To: bob@example.org\nSubject: in\n\nfrom stdin\n")
    assert r.returncode == EX_OK, r.stderr
    bodies = sorted(split_stored(m["text"])[1] for m in alice.stored())
    assert bodies == [b"from a file\n", b"from stdin\n"]


def test_verbose_masks_password(alice, tmp_path):
    r = run_mppsend(["-v"], stdin=HEADERS + b"\nhi\n", env=mpp_env(alice),
                    home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    err = r.stderr.decode()
    assert "-> PASS ****" in err
    assert PASSWORD not in err
    assert "<- 220 " in err and "<- 354 " in err and "<- 221 " in err


def test_wrong_password_is_77(alice, tmp_path):
    r = run_mppsend([], stdin=HEADERS + b"\nhi\n",
                    env=mpp_env(alice, password="wrong"), home=tmp_path)
    assert r.returncode == EX_NOPERM
    assert b"530 Authentication Failure." in r.stderr
    assert alice.stored() == []


def test_unknown_user_is_77(alice, tmp_path):
    r = run_mppsend([], stdin=HEADERS + b"\nhi\n",
                    env=mpp_env(alice, user="mallory"), home=tmp_path)
    assert r.returncode == EX_NOPERM
    assert b"530" in r.stderr


def test_oversize_message_is_65(alice, tmp_path):
    alice.restart(max_message_size=2000)
    text = HEADERS + b"\n" + b"x" * 70 + b"\n" * 1 + (b"y" * 70 + b"\n") * 100
    r = run_mppsend([], stdin=text, env=mpp_env(alice), home=tmp_path)
    assert r.returncode == EX_DATAERR
    # The server gives no reason; its limit is unknown here, the size is.
    assert (b'replied "550 Error.": the server gives no reason: perhaps '
            b'the message (%d bytes) is larger than it takes (its '
            b'max_message_size)' % len(text)) in r.stderr, r.stderr
    assert alice.stored() == []


def test_no_recipient_is_65_before_connecting(tmp_path):
    # Nothing listens there: had mppsend connected, it would exit 75.
    r = run_mppsend(["-s", f"127.0.0.1:{free_port()}", "-u", "alice"],
                    stdin=b"Subject: to nobody\n\nhi\n",
                    env={"MPP_PASSWORD": "x"}, home=tmp_path)
    assert r.returncode == EX_DATAERR, r.stderr
    assert r.stderr == (b"mppsend: message not posted: it has no recipient: "
                        b"no To:, Cc: or Bcc: field names an address, and "
                        b"no recipient was given on the command line\n")


@pytest.mark.parametrize("text, reason", [
    (b" folded\nTo: bob@example.org\n\nhi\n",
     b"its first line starts with a blank"),
    (b"To: bob@example.org\nCc: Carol <carol@\n\nhi\n",
     b"the Cc: field on line 2 is not a valid address list"),
    (b"From: a@example.org\nTo: bob@example.org\nFrom: b@example.org\n\n",
     b"it has more than one From: field"),
    (b"To: bob@example.org\n" + b"X-Big: " + b"x" * 1048576 + b"\n\nhi\n",
     b"its header section is over 1048576 bytes"),
    (b"To: undisclosed-recipients:;\n\nhi\n", b"it has no recipient"),
], ids=["folded", "bad-cc", "two-from", "big", "nobody"])
def test_header_faults_said_before_connecting(tmp_path, text, reason):
    r = run_mppsend(["-s", f"127.0.0.1:{free_port()}", "-u", "alice"],
                    stdin=text, env={"MPP_PASSWORD": "x"}, home=tmp_path)
    assert r.returncode == EX_DATAERR, r.stderr
    assert r.stderr.startswith(b"mppsend: message not posted: " + reason), \
        r.stderr


@pytest.mark.parametrize("text, reason", [
    (b" folded\nTo: bob@example.org\n\nhi\n", None),
    (b"To: bob@example.org\nCc: Carol <carol@\n\nhi\n", None),
    (b"From: a@example.org\nTo: bob@example.org\nFrom: b@example.org\n\n",
     None),
    # 1 MiB counted with LF line ends, through the empty line: one over,
    (b"To: bob@example.org\n" + b"X-Big: " + b"x" * 1048548 + b"\n\nhi\n",
     None),
    # just right,
    (b"To: bob@example.org\n" + b"X-Big: " + b"x" * 1048547 + b"\n\nhi\n",
     b"ok"),
    # and over only when the CRs of CRLF are counted too
    (b"To: bob@example.org\r\n" + b"X: y\r\n" * 200000 + b"\r\nhi\r\n",
     b"ok"),
], ids=["folded", "bad-cc", "two-from", "big", "big-just-fits",
        "big-crlf-fits"])
def test_header_faults_are_what_mppd_refuses(alice, tmp_path, text, reason):
    """mppsend's verdict on a header section is mppd's: what it refuses
    locally mppd answers 550 (raw, without mppsend), and the rest it takes."""
    c = alice.client()
    assert c.login("alice", PASSWORD) == 250
    wire = text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert c.post(wire) == (550 if reason is None else 250)
    c.close()
    r = run_mppsend([], stdin=text, env=mpp_env(alice), home=tmp_path)
    assert r.returncode == (EX_DATAERR if reason is None else EX_OK), r.stderr
    if reason is None:
        assert b"550" not in r.stderr  # refused before posting


def test_bare_cr_sent_as_is_and_refused(alice, tmp_path):
    r = run_mppsend([], stdin=HEADERS + b"\nbare\rcarriage return\n",
                    env=mpp_env(alice), home=tmp_path)
    assert r.returncode == EX_DATAERR
    assert (b'replied "550 Error.": line 9 of the message holds a bare CR '
            b'(one that does not end the line), which the server refuses'
            ) in r.stderr, r.stderr


def test_bare_cr_far_in_the_body_explained(alice, tmp_path):
    # beyond what mppsend reads ahead: seen as the text streams past
    body = b"line\n" * 300000 + b"bare\rCR\n"
    r = run_mppsend([], stdin=HEADERS + b"\n" + body, env=mpp_env(alice),
                    home=tmp_path)
    assert r.returncode == EX_DATAERR
    assert b"line 300009 of the message holds a bare CR" in r.stderr, \
        r.stderr


def test_nul_explained(alice, tmp_path):
    r = run_mppsend([], stdin=HEADERS + b"\nfirst\nnul \0 here\n",
                    env=mpp_env(alice), home=tmp_path)
    assert r.returncode == EX_DATAERR
    assert b"line 10 of the message holds a NUL byte" in r.stderr, r.stderr


def test_server_down_is_75(tmp_path):
    port = free_port()
    t0 = time.monotonic()
    r = run_mppsend(["-s", f"127.0.0.1:{port}", "-u", "alice"],
                    stdin=b"To: b@example.org\n\nhi\n",
                    env={"MPP_PASSWORD": "x"}, home=tmp_path)
    assert r.returncode == EX_TEMPFAIL
    assert b"refused" in r.stderr
    assert time.monotonic() - t0 < 10


def test_auth_backend_down_is_75(alice, tmp_path):
    # mppd answers 451 when it cannot check a password (RFC 1204 §3.4
    # backend unreachable): a temporary failure, to be tried again.
    alice.restart(auth=f"pop3:127.0.0.1:{free_port()}")
    r = run_mppsend([], stdin=HEADERS + b"\nhi\n", env=mpp_env(alice),
                    home=tmp_path)
    assert r.returncode == EX_TEMPFAIL
    assert b"451 Local error encountered." in r.stderr


def test_malformed_user_is_70(alice, tmp_path):
    # over 64 bytes: mppd answers 501, which a correct client never causes
    r = run_mppsend([], stdin=HEADERS + b"\nhi\n",
                    env=mpp_env(alice, user="u" * 100), home=tmp_path)
    assert r.returncode == EX_SOFTWARE
    assert b"501 Argument syntax error." in r.stderr


def test_server_idle_timeout_mid_text_is_75(alice, tmp_path):
    # mppd closes an idle session; the half-sent message is not stored.
    alice.restart(idle_timeout=1)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "HOME": str(tmp_path), **mpp_env(alice)}
    p = subprocess.Popen([str(MPPSEND)], stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    p.stdin.write(HEADERS + b"\nfirst half\n")
    p.stdin.flush()
    time.sleep(3)
    try:
        p.stdin.write(b"second half\n")
        p.stdin.close()
    except BrokenPipeError:
        pass
    err = p.stderr.read()
    assert p.wait(timeout=30) == EX_TEMPFAIL, err
    assert alice.stored() == []


def test_user_and_password_from_rc(alice, tmp_path):
    alice.add_user("bob", "bobs pw")
    pwfile = tmp_path / "pw"
    pwfile.write_text("bobs pw\n")
    pwfile.chmod(0o600)
    rc = tmp_path / ".mpprc"
    rc.write_text(f"# test settings\nserver = 127.0.0.1:{alice.port}\n"
                  f"user = bob\npassword_file = ~/pw\ntimeout = 10\n")
    r = run_mppsend([], stdin=HEADERS + b"\nhi\n", home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    assert [m["auth_user"] for m in alice.stored()] == ["bob"]


def test_rc_comment_after_a_value(alice, tmp_path):
    # '#' starts a comment anywhere, as in mpp.conf
    rc = tmp_path / ".mpprc"
    rc.write_text(f"server = 127.0.0.1:{alice.port} # the lab server\n"
                  "user = alice\t# me\n")
    r = run_mppsend([], stdin=HEADERS + b"\nhi\n",
                    env={"MPP_PASSWORD": PASSWORD}, home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    assert [m["auth_user"] for m in alice.stored()] == ["alice"]


def test_env_beats_rc_and_flags_beat_env(alice, tmp_path):
    alice.add_user("bob", "bobs pw")
    alice.add_user("carol", "carols pw")
    rc = tmp_path / "rc"
    rc.write_text(f"server = 127.0.0.1:{free_port()}\nuser = nobody\n"
                  "password = nope\n")
    rc.chmod(0o600)
    env = {"MPP_RC": str(rc), "MPP_SERVER": f"127.0.0.1:{alice.port}",
           "MPP_USER": "bob", "MPP_PASSWORD": "bobs pw"}
    r = run_mppsend([], stdin=HEADERS + b"\none\n", env=env, home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    pw = tmp_path / "carol.pw"
    pw.write_text("carols pw\n")
    pw.chmod(0o600)
    r = run_mppsend(["-u", "carol", "-P", str(pw)],
                    stdin=HEADERS + b"\ntwo\n", env=env, home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    assert sorted(m["auth_user"] for m in alice.stored()) == ["bob", "carol"]


def test_sendmail_flags_ignored(alice, tmp_path):
    args = ["-v", "-t", "-i", "-oi", "-oem", "-f", "forged@example.net",
            "-F", "Someone Else", "-B8BITMIME", "--", "bob@example.org"]
    r = run_mppsend(args, stdin=HEADERS + b"\nhi\n", env=mpp_env(alice),
                    home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    err = r.stderr.decode()
    assert "ignoring -t:" in err
    assert "ignoring -i:" in err
    assert "ignoring -oi:" in err
    assert "ignoring -oem:" in err
    assert "ignoring -f forged@example.net: the sender is the user who " \
           "logs in, alice" in err
    assert "ignoring -F Someone Else:" in err
    assert "ignoring -B8BITMIME:" in err
    assert "ignoring recipient" not in err
    assert ("recipient bob@example.org: named in the To: field, which the "
            "server takes it from") in err
    (msg,) = alice.stored()
    assert "forged@example.net" not in msg["sender"]
    assert "forged@example.net" not in msg["recipients"]


def header_section(text):
    return split_stored(text)[0].decode(errors="replace").lower()


def test_recipient_only_on_command_line_gets_a_blind_copy(alice, tmp_path):
    """mutt's and s-nail's way with Bcc: every recipient an operand, the
    blind ones nowhere in the text. They get their copy; nobody sees them."""
    r = run_mppsend(["-f", "alice@example.org", "--", "bob@example.org",
                     "carol@example.org", "dave@example.org",
                     "Erin <erin@example.net>"],
                    stdin=HEADERS + b"\nhi\n", env=mpp_env(alice),
                    home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    assert r.stderr == b""
    (msg,) = alice.stored()
    assert sorted(msg["recipients"]) == [
        "bob@example.org", "carol@example.org", "dave@example.org",
        "erin@example.net"]
    head = header_section(msg["text"])
    assert "dave" not in head and "erin" not in head and "bcc" not in head
    assert split_stored(msg["text"])[1] == b"hi\n"


def test_verbose_says_what_becomes_of_each_recipient(alice, tmp_path):
    r = run_mppsend(["-v", "-i", "BOB@example.org", "bob@EXAMPLE.ORG",
                     "dave@example.org"],
                    stdin=HEADERS + b"\nhi\n", env=mpp_env(alice),
                    home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    err = r.stderr.decode()
    # domains in any case, local parts exactly, as mppd compares them
    assert ("recipient bob@EXAMPLE.ORG: named in the To: field, which the "
            "server takes it from") in err
    for who in ("BOB@example.org", "dave@example.org"):
        assert (f"recipient {who}: named only on the command line, so "
                f"added in a Bcc: field (the server delivers to it and "
                f"removes the field)") in err
    assert "ignoring recipient" not in err
    (msg,) = alice.stored()
    assert sorted(msg["recipients"]) == [
        "BOB@example.org", "bob@example.org", "carol@example.org",
        "dave@example.org"]


def test_operands_are_recipients_without_any_flag(alice, tmp_path):
    # a file of the recipient's name is never read
    (tmp_path / "bob@example.org").write_bytes(b"To: x@example.org\n\nNO\n")
    r = subprocess.run([str(MPPSEND), "bob@example.org"], input=b"x\n",
                       env={**mpp_env(alice), "HOME": str(tmp_path),
                            "PATH": os.environ.get("PATH", "/usr/bin")},
                       cwd=tmp_path, capture_output=True, timeout=30)
    assert r.returncode == EX_OK, r.stderr
    (msg,) = alice.stored()
    assert msg["recipients"] == ["bob@example.org"]
    assert b"\nx\n" in msg["text"] and b"NO" not in msg["text"]
    assert b"bob@" not in split_stored(msg["text"])[0]


def test_t_adds_the_operands_as_postfix_does(alice, tmp_path):
    r = run_mppsend(["-t", "-i", "dave@example.org"],
                    stdin=HEADERS + b"\nhi\n", env=mpp_env(alice),
                    home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    (msg,) = alice.stored()
    assert sorted(msg["recipients"]) == [
        "bob@example.org", "carol@example.org", "dave@example.org"]
    assert b"dave" not in split_stored(msg["text"])[0]


def test_resend_blind_recipient_joins_the_resent_block(alice, tmp_path):
    # A bounce (resend) as mutt makes it: a resent block under a trace
    # line, recipients as operands, one of them in no header. mppd sends
    # a resend to its resent block's recipients only, so the blind one
    # must go into that block, as Resent-Bcc:, or it would get nothing.
    text = (b"Received: from ws by gw; Mon, 1 Jan 2029 00:00:00 +0000\n"
            b"Resent-From: alice@example.org\n"
            b"Resent-To: bob@example.org\n"
            b"From: carol@example.org\nTo: dave@example.org\n"
            b"Subject: fwd\n\nbody\n")
    r = run_mppsend(["-v", "-falice@example.org", "--", "bob@example.org",
                     "erin@example.org"], stdin=text, env=mpp_env(alice),
                    home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    assert b"added in a Resent-Bcc: field" in r.stderr
    assert b"named in the Resent-To: field" in r.stderr
    (msg,) = alice.stored()
    assert sorted(msg["recipients"]) == ["bob@example.org", "erin@example.org"]
    assert b"erin" not in split_stored(msg["text"])[0]


def test_php_mail_shape(alice, tmp_path):
    # PHP's mail(): sendmail_path "sendmail -t -i", -f from its 5th argument
    text = (b"To: bob@example.org\nSubject: from php\n"
            b"Cc: carol@example.org\nBcc: dave@example.org\n"
            b"From: alice@example.org\n\nphp body\n")
    r = run_mppsend(["-t", "-i", "-falice@example.org"], stdin=text,
                    env=mpp_env(alice), home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    (msg,) = alice.stored()
    assert sorted(msg["recipients"]) == [
        "bob@example.org", "carol@example.org", "dave@example.org"]
    assert b"dave" not in split_stored(msg["text"])[0]


def test_bad_recipient_operand_is_64(tmp_path):
    for bad in ("Bob <bob@", "", "group:;", "a@b@c"):
        r = run_mppsend(["-s", f"127.0.0.1:{free_port()}", "-u", "alice",
                         "--", bad], stdin=b"To: bob@example.org\n\nhi\n",
                        env={"MPP_PASSWORD": "x"}, home=tmp_path)
        assert r.returncode == EX_USAGE, (bad, r.stderr)
        assert f'recipient "{bad}":'.encode() in r.stderr


def test_cron_shape_recipient_operand_never_read_as_file(alice, tmp_path):
    # cron's call, and the header it writes: "To: root", no domain
    (tmp_path / "root").write_bytes(b"To: bob@example.org\n\nSECRET FILE\n")
    r = subprocess.run([str(MPPSEND), "-FCronDaemon", "-i", "-B8BITMIME",
                        "-oem", "root"],
                       input=b"From: root (Cron Daemon)\nTo: root\n"
                             b"Subject: Cron <root@host> job\n\nout\n",
                       env={**mpp_env(alice), "HOME": str(tmp_path),
                            "PATH": os.environ.get("PATH", "/usr/bin")},
                       cwd=tmp_path, capture_output=True, timeout=30)
    assert r.returncode == EX_OK, r.stderr
    (msg,) = alice.stored()
    assert msg["recipients"] == ["root@example.org"]
    head, body = split_stored(msg["text"])
    assert body == b"out\n"
    # cron's bare addresses read as what they are: qualified like the
    # recipient, so a reply goes where the mail came from
    assert b"\nFrom: root@example.org (Cron Daemon)\n" in head
    assert b"\nTo: root@example.org\n" in head


# ------------------------------------------------ local errors, no server

def test_bad_usage_is_64(tmp_path):
    for args in (["-q"], ["-s"], ["-s", "host:99999"], ["-s", "[::1"],
                 ["-T", "0"], ["-bp"], ["-u", "two words"]):
        r = run_mppsend(args, env={"MPP_PASSWORD": "x"}, home=tmp_path)
        assert r.returncode == EX_USAGE, (args, r.stderr)
        assert r.stderr.startswith(b"mppsend: "), (args, r.stderr)


def test_missing_file_is_66_before_connecting(tmp_path):
    # nothing listens there: had mppsend connected first, it would say 75
    r = run_mppsend(["-s", f"127.0.0.1:{free_port()}", "-u", "a",
                     "-l", str(tmp_path / "nope.eml")],
                    env={"MPP_PASSWORD": "x"}, home=tmp_path)
    assert r.returncode == EX_NOINPUT
    assert b"nope.eml" in r.stderr


def test_file_checks_before_connecting(tmp_path):
    """Every -l file is read and judged before the session: nothing
    listens at the server, so a connection would have been 75."""
    good = tmp_path / "good.eml"
    good.write_bytes(b"To: bob@example.org\n\nhi\n")
    nobody = tmp_path / "nobody.eml"
    nobody.write_bytes(b"Subject: to nobody\n\nhi\n")
    base = ["-s", f"127.0.0.1:{free_port()}", "-u", "a"]
    env = {"MPP_PASSWORD": "x"}
    r = run_mppsend(base + ["-l", str(good), "-l", str(nobody)], env=env,
                    home=tmp_path)
    assert r.returncode == EX_DATAERR, r.stderr
    assert f"{nobody} not posted: it has no recipient".encode() in r.stderr
    r = run_mppsend(base + ["-l", str(good), "-l", str(tmp_path)], env=env,
                    home=tmp_path)
    assert r.returncode == EX_NOINPUT, r.stderr
    assert f"{tmp_path}: Is a directory".encode() in r.stderr
    r = run_mppsend(base + ["-l", "-", "-l", str(good), "-l", "-"], env=env,
                    home=tmp_path)
    assert r.returncode == EX_USAGE, r.stderr
    assert b"standard input (-l -) named twice" in r.stderr


def test_unreadable_stdin_is_74_before_connecting(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # read(2): EISDIR
    try:
        r = subprocess.run([str(MPPSEND), "-s", f"127.0.0.1:{free_port()}",
                            "-u", "a", "bob@example.org"], stdin=fd,
                           env={"MPP_PASSWORD": "x", "HOME": str(tmp_path)},
                           capture_output=True, timeout=30)
    finally:
        os.close(fd)
    assert r.returncode == EX_IOERR, r.stderr
    assert r.stderr == b"mppsend: message: Is a directory\n"


def test_rc_with_password_must_be_private(tmp_path):
    rc = tmp_path / ".mpprc"
    rc.write_text("server = 127.0.0.1:1\npassword = s3cret\n")
    rc.chmod(0o644)
    r = run_mppsend([], home=tmp_path)
    assert r.returncode == EX_CONFIG
    assert b"chmod 600" in r.stderr
    assert b"s3cret" not in r.stderr


def test_rc_error_names_file_and_line(tmp_path):
    rc = tmp_path / "myrc"
    rc.write_text("server = localhost\n\nsrever = typo\n")
    r = run_mppsend([], env={"MPP_RC": str(rc)}, home=tmp_path)
    assert r.returncode == EX_CONFIG
    assert f"{rc}:3: unknown key \"srever\"".encode() in r.stderr


def test_missing_mpp_rc_is_78(tmp_path):
    r = run_mppsend([], env={"MPP_RC": str(tmp_path / "absent")},
                    home=tmp_path)
    assert r.returncode == EX_CONFIG


def test_no_password_no_terminal_is_78(tmp_path):
    r = run_mppsend(["-s", "127.0.0.1:1", "-u", "alice"], home=tmp_path)
    assert r.returncode == EX_CONFIG
    assert b"no terminal" in r.stderr


# ------------------------------------------ scripted servers, for failures

def login_then(after_login):
    """A script: greeting, USER, PASS answered 250, then after_login."""
    def script(srv, conn, rfile):
        conn.sendall(GREETING)
        for _ in range(2):
            srv.readline(rfile)
            conn.sendall(OK)
        after_login(srv, conn, rfile)
    return script


def mppsend_against(srv, tmp_path, args=(), stdin=b"To: b@example.org\n\nhi\n"):
    return run_mppsend(["-s", f"127.0.0.1:{srv.port}", "-u", "alice",
                        *args], stdin=stdin, env={"MPP_PASSWORD": "pw"},
                       home=tmp_path)


def test_server_closes_after_user_is_75(tmp_path):
    def script(srv, conn, rfile):
        conn.sendall(GREETING)
        srv.readline(rfile)
        conn.sendall(OK)
        srv.readline(rfile)  # PASS, then hang up without a word
    with FakeServer(script) as srv:
        r = mppsend_against(srv, tmp_path)
    assert r.returncode == EX_TEMPFAIL
    assert b"closed the connection" in r.stderr


def test_server_closes_mid_text_is_75(tmp_path):
    def after(srv, conn, rfile):
        srv.readline(rfile)  # DATA
        conn.sendall(GO)
        rfile.read(1000)
        conn.shutdown(socket.SHUT_RDWR)
    big = b"To: b@example.org\n\n" + b"0123456789abcdef\n" * 200000
    with FakeServer(login_then(after)) as srv:
        r = mppsend_against(srv, tmp_path, stdin=big)
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert b"message text" in r.stderr


def test_silent_server_times_out_75(tmp_path):
    def script(srv, conn, rfile):
        conn.sendall(GREETING)
        srv.readline(rfile)
        time.sleep(4)  # no answer to USER
    with FakeServer(script) as srv:
        t0 = time.monotonic()
        r = mppsend_against(srv, tmp_path, args=["-T", "1"])
        elapsed = time.monotonic() - t0
    assert r.returncode == EX_TEMPFAIL
    assert b"sent no reply within 1 s" in r.stderr
    assert elapsed < 3.5


def test_451_after_text_is_75(tmp_path):
    def after(srv, conn, rfile):
        srv.readline(rfile)
        conn.sendall(GO)
        read_text(srv, rfile)
        conn.sendall(b"451 Local error encountered.\r\n")
        if srv.readline(rfile).startswith(b"QUIT"):
            conn.sendall(b"221 Closing Connection.\r\n")
    with FakeServer(login_then(after)) as srv:
        r = mppsend_against(srv, tmp_path)
    assert r.returncode == EX_TEMPFAIL
    assert b"451 Local error encountered." in r.stderr
    assert srv.received[-1] == b"QUIT\r\n"


def test_503_is_70(tmp_path):
    def after(srv, conn, rfile):
        srv.readline(rfile)
        conn.sendall(b"503 Illegal command sequence.\r\n")
        srv.readline(rfile)
    with FakeServer(login_then(after)) as srv:
        r = mppsend_against(srv, tmp_path)
    assert r.returncode == EX_SOFTWARE
    assert b"503 Illegal command sequence." in r.stderr


def test_not_an_mpp_server_is_76(tmp_path):
    with FakeServer(lambda s, c, f: c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")) \
            as srv:
        r = mppsend_against(srv, tmp_path)
    assert r.returncode == EX_PROTOCOL
    assert b"SSH-2.0" in r.stderr


def test_multiline_reply_and_dialogue(tmp_path):
    """What goes over the wire, exactly; a multi-line 250 is accepted."""
    texts = []

    def after(srv, conn, rfile):
        srv.readline(rfile)
        conn.sendall(b"354-go ahead\r\n354 Enter mail\r\n")
        texts.append(read_text(srv, rfile))
        conn.sendall(b"250-stored\r\n250 Command OK.\r\n")
        srv.readline(rfile)
        conn.sendall(b"221 Closing Connection.\r\n")
    with FakeServer(login_then(after)) as srv:
        r = mppsend_against(srv, tmp_path,
                            stdin=b"To: b@example.org\n\n.\n..x\nend")
    assert r.returncode == EX_OK, r.stderr
    assert srv.error is None
    assert srv.received[:2] == [b"USER alice\r\n", b"PASS pw\r\n"]
    assert srv.received[2] == b"DATA\r\n"
    assert texts == [b"To: b@example.org\r\n\r\n..\r\n...x\r\nend\r\n"]
    assert srv.received[-1] == b"QUIT\r\n"


def test_ipv6_literal_with_port(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        srv = FakeServer(login_then(lambda s, c, f: None),
                         family=socket.AF_INET6, host="::1")
    except OSError as exc:
        pytest.skip(f"cannot listen on ::1: {exc}")
    with srv:
        r = run_mppsend(["-s", f"[::1]:{srv.port}", "-u", "alice"],
                        stdin=b"To: b@example.org\n\nhi\n",
                        env={"MPP_PASSWORD": "pw"}, home=tmp_path)
    # the script ends after login: mppsend's DATA meets a closed socket
    assert srv.received[0] == b"USER alice\r\n"
    assert r.returncode == EX_TEMPFAIL


# ------------------------------------------------------- git send-email

def git_send_email_available():
    git = shutil.which("git")
    if git is None:
        return False
    r = subprocess.run([git, "send-email", "-h"], capture_output=True)
    return b"sendmail-cmd" in r.stdout + r.stderr


def git(repo, *args, env):
    subprocess.run(["git", "-C", str(repo), *args], check=True, env=env,
                   capture_output=True)


@pytest.mark.skipif(not git_send_email_available(),
                    reason="git send-email with --sendmail-cmd is not "
                           "installed (Debian package git-email)")
def test_git_send_email_patch_series(alice, tmp_path):
    home = tmp_path / "home"
    repo = tmp_path / "repo"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Alice Example",
        "GIT_AUTHOR_EMAIL": "alice@example.org",
        "GIT_COMMITTER_NAME": "Alice Example",
        "GIT_COMMITTER_EMAIL": "alice@example.org",
        **mpp_env(alice),
    }
    git(tmp_path, "init", "-q", "-b", "main", str(repo), env=env)
    subjects = []
    for i in range(3):
        (repo / f"file{i}.txt").write_text(f"line {i}\n.dotted line\n")
        git(repo, "add", ".", env=env)
        subjects.append(f"add file {i}")
        git(repo, "commit", "-q", "-m", subjects[-1], "-m",
            f".a body line starting with a dot\n\nSigned-off-by: "
            f"Alice Example <alice@example.org>", env=env)
    git(repo, "format-patch", "-q", "-3", "-o", str(tmp_path / "out"),
        env=env)
    patches = sorted(str(p) for p in (tmp_path / "out").glob("*.patch"))
    assert len(patches) == 3
    r = subprocess.run(
        ["git", "-C", str(repo), "send-email",
         f"--sendmail-cmd={MPPSEND}",
         "--from=Alice Example <alice@example.org>",
         "--to=dev@lists.example.org", "--cc=bob@example.org",
         "--bcc=dave@example.org", "--suppress-cc=all", "--confirm=never", "--no-chain-reply-to",
         "--quiet", *patches],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"warning" not in r.stderr, r.stderr
    stored = alice.stored()
    assert len(stored) == 3
    seen = []
    for msg in stored:
        assert msg["auth_user"] == "alice"
        # --bcc names dave only on mppsend's command line
        assert sorted(msg["recipients"]) == ["bob@example.org",
                                             "dave@example.org",
                                             "dev@lists.example.org"]
        head, body = split_stored(msg["text"])
        assert b"dave" not in head
        subject = [ln for ln in head.split(b"\n")
                   if ln.startswith(b"Subject: ")][0].decode()
        seen.append(subject)
        assert body.startswith(b".a body line starting with a dot\n\n")
        assert b"\n+.dotted line\n" in body
    assert sorted(seen) == [f"Subject: [PATCH {i + 1}/3] {s}"
                            for i, s in enumerate(subjects)]
