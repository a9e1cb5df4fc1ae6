"""What mppd stores (DESIGN.md, "What a stored message is"): envelope,
recipients, trace and added headers, dot-stuffing, line ends, 8-bit bytes,
every 550 case, large messages through the spill path, and a clean tmp/.

Every test's daemon is checked at the end: nothing left in spool/tmp/, every
index row has its file, and the row's size is the file's size.
"""

import email.utils
import re
import select

import pytest

from conftest import REPLY, message, tmp_leftovers, wait_for


# Helpers

def stuff(text):
    """Dot-stuff a CRLF text the way a client must (RFC 5321 4.5.2)."""
    if isinstance(text, str):
        text = text.encode()
    lines = text.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)


def lf(text):
    """The client's CRLF text as mppd stores it (LF line ends)."""
    if isinstance(text, str):
        text = text.encode()
    return text.replace(b"\r\n", b"\n")


def post(m, text, user="alice", password="secret"):
    """Log in, post the (unstuffed) text, QUIT; return the text's reply."""
    c = m.client()
    assert c.login(user, password) == 250
    code = c.post(stuff(text))
    assert c.cmd("QUIT") == 221
    c.close()
    return code


def post_one(m, text, **kw):
    """Post text, expect 250 and exactly one more stored message; return it."""
    before = {r["id"] for r in m.stored()}
    assert post(m, text, **kw) == 250
    new = [r for r in m.stored() if r["id"] not in before]
    assert len(new) == 1
    assert new[0]["text"] is not None, "index row without its file"
    return new[0]


def split(stored_text):
    """(header section, body); a text without an empty line is all header."""
    head, sep, body = stored_text.partition(b"\n\n")
    if not sep:
        return stored_text, b""
    return head + b"\n", body


def fields(stored_text):
    """[(lower-case name, unfolded value)] of the stored header section."""
    head, _ = split(stored_text)
    out = []
    for line in head.decode("utf-8", "replace").split("\n")[:-1]:
        if line[:1] in (" ", "\t"):
            name, value = out[-1]
            out[-1] = (name, value + " " + line.strip())
        else:
            name, _, value = line.partition(":")
            out.append((name.strip().lower(), value.strip()))
    return out


def field_values(stored_text, name):
    return [v for n, v in fields(stored_text) if n == name.lower()]


def spool_clean(m):
    """tmp/ is empty, every row has its file, sizes agree."""
    assert tmp_leftovers(m.spool) == [], "files left in tmp/"
    for r in m.stored():
        assert r["text"] is not None, f"row {r['id']} has no file"
        assert r["size"] == len(r["text"]), f"row {r['id']}: size"
    return True


@pytest.fixture
def srv(mppd):
    yield mppd
    if mppd.running():
        wait_for(lambda: not tmp_leftovers(mppd.spool),
                 timeout=5, what="spool/tmp/ to be empty")
    spool_clean(mppd)


def refused(m, text, raw=False):
    """Post text (stuffed unless raw) in a fresh session; expect 550, the
    session spent but NOOP 250; nothing stored."""
    before = len(m.stored())
    c = m.client()
    assert c.login("alice", "secret") == 250
    assert c.cmd("DATA") == 354
    c.send((text if raw else stuff(text)) + b".\r\n")
    assert c.line() == REPLY[550]
    for cmd, code in (("DATA", 503), ("NOOP", 250), ("USER alice", 503),
                      ("PASS secret", 503), ("DATA", 503), ("NOOP", 250)):
        c.send(cmd.encode() + b"\r\n")
        assert c.line() == REPLY[code], cmd
    assert c.cmd("QUIT") == 221
    assert c.closed()
    assert len(m.stored()) == before
    return True


# Envelope

def test_envelope_sender_is_user_at_sender_domain(srv):
    r = post_one(srv, message())
    assert r["sender"] == "alice@example.org"
    assert r["auth_user"] == "alice"
    assert r["client_addr"] == "127.0.0.1"
    assert r["state"] == "queued"
    assert r["recipients"] == ["bob@example.com"]


def test_user_with_at_used_as_is(srv):
    srv.add_user("bob@other.org", "pw2")
    text = message().replace("From: alice@example.org", "From: bob@other.org")
    r = post_one(srv, text, user="bob@other.org", password="pw2")
    assert r["sender"] == "bob@other.org"
    assert r["auth_user"] == "bob@other.org"
    assert field_values(r["text"], "sender") == []
    assert "bob@other.org@" not in r["text"].decode()


def test_sender_domain_defaults_to_hostname(mppd_factory):
    m = mppd_factory()
    del m.settings["sender_domain"]
    m.add_user("alice", "secret")
    m.start()
    r = post_one(m, message())
    assert r["sender"] == "alice@mpp.test"
    # From: alice@example.org is now someone else
    assert [s for s in field_values(r["text"], "sender") if "alice@mpp.test" in s]
    spool_clean(m)


# Recipients

def test_recipients_from_to_cc_bcc(srv):
    extra = ("Cc: \"Smith, John\" <john@example.net>, (a comment) "
             "carol@example.net (another)\r\n"
             "Bcc: Secret Group: hidden1@example.org, "
             "\"Hidden, Two\" <hidden2@example.org>;\r\n")
    to = ("Bob <bob@example.com>, \"Doe, <Jane>\" <jane@example.com>, "
          "undisclosed:;, Friends: f1@example.com,f2@example.com;")
    r = post_one(srv, message(to=to, extra=extra))
    assert sorted(r["recipients"]) == sorted([
        "bob@example.com", "jane@example.com", "f1@example.com",
        "f2@example.com", "john@example.net", "carol@example.net",
        "hidden1@example.org", "hidden2@example.org"])


@pytest.mark.parametrize("to,expected", [
    # RFC 5322 appendix A, and some obsolete forms it allows
    ("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
     ["mary@x.test", "jdoe@example.org", "one@y.test"]),
    ("<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>",
     ["boss@nil.test", "sysservices@example.net"]),
    ("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
     ["c@a.test", "joe@where.test", "jdoe@one.test"]),
    ("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
     ["pete@silly.test"]),
    ("(a (nested) comment) x@y.test", ["x@y.test"]),
    ("<@route.test:r@y.test>", ["r@y.test"]),
    ("=?UTF-8?B?SsO8cmdlbg==?= <enc@y.test>", ["enc@y.test"]),
    ("user@[192.0.2.1]", ["user@[192.0.2.1]"]),
    ("a@b.test,,d@e.test", ["a@b.test", "d@e.test"]),
], ids=["A.1.2", "A.1.2-quoted", "A.1.3-group", "A.5-comments", "nested",
        "obs-route", "encoded-word", "domain-literal", "obs-empty-element"])
def test_recipient_address_forms(srv, to, expected):
    r = post_one(srv, message(to=to))
    assert sorted(r["recipients"]) == sorted(expected)


def test_recipients_from_folded_header_lines(srv):
    text = ("From: alice@example.org\r\n"
            "To: one@example.com,\r\n"
            "\t\"Two Person\"\r\n"
            "   <two@example.com>,\r\n"
            " three@example.com\r\n"
            "cc: four@example.com\r\n"
            "BCC:\r\n five@example.com\r\n"
            "Subject: folded\r\n"
            "\r\n"
            "body\r\n")
    r = post_one(srv, text)
    assert sorted(r["recipients"]) == [
        "five@example.com", "four@example.com", "one@example.com",
        "three@example.com", "two@example.com"]
    # the folded To: stays as the client wrote it
    assert b"To: one@example.com,\n\t\"Two Person\"\n   <two@example.com>,\n" \
           b" three@example.com\n" in r["text"]


def test_bcc_removed_from_stored_text(srv):
    text = ("From: alice@example.org\r\n"
            "To: bob@example.com\r\n"
            "Bcc: blind1@example.org,\r\n"
            "  blind2@example.org\r\n"
            "Subject: secret\r\n"
            "bcc: blind3@example.org\r\n"
            "\r\n"
            "Hello.\r\n")
    r = post_one(srv, text)
    assert sorted(r["recipients"]) == [
        "blind1@example.org", "blind2@example.org", "blind3@example.org",
        "bob@example.com"]
    assert b"blind" not in r["text"]
    assert not re.search(rb"(?im)^bcc:", r["text"])
    assert field_values(r["text"], "subject") == ["secret"]
    assert split(r["text"])[1] == b"Hello.\n"


def test_bcc_only(srv):
    r = post_one(srv, "From: alice@example.org\r\nBcc: x@example.com\r\n"
                      "Subject: bcc only\r\n\r\nhi\r\n")
    assert r["recipients"] == ["x@example.com"]
    assert b"x@example.com" not in r["text"]


# Trace and added headers

def test_received_header(srv):
    r = post_one(srv, message(to="bob@example.com", extra="Cc: cc@example.net\r\n"))
    first = fields(r["text"])[0]
    assert first[0] == "received", "Received: is not the first header"
    received = field_values(r["text"], "received")
    assert len(received) == 1
    value = received[0]
    assert "127.0.0.1" in value
    assert re.search(r"\balice\b", value)
    assert r["id"] in value
    assert "mpp.test" in value
    # the queue id names the file and the log lines about the message
    assert srv.file_of(r["id"]).name == r["id"]
    assert r["id"] in srv.log()
    assert "bob@example.com" not in value and "cc@example.net" not in value
    assert "example.com" not in value and "example.net" not in value
    # ends with a date
    assert email.utils.parsedate_to_datetime(value.rsplit(";", 1)[1].strip())


def test_date_and_message_id_added_when_missing(srv):
    r = post_one(srv, message())
    dates = field_values(r["text"], "date")
    ids = field_values(r["text"], "message-id")
    assert len(dates) == 1 and len(ids) == 1
    assert email.utils.parsedate_to_datetime(dates[0]) is not None
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", ids[0])


def test_date_and_message_id_kept_when_present(srv):
    extra = ("Date: Mon, 1 Jan 2024 10:00:00 +0100\r\n"
             "Message-ID: <given.1@client.example>\r\n")
    r = post_one(srv, message(extra=extra))
    assert field_values(r["text"], "date") == ["Mon, 1 Jan 2024 10:00:00 +0100"]
    assert field_values(r["text"], "message-id") == ["<given.1@client.example>"]


def test_date_and_message_id_names_case_insensitive(srv):
    extra = ("DATE: Mon, 1 Jan 2024 10:00:00 +0100\r\n"
             "message-id: <given.2@client.example>\r\n")
    r = post_one(srv, message(extra=extra))
    assert len(field_values(r["text"], "date")) == 1
    assert field_values(r["text"], "message-id") == ["<given.2@client.example>"]


def test_from_added_when_missing(srv):
    text = "To: bob@example.com\r\nSubject: no from\r\n\r\nbody\r\n"
    r = post_one(srv, text)
    froms = field_values(r["text"], "from")
    assert len(froms) == 1 and "alice@example.org" in froms[0]
    assert field_values(r["text"], "sender") == []


@pytest.mark.parametrize("from_", [
    "alice@example.org", "Alice <alice@example.org>",
    "\"Alice A.\" <alice@example.org> (me)",
])
def test_no_sender_when_from_is_the_user(srv, from_):
    text = message().replace("From: alice@example.org", f"From: {from_}")
    r = post_one(srv, text)
    assert field_values(r["text"], "sender") == []
    assert field_values(r["text"], "from") == [from_]


@pytest.mark.parametrize("from_", [
    "bob@example.com", "Alice <alice@example.net>",
    "alice@example.org, bob@example.com",
])
def test_sender_added_when_from_names_someone_else(srv, from_):
    text = message().replace("From: alice@example.org", f"From: {from_}")
    r = post_one(srv, text)
    senders = field_values(r["text"], "sender")
    assert len(senders) == 1
    assert "alice@example.org" in senders[0]
    assert field_values(r["text"], "from") == [from_]


@pytest.mark.parametrize("from_", [
    "\"ceo@example.org\" <alice@example.org>",
    "alice@example.org (ceo@example.org)",
    "=?utf-8?q?ceo=40example.org?= <alice@example.org>",
    "=?UTF-8?B?Y2VvQGV4YW1wbGUub3Jn?= <alice@example.org>",
    "\"ceo\uff20example.org\" <alice@example.org>",
], ids=["display-name", "comment", "encoded-q", "encoded-b", "fullwidth-at"])
def test_sender_added_when_display_text_shows_another_address(srv, from_):
    """A reader sees the name before the address; one that is an address
    other than the poster's is a forgery unless Sender: says who posted."""
    text = message().replace("From: alice@example.org", f"From: {from_}")
    r = post_one(srv, text.encode())
    assert field_values(r["text"], "sender") == ["<alice@example.org>"]
    assert field_values(r["text"], "from") == [from_]


@pytest.mark.parametrize("from_", [
    "\"alice@example.org\" <alice@example.org>",
    "alice@example.org (alice@EXAMPLE.org)",
    "=?utf-8?q?Alice_Liddell?= <alice@example.org>",
])
def test_no_sender_when_display_text_is_the_user(srv, from_):
    text = message().replace("From: alice@example.org", f"From: {from_}")
    r = post_one(srv, text)
    assert field_values(r["text"], "sender") == []


# Resent messages (RFC 5322 3.6.6)

def resent_text(block, original_from="ceo@example.org",
                original_extra=""):
    return (block + f"From: {original_from}\r\nTo: staff@example.org\r\n"
            "Subject: memo\r\nDate: Mon, 1 Jan 2029 00:00:00 +0000\r\n"
            f"Message-ID: <memo.1@example.org>\r\n{original_extra}\r\n"
            "The memo.\r\n")


def test_resent_goes_to_resent_recipients_only(srv):
    block = ("Resent-From: alice@example.org\r\n"
             "Resent-Date: Tue, 2 Jan 2029 00:00:00 +0000\r\n"
             "Resent-To: dave@example.net\r\n"
             "Resent-Cc: Frank <frank@example.net>\r\n"
             "Resent-Bcc: eve@example.net\r\n")
    r = post_one(srv, resent_text(block,
                                  original_extra="Bcc: old@example.org\r\n"))
    assert r["recipients"] == ["dave@example.net", "frank@example.net",
                               "eve@example.net"]
    assert b"eve@" not in r["text"] and b"old@" not in r["text"]
    assert not re.search(rb"(?im)^(resent-)?bcc:", r["text"])
    assert field_values(r["text"], "resent-sender") == []
    # the original From: is someone else: Sender: still says who posted
    assert field_values(r["text"], "sender") == ["<alice@example.org>"]
    assert field_values(r["text"], "to") == ["staff@example.org"]


def test_resent_from_someone_else_gets_resent_sender(srv):
    block = ("Resent-From: The CEO <ceo@example.org>\r\n"
             "Resent-Sender: ceo@example.org\r\n"
             "Resent-To: dave@example.net\r\n")
    r = post_one(srv, resent_text(block))
    assert r["recipients"] == ["dave@example.net"]
    assert field_values(r["text"], "resent-sender") == ["<alice@example.org>"]
    assert b"Resent-Sender: ceo" not in r["text"]
    # the block says when it was resent: Resent-Date: added
    assert len(field_values(r["text"], "resent-date")) == 1
    names = [n for n, _ in fields(r["text"])]
    assert names[:6] == ["received", "resent-from", "resent-to",
                         "resent-date", "resent-sender", "from"]


def test_resent_history_blocks_kept_but_not_obeyed(srv):
    block = ("Resent-From: alice@example.org\r\n"
             "Resent-To: dave@example.net\r\n"
             "Received: from mx.example.org by mail.example.org; "
             "Mon, 1 Jan 2029 00:00:00 +0000\r\n"
             "Resent-From: ceo@example.org\r\n"
             "Resent-Date: Mon, 1 Jan 2029 00:00:00 +0000\r\n"
             "Resent-To: old@example.net\r\n"
             "Resent-Bcc: oldbcc@example.net\r\n")
    r = post_one(srv, resent_text(block))
    assert r["recipients"] == ["dave@example.net"]
    assert field_values(r["text"], "resent-to") == ["dave@example.net",
                                                   "old@example.net"]
    assert b"oldbcc" not in r["text"]
    assert field_values(r["text"], "resent-sender") == []
    assert field_values(r["text"], "resent-from")[0] == "alice@example.org"


# Trace lines from the client

def test_client_received_naming_this_host_dropped_and_logged(srv):
    genuine_1 = ("Received: from relay.example.net by mx.example.org; "
                 "Mon, 1 Jan 2029 00:00:02 +0000\r\n")
    forged_folded = ("Received: from [10.0.0.9] (user ceo)\r\n"
                     "\tby mpp.test (mppd) with MPP id 1.M9P9Q9;\r\n"
                     "\tMon, 1 Jan 2029 00:00:01 +0000\r\n")
    genuine_2 = ("Received: from a.example.net by relay.example.net; "
                 "Mon, 1 Jan 2029 00:00:00 +0000\r\n")
    forged_flat = ("Received: from [10.0.0.9] (user ceo) BY MPP.TEST (mppd) "
                   "with MPP id 1.M8P8Q8; Mon, 1 Jan 2029 00:00:00 +0000\r\n")
    text = (genuine_1 + forged_folded + genuine_2 + forged_flat +
            message())
    r = post_one(srv, text)
    received = field_values(r["text"], "received")
    assert len(received) == 3
    assert r["id"] in received[0] and "(user alice)" in received[0]
    assert received[1:] == [
        "from relay.example.net by mx.example.org; Mon, 1 Jan 2029 00:00:02 +0000",
        "from a.example.net by relay.example.net; Mon, 1 Jan 2029 00:00:00 +0000"]
    assert b"user ceo" not in r["text"] and b"1.M9P9Q9" not in r["text"]
    drops = [l for l in srv.log().splitlines() if "dropped=Received" in l]
    assert len(drops) == 2
    assert all(f"id={r['id']} " in l for l in drops)
    assert "1.M9P9Q9" in drops[0] and "1.M8P8Q8" in drops[1]


@pytest.mark.parametrize("from_,expect_sender", [
    ("alice@example.org", False), ("bob@example.com", True)])
def test_client_sender_header_dropped(srv, from_, expect_sender):
    text = message(extra="Sender: Mallory <mallory@evil.example>\r\n").replace(
        "From: alice@example.org", f"From: {from_}")
    r = post_one(srv, text)
    assert b"mallory" not in r["text"]
    senders = field_values(r["text"], "sender")
    if expect_sender:
        assert len(senders) == 1 and "alice@example.org" in senders[0]
    else:
        assert senders == []


def test_client_headers_kept_in_order(srv):
    extra = "X-One: 1\r\nX-Two: 2\r\nX-One: 3\r\n"
    r = post_one(srv, message(extra=extra))
    names = [n for n, _ in fields(r["text"])]
    client = [n for n in names if n in ("from", "to", "subject", "x-one", "x-two")]
    assert client == ["from", "to", "subject", "x-one", "x-two", "x-one"]
    assert field_values(r["text"], "x-one") == ["1", "3"]


def test_added_headers_stay_in_header_section(srv):
    """A header section ended by a line that is no field (no empty line):
    that line starts the body, and the added headers come before it."""
    r = post_one(srv, "To: bob@example.com\r\nnot a header line\r\nbody\r\n")
    head, body = split(r["text"])
    assert body == b"not a header line\nbody\n"
    names = [n for n, _ in fields(r["text"])]
    assert {"received", "to", "from", "date", "message-id"} <= set(names)


def test_second_login_in_session_changes_sender(srv):
    srv.add_user("carol", "pw3")
    c = srv.client()
    assert c.login("alice", "secret") == 250
    assert c.post(stuff(message(subject="as alice"))) == 250
    assert c.login("carol", "pw3") == 250
    assert c.post(stuff(message(subject="as carol"))) == 250
    assert c.cmd("QUIT") == 221
    a, b = srv.stored()
    assert (a["auth_user"], a["sender"]) == ("alice", "alice@example.org")
    assert (b["auth_user"], b["sender"]) == ("carol", "carol@example.org")
    assert field_values(a["text"], "sender") == []
    # carol posted a From: alice text: Sender names carol
    assert [s for s in field_values(b["text"], "sender")
            if "carol@example.org" in s]
    assert re.search(r"\bcarol\b", field_values(b["text"], "received")[0])
    assert a["id"] != b["id"]
    assert field_values(a["text"], "message-id") != \
        field_values(b["text"], "message-id")


# Body

def test_dot_stuffing_round_trip(srv):
    body = ".\r\n..\r\n.x\r\n...\r\nx.\r\n .\r\n.\r\nend\r\n"
    c = srv.client()
    assert c.login("alice", "secret") == 250
    assert c.cmd("DATA") == 354
    wire = message(body=body).encode()
    wire = wire.replace(b"\r\n.", b"\r\n..")   # every line starting "."
    c.send(wire + b".\r\n")
    assert c.line() == REPLY[250]
    (r,) = srv.stored()
    assert split(r["text"])[1] == lf(body)


def test_lines_end_with_lf(srv):
    r = post_one(srv, message(body="one\r\ntwo\r\n\r\nthree\r\n"))
    assert b"\r" not in r["text"]
    assert r["text"].endswith(b"\n\none\ntwo\n\nthree\n")


def test_eight_bit_body_bytes_preserved(srv):
    body = (bytes(range(0x80, 0x100)) + b"\r\n" +
            "Grüße, ça va? Ωμέγα 日本語\r\n".encode() +
            b"\xff\xfe\xfd\r\n")
    text = message(subject="8bit").encode()
    text = text[:text.index(b"\r\n\r\n") + 4] + body
    r = post_one(srv, text)
    assert split(r["text"])[1] == lf(body)


def test_control_bytes_in_body_preserved(srv):
    body = bytes(b for b in range(1, 0x20) if b not in (0x0a, 0x0d)) + b"\x7f\r\n"
    text = message().encode()
    text = text[:text.index(b"\r\n\r\n") + 4] + body
    r = post_one(srv, text)
    assert split(r["text"])[1] == lf(body)


def test_empty_body(srv):
    r = post_one(srv, "From: alice@example.org\r\nTo: bob@example.com\r\n"
                      "Subject: empty\r\n\r\n")
    assert r["text"].endswith(b"\n\n")
    assert split(r["text"])[1] == b""


def test_header_only_no_empty_line(srv):
    r = post_one(srv, "To: bob@example.com\r\nSubject: header only\r\n")
    assert r["recipients"] == ["bob@example.com"]
    assert field_values(r["text"], "subject") == ["header only"]


# 550

def test_over_max_message_size_550(srv):
    srv.restart(max_message_size=2048)
    # well under the limit: stored
    post_one(srv, message(body="x" * 1000 + "\r\n"))
    # over it: the rest is read and dropped, the reply comes after the end
    c = srv.client()
    assert c.login("alice", "secret") == 250
    assert c.cmd("DATA") == 354
    head = message(body="").encode()
    first = head + (b"y" * 70 + b"\r\n") * 60             # ~4 KiB
    c.send(first)
    ready, _, _ = select.select([c.sock], [], [], 0.3)
    assert not ready, "answered before the end of the text"
    rest = (b"QUIT\r\nUSER alice\r\nNOOP\r\n" + b"z" * 900 + b"\r\n") * 200
    c.send(rest + b".\r\n")
    assert c.line() == REPLY[550]
    assert c.cmd("DATA") == 503
    assert c.cmd("NOOP") == 250
    assert c.cmd("QUIT") == 221
    assert len(srv.stored()) == 1


def test_over_max_message_size_spilled_leaves_nothing(srv):
    srv.restart(max_message_size=100000)
    text = message(body="w" * 998 + "\r\n").encode()
    text += (b"v" * 998 + b"\r\n") * 300                   # ~300 KB
    assert refused(srv, text)


@pytest.mark.parametrize("where", ["body", "header"])
@pytest.mark.parametrize("bad", [b"bare\rCR", b"bare\nLF", b"nul\x00byte"],
                         ids=["bare-CR", "bare-LF", "NUL"])
def test_bare_cr_lf_nul_550(srv, bad, where):
    if where == "body":
        text = message(body="ok\r\n").encode() + bad + b"\r\nend\r\n"
    else:
        text = (b"From: alice@example.org\r\nTo: bob@example.com\r\n"
                b"Subject: " + bad + b"\r\n\r\nbody\r\n")
    assert refused(srv, text)


def test_bare_lf_after_spill_550(srv):
    text = message(body="").encode() + (b"u" * 500 + b"\r\n") * 400
    text += b"late\nbare LF\r\n" + b"t" * 100 + b"\r\n"
    assert len(text) > 128 * 1024
    assert refused(srv, text)


@pytest.mark.parametrize("text", [
    "From: alice@example.org\r\nSubject: nobody\r\n\r\nbody\r\n",
    "From: alice@example.org\r\nTo: undisclosed-recipients:;\r\n\r\nbody\r\n",
    "From: alice@example.org\r\nSubject: s\r\n\r\nTo: bob@example.com\r\n",
    "",
], ids=["no-to", "empty-group", "to-in-body", "empty-text"])
def test_no_recipient_550(srv, text):
    assert refused(srv, text.encode())


@pytest.mark.parametrize("header", [
    "To: <bob@example.com",
    "To: \"Bob <bob@example.com>",
    "To: Bob (comment <bob@example.com>",
    "Cc: bob@example.com, <carol@example.com",
    "Bcc: @@@",
    "From: <alice@example.org",
])
def test_unparseable_address_header_550(srv, header):
    text = ("From: alice@example.org\r\nTo: bob@example.com\r\n" +
            header + "\r\nSubject: x\r\n\r\nbody\r\n")
    if header.startswith("From:"):
        text = text.replace("From: alice@example.org\r\n", "", 1)
    assert refused(srv, text.encode())


def test_max_recipients(srv):
    srv.restart(max_recipients=3)
    r = post_one(srv, message(to="a@example.com, b@example.com",
                              extra="Cc: c@example.com\r\n"))
    assert sorted(r["recipients"]) == ["a@example.com", "b@example.com",
                                       "c@example.com"]
    assert refused(srv, message(to="a@example.com, b@example.com",
                                extra="Cc: c@example.com\r\n"
                                      "Bcc: d@example.com\r\n").encode())


def test_sizes_around_the_spill_threshold(srv):
    """Stored byte-exact whatever side of 64 KiB of output a text ends on."""
    c = srv.client()
    assert c.login("alice", "secret") == 250
    head = message(body="").encode()
    sizes = list(range(65536 - 700, 65536 + 100, 23))
    for n in sizes:
        body = b"y" * (n % 97) + b"\r\n" + b"z" * n + b"\r\n"
        assert c.post(head + body) == 250, n
    assert c.cmd("QUIT") == 221
    stored = srv.stored()
    assert len(stored) == len(sizes)
    for n, r in zip(sizes, stored):
        body = b"y" * (n % 97) + b"\n" + b"z" * n + b"\n"
        assert split(r["text"])[1] == body, n


# Large messages (spill path)

def big_body(size):
    """size bytes of CRLF lines, some starting with '.', various lengths."""
    out = []
    n = 0
    i = 0
    while n < size:
        line = (f"{'.' if i % 7 == 0 else ''}line {i:07d} " +
                "abcdefghijklmnopqrstuvwxyz0123456789"[: i % 37] * (1 + i % 5))
        if i % 13 == 0:
            line = ""
        b = line.encode() + b"\r\n"
        out.append(b)
        n += len(b)
        i += 1
    return b"".join(out)


@pytest.mark.parametrize("size", [70 * 1024, 5 * 1024 * 1024],
                         ids=["70KiB", "5MiB"])
def test_large_message_stored_byte_exact(srv, size):
    body = big_body(size)
    text = message(subject=f"big {size}", body="").encode() + body
    r = post_one(srv, text)
    assert split(r["text"])[1] == lf(body)
    assert field_values(r["text"], "subject") == [f"big {size}"]
    assert r["recipients"] == ["bob@example.com"]


def test_large_message_headers_over_64k_total_with_many_recipients(srv):
    rcpts = [f"user{i:04d}@example.com" for i in range(500)]
    to = ",\r\n ".join(rcpts)
    r = post_one(srv, message(to=to, body="x\r\n"))
    assert sorted(r["recipients"]) == rcpts


def test_two_large_messages_one_session(srv):
    c = srv.client()
    assert c.login("alice", "secret") == 250
    bodies = [big_body(100 * 1024), big_body(300 * 1024).upper()]
    for i, body in enumerate(bodies):
        text = message(subject=f"n{i}", body="").encode() + body
        assert c.post(stuff(text)) == 250
    assert c.cmd("QUIT") == 221
    stored = srv.stored()
    assert len(stored) == 2
    for r in stored:
        i = int(field_values(r["text"], "subject")[0][1:])
        assert split(r["text"])[1] == lf(bodies[i])


def test_large_texts_and_commands_in_one_write(srv):
    """Texts read in more than 4 KiB at a time keep their bytes and their
    order with the commands around them, all sent in one write."""
    c = srv.client()
    assert c.login("alice", "secret") == 250
    bodies = [big_body(1024 * 1024), big_body(100 * 1024).upper(),
              big_body(5000)]
    wire = b""
    for i, body in enumerate(bodies):
        text = message(subject=f"n{i}", body="").encode() + body
        wire += b"DATA\r\n" + stuff(text) + b".\r\nNOOP\r\n"
    c.send(wire + b"QUIT\r\n")
    assert [c.code() for _ in range(3 * len(bodies) + 1)] == \
        [354, 250, 250] * len(bodies) + [221]
    stored = srv.stored()
    assert len(stored) == len(bodies)
    for r in stored:
        i = int(field_values(r["text"], "subject")[0][1:])
        assert split(r["text"])[1] == lf(bodies[i])
