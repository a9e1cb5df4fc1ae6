"""Several mppd nodes behind a real HAProxy (Debian's haproxy), as
docs/scaling.md describes them: each node with its own spool and
mppqueue, all relaying to one smtp-sink; HAProxy in TCP mode sending
PROXY v2 (with a CRC32C), its health checks `tcp-check expect string 220`,
clients hashed to a node by their address (balance source).

Clients post from many loopback source addresses (127.0.N.M), so every
node sees the true client in the PROXY header and HAProxy's own address
on the socket. A client that loses its connection before a message's 250
posts that message again on a new connection, as mppsend's callers do;
so a message may arrive twice only if one of its posts was cut, and never
not at all once any post of it got 250.

- 3,000 messages (CLUSTER_MESSAGES to change it) each delivered exactly
  once, each Received: and
  index row naming the client's own address, `mppq list --json` of every
  node together naming each message's node;
- per-address limits and the auth throttle counting true addresses;
- a node killed with kill -9 mid-load: HAProxy takes it out, the others
  take the new sessions, and when it comes back its spool delivers every
  message it had answered 250;
- a node drained with SIGUSR2 mid-load: no client is cut after DATA, the
  node exits 0, the load goes on elsewhere.
"""

import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, REPLY, ROOT, Client, Mppqueue, free_port, wait_for
from test_smtp_sink import SMTP_SINK, Sink
from test_tls import pki, tls_context  # noqa: F401  (pki is a fixture)

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = [
    pytest.mark.skipif(not os.access(HAPROXY, os.X_OK),
                       reason="haproxy (Debian package haproxy) not installed"),
    pytest.mark.skipif(not os.access(SMTP_SINK, os.X_OK),
                       reason="smtp-sink (Debian package postfix) not installed"),
]

MESSAGES = int(os.environ.get("CLUSTER_MESSAGES", "3000"))
LOAD = max(300, MESSAGES // 3)     # for the node killed and the node drained
SEQ_RE = re.compile(rb"^X-Seq: (\d+)$", re.M)
RECEIVED_RE = re.compile(rb"^Received: from \[([^\]]+)\] \(user alice\)\n"
                         rb"\tby (\S+) \(mppd\) with MPP id (\S+);", re.M)

EXAMPLE_CFG = ROOT / "docs" / "haproxy-mpp.cfg"
GLOBAL_CFG = """\
global
    maxconn 4096
    stats socket {sock} mode 600 level admin
"""


def haproxy_config(sock, port, servers):
    """docs/haproxy-mpp.cfg as the test runs it: its own global section
    (a stats socket), the frontend on the test's port, checks every
    250 ms, the test's nodes for the example's."""
    text = EXAMPLE_CFG.read_text()
    assert "    bind 0.0.0.0:218\n" in text and "inter 2s fall 2 rise 2" in text
    text = text.replace("    bind 0.0.0.0:218\n", f"    bind 127.0.0.1:{port}\n")
    text = text.replace("inter 2s fall 2 rise 2", "inter 250ms fall 2 rise 1")
    text = re.sub(r"^    server .*\n", "", text, flags=re.M)
    return GLOBAL_CFG.format(sock=sock) + text + servers


class HAProxy:
    def __init__(self, d, nodes):
        self.dir = d
        self.port = free_port()
        self.sock = d / "haproxy.sock"
        self.cfg = d / "haproxy.cfg"
        servers = "".join(f"    server {n.name} 127.0.0.1:{n.proxy_port}\n"
                          for n in nodes)
        self.cfg.write_text(haproxy_config(self.sock, self.port, servers))
        self.log = open(d / "haproxy.log", "ab")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.cfg)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.sock.exists() or self.proc.poll() is not None,
                 what="haproxy to start")
        assert self.proc.poll() is None, (d / "haproxy.log").read_text()

    def status(self):
        """{server name: status} from the stats socket: "UP" once a
        health check passed, "DOWN"; anything else as HAProxy says it."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.sock))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            f = dict(zip(head, line.split(",")))
            if f.get("pxname") == "mpp_nodes" and f["svname"] not in ("BACKEND",):
                st = f["status"].split(" ")[0]
                if st == "UP" and not f["check_status"].startswith("L7OK"):
                    st = "UP-unchecked"
                out[f["svname"]] = st
        return out

    def wait_status(self, name, want, timeout=15):
        wait_for(lambda: self.status().get(name) == want, timeout=timeout,
                 interval=0.05, what=f"haproxy to see {name} {want}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


class Node:
    """One mppd with its PROXY port and its mppqueue."""

    def __init__(self, factory, name, sink_port, passwd_from=None):
        self.name = name
        self.mppd = factory(name, hostname=f"{name}.test",
                            transport=f"smtp:127.0.0.1:{sink_port}",
                            queue_interval=1, retry_min=1, retry_max=2,
                            max_sessions_per_ip=1000, auth_fail_limit=0,
                            idle_timeout=30)
        self.proxy_port = free_port()
        self.mppd.settings.update(proxy_listen=f"127.0.0.1:{self.proxy_port}",
                                  proxy_trusted="127.0.0.1")
        if passwd_from is None:
            self.mppd.add_user("alice", "secret", method="sha512")
        else:   # one password file, copied to every node
            shutil.copy(passwd_from, self.mppd.passwd)
        self.queue = None

    def start(self):
        self.mppd.start()
        self.start_queue()
        return self

    def start_queue(self):
        self.queue = Mppqueue(self.mppd).start()

    def kill9(self):
        self.queue.kill9()
        self.mppd.kill9()

    def stop(self):
        if self.queue:
            self.queue.stop()
        self.mppd.stop()

    def rows(self):
        return {r["id"]: r for r in self.mppd.stored()}

    def mppq_list(self):
        r = subprocess.run([str(BIN / "mppq"), "-c", str(self.mppd.config_path),
                            "list", "--state", "all", "--json"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


@pytest.fixture
def cluster(mppd_factory, tmp_path):
    sink = Sink(tmp_path).start()
    nodes = [Node(mppd_factory, "node1", sink.port)]
    nodes += [Node(mppd_factory, f"node{i}", sink.port, nodes[0].mppd.passwd)
              for i in (2, 3)]
    for n in nodes:
        n.start()
    lb = HAProxy(tmp_path, nodes)
    for n in nodes:
        lb.wait_status(n.name, "UP")
    yield nodes, lb, sink
    lb.stop()
    for n in nodes:
        n.stop()
    sink.stop()


# ------------------------------------------------------------- clients

class Load:
    """Clients posting numbered messages through the balancer, each
    session from one source address; what each message got is kept."""

    def __init__(self, port, sources, per_session=10):
        self.port = port
        self.sources = sources
        self.per_session = per_session
        self.lock = threading.Lock()
        self.accepted = {}        # seq -> source address, once it got 250
        self.attempts = {}        # seq -> posts begun
        self.cut_in_text = 0      # connections lost after a 354
        self.cut_before = 0       # lost before that (greeting, login)
        self.errors = []
        self.last_error = None
        self.paused = threading.Event()
        self.paused.set()

    def text(self, seq, src):
        body = "".join(f"line {i} of message {seq}\r\n" for i in range(12))
        return (f"From: alice@example.org\r\nTo: bob@example.com\r\n"
                f"Subject: cluster {seq}\r\nX-Seq: {seq}\r\n"
                f"X-Source: {src}\r\n\r\n{body}.\r\n").encode()

    def session(self, src, seqs):
        """Post seqs on one connection; the ones not accepted are
        returned (the connection was lost)."""
        s = socket.socket()
        s.settimeout(20)
        buf = b""
        state = "connect"

        def line():
            nonlocal buf
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            ln, _, buf = buf.partition(b"\n")
            return ln + b"\n"
        try:
            s.bind((src, 0))
            s.connect(("127.0.0.1", self.port))
            if line() != REPLY[220]:
                raise ConnectionError("no greeting")
            state = "login"
            s.sendall(b"USER alice\r\nPASS secret\r\n")
            if line() != REPLY[250] or line() != REPLY[250]:
                raise AssertionError("login refused")
            while seqs:
                seq = seqs[0]
                self.paused.wait()
                state = "data"
                s.sendall(b"DATA\r\n")
                if line() != REPLY[354]:
                    raise ConnectionError("DATA refused")
                state = "text"
                with self.lock:
                    self.attempts[seq] = self.attempts.get(seq, 0) + 1
                s.sendall(self.text(seq, src))
                reply = line()
                if reply != REPLY[250]:
                    raise AssertionError(f"text answered {reply!r}")
                with self.lock:
                    self.accepted[seq] = src
                seqs = seqs[1:]
                state = "data"
            s.sendall(b"QUIT\r\n")
            line()
        except (OSError, ConnectionError) as e:
            with self.lock:
                self.last_error = f"{state}: {e!r}"
                if state == "text":
                    self.cut_in_text += 1
                else:
                    self.cut_before += 1
            if state in ("connect", "login", "data"):
                time.sleep(0.05)
            del e
        except AssertionError as e:
            with self.lock:
                self.errors.append(str(e))
            return []
        finally:
            s.close()
        return seqs

    def worker(self, jobs):
        while True:
            with self.lock:
                if not jobs:
                    return
                src, seqs = jobs.pop()
            for _ in range(20):
                seqs = self.session(src, seqs)
                if not seqs:
                    break
            else:
                with self.lock:
                    self.errors.append(f"{src}: gave up on {seqs} "
                                       f"({self.last_error})")

    def run(self, first, n, threads=12):
        """Post messages first..first+n-1; returns when all are done."""
        seqs = list(range(first, first + n))
        jobs = []
        for i in range(0, n, self.per_session):
            src = self.sources[(i // self.per_session) % len(self.sources)]
            jobs.append((src, seqs[i:i + self.per_session]))
        random.Random(first).shuffle(jobs)
        ts = [threading.Thread(target=self.worker, args=(jobs,))
              for _ in range(threads)]
        for t in ts:
            t.start()
        return ts


def sources(n):
    return [f"127.0.{1 + i // 200}.{1 + i % 200}" for i in range(n)]


def delivered(sink):
    """seq -> list of (client addr in Received:, node, queue id)."""
    out = {}
    for path in sink.dump.iterdir():
        raw = path.read_bytes()
        m, r = SEQ_RE.search(raw), RECEIVED_RE.search(raw)
        assert m and r, f"{path.name}: no X-Seq or mppd Received:"
        out.setdefault(int(m.group(1)), []).append(
            (r.group(1).decode(), r.group(2).decode(), r.group(3).decode()))
    return out


def wait_delivered(sink, want, timeout=120):
    wait_for(lambda: len(list(sink.dump.iterdir())) >= want, timeout=timeout,
             interval=0.2, what=f"{want} messages at the sink")
    time.sleep(0.5)     # anything beyond would be a double


def join(threads, timeout=300):
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "client thread hung"


# --------------------------------------------------------------- tests

def test_messages_through_haproxy_each_delivered_once(cluster):
    nodes, lb, sink = cluster
    srcs = sources(60)
    load = Load(lb.port, srcs)
    t0 = time.monotonic()
    join(load.run(1, MESSAGES))
    posted = time.monotonic() - t0
    assert not load.errors, load.errors[:5]
    assert load.cut_in_text == 0 and load.cut_before == 0
    assert len(load.accepted) == MESSAGES
    wait_delivered(sink, MESSAGES)
    got = delivered(sink)
    assert sorted(got) == list(range(1, MESSAGES + 1))
    doubles = {k: v for k, v in got.items() if len(v) != 1}
    assert not doubles, f"{len(doubles)} delivered more than once"
    rows = {}
    for n in nodes:
        rows.update({qid: (n.name, r) for qid, r in n.rows().items()})
    per_node = {}
    for seq, [(addr, node, qid)] in got.items():
        assert addr == load.accepted[seq], f"{seq}: Received: names {addr}"
        name, row = rows[qid]
        assert name + ".test" == node
        assert row["client_addr"] == load.accepted[seq]
        per_node[name] = per_node.get(name, 0) + 1
    assert set(per_node) == {"node1", "node2", "node3"}, per_node
    # One view: every node's mppq list together holds every message once,
    # each record naming its node.
    merged = [rec for n in nodes for rec in n.mppq_list()]
    assert len(merged) == MESSAGES
    by_id = {rec["id"]: rec for rec in merged}
    for seq, [(addr, node, qid)] in got.items():
        assert by_id[qid]["node"] == node
        assert by_id[qid]["client_addr"] == addr
    # HAProxy's checks are LOCAL sessions of the balancer itself.
    assert "command=local" in nodes[0].mppd.log()
    print(f"\n{MESSAGES} messages posted through HAProxy in {posted:.1f}s "
          f"({MESSAGES / posted:.0f}/s); per node {per_node}")


def test_limits_act_on_true_addresses(cluster, tmp_path):
    """balance source sends one address to one node, so its limits
    hold there: max_sessions_per_ip and the auth throttle count the
    client, not HAProxy."""
    nodes, lb, sink = cluster
    for n in nodes:
        n.mppd.stop()
        n.mppd.settings.update(max_sessions_per_ip=2, auth_fail_limit=2)
        n.mppd.start()
    for n in nodes:
        lb.wait_status(n.name, "UP")

    def conn(src):
        s = socket.socket()
        s.settimeout(10)
        s.bind((src, 0))
        s.connect(("127.0.0.1", lb.port))
        return Client(lb.port, sock=s)
    held = [conn("127.0.5.1").greet() for _ in range(2)]
    third = conn("127.0.5.1")
    assert third.line() == REPLY[451]
    others = [conn(f"127.0.5.{i}").greet() for i in range(2, 8)]
    for c in held + others:
        c.close()
    logs = "".join(n.mppd.log() for n in nodes)
    assert "client=[127.0.5.1] refused=max_sessions_per_ip" in logs
    assert "client=[127.0.0.1] refused" not in logs
    for _ in range(2):
        c = conn("127.0.6.1").greet()
        assert c.login("alice", "wrong") == 530
        c.close()
    c = conn("127.0.6.1").greet()
    assert c.login("alice", "secret") == 530
    c.close()
    for i in range(2, 6):
        c = conn(f"127.0.6.{i}").greet()
        assert c.login("alice", "secret") == 250
        c.close()
    logs = "".join(n.mppd.log() for n in nodes)
    assert "client=[127.0.6.1] auth=throttled" in logs
    assert "auth=throttled" not in logs.replace(
        "client=[127.0.6.1] auth=throttled", "")


def test_node_killed_mid_load_loses_nothing(cluster):
    """node2's runner dies first and then its mppd (kill -9 both), so its
    spool surely holds messages that got 250 when the node is lost."""
    nodes, lb, sink = cluster
    n2 = nodes[1]
    load = Load(lb.port, sources(60), per_session=5)
    n2.queue.kill9()
    threads = load.run(1, LOAD)
    wait_for(lambda: len([r for r in n2.rows().values()
                          if r["state"] == "queued"]) >= 10, timeout=60,
             what="node2 to hold accepted messages")
    n2.mppd.kill9()
    lb.wait_status("node2", "DOWN")
    t_down = time.time()
    join(threads)
    assert not load.errors, load.errors[:5]
    assert len(load.accepted) == LOAD
    held = [r for r in n2.rows().values() if r["state"] != "sent"]
    assert len(held) >= 10
    # With node2 down, the others got every message.
    wait_delivered(sink, LOAD - len(held))
    got = delivered(sink)
    assert not any(node == "node2.test" for seq, v in got.items()
                   for _, node, qid in v if qid in {r["id"] for r in held})
    # node2 comes back: its spool delivers what it had answered 250.
    n2.mppd.start()
    n2.start_queue()
    lb.wait_status("node2", "UP")
    wait_delivered(sink, LOAD)
    got = delivered(sink)
    missing = [s for s in load.accepted if s not in got]
    assert not missing, f"{len(missing)} messages that got 250 are lost"
    doubles = [s for s, v in got.items() if len(v) > 1]
    assert all(load.attempts[s] > 1 for s in doubles), \
        "a message posted once arrived twice"
    late = [v for v in got.values() for _, node, qid in v
            if node == "node2.test"]
    assert late, "node2 delivered nothing after its restart"
    print(f"\nnode2 held {len(held)} accepted messages while down; "
          f"{load.cut_in_text} posts cut in text, {load.cut_before} before; "
          f"{len(doubles)} delivered twice (each posted again after a cut)")
    del t_down


def node_source(node, srcs):
    """A client address that HAProxy sends to node (it has connected)."""
    log = node.mppd.log()
    for src in srcs:
        if f"client=[{src}] connect" in log:
            return src
    raise AssertionError(f"no client went to {node.name}")


def test_node_drained_mid_load_cuts_no_text(cluster):
    """One session of node3 is held in its text across the signal: it
    gets its 250 after the drain began; node3 exits once it quit."""
    nodes, lb, sink = cluster
    n3 = nodes[2]
    srcs = sources(60)
    load = Load(lb.port, srcs, per_session=10)
    threads = load.run(1, LOAD)
    wait_for(lambda: len(load.accepted) >= LOAD // 3, timeout=60,
             what="a third of the load")
    s = socket.socket()
    s.settimeout(20)
    s.bind((node_source(n3, srcs), 0))
    s.connect(("127.0.0.1", lb.port))
    c = Client(lb.port, sock=s).greet()
    assert c.login("alice", "secret") == 250
    assert c.cmd("DATA") == 354
    text = load.text(LOAD + 1, "held")
    c.send(text[:100])
    n3.mppd.proc.send_signal(signal.SIGUSR2)
    wait_for(lambda: "draining:" in n3.mppd.log(), what="node3 to drain")
    lb.wait_status("node3", "DOWN")
    assert n3.mppd.running()
    c.send(text[100:])
    assert c.code() == 250
    assert c.cmd("QUIT") == 221
    n3.mppd.proc.wait(60)
    assert n3.mppd.proc.returncode == 0
    join(threads)
    assert not load.errors, load.errors[:5]
    assert load.cut_in_text == 0, "a client was cut in its text"
    assert len(load.accepted) == LOAD
    wait_delivered(sink, LOAD + 1)
    got = delivered(sink)
    assert sorted(got) == list(range(1, LOAD + 2))
    assert all(len(v) == 1 for v in got.values())
    assert got[LOAD + 1][0][1] == "node3.test"
    assert "end=shutdown" not in n3.mppd.log()
    print(f"\ndrain: {load.cut_before} connections retried before a "
          f"greeting or login, none in a text")


# ------------------------------------------- metrics for Prometheus

TEXTFILE_UNIT = ROOT / "docs" / "systemd" / "mpp-textfile.service"
RULES = ROOT / "docs" / "prometheus-mpp.rules.yml"
PROMTOOL = shutil.which("promtool")
PROM_LINE = re.compile(r"^([a-z_]+)(?:\{([^}]*)\})? (\S+)$")


def textfile_write(node, outdir):
    """Run the shipped unit's ExecStart for node, with the test's paths."""
    (line,) = [ln for ln in TEXTFILE_UNIT.read_text().splitlines()
               if ln.startswith("ExecStart=")]
    argv = shlex.split(line[len("ExecStart="):])
    assert argv[:2] == ["/bin/sh", "-c"]
    script = argv[2].replace("/usr/local/bin/", f"{BIN}/").replace(
        "/var/lib/prometheus/node-exporter", str(outdir))
    r = subprocess.run(argv[:2] + [script], capture_output=True, text=True,
                       env={**os.environ,
                            "MPP_CONFIG": str(node.mppd.config_path)})
    assert r.returncode == 0, r.stderr


def prom_samples(path):
    """[(name, {label: value}, value)] of a text exposition file."""
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line:
            continue
        m = PROM_LINE.match(line)
        assert m, f"not a sample: {line!r}"
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def series(name, labels):
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in
                                 sorted(labels.items())) + "}"


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package "
                    "prometheus) not installed")
def test_textfile_metrics_and_cluster_rules(cluster, tmp_path):
    """Each node's metrics file as the shipped timer writes it, read as
    Prometheus reads it, and the shipped recording rules over the three:
    the queue's size and its oldest message's age across nodes."""
    nodes, lb, sink = cluster
    for n in nodes:
        n.queue.stop()
    # One node's oldest message two seconds older than the others'.
    load = Load(lb.port, sources(30), per_session=3)
    join(load.run(1, 3))
    time.sleep(2.1)
    join(load.run(4, 87))
    assert len(load.accepted) == 90 and not load.errors
    time.sleep(1.1)
    inputs, waiting, oldest = [], 0, 0.0
    for n in nodes:
        outdir = tmp_path / f"textfile-{n.name}"
        outdir.mkdir()
        textfile_write(n, outdir)
        assert sorted(p.name for p in outdir.iterdir()) == ["mpp.prom"]
        check = subprocess.run([PROMTOOL, "check", "metrics"],
                               stdin=open(outdir / "mpp.prom"),
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        for name, labels, value in prom_samples(outdir / "mpp.prom"):
            labels.update(instance=n.name, job="node")
            if name == "mpp_queue_messages" and labels["state"] != "sent":
                waiting += value
            if name == "mpp_queue_oldest_age_seconds":
                oldest = max(oldest, value)
            step = "+60" if name == "mpp_messages_accepted_total" else "+0"
            inputs.append({"series": series(name, labels),
                           "values": f"{value:g}{step}x10"})
        inputs.append({"series": series("node_textfile_mtime_seconds", {
            "file": f"{outdir}/mpp.prom", "instance": n.name, "job": "node"}),
            "values": "240+0x10"})
    assert waiting == 90 and oldest >= 3
    tests = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", "input_series": inputs,
                        "promql_expr_test": [
                            {"expr": "cluster:mpp_queue_waiting:sum",
                             "eval_time": "5m",
                             "exp_samples": [{"labels": 'cluster:mpp_queue_waiting:sum{job="node"}',
                                              "value": waiting}]},
                            {"expr": 'cluster:mpp_queue_messages:sum{state="queued"}',
                             "eval_time": "5m",
                             "exp_samples": [{"labels": 'cluster:mpp_queue_messages:sum{job="node",state="queued"}',
                                              "value": 90}]},
                            {"expr": "cluster:mpp_queue_oldest_age_seconds:max",
                             "eval_time": "5m",
                             "exp_samples": [{"labels": 'cluster:mpp_queue_oldest_age_seconds:max{job="node"}',
                                              "value": oldest}]},
                            {"expr": "cluster:mpp_messages_accepted:rate5m",
                             "eval_time": "5m",
                             "exp_samples": [{"labels": 'cluster:mpp_messages_accepted:rate5m{job="node"}',
                                              "value": 3}]},
                            {"expr": 'instance:mpp_textfile_age_seconds{instance="node2"}',
                             "eval_time": "5m",
                             "exp_samples": [{"labels": series(
                                 "instance:mpp_textfile_age_seconds",
                                 {"file": f"{tmp_path}/textfile-node2/mpp.prom",
                                  "instance": "node2", "job": "node"}),
                                 "value": 60}]},
                        ]}]}
    (tmp_path / "rules-test.yml").write_text(json.dumps(tests, indent=1))
    r = subprocess.run([PROMTOOL, "test", "rules", str(tmp_path / "rules-test.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_json_lines_and_show_name_the_node(cluster):
    nodes, lb, sink = cluster
    load = Load(lb.port, sources(12), per_session=2)
    join(load.run(1, 24))
    wait_delivered(sink, 24)
    seen = {}
    for n in nodes:
        r = subprocess.run([str(BIN / "mppq"), "-c", str(n.mppd.config_path),
                            "list", "--state", "all", "--json-lines"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        for line in r.stdout.splitlines():
            rec = json.loads(line)
            assert rec["node"] == f"{n.name}.test"
            seen[rec["id"]] = n
    assert len(seen) == 24
    qid, n = next(iter(seen.items()))
    r = subprocess.run([str(BIN / "mppq"), "-c", str(n.mppd.config_path),
                        "show", qid, "--envelope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"node:            {n.name}.test\n" in r.stdout


# ------------------------------------------------------- TLS and HAProxy

TLS_CFG = """\
global
    maxconn 256
    stats socket {sock} mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s

# TLS ended by HAProxy: the node gets plain MPP and a PP2_TYPE_SSL TLV.
frontend ended
    bind 127.0.0.1:{ended} ssl crt {pem}
    default_backend plain
backend plain
    server node1 127.0.0.1:{proxy_port} send-proxy-v2-ssl

# TLS passed through: the node's proxy_listen_tls does the handshake.
frontend passed
    bind 127.0.0.1:{passed}
    default_backend tls
backend tls
    server node1 127.0.0.1:{proxy_tls_port} send-proxy-v2
"""


def test_tls_ended_or_passed_through_by_haproxy(mppd_factory, pki, tmp_path):  # noqa: F811
    """require_tls holds both ways: the client's hop is TLS (as the
    header tells, or as mppd's own handshake shows) and HAProxy's is
    loopback."""
    n = Node(mppd_factory, "node1", free_port())
    n.proxy_tls_port = free_port()
    n.mppd.settings.update(proxy_listen_tls=f"127.0.0.1:{n.proxy_tls_port}",
                           tls_cert=str(pki.cert), tls_key=str(pki.key),
                           require_tls="yes")
    n.mppd.start()
    pem = tmp_path / "haproxy.pem"
    pem.write_bytes(pki.cert.read_bytes() + pki.key.read_bytes())
    pem.chmod(0o600)
    ended, passed = free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(TLS_CFG.format(sock=tmp_path / "haproxy.sock", ended=ended,
                                  passed=passed, pem=pem,
                                  proxy_port=n.proxy_port,
                                  proxy_tls_port=n.proxy_tls_port))
    log = open(tmp_path / "haproxy.log", "ab")
    lb = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=log,
                          stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (tmp_path / "haproxy.sock").exists()
                 or lb.poll() is not None, what="haproxy to start")
        assert lb.poll() is None, (tmp_path / "haproxy.log").read_text()
        for port, src in ((ended, "127.0.7.1"), (passed, "127.0.7.2")):
            raw = socket.socket()
            raw.settimeout(10)
            raw.bind((src, 0))
            raw.connect(("127.0.0.1", port))
            sock = tls_context(pki.ca_pem).wrap_socket(
                raw, server_hostname="localhost")
            c = Client(port, sock=sock).greet()
            assert c.login("alice", "secret") == 250
            assert c.post("To: bob@example.com\r\nSubject: tls\r\n\r\nhi\r\n") == 250
            assert c.cmd("QUIT") == 221
            c.close()
    finally:
        lb.terminate()
        lb.wait(10)
        log.close()
        n.mppd.stop()
    rows = sorted(r["client_addr"] for r in n.mppd.stored())
    assert rows == ["127.0.7.1", "127.0.7.2"]
    text = n.mppd.log()
    assert re.search(r"proxy=v2 via=\[127\.0\.0\.1\] client_tls=TLSv1\.[23]", text)
    assert "client=[127.0.7.2] tls=TLSv1." in text
    assert "password sent in clear" not in text
