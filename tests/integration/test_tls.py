"""MPP inside TLS from the first byte (implicit TLS, as RFC 8314 has it for
mail submission): mppd's listen_tls against mppsend --tls, openssl s_client
and Python's ssl module.

- a test PKI made with the openssl command: a CA, a certificate for
  localhost (DNS:localhost, IP:127.0.0.1), the same names from another CA,
  a certificate for another name, and a second localhost certificate for
  the reload test;
- posting over TLS; certificate and host name checks that refuse to send
  the password; a plain client on the TLS port; a silent client that holds
  up nobody; SIGHUP re-reading the certificate; the key file warning;
- the protocol's conformance cases from test_protocol.py again, through
  an ssl-wrapped socket (TLSClient);
- require_tls, which needs a local address that is not loopback: inside a
  network namespace the test makes (TEST-NET-1, 192.0.2.1), as root only.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from conftest import BIN, REPLY, Client, Mppd, free_port, message, wait_for
from test_mppsend import (BODY, EX_NOINPUT, EX_NOPERM, EX_OK, EX_TEMPFAIL,
                          EX_USAGE, HEADERS, run_mppsend, split_stored)
from test_protocol import CELLS, ask, end_text, expect_state, rest_of_stream

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None,
                                reason="the openssl command is needed to "
                                       "make the test certificates")

SERVE_SERIAL = 0x1001      # the localhost certificate mppd serves
RELOAD_SERIAL = 0x2002     # the one that replaces it on SIGHUP


# ------------------------------------------------------------ test PKI

def openssl(*args, cwd):
    r = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True,
                       text=True)
    assert r.returncode == 0, f"openssl {' '.join(args)}:\n{r.stderr}"


CA_EXT = """[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

SERVER_EXT = """basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {san}
"""


class Pki:
    """Certificates and keys (PEM) under one directory."""

    def __init__(self, d):
        self.dir = d
        (d / "ca.cnf").write_text(CA_EXT)

    def ca(self, name, cn):
        openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={cn}",
                "-config", "ca.cnf", "-extensions", "ca", cwd=self.dir)
        return self.dir / f"{name}.pem"

    def server(self, name, cn, san, ca, serial):
        """Key name.key and certificate name.pem signed by CA ca."""
        (self.dir / f"{name}.ext").write_text(SERVER_EXT.format(san=san))
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                "-config", "ca.cnf", cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem",
                "-CAkey", f"{ca}.key", "-set_serial", str(serial), "-days",
                "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
                cwd=self.dir)
        (self.dir / f"{name}.key").chmod(0o600)
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.ca_pem = p.ca("ca", "mpp test CA")
    p.other_ca_pem = p.ca("other", "another test CA")
    local = "DNS:localhost,IP:127.0.0.1"
    p.cert, p.key = p.server("srv", "localhost", local, "ca", SERVE_SERIAL)
    p.cert2, p.key2 = p.server("srv2", "localhost", local, "ca",
                               RELOAD_SERIAL)
    p.other_cert, p.other_key = p.server("elsewhere", "localhost", local,
                                         "other", 0x3003)
    p.name_cert, p.name_key = p.server("name", "mail.example.org",
                                       "DNS:mail.example.org", "ca", 0x4004)
    return p


# -------------------------------------------------------------- clients

def tls_context(cafile, **kw):
    ctx = ssl.create_default_context(cafile=str(cafile))
    # mppd closes after 221 without close_notify: an end, not an attack
    ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


class TLSClient(Client):
    """conftest's Client through an ssl-wrapped socket: the CA's
    certificate trusted, the server's name checked."""

    def __init__(self, port, cafile, host="127.0.0.1",
                 server_hostname="localhost", timeout=10.0, **ctx_kw):
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            sock = tls_context(cafile, **ctx_kw).wrap_socket(
                raw, server_hostname=server_hostname)
        except BaseException:
            raw.close()
            raise
        super().__init__(port, sock=sock, timeout=timeout)

    def serial(self):
        return int(self.sock.getpeercert()["serialNumber"], 16)

    def closed(self, timeout=5.0):
        try:
            return super().closed(timeout)
        except (ssl.SSLError, OSError):
            return True


def start_tls_mppd(factory, pki, sub="a", cert=None, key=None, **overrides):
    """A running mppd with a TLS listener (m.tls_port) and user alice."""
    m = factory(sub, **overrides)
    m.tls_port = free_port()
    m.settings.update(listen_tls=f"127.0.0.1:{m.tls_port}",
                      tls_cert=str(cert or pki.cert),
                      tls_key=str(key or pki.key))
    m.add_user("alice", "secret")
    m.start()
    m.tls_client = lambda timeout=10.0, **kw: TLSClient(
        m.tls_port, pki.ca_pem, timeout=timeout, **kw).greet()
    return m


@pytest.fixture
def tls_mppd(mppd_factory, pki):
    return start_tls_mppd(mppd_factory, pki)


def tls_env(m, host="localhost"):
    return {"MPP_SERVER": f"{host}:{m.tls_port}", "MPP_USER": "alice",
            "MPP_PASSWORD": "secret"}


def never_authenticated(m):
    """Nothing in mppd's log says a USER or PASS was read."""
    log = m.log()
    return ("auth=" not in log and "user=" not in log
            and "-> user_ok" not in log and " backend=" not in log)


# ------------------------------------------------------- mppsend --tls

def test_mppsend_posts_over_tls(tls_mppd, pki, tmp_path):
    r = run_mppsend(["-v", "--tls", "--ca", str(pki.ca_pem)],
                    stdin=HEADERS + b"\n" + BODY, env=tls_env(tls_mppd),
                    home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    err = r.stderr.decode()
    assert f"connected to localhost port {tls_mppd.tls_port}" in err
    assert "certificate verified for localhost" in err
    assert "TLS TLSv1." in err
    assert "secret" not in err
    (msg,) = tls_mppd.stored()
    assert msg["auth_user"] == "alice"
    head, body = split_stored(msg["text"])
    assert body == BODY
    assert HEADERS in head
    assert "tls=TLSv1." in tls_mppd.log()


def test_mppsend_tls_to_ip_literal(tls_mppd, pki, tmp_path):
    """An address is checked against the certificate's IP names."""
    r = run_mppsend(["-v", "--tls", "--ca", str(pki.ca_pem)],
                    stdin=HEADERS + b"\nby address\n",
                    env=tls_env(tls_mppd, "127.0.0.1"), home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    assert b"certificate verified for 127.0.0.1" in r.stderr
    assert len(tls_mppd.stored()) == 1


def test_mppsend_tls_from_rc_and_env(tls_mppd, pki, tmp_path):
    shutil.copy(pki.ca_pem, tmp_path / "mpp-ca.pem")
    rc = tmp_path / ".mpprc"
    rc.write_text(f"server = localhost:{tls_mppd.tls_port}\nuser = alice\n"
                  "tls = yes\nca = ~/mpp-ca.pem\n")
    r = run_mppsend([], stdin=HEADERS + b"\nrc\n",
                    env={"MPP_PASSWORD": "secret"}, home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    # $MPP_TLS, with the CA from the command line
    rc.write_text("user = alice\n")
    r = run_mppsend(["--ca", str(pki.ca_pem)], stdin=HEADERS + b"\nenv\n",
                    env={**tls_env(tls_mppd), "MPP_TLS": "1"},
                    home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    # --no-tls beats the rc file: plain MPP on the plain port
    rc.write_text(f"server = 127.0.0.1:{tls_mppd.port}\ntls = yes\n"
                  "ca = /nonexistent/ca.pem\n")
    r = run_mppsend(["--no-tls", "-u", "alice"], stdin=HEADERS + b"\nno\n",
                    env={"MPP_PASSWORD": "secret"}, home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    bodies = sorted(split_stored(m["text"])[1] for m in tls_mppd.stored())
    assert bodies == [b"env\n", b"no\n", b"rc\n"]


def test_mppsend_tls_in_sendmail_mode(tls_mppd, pki, tmp_path):
    """A mail program's sendmail command with --tls in it."""
    r = run_mppsend(["--tls", "--ca", str(pki.ca_pem), "-oi", "-t", "--",
                     "bob@example.org"], stdin=HEADERS + b"\nmutt\n",
                    env=tls_env(tls_mppd), home=tmp_path)
    assert r.returncode == EX_OK, r.stderr
    (msg,) = tls_mppd.stored()
    assert split_stored(msg["text"])[1] == b"mutt\n"


def test_mppsend_tls_usage_and_ca_errors(tmp_path, pki):
    args = ["-s", f"localhost:{free_port()}", "-u", "alice"]
    env = {"MPP_PASSWORD": "x"}
    r = run_mppsend(args + ["--ca", str(pki.ca_pem)], env=env, home=tmp_path)
    assert r.returncode == EX_USAGE
    assert b"give --tls too" in r.stderr
    r = run_mppsend(args, env={**env, "MPP_TLS": "maybe"}, home=tmp_path)
    assert r.returncode == EX_USAGE
    r = run_mppsend(args + ["--tls", "--ca", str(tmp_path / "none.pem")],
                    env=env, home=tmp_path)
    assert r.returncode == EX_NOINPUT
    assert b"none.pem" in r.stderr
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    r = run_mppsend(args + ["--tls", "--ca", str(tmp_path / "junk.pem")],
                    env=env, home=tmp_path)
    assert r.returncode == EX_NOINPUT
    rc = tmp_path / ".mpprc"
    rc.write_text("tls = perhaps\n")
    r = run_mppsend(args, env=env, home=tmp_path)
    assert r.returncode == 78
    assert b".mpprc:1: tls must be yes or no" in r.stderr


@pytest.mark.parametrize("case", ["other-ca-file", "system-store",
                                  "server-cert-from-other-ca"])
def test_mppsend_unknown_ca_refused(mppd_factory, pki, tmp_path, case):
    """Exit 75 with the reason, and the password never leaves."""
    if case == "server-cert-from-other-ca":
        m = start_tls_mppd(mppd_factory, pki, cert=pki.other_cert,
                           key=pki.other_key)
    else:
        m = start_tls_mppd(mppd_factory, pki)
    args = ["--tls"]
    if case != "system-store":
        args += ["--ca", str(pki.other_ca_pem if case == "other-ca-file"
                             else pki.ca_pem)]
    r = run_mppsend(args, stdin=HEADERS + b"\nhi\n", env=tls_env(m),
                    home=tmp_path)
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert (b"mppsend: TLS: certificate verify failed: unable to get local "
            b"issuer certificate") in r.stderr
    wait_for(lambda: "tls handshake failed" in m.log(),
             what="the handshake failure in the log")
    assert never_authenticated(m), m.log()
    assert m.stored() == []


@pytest.mark.parametrize("host,why", [
    ("localhost", b"hostname mismatch"),
    ("127.0.0.1", b"IP address mismatch"),
])
def test_mppsend_wrong_host_name_refused(mppd_factory, pki, tmp_path, host,
                                         why):
    m = start_tls_mppd(mppd_factory, pki, cert=pki.name_cert,
                       key=pki.name_key)
    r = run_mppsend(["--tls", "--ca", str(pki.ca_pem)],
                    stdin=HEADERS + b"\nhi\n", env=tls_env(m, host),
                    home=tmp_path)
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert b"TLS: certificate verify failed: " + why in r.stderr
    wait_for(lambda: "tls handshake failed" in m.log(),
             what="the handshake failure in the log")
    assert never_authenticated(m), m.log()
    assert m.stored() == []


def test_mppsend_tls_against_plain_port(tls_mppd, pki, tmp_path):
    r = run_mppsend(["--tls", "--ca", str(pki.ca_pem), "-T", "5", "-s",
                     f"localhost:{tls_mppd.port}", "-u", "alice"],
                    stdin=HEADERS + b"\nhi\n", env={"MPP_PASSWORD": "secret"},
                    home=tmp_path)
    assert r.returncode == EX_TEMPFAIL
    assert (b'TLS: the server answered without TLS: "220 Message Posting '
            b'Service Ready."') in r.stderr
    assert never_authenticated(tls_mppd)


def test_mppsend_tls_over_session_limit(mppd_factory, pki, tmp_path):
    """Over max_sessions_per_ip a TLS port closes the connection at once
    (a clear-text 451 would be noise before the handshake): the client
    sees a temporary failure and nothing is stored."""
    m = start_tls_mppd(mppd_factory, pki, max_sessions_per_ip=1)
    hold = m.tls_client()
    try:
        r = run_mppsend(["--tls", "--ca", str(pki.ca_pem)],
                        stdin=HEADERS + b"\nhi\n", env=tls_env(m),
                        home=tmp_path)
    finally:
        hold.close()
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert b"connection closed" in r.stderr
    # No clear-text reply was taken for one (the port number may hold
    # the digits 451, so look for the reply's text).
    assert REPLY[451].strip() not in r.stderr
    assert "refused=max_sessions_per_ip" in m.log()
    assert m.stored() == []


def test_mppsend_plain_against_tls_port_times_out(tls_mppd, tmp_path):
    """Both sides wait for the other: the client's own timeout ends it."""
    t0 = time.monotonic()
    r = run_mppsend(["-T", "2", "-s", f"localhost:{tls_mppd.tls_port}",
                     "-u", "alice"], stdin=HEADERS + b"\nhi\n",
                    env={"MPP_PASSWORD": "secret"}, home=tmp_path)
    assert r.returncode == EX_TEMPFAIL
    assert b"sent no reply within 2 s" in r.stderr
    assert time.monotonic() - t0 < 10
    assert never_authenticated(tls_mppd)


# ------------------------------------------------------ openssl s_client

def test_openssl_s_client_session(tls_mppd, pki):
    session = (b"NOOP\r\nUSER alice\r\nPASS secret\r\nDATA\r\n" +
               message(subject="via s_client",
                       body="..stuffed\r\nline\r\n").encode() +
               b".\r\nQUIT\r\n")
    r = subprocess.run(
        [OPENSSL, "s_client", "-quiet", "-connect",
         f"127.0.0.1:{tls_mppd.tls_port}", "-CAfile", str(pki.ca_pem),
         "-verify_return_error", "-verify_hostname", "localhost",
         "-servername", "localhost"],
        input=session, capture_output=True, timeout=30)
    assert r.stdout == (REPLY[220] + REPLY[250] + REPLY[250] + REPLY[250] +
                        REPLY[354] + REPLY[250] + REPLY[221]), r.stderr
    (msg,) = tls_mppd.stored()
    assert b"Subject: via s_client\n" in msg["text"]
    assert msg["text"].endswith(b"\n\n.stuffed\nline\n")


# ------------------------------------------- a plain client on TLS port

def test_plain_client_on_tls_port_fails_cleanly(tls_mppd):
    c = Client(tls_mppd.tls_port)
    c.send(b"USER alice\r\nPASS secret\r\n")
    assert rest_of_stream(c) == b""        # no reply in clear, closed
    c.close()
    wait_for(lambda: "tls handshake failed" in tls_mppd.log(),
             what="tls handshake failed")
    assert "(1 so far)" in tls_mppd.log()
    assert never_authenticated(tls_mppd)
    # binary junk too; then both listeners still serve
    c = Client(tls_mppd.tls_port)
    c.send(bytes(range(256)) * 64)
    rest_of_stream(c)
    wait_for(lambda: "(2 so far)" in tls_mppd.log(), what="second failure")
    assert tls_mppd.running()
    t = tls_mppd.tls_client()
    assert t.login("alice", "secret") == 250
    assert t.post(message()) == 250
    p = tls_mppd.client()
    assert p.login("alice", "secret") == 250
    assert len(tls_mppd.stored()) == 1


def test_tls_min_version_13(mppd_factory, pki, tmp_path):
    m = start_tls_mppd(mppd_factory, pki, tls_min_version="1.3")
    with pytest.raises(ssl.SSLError):
        m.tls_client(maximum_version=ssl.TLSVersion.TLSv1_2)
    wait_for(lambda: "tls handshake failed" in m.log(), what="failure log")
    c = m.tls_client()
    assert c.sock.version() == "TLSv1.3"
    r = run_mppsend(["--tls", "--ca", str(pki.ca_pem)],
                    stdin=HEADERS + b"\nhi\n", env=tls_env(m), home=tmp_path)
    assert r.returncode == EX_OK, r.stderr


# ------------------------------------------- certificate reload, key mode

def test_sighup_rereads_certificate(mppd_factory, pki):
    d = pki.dir.parent / f"reload-{secrets.token_hex(4)}"
    d.mkdir()
    cert, key = d / "cert.pem", d / "key.pem"
    shutil.copy(pki.cert, cert)
    shutil.copy(pki.key, key)
    key.chmod(0o600)
    m = start_tls_mppd(mppd_factory, pki, cert=cert, key=key)
    before = m.tls_client()
    assert before.serial() == SERVE_SERIAL
    assert before.login("alice", "secret") == 250
    # the new pair replaces the old, each file by rename
    shutil.copy(pki.cert2, d / "cert.new")
    shutil.copy(pki.key2, d / "key.new")
    (d / "key.new").chmod(0o600)
    os.rename(d / "key.new", key)
    os.rename(d / "cert.new", cert)
    mark = m.log().count("TLS certificate reloaded")
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: m.log().count("TLS certificate reloaded") > mark,
             what="TLS certificate reloaded")
    after = m.tls_client()
    assert after.serial() == RELOAD_SERIAL
    assert after.login("alice", "secret") == 250
    assert after.post(message(subject="new cert")) == 250
    # the session from before the reload goes on with its own
    assert before.post(message(subject="old cert")) == 250
    assert len(m.stored()) == 2


def test_sighup_with_bad_new_key_keeps_old(mppd_factory, pki):
    d = pki.dir.parent / f"badreload-{secrets.token_hex(4)}"
    d.mkdir()
    cert, key = d / "cert.pem", d / "key.pem"
    shutil.copy(pki.cert, cert)
    shutil.copy(pki.key, key)
    key.chmod(0o600)
    m = start_tls_mppd(mppd_factory, pki, cert=cert, key=key)
    shutil.copy(pki.cert2, cert)     # a certificate without its key
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "TLS reload failed" in m.log(), what="reload failure")
    assert m.running()
    c = m.tls_client()
    assert c.serial() == SERVE_SERIAL
    assert c.login("alice", "secret") == 250


@pytest.mark.parametrize("mode,warned", [(0o644, True), (0o604, True),
                                         (0o600, False), (0o640, False)])
def test_key_file_readable_by_others_warns(mppd_factory, pki, mode, warned):
    d = pki.dir.parent / f"mode-{secrets.token_hex(4)}"
    d.mkdir()
    key = d / "key.pem"
    shutil.copy(pki.key, key)
    key.chmod(mode)
    m = start_tls_mppd(mppd_factory, pki, key=key)
    assert ("readable by others" in m.log()) == warned, m.log()
    c = m.tls_client()
    assert c.login("alice", "secret") == 250


# ------------------------------------------------------- slow handshakes

def test_silent_tls_clients_delay_nobody(mppd_factory, pki, tmp_path):
    m = start_tls_mppd(mppd_factory, pki)
    silent = [socket.create_connection(("127.0.0.1", m.tls_port))
              for _ in range(8)]
    # and one that stops in the middle of its ClientHello
    half = socket.create_connection(("127.0.0.1", m.tls_port))
    half.sendall(bytes.fromhex("16030100c8010000c40303") + b"\x00" * 20)
    try:
        t0 = time.monotonic()
        r = run_mppsend(["--tls", "--ca", str(pki.ca_pem)],
                        stdin=HEADERS + b"\nquick\n", env=tls_env(m),
                        home=tmp_path)
        elapsed = time.monotonic() - t0
        assert r.returncode == EX_OK, r.stderr
        assert elapsed < 5, elapsed
        c = m.tls_client()
        assert c.login("alice", "secret") == 250
        assert c.post(message()) == 250
        assert len(m.stored()) == 2
        # the silent ones are still waiting, not dropped for the others
        for s in silent:
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)
    finally:
        for s in silent + [half]:
            s.close()


def test_silent_tls_client_times_out(mppd_factory, pki):
    """A handshake that never comes ends at idle_timeout, logged."""
    m = start_tls_mppd(mppd_factory, pki, idle_timeout=1)
    s = socket.create_connection(("127.0.0.1", m.tls_port), timeout=10)
    t0 = time.monotonic()
    assert s.recv(100) == b""
    assert 0.5 <= time.monotonic() - t0 <= 8
    s.close()
    wait_for(lambda: "tls handshake failed" in m.log(), what="failure log")
    assert m.running()


# --------------------------------------- protocol conformance over TLS

def tls_to_state(m, state):
    """test_protocol.to_state through TLS."""
    c = m.tls_client()
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
    return c


@pytest.mark.parametrize("state,command,code,after", CELLS,
                         ids=[f"{s}-{c.replace(' ', '_')}-{r}"
                              for s, c, r, _ in CELLS])
def test_tls_state_table_cell(tls_mppd, state, command, code, after):
    c = tls_to_state(tls_mppd, state)
    assert ask(c, command) == REPLY[code]
    if after is None:
        assert rest_of_stream(c) == b"", "bytes after 221"
    elif after == "text":
        assert end_text(c) == REPLY[250]
        expect_state(c, "accepted")
    else:
        expect_state(c, after)


@pytest.mark.parametrize("state", ["start", "user_ok", "authed", "spent"])
def test_tls_unknown_verbs_500(tls_mppd, state):
    c = tls_to_state(tls_mppd, state)
    for line in ("HELO x", "RSET", "STARTTLS", "", "NOOPS"):
        assert ask(c, line) == REPLY[500], repr(line)
    expect_state(c, state)


@pytest.mark.parametrize("state,cmd", [("start", "NOOP x"),
                                       ("authed", "DATA now"),
                                       ("start", "USER a b")])
def test_tls_501(tls_mppd, state, cmd):
    c = tls_to_state(tls_mppd, state)
    assert ask(c, cmd) == REPLY[501]
    expect_state(c, state)


def test_tls_512_and_513_byte_lines(tls_mppd):
    c = tls_to_state(tls_mppd, "user_ok")
    line = b"PASS " + b"x" * (512 - 7) + b"\r\n"
    assert len(line) == 512
    c.send(line)
    assert c.line() == REPLY[530]          # read whole: a wrong password
    c = tls_to_state(tls_mppd, "user_ok")
    c.send(b"PASS " + b"y" * (513 - 7) + b"\r\nNOOP\r\n")
    assert c.line() == REPLY[500]
    assert c.line() == REPLY[250]
    expect_state(c, "user_ok")


def test_tls_one_mib_command_line(tls_mppd):
    c = tls_to_state(tls_mppd, "user_ok")
    c.send(b"PASS " + b"A" * (1 << 20) + b"\r\n")
    assert c.line() == REPLY[500]
    assert ask(c, "NOOP") == REPLY[250]
    expect_state(c, "user_ok")


def test_tls_pipelined_session_in_one_send(tls_mppd):
    c = tls_mppd.tls_client()
    c.send(b"USER alice\r\nPASS secret\r\nDATA\r\n" +
           message(subject="pipelined").encode() + b".\r\nDATA\r\n" +
           message(subject="second").encode() + b".\r\nNOOP\r\nQUIT\r\n")
    assert rest_of_stream(c) == (REPLY[250] + REPLY[250] + REPLY[354] +
                                 REPLY[250] + REPLY[354] + REPLY[250] +
                                 REPLY[250] + REPLY[221])
    assert len(tls_mppd.stored()) == 2


def test_tls_pipelined_large_texts_while_auth_pending(tls_mppd):
    c = tls_mppd.tls_client(timeout=30)
    big = message(body="").encode() + (b"w" * 998 + b"\r\n") * 1500
    data = (b"USER alice\r\nPASS secret\r\nDATA\r\n" + big + b".\r\n" +
            b"DATA\r\n" + big.replace(b"w", b"v") + b".\r\nQUIT\r\n")
    # One thread: an SSL object must not be read and written at once, and
    # the few replies fit the socket buffers. A server that stopped
    # reading while the check is pending would stall this send.
    c.send(data)
    replies = rest_of_stream(c, timeout=30)
    assert replies == (REPLY[250] + REPLY[250] + REPLY[354] + REPLY[250] +
                       REPLY[354] + REPLY[250] + REPLY[221])
    a, b = tls_mppd.stored()
    assert a["text"].endswith((b"w" * 998 + b"\n") * 1500)
    assert b["text"].endswith((b"v" * 998 + b"\n") * 1500)


def test_tls_session_one_byte_per_record(tls_mppd):
    c = tls_mppd.tls_client()
    text = message(subject="bytewise", body="..dot\r\nline\r\n").encode()
    session = (b"NOOP\r\nUSER alice\r\nPASS secret\r\nDATA\r\n" + text +
               b".\r\nQUIT\r\n")
    for i in range(len(session)):
        c.send(session[i:i + 1])
    assert rest_of_stream(c) == (REPLY[250] + REPLY[250] + REPLY[250] +
                                 REPLY[354] + REPLY[250] + REPLY[221])
    (m,) = tls_mppd.stored()
    assert m["text"].endswith(b"\n\n.dot\nline\n")


def test_tls_one_530_ends_authentication(tls_mppd):
    c = tls_to_state(tls_mppd, "spent")
    assert ask(c, "USER alice") == REPLY[503]
    assert ask(c, "PASS secret") == REPLY[503]
    assert ask(c, "QUIT") == REPLY[221]
    assert rest_of_stream(c) == b""


@pytest.mark.parametrize("state", ["start", "authed"])
def test_tls_idle_client_closed_without_reply(mppd_factory, pki, state):
    m = start_tls_mppd(mppd_factory, pki, idle_timeout=1)
    c = tls_to_state(m, state)
    t0 = time.monotonic()
    assert rest_of_stream(c) == b"", "a reply was sent before closing"
    assert 0.5 <= time.monotonic() - t0 <= 8
    wait_for(lambda: "idle-timeout" in m.log(), what="idle-timeout")


def test_tls_idle_in_text_not_stored(mppd_factory, pki):
    m = start_tls_mppd(mppd_factory, pki, idle_timeout=1)
    c = tls_to_state(m, "text")
    c.send(message(body="").encode() + b"unfinished line")
    assert rest_of_stream(c) == b""
    wait_for(lambda: "idle-timeout" in m.log(), what="idle-timeout")
    assert m.stored() == []


# -------------------------------------------- require_tls in a namespace

NS_CLIENT = r"""
import json, socket, ssl, sys
host, port, tls, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.create_connection((host, port), timeout=10)
if tls == "1":
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    s = ctx.wrap_socket(s, server_hostname="localhost")
f = s.makefile("rb")
out = [f.readline().decode()]
for cmd in ("USER alice", "PASS secret", "QUIT"):
    s.sendall(cmd.encode() + b"\r\n")
    out.append(f.readline().decode())
print(json.dumps(out))
"""


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True,
                          check=check, timeout=30)


@pytest.fixture
def netns():
    """A network namespace of our own: lo, and 192.0.2.1 (TEST-NET-1) on
    a dummy interface (a veth pair when dummy is not available); traffic
    never leaves it. Skipped unless root and `ip netns` works."""
    if os.geteuid() != 0:
        pytest.skip("require_tls needs a non-loopback address: a network "
                    "namespace, which needs root")
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is missing")
    name = f"mpptest-{secrets.token_hex(4)}"
    r = ip("netns", "add", name, check=False)
    if r.returncode != 0:
        pytest.skip(f"ip netns add failed: {r.stderr.strip()}")
    try:
        ip("-n", name, "link", "set", "lo", "up")
        if ip("-n", name, "link", "add", "d0", "type", "dummy",
              check=False).returncode != 0:
            ip("-n", name, "link", "add", "d0", "type", "veth", "peer",
               "name", "d1")
            ip("-n", name, "link", "set", "d1", "up")
        ip("-n", name, "addr", "add", "192.0.2.1/24", "dev", "d0")
        ip("-n", name, "link", "set", "d0", "up")
    except subprocess.CalledProcessError as exc:
        ip("netns", "del", name, check=False)
        pytest.skip(f"cannot set up the namespace: {exc.stderr.strip()}")
    yield name
    ip("netns", "del", name, check=False)


class NsMppd(Mppd):
    """mppd run inside a network namespace; readiness from its log."""

    def __init__(self, tmp_path, ns, **overrides):
        super().__init__(tmp_path, **overrides)
        self.ns = ns

    def start(self, extra_args=(), env=None, bindir=None):
        self.write_config()
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, str(self.bin / "mppd"), "-d",
             "-v", "-c", str(self.config_path)],
            stdout=self.logf, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("mppd exited: " + self.log())
            return "ready" in self.log()
        wait_for(up, what="mppd to be ready")
        return self


def ns_session(ns, host, port, tls, cafile):
    """USER, PASS, QUIT from inside ns; the four reply lines."""
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c",
                        NS_CLIENT, host, str(port), "1" if tls else "0",
                        str(cafile)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.encode() for line in json.loads(r.stdout)]


@pytest.mark.parametrize("require", ["yes", "no"])
def test_require_tls(netns, pki, tmp_path, require):
    plain, local, tls = 2180, 2181, 2182     # the namespace is ours alone
    m = NsMppd(tmp_path, netns, require_tls=require,
               listen=f"192.0.2.1:{plain},127.0.0.1:{local}",
               listen_tls=f"192.0.2.1:{tls}", tls_cert=pki.cert,
               tls_key=pki.key)
    m.add_user("alice", "secret")
    m.start()
    try:
        refused = ns_session(netns, "192.0.2.1", plain, False, pki.ca_pem)
        loopback = ns_session(netns, "127.0.0.1", local, False, pki.ca_pem)
        over_tls = ns_session(netns, "192.0.2.1", tls, True, pki.ca_pem)
        # mppsend says what the refusal means for it
        r = subprocess.run(
            ["ip", "netns", "exec", netns, str(BIN / "mppsend"), "-s",
             f"192.0.2.1:{plain}", "-u", "alice"],
            input=HEADERS + b"\nhi\n", capture_output=True, timeout=60,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                 "HOME": str(tmp_path), "MPP_PASSWORD": "secret"},
            start_new_session=True)
    finally:
        m.stop()
    ok = [REPLY[220], REPLY[250], REPLY[250], REPLY[221]]
    assert loopback == ok
    assert over_tls == ok
    if require == "yes":
        assert refused == [REPLY[220], REPLY[250], REPLY[530], REPLY[221]]
        assert 'auth=refused reason="require_tls' in m.log()
        assert r.returncode == EX_NOPERM, r.stderr
        assert b"530" in r.stderr
        assert len(m.stored()) == 0
    else:
        assert refused == ok
        assert "auth=refused" not in m.log()
        assert r.returncode == EX_OK, r.stderr
        assert len(m.stored()) == 1
