"""mppqueue's SMTP transport against a real MTA's SMTP server: Postfix's
smtp-sink, which keeps each message it takes, with its envelope, in a dump
file. A recording proxy in front of it keeps the exact bytes mppqueue put on
the wire. Per-recipient answers (one RCPT 4xx, the next 2xx), which
smtp-sink cannot give, come from a small scripted SMTP server here.

The mppd and mppqueue fixtures come from conftest.py.
"""

import os
import re
import select
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, message, wait_for

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"

pytestmark = pytest.mark.skipif(not os.access(SMTP_SINK, os.X_OK),
                                reason="smtp-sink (Debian package postfix) not installed")


class Sink:
    """One smtp-sink process on a loopback port, dumping every message."""

    def __init__(self, tmp_path, port=None, options=()):
        self.port = port or free_port()
        self.dump = tmp_path / f"sink-{self.port}"
        self.dump.mkdir(exist_ok=True)
        self.options = list(options)
        self.proc = None

    def start(self):
        # As root smtp-sink insists on a user to run as; root keeps the
        # dump directory writable.
        user = ["-u", "root"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [SMTP_SINK, *user, "-d", f"{self.dump}/%M.", *self.options,
             f"127.0.0.1:{self.port}", "100"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            assert self.proc.poll() is None, "smtp-sink exited"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    return s.recv(64).startswith(b"220")
            except OSError:
                return False
        wait_for(up, what="smtp-sink to listen")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def messages(self):
        """Every dumped message as (mail_args, [rcpt_args], text), oldest
        first; text has LF line ends, as smtp-sink writes it (unstuffed)."""
        out = []
        files = sorted(self.dump.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        for f in files:
            out.append(parse_dump(f.read_bytes()))
        return out

    def subjects(self, last_line=b"Hello."):
        """The Subject of each message dumped whole: smtp-sink writes a
        dump as the text arrives, so one counts once it ends with the
        text's last line (the tests' texts end "Hello.")."""
        out = []
        for p in self.dump.iterdir():
            raw = p.read_bytes()
            if not raw.endswith(b"\n" + last_line + b"\n\n"):
                continue
            mt = re.search(rb"\nSubject: (.*?)\n", raw)
            out.append(mt.group(1).decode() if mt else None)
        return out


def parse_dump(raw):
    """Split one smtp-sink dump: its X- records, its three-line Received:
    header, then the message and one empty line (see smtp-sink(1))."""
    lines = raw.split(b"\n")
    mail, rcpts, i = None, [], 0
    while not lines[i].startswith(b"Received: "):
        name, _, value = lines[i].partition(b": ")
        if name == b"X-Mail-Args":
            mail = value.decode()
        elif name == b"X-Rcpt-Args":
            rcpts.append(value.decode())
        i += 1
    text = b"\n".join(lines[i + 3:])
    assert text.endswith(b"\n\n"), "dump ends with an empty line"
    return mail, rcpts, text[:-1]


@pytest.fixture
def sink_factory(tmp_path):
    made = []

    def make(**kw):
        s = Sink(tmp_path, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


@pytest.fixture
def sink(sink_factory):
    return sink_factory().start()


class Proxy:
    """Forwards loopback connections to a server, keeping every byte the
    client sent, connection by connection."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.sent = []          # bytes from the client, one per connection
        self.lock = threading.Lock()
        self.stopping = False
        self.threads = [threading.Thread(target=self.accept_loop, daemon=True)]
        self.threads[0].start()

    def accept_loop(self):
        self.lsock.settimeout(0.1)
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            with self.lock:
                self.sent.append(b"")
                k = len(self.sent) - 1
            t = threading.Thread(target=self.pump, args=(c, k), daemon=True)
            t.start()
            self.threads.append(t)

    def pump(self, client, k):
        server = socket.create_connection(("127.0.0.1", self.target))
        socks = [client, server]
        try:
            while True:
                ready, _, _ = select.select(socks, [], [], 0.1)
                if self.stopping and not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is client:
                        with self.lock:
                            self.sent[k] += data
                        server.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            server.close()

    def close(self):
        self.stopping = True
        for t in self.threads:
            t.join(5)
        self.lsock.close()


class ScriptedSmtp:
    """A small SMTP server: RCPT answered from a table by address (250 when
    not listed), everything else accepted; keeps each transaction."""

    def __init__(self):
        self.rcpt_reply = {}
        self.transactions = []  # {"mail": str, "rcpts": [str], "data": bytes}
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        # A thread per connection: each delivery worker keeps its own.
        self.lsock.settimeout(0.1)
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            threading.Thread(target=self.connection, args=(c,), daemon=True).start()

    def connection(self, c):
        with c:
            c.settimeout(10)
            try:
                self.session(c.makefile("rb"), c)
            except OSError:
                pass

    def session(self, f, c):
        c.sendall(b"220 scripted.example ESMTP\r\n")
        tx = None
        for raw in f:
            line = raw.rstrip(b"\r\n").decode()
            verb = line[:4].upper()
            if verb == "EHLO":
                c.sendall(b"250-scripted.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == "MAIL":
                tx = {"mail": line[10:], "rcpts": [], "data": None}
                c.sendall(b"250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                addr = line[8:].strip("<>")
                reply = self.rcpt_reply.get(addr, "250 2.1.5 Ok")
                if reply.startswith("2"):
                    tx["rcpts"].append(addr)
                c.sendall(reply.encode() + b"\r\n")
            elif verb == "DATA":
                c.sendall(b"354 go ahead\r\n")
                data = b""
                while not (data == b".\r\n" or data.endswith(b"\r\n.\r\n")):
                    data += f.readline()
                tx["data"] = data
                self.transactions.append(tx)
                tx = None
                c.sendall(b"250 2.0.0 Ok: queued\r\n")
            elif verb == "RSET":
                tx = None
                c.sendall(b"250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                c.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                c.sendall(b"502 5.5.2 unknown command\r\n")

    def close(self):
        self.stopping = True
        self.thread.join(15)
        self.lsock.close()


def post(mppd, n=1, **kw):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    for i in range(n):
        assert c.post(message(subject=kw.get("subject", f"msg {i}"),
                              to=kw.get("to", "bob@example.com"),
                              extra=kw.get("extra", ""),
                              body=kw.get("body", "Hello.\r\n"))) == 250
    assert c.cmd("QUIT") == 221
    c.close()


def originals(mppd):
    """The posted messages' rows (bounces left out)."""
    return [m for m in mppd.stored() if not m["is_bounce"]]


def recipient_rows(mppd, qid):
    with mppd.db() as conn:
        rows = conn.execute("SELECT address, state, last_error FROM recipient "
                            "WHERE message_id = ? ORDER BY seq", (qid,)).fetchall()
    return {r["address"]: (r["state"], r["last_error"]) for r in rows}


def wait_due(mppd):
    """Sleep until every deferred message falls due again."""
    due = max(m["next_attempt_at"] for m in mppd.stored() if m["state"] == "deferred")
    time.sleep(max(0.0, due - time.time()) + 1.1)


def smtp(port):
    return f"smtp:127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def short_timeout(mppd):
    """A server that stalls should fail a test, not hang it."""
    mppd.settings["delivery_timeout"] = "20"


def test_delivery_envelope(mppd, mppqueue, sink):
    post(mppd, to="Bob <bob@example.com>",
         extra="Cc: carol@example.net\r\nBcc: dave@example.com\r\n")
    assert mppqueue.once(transport=smtp(sink.port)).returncode == 0
    wait_for(lambda: len(sink.messages()) == 1, what="the sink's dump")
    [(mail, rcpts, text)] = sink.messages()
    assert mail == "<alice@example.org>"
    assert rcpts == ["<bob@example.com>", "<carol@example.net>", "<dave@example.com>"]
    assert b"\nSubject: msg 0\n" in text
    [m] = originals(mppd)
    assert m["state"] == "sent" and m["attempts"] == 1
    assert "to=<dave@example.com>" in mppqueue.log()
    assert "result=sent" in mppqueue.log()


def test_wire_format_and_connection_reuse(mppd, mppqueue, sink):
    """What goes over the wire: CRLF everywhere, stuffed dots, no Bcc:, the
    MAIL FROM and RCPT TO commands in one pipelined write, one connection
    for all messages with RSET between them, QUIT at the end."""
    body = ("..leading dot\r\n"        # the client stuffs: text is ".leading dot"
            "..\r\n"                   # a line of one dot
            "...two\r\n"               # "..two"
            "middle . dot\r\n"
            + "".join(f"..{i:05d} {'x' * (i % 90)}\r\n" for i in range(3000))
            + "last line\r\n")
    post(mppd, n=3, to="bob@example.com",
         extra="Bcc: secret@example.com\r\n", body=body)
    proxy = Proxy(sink.port)
    try:
        assert mppqueue.once(transport=smtp(proxy.port), concurrency="1").returncode == 0
        wait_for(lambda: len(sink.messages()) == 3, what="three dumps")
    finally:
        proxy.close()
    assert len(proxy.sent) == 1, "one connection for the three messages"
    wire = proxy.sent[0]
    assert b"\n" not in wire.replace(b"\r\n", b""), "every line ends in CRLF"
    assert wire.startswith(b"EHLO mpp.test\r\n")
    assert wire.endswith(b"QUIT\r\n")
    envelope = b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\n" \
               b"RCPT TO:<secret@example.com>\r\nDATA\r\n"
    assert wire.count(envelope) == 3
    # A finished transaction needs no RSET before the next MAIL FROM.
    assert wire.count(b"RSET\r\n") == 0
    assert b"Bcc:" not in wire
    texts = re.findall(rb"DATA\r\n(.*?\r\n\.\r\n)", wire, re.S)
    assert len(texts) == 3
    for t in texts:
        assert b"\r\n..leading dot\r\n..\r\n...two\r\nmiddle . dot\r\n..00000 \r\n" in t
        assert t.endswith(b"\r\n..02999 " + b"x" * (2999 % 90) + b"\r\nlast line\r\n.\r\n")
    # smtp-sink unstuffs the text again: the stored text, LF for CRLF.
    for mail, rcpts, text in sink.messages():
        assert b"\n\n.leading dot\n.\n..two\nmiddle . dot\n.00000 \n" in text
        assert text.endswith(b"\n.02999 " + b"x" * (2999 % 90) + b"\nlast line\n")
        assert b"Bcc:" not in text
    assert [m["state"] for m in originals(mppd)] == ["sent"] * 3


def test_mta_down_then_back(mppd, mppqueue, sink_factory):
    port = free_port()
    post(mppd, n=3)
    assert mppqueue.once(transport=smtp(port), retry_min="1", retry_max="2").returncode == 0
    rows = originals(mppd)
    assert [m["state"] for m in rows] == ["deferred"] * 3
    for m in rows:
        assert m["attempts"] == 1
        assert m["last_error"] == f"connect to 127.0.0.1:{port}: Connection refused"
        assert m["text"] is not None
    sink = sink_factory(port=port).start()
    wait_due(mppd)
    assert mppqueue.once().returncode == 0
    wait_for(lambda: len(sink.messages()) == 3, what="three dumps")
    rows = originals(mppd)
    assert [m["state"] for m in rows] == ["sent"] * 3
    assert [m["attempts"] for m in rows] == [2] * 3
    subjects = sorted(re.search(rb"\nSubject: (.*?)\n", t).group(1)
                      for _, _, t in sink.messages())
    assert subjects == [b"msg 0", b"msg 1", b"msg 2"]


def test_rcpt_4xx_retried_2xx_delivered_once_5xx_failed(mppd, mppqueue):
    server = ScriptedSmtp()
    try:
        server.rcpt_reply = {
            "carol@example.net": "450 4.2.0 <carol@example.net>: greylisted",
            "dave@example.com": "550 5.1.1 <dave@example.com>: no such user",
        }
        post(mppd, to="bob@example.com, carol@example.net, dave@example.com")
        assert mppqueue.once(transport=smtp(server.port), retry_min="1",
                             retry_max="2").returncode == 0
        [m] = originals(mppd)
        assert m["state"] == "deferred" and m["attempts"] == 1
        assert recipient_rows(mppd, m["id"]) == {
            "bob@example.com": ("sent", "250 2.0.0 Ok: queued"),
            "carol@example.net": ("pending", "450 4.2.0 <carol@example.net>: greylisted"),
            "dave@example.com": ("failed", "550 5.1.1 <dave@example.com>: no such user"),
        }
        mine = [t for t in server.transactions if t["mail"] == "<alice@example.org>"]
        assert [t["rcpts"] for t in mine] == [["bob@example.com"]]

        server.rcpt_reply = {}      # carol is taken now, dave would be too
        wait_due(mppd)
        assert mppqueue.once().returncode == 0
        [m] = originals(mppd)
        assert m["state"] == "sent" and m["attempts"] == 2
        states = recipient_rows(mppd, m["id"])
        assert states["carol@example.net"][0] == "sent"
        assert states["dave@example.com"][0] == "failed", "a 5xx is not retried"
        mine = [t for t in server.transactions if t["mail"] == "<alice@example.org>"]
        assert [t["rcpts"] for t in mine] == [["bob@example.com"], ["carol@example.net"]]
        assert all(t["data"].endswith(b"\r\nHello.\r\n.\r\n") for t in mine)
        # dave's failure went back to alice, from the null sender.
        bounces = [t for t in server.transactions if t["mail"] == "<>"]
        assert [t["rcpts"] for t in bounces] == [["alice@example.org"]]
        assert b"dave@example.com" in bounces[0]["data"]
    finally:
        server.close()


def test_rcpt_5xx_from_smtp_sink_fails_for_good(mppd, mppqueue, sink_factory):
    sink = sink_factory(options=["-f", "RCPT", "-B",
                                 "550 5.1.1 Error: no such user"]).start()
    post(mppd, to="bob@example.com")
    assert mppqueue.once(transport=smtp(sink.port), retry_min="1").returncode == 0
    [m] = originals(mppd)
    assert m["state"] == "failed" and m["attempts"] == 1
    assert m["last_error"] == "550 5.1.1 Error: no such user"
    assert recipient_rows(mppd, m["id"])["bob@example.com"][0] == "failed"
    time.sleep(1.2)
    attempts = mppqueue.log().count("to=<bob@example.com>")
    assert mppqueue.once().returncode == 0
    [m] = originals(mppd)
    assert m["state"] == "failed" and m["attempts"] == 1
    assert mppqueue.log().count("to=<bob@example.com>") == attempts, "not retried"
    assert sink.messages() == []


UTF8_BODY = "Grüße aus Köln.\r\n"


def test_8bit_text_declared_to_an_8bitmime_relay(mppd, mppqueue, sink):
    """RFC 6152: text with bytes above 127 goes with BODY=8BITMIME to a relay
    that offers it; 7-bit text goes without."""
    post(mppd, subject="plain", body="Hello.\r\n")
    post(mppd, subject="umlauts", body=UTF8_BODY)
    assert mppqueue.once(transport=smtp(sink.port)).returncode == 0
    wait_for(lambda: len(sink.messages()) == 2, what="two dumps")
    mails = {}
    for mail, _, text in sink.messages():
        subject = re.search(rb"(?m)^Subject: (.*)$", text).group(1)
        mails[subject] = (mail, text)
    assert mails[b"plain"][0] == "<alice@example.org>"
    assert mails[b"umlauts"][0] == "<alice@example.org> BODY=8BITMIME"
    assert mails[b"umlauts"][1].endswith(UTF8_BODY.replace("\r\n", "\n")
                                         .encode())


def test_8bit_text_to_a_relay_without_8bitmime(mppd, mppqueue, sink_factory):
    """A relay that does not offer 8BITMIME is sent no BODY parameter (it
    would refuse it); the text goes unchanged."""
    sink = sink_factory(options=["-8"]).start()
    post(mppd, subject="umlauts", body=UTF8_BODY)
    assert mppqueue.once(transport=smtp(sink.port)).returncode == 0
    wait_for(lambda: len(sink.messages()) == 1, what="the dump")
    [(mail, _, text)] = sink.messages()
    assert mail == "<alice@example.org>"
    assert text.endswith(UTF8_BODY.replace("\r\n", "\n").encode())
    [m] = originals(mppd)
    assert m["state"] == "sent"
