"""The MPP protocol as DESIGN.md states it, driven over TCP against bin/mppd:
every cell of the state table, exact reply texts, line limits, argument
syntax, pipelining and byte-at-a-time input.

State is never read from the server's log: after a command, a probe
(expect_state) sends a short destructive sequence of commands whose answers
only the expected state gives.
"""

import os
import shutil
import signal
import socket
import threading
import time
import warnings

import pytest

from conftest import REPLY, Client, free_port, message, wait_for

STATES = ("start", "user_ok", "authed", "text", "accepted", "spent")


# Helpers

def ask(c, line):
    """Send one command line (CRLF added); return the whole reply line."""
    c.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
    return c.line()


def rest_of_stream(c, timeout=5.0):
    """Everything the server still sends until it closes the connection."""
    c.sock.settimeout(timeout)
    data = c.buf
    c.buf = b""
    while True:
        try:
            chunk = c.sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def end_text(c, text=None):
    """Send a whole message text and its end marker; return the reply."""
    if text is None:
        text = message()
    if isinstance(text, str):
        text = text.encode()
    c.send(text + b".\r\n")
    return c.line()


def to_state(m, state):
    """A fresh greeted client of m, brought into state."""
    c = m.client()
    if state == "start":
        return c
    if state == "spent":
        assert ask(c, "USER alice") == REPLY[250]
        assert ask(c, "PASS wrong") == REPLY[530]
        return c
    assert ask(c, "USER alice") == REPLY[250]
    if state == "user_ok":
        return c
    assert ask(c, "PASS secret") == REPLY[250]
    if state == "authed":
        return c
    assert ask(c, "DATA") == REPLY[354]
    if state == "text":
        return c
    assert end_text(c) == REPLY[250]
    assert state == "accepted", state
    return c


def expect_state(c, state, noop=250):
    """Assert that c is in state (using it up; it is QUIT afterwards).

    Each probe is answered as below only in the state named:
      start    PASS 503, DATA 503, USER 250     (user_ok would 530/250 PASS,
                                                 authed/accepted 354 DATA)
      user_ok  PASS secret 250                  (PASS is legal only there)
      authed   USER 503, DATA 354               (start/accepted take USER,
                                                 user_ok/spent refuse DATA)
      accepted DATA 354, text 250, USER 250     (start/user_ok/spent refuse
                                                 DATA; authed is only
                                                 reached by PASS)
      spent    USER/PASS/DATA 503, NOOP 250|451
    """
    if state == "start":
        assert ask(c, "PASS secret") == REPLY[503]
        assert ask(c, "DATA") == REPLY[503]
        assert ask(c, "USER alice") == REPLY[250]
    elif state == "user_ok":
        assert ask(c, "PASS secret") == REPLY[250]
    elif state == "authed":
        assert ask(c, "USER alice") == REPLY[503]
        assert ask(c, "DATA") == REPLY[354]
        assert end_text(c) == REPLY[250]
    elif state == "accepted":
        assert ask(c, "DATA") == REPLY[354]
        assert end_text(c) == REPLY[250]
        assert ask(c, "USER alice") == REPLY[250]
    elif state == "spent":
        assert ask(c, "USER alice") == REPLY[503]
        assert ask(c, "PASS secret") == REPLY[503]
        assert ask(c, "DATA") == REPLY[503]
        assert ask(c, "NOOP") == REPLY[noop]
    else:
        raise AssertionError(f"no probe for {state}")
    assert ask(c, "QUIT") == REPLY[221]
    assert c.closed()
    c.close()


def hash_password(password):
    """A $6$ crypt(3) hash of password (any length), or skip."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            pytest.skip("python crypt module unavailable to hash a long password")
    h = crypt.crypt(password, "$6$mpptestsalt0001")
    if not h or not h.startswith("$6$"):
        pytest.skip("crypt(3) cannot make a $6$ hash here")
    return h


# Greeting and reply texts

def test_greeting_is_exact(mppd):
    c = Client(mppd.port)
    assert c.line() == REPLY[220]
    assert ask(c, "QUIT") == REPLY[221]
    assert c.closed()


def test_full_session_replies_byte_exact(mppd):
    c = Client(mppd.port)
    assert c.line() == REPLY[220]
    assert ask(c, "NOOP") == REPLY[250]
    assert ask(c, "USER alice") == REPLY[250]
    assert ask(c, "PASS secret") == REPLY[250]
    assert ask(c, "DATA") == REPLY[354]
    assert end_text(c) == REPLY[250]
    assert ask(c, "DATA") == REPLY[354]
    assert end_text(c, message(subject="second")) == REPLY[250]
    assert ask(c, "QUIT") == REPLY[221]
    assert rest_of_stream(c) == b""
    assert len(mppd.stored()) == 2


# The state table, cell by cell.
# (state, command, expected reply, state afterwards; None: connection closed)

CELLS = [
    # start
    ("start", "USER alice", 250, "user_ok"),
    ("start", "USER a b", 501, "start"),
    ("start", "PASS secret", 503, "start"),
    ("start", "DATA", 503, "start"),
    ("start", "NOOP", 250, "start"),
    ("start", "QUIT", 221, None),
    # user_ok
    ("user_ok", "USER alice", 503, "user_ok"),
    ("user_ok", "PASS secret", 250, "authed"),
    ("user_ok", "PASS", 501, "user_ok"),
    ("user_ok", "PASS wrong", 530, "spent"),
    ("user_ok", "DATA", 503, "user_ok"),
    ("user_ok", "NOOP", 250, "user_ok"),
    ("user_ok", "QUIT", 221, None),
    # authed
    ("authed", "USER alice", 503, "authed"),
    ("authed", "PASS secret", 503, "authed"),
    ("authed", "DATA", 354, "text"),
    ("authed", "NOOP", 250, "authed"),
    ("authed", "QUIT", 221, None),
    # accepted
    ("accepted", "USER alice", 250, "user_ok"),
    ("accepted", "USER a b", 501, "start"),
    ("accepted", "PASS secret", 503, "accepted"),
    ("accepted", "DATA", 354, "text"),
    ("accepted", "NOOP", 250, "accepted"),
    ("accepted", "QUIT", 221, None),
    # spent (after 530)
    ("spent", "USER alice", 503, "spent"),
    ("spent", "PASS secret", 503, "spent"),
    ("spent", "DATA", 503, "spent"),
    ("spent", "NOOP", 250, "spent"),
    ("spent", "QUIT", 221, None),
]


@pytest.mark.parametrize("state,command,code,after", CELLS,
                         ids=[f"{s}-{c.replace(' ', '_')}-{r}" for s, c, r, _ in CELLS])
def test_state_table_cell(mppd, state, command, code, after):
    c = to_state(mppd, state)
    assert ask(c, command) == REPLY[code]
    if after is None:
        assert rest_of_stream(c) == b"", "bytes after 221"
    elif after == "text":
        # the 354 led into text state: the text is taken, then 250
        assert end_text(c) == REPLY[250]
        expect_state(c, "accepted")
    else:
        expect_state(c, after)


def test_start_user_451_cannot_be_caused(mppd):
    pytest.skip("USER 451 (start -> spent) cannot be caused from outside: "
                "mppd's USER does no I/O and any valid name's sender address "
                "always fits its buffer")


def test_authed_data_451_cannot_be_caused(mppd):
    pytest.skip("DATA 451 (authed -> spent) cannot be caused from outside: "
                "DATA only allocates memory; the spool file is created when "
                "the text spills or ends (the text 451 is tested)")


def test_user_ok_pass_451_when_backend_unreachable(mppd_factory):
    """PASS 451 -> spent: the POP3 backend refuses the connection."""
    m = mppd_factory(auth=f"pop3:127.0.0.1:{free_port()}").start()
    c = m.client()
    assert ask(c, "USER alice") == REPLY[250]
    assert ask(c, "PASS secret") == REPLY[451]
    expect_state(c, "spent", noop=451)


def test_text_451_when_store_fails_then_noop_451(mppd):
    """A store failure caused for real: spool/tmp/ is removed under the
    running daemon, with the files it made ahead there (its directory
    handle then names a deleted directory, where no file can be created or
    renamed from, even by root). The text gets 451, the session is spent,
    and NOOP says 451 from then on."""
    c = to_state(mppd, "authed")
    shutil.rmtree(mppd.spool / "tmp")
    assert ask(c, "DATA") == REPLY[354]
    assert end_text(c) == REPLY[451]
    assert ask(c, "NOOP") == REPLY[451]
    assert ask(c, "NOOP") == REPLY[451]
    expect_state(c, "spent", noop=451)
    assert mppd.stored() == []
    # another session on the same daemon did not inherit the error
    c2 = mppd.client()
    assert ask(c2, "NOOP") == REPLY[250]
    assert ask(c2, "QUIT") == REPLY[221]


def test_noop_451_after_pass_451_in_same_session_only(mppd_factory):
    m = mppd_factory(auth=f"pop3:127.0.0.1:{free_port()}").start()
    c = m.client()
    assert ask(c, "NOOP") == REPLY[250]
    assert ask(c, "USER alice") == REPLY[250]
    assert ask(c, "PASS secret") == REPLY[451]
    assert ask(c, "NOOP") == REPLY[451]
    assert ask(c, "QUIT") == REPLY[221]
    c2 = m.client()
    assert ask(c2, "NOOP") == REPLY[250]


def test_noop_250_after_550(mppd):
    """NOOP says 451 only after a 451: a 550 is no internal error."""
    c = to_state(mppd, "authed")
    assert ask(c, "DATA") == REPLY[354]
    assert end_text(c, "Subject: no recipient\r\n\r\nx\r\n") == REPLY[550]
    assert ask(c, "NOOP") == REPLY[250]


def test_text_state_takes_command_lines_as_text(mppd):
    """In text state USER/PASS/DATA/NOOP/QUIT are lines of the message."""
    c = to_state(mppd, "text")
    body = "USER bob\r\nPASS x\r\nDATA\r\nNOOP\r\nQUIT\r\nnoop x\r\n"
    assert end_text(c, message(body=body)) == REPLY[250]
    assert ask(c, "NOOP") == REPLY[250]
    assert ask(c, "QUIT") == REPLY[221]
    assert rest_of_stream(c) == b""
    (msg,) = mppd.stored()
    assert msg["text"].endswith(b"\n\n" + body.replace("\r\n", "\n").encode())


def test_spent_after_550(mppd):
    c = to_state(mppd, "authed")
    assert ask(c, "DATA") == REPLY[354]
    assert end_text(c, "From: alice@example.org\r\n\r\nno To\r\n") == REPLY[550]
    expect_state(c, "spent", noop=250)


# Verbs

@pytest.mark.parametrize("user,pass_,data,noop,quit_", [
    ("user", "pass", "data", "noop", "quit"),
    ("User", "Pass", "Data", "Noop", "Quit"),
    ("uSeR", "pAsS", "dAtA", "nOoP", "qUiT"),
])
def test_verbs_case_insensitive(mppd, user, pass_, data, noop, quit_):
    c = mppd.client()
    assert ask(c, f"{noop}") == REPLY[250]
    assert ask(c, f"{user} alice") == REPLY[250]
    assert ask(c, f"{pass_} secret") == REPLY[250]
    assert ask(c, f"{data}") == REPLY[354]
    assert end_text(c) == REPLY[250]
    assert ask(c, f"{quit_}") == REPLY[221]
    assert rest_of_stream(c) == b""
    assert len(mppd.stored()) == 1


UNKNOWN = ["HELO x", "MAIL FROM:<a@b>", "RCPT TO:<a@b>", "RSET", "EHLO",
           "USERX alice", "US ER alice", "NOOPS", "QUITTING", "", "  ",
           "\x00USER alice"]


@pytest.mark.parametrize("state", ["start", "user_ok", "authed", "accepted",
                                   "spent"])
def test_unknown_verbs_500_state_unchanged(mppd, state):
    c = to_state(mppd, state)
    for line in UNKNOWN:
        assert ask(c, line) == REPLY[500], repr(line)
    expect_state(c, state)


@pytest.mark.parametrize("state,cmd", [
    ("start", "NOOP x"), ("user_ok", "NOOP x"), ("authed", "NOOP now"),
    ("accepted", "NOOP 1"), ("spent", "NOOP x"),
    ("authed", "DATA x"), ("accepted", "DATA now"), ("authed", "data 1 2"),
])
def test_data_noop_with_argument_501_state_unchanged(mppd, state, cmd):
    c = to_state(mppd, state)
    assert ask(c, cmd) == REPLY[501]
    expect_state(c, state)


# USER and PASS arguments

@pytest.mark.parametrize("line", [
    "USER", "USER ", "USER a b", "USER alice smith", "USER a\x01b",
    "USER a\x7fb", "USER al\tice", "USER " + "a" * 65, "USER a@b@c",
    "USER <x>", "USER <alice@example.org>",
], ids=["missing", "missing-after-space", "space", "space2", "ctrl-01",
        "del-7f", "tab", "65-bytes", "two-ats", "angle", "angle-addr"])
def test_user_501_then_user_again(mppd, line):
    c = mppd.client()
    assert ask(c, line) == REPLY[501]
    # RFC 1204: USER is allowed right after a USER answered 501
    expect_state(c, "start")


@pytest.mark.parametrize("name", ["john.doe", "a+tag", "x_y-z", "UPPER",
                                  "1234", "a@b", "o'neil", "a%b!c"])
def test_user_valid_names_250(mppd, name):
    c = mppd.client()
    assert ask(c, f"USER {name}") == REPLY[250]
    assert ask(c, "PASS wrong") == REPLY[530]


def test_user_64_bytes_accepted(mppd):
    c = mppd.client()
    assert ask(c, "USER " + "a" * 64) == REPLY[250]
    assert ask(c, "PASS secret") == REPLY[530]


def test_user_with_at_accepted(mppd):
    c = mppd.client()
    assert ask(c, "USER bob@other.org") == REPLY[250]


def test_pass_missing_501_then_pass_allowed(mppd):
    c = to_state(mppd, "user_ok")
    assert ask(c, "PASS") == REPLY[501]
    assert ask(c, "PASS ") == REPLY[501]
    assert ask(c, "PASS secret") == REPLY[250]
    expect_state(c, "authed")


def test_password_with_spaces(mppd):
    """The PASS argument is everything after the first space."""
    mppd.add_user("spacey", "two words  here")
    c = mppd.client()
    assert c.login("spacey", "two words  here") == 250
    c = mppd.client()
    assert c.login("spacey", "two words here") == 530


def test_unknown_user_250_then_530(mppd):
    c = mppd.client()
    assert ask(c, "USER nosuchuser") == REPLY[250]
    assert ask(c, "PASS secret") == REPLY[530]
    expect_state(c, "spent")


def test_wrong_password_for_known_user_530(mppd):
    c = mppd.client()
    assert ask(c, "USER alice") == REPLY[250]
    assert ask(c, "PASS Secret") == REPLY[530]
    expect_state(c, "spent")


def test_one_530_ends_authentication(mppd):
    c = to_state(mppd, "spent")
    # the right password, and a fresh USER, are both too late
    assert ask(c, "USER alice") == REPLY[503]
    assert ask(c, "PASS secret") == REPLY[503]
    assert ask(c, "USER alice") == REPLY[503]
    assert ask(c, "DATA") == REPLY[503]
    assert ask(c, "NOOP") == REPLY[250]
    assert ask(c, "QUIT") == REPLY[221]
    assert rest_of_stream(c) == b""
    # a new connection may try again
    c2 = mppd.client()
    assert c2.login("alice", "secret") == 250


# Line length

def test_512_byte_command_line_accepted(mppd):
    password = "p" * (512 - len("PASS \r\n"))
    with open(mppd.passwd, "a") as f:
        f.write(f"long:{hash_password(password)}\n")
    mark = mppd.log().count("password data reloaded")
    mppd.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: mppd.log().count("password data reloaded") > mark,
             what="password reload")
    line = f"PASS {password}\r\n".encode()
    assert len(line) == 512
    c = mppd.client()
    assert ask(c, "USER long") == REPLY[250]
    c.send(line)
    assert c.line() == REPLY[250]
    expect_state(c, "authed")


def test_512_byte_line_wrong_password_is_530_not_500(mppd):
    c = to_state(mppd, "user_ok")
    line = b"PASS " + b"x" * (512 - 7) + b"\r\n"
    assert len(line) == 512
    c.send(line)
    assert c.line() == REPLY[530]


@pytest.mark.parametrize("state", ["start", "user_ok", "authed"])
def test_513_byte_command_line_500_then_in_sync(mppd, state):
    c = to_state(mppd, state)
    verb = {"start": b"USER ", "user_ok": b"PASS ", "authed": b"NOOP "}[state]
    line = verb + b"y" * (513 - len(verb) - 2) + b"\r\n"
    assert len(line) == 513
    c.send(line)
    assert c.line() == REPLY[500]
    # exactly one reply: the next command's answer is the next line
    assert ask(c, "NOOP") == REPLY[250]
    expect_state(c, state)


def test_long_line_pipelined_with_next_command(mppd):
    """The skipped line ends at its LF; the command after it, in the same
    send, is read as a command of its own."""
    c = to_state(mppd, "user_ok")
    c.send(b"PASS " + b"z" * 600 + b"\r\nPASS secret\r\nNOOP\r\n")
    assert c.line() == REPLY[500]
    assert c.line() == REPLY[250]
    assert c.line() == REPLY[250]
    expect_state(c, "authed")


def test_one_mib_command_line(mppd):
    c = to_state(mppd, "user_ok")
    c.send(b"PASS " + b"A" * (1 << 20) + b"\r\n")
    assert c.line() == REPLY[500]
    assert ask(c, "NOOP") == REPLY[250]
    assert mppd.running()
    # other clients are served, and this one is still in sync
    c2 = mppd.client()
    assert c2.login("alice", "secret") == 250
    assert c2.post(message()) == 250
    expect_state(c, "user_ok")


def test_one_mib_without_line_end_then_close(mppd):
    c = mppd.client()
    c.send(b"U" * (1 << 20))
    c.close()
    c2 = mppd.client()
    assert ask(c2, "NOOP") == REPLY[250]
    assert mppd.running()


# QUIT

@pytest.mark.parametrize("state", ["start", "user_ok", "authed", "accepted",
                                   "spent"])
def test_quit_with_trailing_text(mppd, state):
    c = to_state(mppd, state)
    c.send(b"QUIT now, please\r\n")
    assert c.line() == REPLY[221]
    assert rest_of_stream(c) == b""


def test_nothing_read_after_quit(mppd):
    c = mppd.client()
    c.send(b"QUIT\r\nNOOP\r\nUSER alice\r\n")
    assert rest_of_stream(c) == REPLY[221]


# Pipelining and fragmentation

def test_pipelined_session_in_one_send(mppd):
    c = mppd.client()
    text = message(subject="pipelined").encode()
    c.send(b"USER alice\r\nPASS secret\r\nDATA\r\n" + text + b".\r\n"
           b"DATA\r\n" + message(subject="second").encode() + b".\r\n"
           b"NOOP\r\nQUIT\r\n")
    assert rest_of_stream(c) == (REPLY[250] + REPLY[250] + REPLY[354] +
                                 REPLY[250] + REPLY[354] + REPLY[250] +
                                 REPLY[250] + REPLY[221])
    stored = mppd.stored()
    assert [b"Subject: pipelined" in m["text"] for m in stored] == [True, False]
    assert b"Subject: second" in stored[1]["text"]


def test_pipelined_large_texts_while_auth_pending(mppd):
    """Megabytes pipelined behind a PASS still being checked: the input is
    held, not lost or misread, and read again once the answer is in."""
    c = mppd.client(timeout=30)
    big = message(body="").encode() + (b"w" * 998 + b"\r\n") * 1500
    data = (b"USER alice\r\nPASS secret\r\nDATA\r\n" + big + b".\r\n" +
            b"DATA\r\n" + big.replace(b"w", b"v") + b".\r\nQUIT\r\n")
    sender = threading.Thread(target=c.send, args=(data,))
    sender.start()
    replies = rest_of_stream(c, timeout=30)
    sender.join(30)
    assert replies == (REPLY[250] + REPLY[250] + REPLY[354] + REPLY[250] +
                       REPLY[354] + REPLY[250] + REPLY[221])
    a, b = mppd.stored()
    assert a["text"].endswith((b"w" * 998 + b"\n") * 1500)
    assert b["text"].endswith((b"v" * 998 + b"\n") * 1500)


def test_many_pipelined_noops_unread(mppd):
    c = mppd.client(timeout=30)
    n = 50000
    sender = threading.Thread(target=c.send, args=(b"NOOP\r\n" * n + b"QUIT\r\n",))
    sender.start()
    replies = rest_of_stream(c, timeout=30)
    sender.join(30)
    assert replies == REPLY[250] * n + REPLY[221]


def test_pipelined_after_failed_pass_text_lines_are_commands(mppd):
    c = mppd.client()
    text = message().encode()          # 5 lines
    c.send(b"USER alice\r\nPASS wrong\r\nDATA\r\n" + text + b".\r\nQUIT\r\n")
    nlines = text.count(b"\r\n") + 1   # and the "." line
    assert rest_of_stream(c) == (REPLY[250] + REPLY[530] + REPLY[503] +
                                 REPLY[500] * nlines + REPLY[221])
    assert mppd.stored() == []


def test_session_fed_one_byte_at_a_time(mppd):
    c = Client(mppd.port)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert c.line() == REPLY[220]
    text = message(subject="bytewise", body=".dot\r\nline\r\n").replace(
        "\r\n.dot", "\r\n..dot").encode()
    session = (b"NOOP\r\nUSER alice\r\nPASS secret\r\nDATA\r\n" + text +
               b".\r\nQUIT\r\n")
    for i in range(len(session)):
        c.send(session[i:i + 1])
        time.sleep(0.0005)
    assert rest_of_stream(c) == (REPLY[250] + REPLY[250] + REPLY[250] +
                                 REPLY[354] + REPLY[250] + REPLY[221])
    (m,) = mppd.stored()
    assert b"Subject: bytewise\n" in m["text"]
    assert m["text"].endswith(b"\n\n.dot\nline\n")


def test_crlf_split_across_sends(mppd):
    c = mppd.client()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for part in (b"USER al", b"ice\r", b"\nPA", b"SS secret\r", b"\n"):
        c.send(part)
        time.sleep(0.01)
    assert c.line() == REPLY[250]
    assert c.line() == REPLY[250]
    c.send(b"DATA\r\n")
    assert c.line() == REPLY[354]
    for part in (message().encode(), b".", b"\r", b"\n"):
        c.send(part)
        time.sleep(0.01)
    assert c.line() == REPLY[250]
