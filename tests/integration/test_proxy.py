"""The PROXY protocol on proxy_listen (and proxy_listen_tls), spoken by
the test itself as a balancer would, and the drain on SIGUSR2.

- the client address a header carries is the one in Received:, the
  index, the log, the per-address session limit, the auth throttle and
  require_tls's exemption;
- a header from a peer not in proxy_trusted, a malformed v1 or v2 header,
  one that does not come within proxy_timeout: the connection is closed
  without a greeting, and the log says why;
- v2 LOCAL (a balancer's health check) is a session of the balancer;
- SIGUSR2: no new connections, the sessions finish, mppd exits.

tests/integration/test_cluster.py puts a real HAProxy in front.
"""

import signal
import socket
import ssl
import struct
import time

import pytest

from conftest import REPLY, Client, free_port, message, wait_for
from test_tls import pki, tls_context  # noqa: F401  (pki is a fixture)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src="192.0.2.7", dst="198.51.100.1", sport=40000, dport=218):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src="192.0.2.7", dst="198.51.100.1", sport=40000, dport=218,
       command=1, tlvs=b""):
    if ":" in src:
        fam, af = 0x21, socket.AF_INET6
    else:
        fam, af = 0x11, socket.AF_INET
    body = (socket.inet_pton(af, src) + socket.inet_pton(af, dst)
            + struct.pack(">HH", sport, dport) + tlvs)
    return SIG + bytes([0x20 | command, fam]) + struct.pack(">H", len(body)) + body


def v2_local():
    return SIG + b"\x20\x00\x00\x00"


def ssl_tlv(version=b"TLSv1.3"):
    sub = b"\x21" + struct.pack(">H", len(version)) + version
    value = b"\x01" + b"\x00\x00\x00\x00" + sub
    return b"\x20" + struct.pack(">H", len(value)) + value


def proxy_mppd(factory, sub="a", **overrides):
    """An mppd with a PROXY port (m.proxy_port) trusting 127.0.0.1 only,
    and user alice."""
    m = factory(sub, **overrides)
    m.proxy_port = free_port()
    m.settings.setdefault("proxy_listen", f"127.0.0.1:{m.proxy_port}")
    m.settings.setdefault("proxy_trusted", "127.0.0.1")
    m.add_user("alice", "secret")
    return m.start()


@pytest.fixture
def pmppd(mppd_factory):
    return proxy_mppd(mppd_factory)


def balancer(m, header=b"", source="127.0.0.1", timeout=10.0, port=None):
    """A connection to m's PROXY port from source, header sent."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port or m.proxy_port))
    if header:
        s.sendall(header)
    return Client(m.proxy_port, sock=s)


def no_greeting(c, timeout=5.0):
    """The server closes without sending a byte."""
    c.sock.settimeout(timeout)
    try:
        data = c.sock.recv(100)
    except ConnectionResetError:
        data = b""
    return data == b""


def post_via(m, header, user="alice", password="secret"):
    c = balancer(m, header).greet()
    assert c.login(user, password) == 250
    assert c.post(message()) == 250
    assert c.cmd("QUIT") == 221
    c.close()


# ------------------------------------------------------ the client address

@pytest.mark.parametrize("make", [v1, v2], ids=["v1", "v2"])
def test_header_address_is_the_client_everywhere(pmppd, make):
    post_via(pmppd, make(src="192.0.2.7"))
    (msg,) = pmppd.stored()
    assert msg["client_addr"] == "192.0.2.7"
    assert msg["text"].startswith(b"Received: from [192.0.2.7] (user alice)")
    log = pmppd.log()
    assert "client=[192.0.2.7] connect" in log
    assert "via=[127.0.0.1]" in log
    assert "client=[192.0.2.7] user=alice result=accepted" in log
    # (session 1 is conftest's probe of the plain port at start)
    assert not [ln for ln in log.splitlines()
                if "client=[127.0.0.1]" in ln and "session=1 " not in ln]


@pytest.mark.parametrize("make", [v1, v2], ids=["v1", "v2"])
def test_ipv6_client_in_canonical_form(pmppd, make):
    src = "2001:DB8:0::7" if make is v1 else "2001:db8::7"
    post_via(pmppd, make(src=src, dst="2001:db8::1"))
    (msg,) = pmppd.stored()
    assert msg["client_addr"] == "2001:db8::7"
    assert b"Received: from [2001:db8::7]" in msg["text"]


def test_header_and_commands_in_one_segment(pmppd):
    """What follows the header in the same read is the session's."""
    c = balancer(pmppd, v2() + b"USER alice\r\nPASS secret\r\nNOOP\r\n")
    assert c.line() == REPLY[220]
    assert c.line() == REPLY[250]
    assert c.line() == REPLY[250]
    assert c.line() == REPLY[250]
    c.close()


def test_header_in_pieces_within_the_deadline(mppd_factory):
    m = proxy_mppd(mppd_factory, proxy_timeout=3)
    c = balancer(m)
    h = v1()
    for i in range(0, len(h), 10):
        c.send(h[i:i + 10])
        time.sleep(0.05)
    c.greet()
    assert c.login("alice", "secret") == 250
    c.close()


def test_v2_local_is_the_balancer(pmppd):
    """A health check (LOCAL) gets the greeting, as the balancer itself."""
    c = balancer(pmppd, v2_local())
    assert c.line() == REPLY[220]
    c.close()
    post_via(pmppd, v2_local())
    (msg,) = pmppd.stored()
    assert msg["client_addr"] == "127.0.0.1"
    assert "command=local" in pmppd.log()


def test_v1_unknown_is_the_balancer(pmppd):
    post_via(pmppd, b"PROXY UNKNOWN\r\n")
    (msg,) = pmppd.stored()
    assert msg["client_addr"] == "127.0.0.1"


def test_plain_listen_takes_no_header(pmppd):
    """listen stays plain MPP: a PROXY line there is an unknown verb."""
    c = pmppd.client()
    c.send(v1())
    assert c.code() == 500
    c.close()


# ------------------------------------------- refused: closed, no greeting

def test_untrusted_peer_is_closed_unheard(pmppd):
    c = balancer(pmppd, v1(src="192.0.2.7"), source="127.0.0.2")
    assert no_greeting(c)
    wait_for(lambda: 'client=[127.0.0.2] proxy=refused reason="not in '
             'proxy_trusted"' in pmppd.log(), what="the refusal logged")
    assert "192.0.2.7" not in pmppd.log()


def test_trust_by_network(mppd_factory):
    m = proxy_mppd(mppd_factory, proxy_trusted="10.0.0.0/8, 127.0.0.0/30")
    post_via(m, v1(src="192.0.2.9"))
    c = balancer(m, v1(), source="127.0.0.4")
    assert no_greeting(c)


BAD = {
    "not a header": (b"USER alice\r\n", "not a PROXY header"),
    "v1 five fields": (b"PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",
                       "v1: not six fields"),
    "v1 LF alone": (b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n",
                    "v1: LF without CR"),
    "v1 bad address": (b"PROXY TCP4 192.0.2.07 198.51.100.1 1 2\r\n",
                       "v1: bad address"),
    "v1 too long": (b"PROXY UNKNOWN " + b"f" * 120, "v1: no CRLF"),
    "v2 command 2": (SIG + b"\x22\x11\x00\x0c" + bytes(12),
                     "v2: bad version or command"),
    "v2 version 1": (SIG + b"\x11\x11\x00\x0c" + bytes(12),
                     "v2: bad version or command"),
    "v2 family 4": (SIG + b"\x21\x41\x00\x0c" + bytes(12),
                    "v2: bad address family"),
    "v2 too long": (SIG + b"\x21\x11\xff\xff", "v2: header too long"),
    "v2 short block": (SIG + b"\x21\x11\x00\x08" + bytes(8),
                       "v2: address block too short"),
    "v2 TLV overrun": (v2(tlvs=b"\x04\x00\x09ab"), "v2: bad TLV"),
    "v2 wrong CRC": (v2(tlvs=b"\x03\x00\x04\x00\x00\x00\x01"),
                     "v2: CRC32C mismatch"),
    "TLS hello": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                  "not a PROXY header"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_header_closes_without_greeting(pmppd, case):
    data, reason = BAD[case]
    c = balancer(pmppd, data)
    assert no_greeting(c)
    wait_for(lambda: f'client=[127.0.0.1] proxy=refused reason="{reason}'
             in pmppd.log(), what="the refusal logged")
    assert "session=2" not in pmppd.log()
    pmppd.stop()
    assert pmppd.stored() == []


def test_silent_balancer_is_cut_at_proxy_timeout(mppd_factory):
    m = proxy_mppd(mppd_factory, proxy_timeout=1)
    t0 = time.monotonic()
    c = balancer(m)
    assert no_greeting(c, timeout=10)
    assert 0.8 < time.monotonic() - t0 < 4
    assert 'proxy=refused reason="timeout"' in m.log()


def test_trickled_header_is_cut_at_the_deadline(mppd_factory):
    """The deadline runs from accept: bytes that trickle in do not
    extend it."""
    m = proxy_mppd(mppd_factory, proxy_timeout=1)
    t0 = time.monotonic()
    c = balancer(m)
    cut = None
    for b in v1():
        try:
            c.send(bytes([b]))
        except OSError:
            cut = time.monotonic() - t0
            break
        time.sleep(0.1)
    wait_for(lambda: 'reason="timeout"' in m.log(), what="the cut logged")
    assert cut is None or cut < 4
    assert "session=2" not in m.log()


def test_silent_headers_are_bounded_by_max_sessions(mppd_factory):
    """Connections that owe their header count against max_sessions."""
    m = proxy_mppd(mppd_factory, max_sessions=3, proxy_timeout=10)
    held = [balancer(m) for _ in range(3)]
    time.sleep(0.3)
    c = balancer(m, v1())
    assert c.line() == REPLY[451]
    for h in held:
        h.close()


# ----------------------------------------- limits act on the true address

def test_per_ip_limit_counts_true_addresses(mppd_factory):
    m = proxy_mppd(mppd_factory, max_sessions_per_ip=2)
    a = [balancer(m, v1(src="192.0.2.7")).greet() for _ in range(2)]
    third = balancer(m, v1(src="192.0.2.7"))
    assert third.line() == REPLY[451]
    other = balancer(m, v2(src="192.0.2.8")).greet()
    assert other.login("alice", "secret") == 250
    assert "client=[192.0.2.7] refused=max_sessions_per_ip" in m.log()
    for c in a + [other]:
        c.close()


def test_auth_throttle_counts_true_addresses(mppd_factory):
    m = proxy_mppd(mppd_factory, auth_fail_limit=2)
    for _ in range(2):
        c = balancer(m, v1(src="192.0.2.7")).greet()
        assert c.login("alice", "wrong") == 530
        c.close()
    c = balancer(m, v1(src="192.0.2.7")).greet()
    assert c.login("alice", "secret") == 530
    assert "client=[192.0.2.7] auth=throttled" in m.log()
    c = balancer(m, v1(src="192.0.2.8")).greet()
    assert c.login("alice", "secret") == 250
    assert "client=[192.0.2.8] auth=throttled" not in m.log()


REQUIRE_TLS = {
    "client on a network, no TLS": (v1(dst="198.51.100.1"), 530),
    "client on loopback": (v1(src="127.0.0.9", dst="127.0.0.1"), 250),
    "TLS to the balancer": (v2(dst="198.51.100.1", tlvs=ssl_tlv()), 250),
    "health check": (v2_local(), 250),
}


@pytest.mark.parametrize("case", sorted(REQUIRE_TLS))
def test_require_tls_judges_the_clients_hop(mppd_factory, case):
    header, code = REQUIRE_TLS[case]
    m = proxy_mppd(mppd_factory, require_tls="yes")
    c = balancer(m, header).greet()
    assert c.login("alice", "secret") == code
    c.close()
    assert ("password sent in clear" in m.log()) == (code == 530)
    if header is REQUIRE_TLS["TLS to the balancer"][0]:
        assert "client_tls=TLSv1.3" in m.log()


# ------------------------------------------------------ proxy_listen_tls

def test_proxy_listen_tls_header_before_handshake(mppd_factory, pki):  # noqa: F811
    port = free_port()
    m = proxy_mppd(mppd_factory, proxy_listen="", proxy_listen_tls=f"127.0.0.1:{port}",
                   tls_cert=str(pki.cert), tls_key=str(pki.key))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.sendall(v2(src="192.0.2.77"))
    sock = tls_context(pki.ca_pem).wrap_socket(raw, server_hostname="localhost")
    c = Client(port, sock=sock).greet()
    assert c.login("alice", "secret") == 250
    assert c.post(message()) == 250
    c.close()
    (msg,) = m.stored()
    assert msg["client_addr"] == "192.0.2.77"
    log = m.log()
    assert "client=[192.0.2.77] tls=TLSv1." in log
    assert "proxy=v2 via=[127.0.0.1]" in log


# --------------------------------------------------------------- drain

def test_drain_finishes_a_text_then_exits(mppd):
    c = mppd.client()
    assert c.login("alice", "secret") == 250
    assert c.cmd("DATA") == 354
    c.send(message()[:30])
    mppd.proc.send_signal(signal.SIGUSR2)
    wait_for(lambda: "draining: 1 session(s)" in mppd.log(), what="drain")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", mppd.port), timeout=5)
    time.sleep(0.5)
    assert mppd.running()
    c.send(message()[30:] + ".\r\n")
    assert c.code() == 250
    assert c.post(message(subject="second")) == 250   # it goes on
    assert c.cmd("QUIT") == 221
    mppd.proc.wait(10)
    assert mppd.proc.returncode == 0
    assert len(mppd.stored()) == 2


def test_drain_with_no_session_exits_at_once(mppd):
    mppd.proc.send_signal(signal.SIGUSR2)
    mppd.proc.wait(5)
    assert mppd.proc.returncode == 0


def test_drain_timeout_bounds_the_wait(mppd_factory):
    m = mppd_factory(drain_timeout=1)
    m.add_user("alice", "secret")
    m.start()
    c = m.client()
    assert c.login("alice", "secret") == 250
    t0 = time.monotonic()
    m.proc.send_signal(signal.SIGUSR2)
    m.proc.wait(10)
    assert time.monotonic() - t0 < 5
    assert "drain_timeout over with 1 session(s) left" in m.log()
    assert c.closed()


def test_drain_lets_an_awaited_header_in(mppd_factory):
    """A connection accepted before the drain, its header not yet in,
    still becomes a session."""
    m = proxy_mppd(mppd_factory)
    c = balancer(m)
    time.sleep(0.2)
    m.proc.send_signal(signal.SIGUSR2)
    wait_for(lambda: "draining" in m.log(), what="drain")
    c.send(v1(src="192.0.2.5"))
    c.greet()
    assert c.login("alice", "secret") == 250
    assert c.post(message()) == 250
    assert c.cmd("QUIT") == 221
    m.proc.wait(10)
    assert m.stored()[0]["client_addr"] == "192.0.2.5"
