"""The SMTP transport against a real Postfix with STARTTLS, implicit TLS
and Dovecot SASL (tests/integration/mta.py): smtp_tls none / may /
encrypt / verify, smtps:, AUTH from smtp_auth_file, and an ordered list
of relays with failover. A recorder between mppqueue and Postfix shows
what went over the wire in clear; the deferred messages' reasons are
read with mppq."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, Mppqueue, free_port, message

EX_CONFIG = 78


def poster(mppd_factory, user, **settings):
    """An mppd (user `user`, password secret) with short delivery steps."""
    settings.setdefault("delivery_timeout", "5")
    m = mppd_factory(user, **settings)
    m.add_user(user, "secret")
    return m.start()


def post(m, user, to):
    c = m.client()
    assert c.login(user, "secret") == 250
    assert c.post(message(to=to, subject=f"for {to}")) == 250
    c.close()


def queue(m):
    """Every message still in the spool, from mppq list --json."""
    r = subprocess.run([str(BIN / "mppq"), "-c", str(m.config_path), "list",
                        "--json"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def run_once(m, **settings):
    """mppqueue -1 over m; (exit code, its log of this run)."""
    q = Mppqueue(m)
    mark = len(q.log())
    r = q.once(**settings)
    return r.returncode, q.log()[mark:]


def deferred_reason(m):
    rows = queue(m)
    assert len(rows) == 1, rows
    assert rows[0]["state"] == "deferred", rows
    return rows[0]["last_error"]


def auth_file(m, text, mode=0o600):
    p = m.dir / "relay-auth"
    p.write_text(text)
    p.chmod(mode)
    return p


def delivered(postfix, to):
    return postfix.wait_mail(to, timeout=20)


@pytest.fixture
def recorder(postfix):
    """Recorders in front of Postfix's listeners, stopped at the end."""
    import mta
    made = []

    def make(name):
        rec = mta.Recorder(postfix.ports[name]).start()
        made.append(rec)
        return rec
    yield make
    for rec in made:
        rec.stop()


def commands(rec):
    """Each recorded connection's command lines in clear."""
    return [s.clear_commands() for s in rec.sessions]


# ------------------------------------------------------------ smtp_tls

def test_may_takes_starttls_when_offered(postfix, mppd_factory, recorder):
    rec = recorder("starttls")
    m = poster(mppd_factory, "tls1", transport=f"smtp:127.0.0.1:{rec.port}",
               smtp_tls="may")
    post(m, "tls1", "may-1@example.com")
    rc, log = run_once(m)
    assert rc == 0, log
    got = delivered(postfix, "may-1@example.com")
    # Postfix's Received: says TLS was used; nothing but EHLO before it.
    assert b"(using TLS" in got[0]
    assert commands(rec) == [["EHLO mpp.test", "STARTTLS"]]
    assert f"relay=127.0.0.1:{rec.port}" in log and "tls=TLSv1." in log


def test_may_goes_on_in_clear_without_starttls(postfix, mppd_factory):
    m = poster(mppd_factory, "tls2",
               transport=f"smtp:127.0.0.1:{postfix.ports['plain']}")
    post(m, "tls2", "may-2@example.com")
    assert run_once(m)[0] == 0
    assert b"(using TLS" not in delivered(postfix, "may-2@example.com")[0]


def test_none_never_starts_tls(postfix, mppd_factory, recorder):
    rec = recorder("starttls")
    m = poster(mppd_factory, "tls3", transport=f"smtp:127.0.0.1:{rec.port}",
               smtp_tls="none")
    post(m, "tls3", "none-3@example.com")
    assert run_once(m)[0] == 0
    assert b"(using TLS" not in delivered(postfix, "none-3@example.com")[0]
    assert "STARTTLS" not in commands(rec)[0]


def test_encrypt_delivers_without_checking_the_certificate(postfix,
                                                           mppd_factory):
    # The test CA is in no store mpp reads: encrypt must not verify, even
    # a certificate for another name.
    for user, port, to in (
            ("tls4a", postfix.ports["starttls"], "enc-4@example.com"),
            ("tls4b", postfix.ports["wrongcert"], "enc-4b@example.com")):
        m = poster(mppd_factory, user, transport=f"smtp:127.0.0.1:{port}",
                   smtp_tls="encrypt")
        post(m, user, to)
        assert run_once(m)[0] == 0
        assert b"(using TLS" in delivered(postfix, to)[0]


def test_encrypt_defers_a_relay_without_starttls(postfix, mppd_factory,
                                                 recorder):
    rec = recorder("plain")
    m = poster(mppd_factory, "tls5", transport=f"smtp:127.0.0.1:{rec.port}",
               smtp_tls="encrypt")
    post(m, "tls5", "enc-5@example.com")
    rc, log = run_once(m)
    assert rc == 0
    why = deferred_reason(m)
    assert "offers no STARTTLS" in why and "requires TLS" in why, why
    assert why in log
    # The envelope never went in clear: EHLO, then QUIT.
    assert commands(rec) == [["EHLO mpp.test", "QUIT"]]
    assert postfix.mailbox("enc-5@example.com") == []


def test_verify_delivers_to_the_right_name(postfix, mppd_factory):
    # localhost: the certificate's name; its addresses are tried in turn
    # (::1 first where it resolves so; Postfix listens on IPv4 only).
    m = poster(mppd_factory, "tls6",
               transport=f"smtp:localhost:{postfix.ports['starttls']}",
               smtp_tls="verify", smtp_tls_ca=postfix.ca_file)
    post(m, "tls6", "ver-6@example.com")
    assert run_once(m)[0] == 0
    assert b"(using TLS" in delivered(postfix, "ver-6@example.com")[0]


def test_verify_refuses_a_certificate_for_another_name(postfix, mppd_factory,
                                                       recorder):
    rec = recorder("wrongcert")
    m = poster(mppd_factory, "tls7", transport=f"smtp:localhost:{rec.port}",
               smtp_tls="verify", smtp_tls_ca=postfix.ca_file)
    post(m, "tls7", "ver-7@example.com")
    assert run_once(m)[0] == 0
    why = deferred_reason(m)
    assert "TLS with localhost" in why and "hostname mismatch" in why, why
    # Nothing after STARTTLS went in clear (no MAIL, no AUTH), and
    # nothing was taken.
    assert commands(rec) == [["EHLO mpp.test", "STARTTLS"]]
    assert postfix.mailbox("ver-7@example.com") == []


def test_verify_refuses_an_unknown_ca(postfix, mppd_factory):
    # Without smtp_tls_ca the system store is used: the test CA is no part.
    m = poster(mppd_factory, "tls8",
               transport=f"smtp:localhost:{postfix.ports['starttls']}",
               smtp_tls="verify")
    post(m, "tls8", "ver-8@example.com")
    assert run_once(m)[0] == 0
    why = deferred_reason(m)
    assert "certificate verify failed" in why, why


def test_missing_ca_file_is_refused_at_start(postfix, mppd_factory):
    m = poster(mppd_factory, "tls9",
               transport=f"smtp:localhost:{postfix.ports['starttls']}",
               smtp_tls="verify", smtp_tls_ca="/nonexistent/ca.pem")
    post(m, "tls9", "ver-9@example.com")
    rc, log = run_once(m)
    assert rc == EX_CONFIG, log
    assert "CA file /nonexistent/ca.pem" in log, log
    [row] = queue(m)
    assert row["attempts"] == 0, row


# --------------------------------------------------------------- smtps

def test_smtps_is_tls_from_the_first_byte(postfix, mppd_factory, recorder):
    rec = recorder("smtps")
    m = poster(mppd_factory, "tls9", transport=f"smtps:localhost:{rec.port}",
               smtp_tls="verify", smtp_tls_ca=postfix.ca_file)
    m.settings["smtp_auth_file"] = str(auth_file(
        m, f"localhost:{rec.port} alice {postfix.users['alice']}\n"))
    post(m, "tls9", "smtps-9@example.com")
    rc, log = run_once(m)
    assert rc == 0, log
    assert b"(using TLS" in delivered(postfix, "smtps-9@example.com")[0]
    assert commands(rec) == [[]]       # not one byte in clear
    assert "auth=alice" in log


def test_smtps_port_defaults_to_465(mppd_factory):
    # Nobody listens on 465 here: the reason names the port tried.
    m = poster(mppd_factory, "tls10", transport="smtps:127.0.0.1",
               delivery_timeout="2")
    post(m, "tls10", "smtps-10@example.com")
    run_once(m)
    assert "connect to 127.0.0.1:465:" in deferred_reason(m)


# ---------------------------------------------------------------- AUTH

def test_auth_inside_tls(postfix, mppd_factory, recorder):
    rec = recorder("submission")
    m = poster(mppd_factory, "au1", transport=f"smtp:127.0.0.1:{rec.port}")
    m.settings["smtp_auth_file"] = str(auth_file(
        m, "# relays\n\n"
        f"127.0.0.1:{rec.port} alice {postfix.users['alice']}\n"))
    post(m, "au1", "auth-1@example.com")
    rc, log = run_once(m)
    assert rc == 0, log
    delivered(postfix, "auth-1@example.com")
    assert commands(rec) == [["EHLO mpp.test", "STARTTLS"]]
    assert postfix.users["alice"] not in log
    assert "sasl_username=alice" in postfix.log()


def test_wrong_password_defers_with_the_535(postfix, mppd_factory):
    port = postfix.ports["submission"]
    m = poster(mppd_factory, "au2", transport=f"smtp:127.0.0.1:{port}")
    m.settings["smtp_auth_file"] = str(auth_file(
        m, f"127.0.0.1 alice not-her-password\n"))
    post(m, "au2", "auth-2@example.com")
    rc, log = run_once(m)
    assert rc == 0
    why = deferred_reason(m)
    assert "AUTH as alice refused" in why and "535 5.7.8" in why, why
    assert why in log and "not-her-password" not in log
    assert postfix.mailbox("auth-2@example.com") == []


def test_star_line_serves_relays_without_their_own(postfix, mppd_factory):
    port = postfix.ports["submission"]
    m = poster(mppd_factory, "au3", transport=f"smtp:127.0.0.1:{port}")
    m.settings["smtp_auth_file"] = str(auth_file(
        m, "other.example:25 bob wrong\n"
        f"*\talice   {postfix.users['alice']}\n"))
    post(m, "au3", "auth-3@example.com")
    rc, log = run_once(m)
    assert rc == 0, log
    delivered(postfix, "auth-3@example.com")
    assert "auth=alice" in log


def test_auth_in_clear_to_loopback_only(postfix, mppd_factory):
    # A loopback relay is this host: AUTH may go to it without TLS.
    port = postfix.ports["cleartext_auth"]
    m = poster(mppd_factory, "au4", transport=f"smtp:127.0.0.1:{port}")
    m.settings["smtp_auth_file"] = str(auth_file(
        m, f"* alice {postfix.users['alice']}\n"))
    post(m, "au4", "auth-4@example.com")
    assert run_once(m)[0] == 0
    delivered(postfix, "auth-4@example.com")


# Run inside a network namespace of its own: lo up with 192.0.2.25 (a
# documentation address, not loopback), and a forwarder from
# 192.0.2.25:2525 to a Unix socket, which the recorder outside serves.
NETNS_SH = r"""
set -e
ip link set lo up
ip addr add 192.0.2.25/32 dev lo
/usr/bin/python3 -c "$FWD" "$UNIX" "$READY" &
i=0
while [ ! -e "$READY" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
set +e
"$@"
rc=$?
kill %1 2>/dev/null
exit $rc
"""

FORWARDER = r"""
import socket, sys, threading
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("192.0.2.25", 2525))
ls.listen(8)
open(sys.argv[2], "w").close()
while True:
    c, _ = ls.accept()
    u = socket.socket(socket.AF_UNIX)
    u.connect(sys.argv[1])
    for a, b in ((c, u), (u, c)):
        threading.Thread(target=pump, args=(a, b), daemon=True).start()
"""


class UnixRecorder:
    """A Unix socket relayed to a loopback port, recording what the
    client sent."""

    def __init__(self, path, target):
        self.path, self.target, self.client = str(path), target, []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            buf = bytearray()
            self.client.append(buf)
            threading.Thread(target=self._pump, args=(c, s, buf),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, None),
                             daemon=True).start()

    @staticmethod
    def _pump(a, b, buf):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if buf is not None:
                    buf += d
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.sock.close()


def test_no_password_in_clear_to_a_remote_relay(postfix, mppd_factory,
                                                tmp_path):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    rec = UnixRecorder(tmp_path / "relay.sock", postfix.ports["cleartext_auth"])
    m = poster(mppd_factory, "au5", transport="smtp:192.0.2.25:2525")
    m.settings["smtp_auth_file"] = str(auth_file(
        m, f"* alice {postfix.users['alice']}\n"))
    post(m, "au5", "auth-5@example.com")
    q = Mppqueue(m)
    mark = len(q.log())
    env = {**os.environ, "FWD": FORWARDER, "UNIX": str(rec.path),
           "READY": str(tmp_path / "ready")}
    with open(q.logfile, "ab") as logf:
        r = subprocess.run(["unshare", "--net", "/bin/sh", "-c", NETNS_SH,
                            "sh", *q.args("-1", "-d")], stdout=logf,
                           stderr=subprocess.STDOUT, env=env, timeout=60)
    rec.stop()
    log = q.log()[mark:]
    assert r.returncode == 0, log
    why = deferred_reason(m)
    assert "192.0.2.25:2525 offers AUTH without TLS only" in why, why
    assert "not sent in clear" in why
    # The relay was reached (it offered AUTH) and got no AUTH at all.
    assert len(rec.client) == 1
    sent = bytes(rec.client[0])
    assert sent.startswith(b"EHLO mpp.test\r\n"), sent
    assert b"AUTH" not in sent and b"MAIL" not in sent
    assert postfix.mailbox("auth-5@example.com") == []


# ------------------------------------------------------ the auth file

def test_auth_file_open_to_others_is_refused(mppd_factory, postfix):
    m = poster(mppd_factory, "af1",
               transport=f"smtp:127.0.0.1:{postfix.ports['submission']}")
    for mode, who in ((0o640, "its group"), (0o604, "others")):
        p = auth_file(m, "* alice x\n", mode)
        m.settings["smtp_auth_file"] = str(p)
        rc, log = run_once(m)
        assert rc == EX_CONFIG, log
        assert f"{p} holds passwords and is open to {who}" in log, log


def test_auth_file_bad_line_is_refused(mppd_factory, postfix):
    m = poster(mppd_factory, "af2",
               transport=f"smtp:127.0.0.1:{postfix.ports['submission']}")
    for text, why in (("# ok\n* alice x\nmx.example:99999 a b\n",
                       ":3: bad HOST[:PORT]"),
                      ("mx.example alice\n", ":1: expected"),
                      ("* a x\n* b y\n", ":2: a second line"),
                      ("* a " + "x" * 2000 + "\n", ":1: line too long")):
        p = auth_file(m, text)
        m.settings["smtp_auth_file"] = str(p)
        rc, log = run_once(m)
        assert rc == EX_CONFIG, log
        assert f"{p}{why}" in log, log
    m.settings["smtp_auth_file"] = str(m.dir / "missing")
    rc, log = run_once(m)
    assert rc == EX_CONFIG and "No such file" in log


# ------------------------------------------------------------ failover

class FakeRelay:
    """A loopback port that greets each connection with `greeting` (and
    then closes it), or answers EHLO with `ehlo`; counts connections."""

    def __init__(self, greeting=b"421 4.3.2 fake.test busy\r\n", ehlo=None):
        self.greeting, self.ehlo, self.conns = greeting, ehlo, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            try:
                c.sendall(self.greeting)
                if self.ehlo is not None:
                    c.settimeout(5)
                    c.recv(512)
                    c.sendall(self.ehlo)
                    c.recv(512)
            except OSError:
                pass
            c.close()

    def stop(self):
        self.sock.close()


def test_failover_past_a_closed_port(postfix, mppd_factory):
    closed = free_port()
    plain = postfix.ports["plain"]
    m = poster(mppd_factory, "fo1",
               transport=f"smtp:127.0.0.1:{closed}, 127.0.0.1:{plain}")
    post(m, "fo1", "fo-1@example.com")
    rc, log = run_once(m)
    assert rc == 0, log
    delivered(postfix, "fo-1@example.com")
    assert f"relay=127.0.0.1:{closed} passed over: connect to" in log
    assert f"relay=127.0.0.1:{plain} address=127.0.0.1:{plain} connected" in log


def test_failover_past_421_and_ehlo_refusal_in_order(postfix, mppd_factory):
    busy = FakeRelay()
    cold = FakeRelay(b"220 cold.test ESMTP\r\n", b"454 4.7.0 not now\r\n")
    unused = FakeRelay(b"220 unused.test ESMTP\r\n")
    plain = postfix.ports["plain"]
    try:
        m = poster(mppd_factory, "fo2", transport=(
            f"smtp:127.0.0.1:{busy.port},127.0.0.1:{cold.port},"
            f"127.0.0.1:{plain},127.0.0.1:{unused.port}"))
        post(m, "fo2", "fo-2@example.com")
        rc, log = run_once(m)
        assert rc == 0, log
        delivered(postfix, "fo-2@example.com")
        assert (busy.conns, cold.conns, unused.conns) == (1, 1, 0)
        i = log.index(f"127.0.0.1:{busy.port} passed over: 421 4.3.2")
        j = log.index(f"127.0.0.1:{cold.port} passed over: 454 4.7.0")
        k = log.index(f"relay=127.0.0.1:{plain} address=")
        assert i < j < k
    finally:
        for r in (busy, cold, unused):
            r.stop()


def test_first_healthy_relay_is_used(postfix, mppd_factory):
    second = FakeRelay(b"220 second.test ESMTP\r\n")
    plain = postfix.ports["plain"]
    try:
        m = poster(mppd_factory, "fo3",
                   transport=f"smtp:127.0.0.1:{plain}, 127.0.0.1:{second.port}")
        for i in range(3):
            post(m, "fo3", f"fo-3-{i}@example.com")
        assert run_once(m)[0] == 0
        for i in range(3):
            delivered(postfix, f"fo-3-{i}@example.com")
        assert second.conns == 0
    finally:
        second.stop()


def test_all_relays_down_defers_with_each_reason(mppd_factory):
    busy = FakeRelay()
    closed = free_port()
    try:
        m = poster(mppd_factory, "fo4",
                   transport=f"smtp:127.0.0.1:{busy.port},127.0.0.1:{closed}")
        post(m, "fo4", "fo-4@example.com")
        t0 = time.monotonic()
        run_once(m)
        assert time.monotonic() - t0 < 30
        why = deferred_reason(m)
        assert why.startswith(f"127.0.0.1:{busy.port}: 421 4.3.2"), why
        assert f"; 127.0.0.1:{closed}: connect to 127.0.0.1:{closed}:" in why
    finally:
        busy.stop()
