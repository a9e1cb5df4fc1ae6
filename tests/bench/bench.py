"""make bench: mpp against a private Postfix instance on the same machine.

The scenarios run phase by phase (acceptance, sessions, latency, idle
sessions, drain); each phase is repeated BENCH_REPS times (at least 3), and
within a repetition every row runs mpp then Postfix, so both see the same
machine. The table gives the median of each system's runs and their ratio;
the raw figures of every run go to a JSON file. See docs/performance.md for
the method and the targets.

Environment:
  BENCH_REPS   repetitions (default 5, at least 3)
  BENCH_OUT    where results go (default build/bench)
  BENCH_QUICK  1: one short repetition with small counts, to try the
               harness (its figures mean little)
  BENCH_ONLY   comma-separated scenario groups to run: accept, sasl,
               sessions, drain, latency, idle, cluster, relay, outage,
               scale, steady
               (default all)
  BENCH_SCALE  comma-separated queue sizes of the scale phase (default
               0,10000,100000,1000000; Postfix runs at those <= 100000)
  BENCH_ROWS   comma-separated row keys to run within those groups, e.g.
               accept_1k_32x1 (default all; keys are in the JSON file)
  BENCH_STEADY_S, BENCH_SWEEP_S, BENCH_COOL_S, BENCH_SINK_DIR
               the steady phase's durations and sink (tests/bench/steady.py)
"""

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from systems import (BenchError, Dovecot, HAProxy, Mpp, Postfix, Sink,  # noqa: E402
                     Trash, log_mark, wait_for, wait_for_log)
import lone  # noqa: E402
import relay  # noqa: E402
import steady  # noqa: E402
from steady import MppDepth  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
QUICK = os.environ.get("BENCH_QUICK") == "1"
REPS = 1 if QUICK else max(3, int(os.environ.get("BENCH_REPS", "5")))
# The scale phase fills queues of up to a million messages: once.
SCALE_REPS = int(os.environ.get("BENCH_SCALE_REPS", "1"))
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
ROWS = set(filter(None, os.environ.get("BENCH_ROWS", "").split(",")))
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "build" / "bench"))
NPROC = os.cpu_count() or 1
KIB = 1024

# (size, sessions, messages per session, total messages)
ACCEPT = [
    (1 * KIB, 1, 1, 400), (1 * KIB, 1, 50, 400),
    (1 * KIB, 8, 1, 1600), (1 * KIB, 8, 50, 1600),
    (1 * KIB, 32, 1, 3200), (1 * KIB, 32, 50, 3200),
    (100 * KIB, 1, 1, 200), (100 * KIB, 1, 50, 200),
    (100 * KIB, 8, 1, 800), (100 * KIB, 8, 50, 800),
    (100 * KIB, 32, 1, 1600), (100 * KIB, 32, 50, 1600),
]
SESSIONS = {"sha512": 1500, "yescrypt": 200}   # sessions per run, 32 at once
DRAIN = 5000
LAT_N, LAT_RATE, LAT_PER_SESSION = 200, 50, 50
IDLE, IDLE_POSTS = 10000, 50
# Acceptance through HAProxy: (size, sessions, messages per session, total),
# one node without a balancer, then HAProxy in front of 1, 2, 3 nodes.
CLUSTER = (1 * KIB, 32, 50, 3200)
CLUSTER_NODES = (1, 2, 3)
# The outage: OUTAGE messages posted while nothing listens on the relay's
# port; the relay (a new smtp-sink) starts OUTAGE_RETURN_S into it.
OUTAGE, OUTAGE_RETURN_S = 5000, 12.0

if QUICK:
    ACCEPT = [(s, c, m, max(c * m, n // 8)) for s, c, m, n in ACCEPT]
    SESSIONS = {"sha512": 200, "yescrypt": 40}
    DRAIN, LAT_N, IDLE, IDLE_POSTS = 500, 50, 1000, 10
    CLUSTER = (KIB, 32, 50, 1600)
    OUTAGE = 500


def log(*a):
    print(*a, flush=True)


def want(group):
    return not ONLY or group in ONLY


def size_label(size):
    return f"{size // KIB} KiB"


# ---------------------------------------------------------------- scenarios

def accept_mpp(mpp, size, c, m, n):
    mpp.start()
    fig = mpp.bench("-c", c, "-n", n, "-m", m, "-z", size)
    stored = mpp.count()
    if stored != n:
        raise BenchError(f"{stored} of {n} messages in the index")
    return {"value": fig["msgs_per_s"], "lat_p50_ms": fig["latency_p50_ms"],
            "lat_p99_ms": fig["latency_p99_ms"],
            "sessions_per_s": fig["sessions_per_s"], "elapsed_s": fig["elapsed_s"],
            "server_us_per_msg": fig["server_cpu_s"] / n * 1e6,
            "client_cpu_s": fig["client_cpu_s"]}


def accept_postfix(pf, size, c, m, n):
    pf.set_mode("accept")
    pf.clear()
    c0 = pf.client_cpu_s
    if m == 1:
        dt = pf.source(c, n, size)
    else:
        # smtp-source -d keeps each session for all its messages: one round
        # is c sessions x m messages; rounds follow one another.
        dt = sum(pf.source(c, c * m, size, keep=True) for _ in range(n // (c * m)))
    pf.settle()
    deferred = pf.queued(("deferred",))
    if deferred != n:
        raise BenchError(f"{deferred} of {n} messages in Postfix's deferred queue")
    return {"value": n / dt, "elapsed_s": dt, "client_cpu_s": pf.client_cpu_s - c0}


def sessions_mpp(mpp, method, n):
    """New sessions a second, 32 at once, one message each, against the
    bound nproc / hash time. The bound is measured as the machine is right
    before and right after the run: checks a second from nproc threads
    hashing at once (on a shared or memory-bound machine that is less than
    nproc / one thread's hash time, which is recorded too)."""
    mpp.start()
    checks = 100 if method == "sha512" else 15
    one = mpp.hash_rate(method, checks, 1)
    before = mpp.hash_rate(method, checks, NPROC)
    fig = mpp.bench("-c", 32, "-n", n, "-m", 1, "-z", KIB, method=method)
    after = mpp.hash_rate(method, checks, NPROC)
    bound = (before["checks_per_s"] + after["checks_per_s"]) / 2
    return {"value": fig["sessions_per_s"], "ref": bound,
            "hash_ms_one_thread": one["hash_ms"],
            "bound_from_one_thread": NPROC * 1000.0 / one["hash_ms"],
            "bound_before": before["checks_per_s"], "bound_after": after["checks_per_s"],
            "hash_ms_parallel": (before["hash_ms"] + after["hash_ms"]) / 2,
            "server_us_per_session": fig["server_cpu_s"] / n * 1e6,
            "client_cpu_s": fig["client_cpu_s"],
            "lat_p50_ms": fig["latency_p50_ms"], "lat_p99_ms": fig["latency_p99_ms"],
            "post_p50_ms": fig["post_p50_ms"], "post_p99_ms": fig["post_p99_ms"]}


def drain_mpp(mpp, sink, n):
    mpp.start()
    mpp.bench("-c", 32, "-n", n, "-m", 50, "-z", KIB)
    if mpp.count("queued") != n:
        raise BenchError(f"{mpp.count('queued')} of {n} queued before the drain")
    t0 = time.monotonic()
    q = mpp.start_queue(sink.port)

    def done():
        if q.poll() is not None:
            raise BenchError("mppqueue exited during the drain")
        return mpp.count("sent") == n
    wait_for(done, 600, f"{n} messages sent", interval=0.02)
    dt = time.monotonic() - t0
    mpp.stop_queue()
    return {"value": n / dt, "elapsed_s": dt}


def drain_postfix(pf, n):
    pf.set_mode("accept")
    pf.clear()
    pf.source(32, n, KIB, keep=True)
    pf.settle()
    if pf.queued(("deferred",)) != n:
        raise BenchError(f"{pf.queued(('deferred',))} of {n} deferred before the drain")
    pf.set_mode("drain")
    t0 = time.monotonic()
    pf.flush()
    wait_for(lambda: pf.queued() == 0, 600, "Postfix's queue to drain",
             interval=0.02)
    dt = time.monotonic() - t0
    return {"value": n / dt, "elapsed_s": dt}


def outage_mpp(mpp, work):
    """The relay down (nothing on its port), OUTAGE messages posted, the
    relay back OUTAGE_RETURN_S s after the first post: seconds from its
    return to the first message sent, and to the last. mppqueue's probe
    schedule is the default one (1, 2, 4, 8 s... up to 60 s), so the
    return at 12 s meets the probe due at 15 s."""
    sink = Sink(work, f"outage-sink-{time.monotonic_ns()}")
    mpp.start()
    qlog = mpp.dir / "mppqueue.log"
    mark = log_mark(qlog)
    q = mpp.start_queue(sink.port)
    try:
        t0 = time.monotonic()
        mpp.bench("-c", 32, "-n", OUTAGE, "-m", 50, "-z", KIB)
        posted = time.monotonic() - t0

        wait_for_log(qlog, mark, b"relay=down", q, 60, "relay=down in mppqueue.log",
                     interval=0.05)
        time.sleep(max(0.0, t0 + OUTAGE_RETURN_S - time.monotonic()))
        back = time.monotonic()
        sink.start()
        wait_for(lambda: mpp.count("sent") >= 1, 300, "a first message sent",
                 interval=0.01)
        first = time.monotonic() - back
        wait_for(lambda: mpp.count("sent") == OUTAGE, 600,
                 f"{OUTAGE} messages sent", interval=0.02)
        last = time.monotonic() - back
    finally:
        mpp.stop_queue()
        sink.stop()
    return {"value": first, "last_s": last, "outage_s": back - t0,
            "posted_s": posted}


SEQ_RE = re.compile(rb"^X-Bench-Seq: (\d+)\r?$", re.M)


def arrival_latencies(sink, sent_ns, n):
    """Latency of each message from its final "." (sent_ns by sequence
    number) to its arrival at the sink (smtp-sink closing its dump file at
    the end of the transaction), in ms."""
    wait_for(lambda: len(sink.arrivals()) >= n, 120, f"{n} messages at the sink",
             interval=0.05)
    lat = []
    for path, t in sink.arrivals():
        m = SEQ_RE.search(path.read_bytes())
        if m and int(m.group(1)) in sent_ns:
            lat.append((t - sent_ns[int(m.group(1))]) / 1e6)
    if len(lat) != n:
        raise BenchError(f"{len(lat)} of {n} messages matched at the sink")
    return lat


def pct(values, p):
    v = sorted(values)
    k = max(1, min(len(v), int(p / 100.0 * len(v) + 0.999999)))
    return v[k - 1]


def latency_mpp(mpp, lat_sink, work):
    mpp.start()
    lat_sink.clear_dump()
    q = mpp.start_queue(lat_sink.port)
    wait_for(lambda: b"ready" in (mpp.dir / "mppqueue.log").read_bytes()
             or q.poll() is not None, 20, "mppqueue to start")
    times = work / "mpp-times.txt"
    mpp.bench("-c", 1, "-n", LAT_N, "-m", LAT_PER_SESSION, "-r", LAT_RATE,
              "-z", KIB, "-T", times)
    sent = {}
    for line in times.read_text().splitlines():
        seq, ns = line.split()[:2]
        sent[int(seq)] = int(ns)
    lat = arrival_latencies(lat_sink, sent, LAT_N)
    mpp.stop_queue()
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat)}


def smtp_post_paced(port, n, rate, per_session, size):
    """Post n messages over SMTP at `rate` a second, per_session per
    connection, each reply checked; the wall-clock time each final "."
    was sent, by sequence number (the X-Bench-Seq field)."""
    import smtplib
    line = b"abcdefghijklmnopqrstuvwxyz0123456789" * 2 + b"\r\n"
    sent, seq, t0 = {}, 1, time.monotonic()
    while seq <= n:
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        try:
            if s.ehlo("client.bench.example")[0] != 250:
                raise BenchError("EHLO refused")
            for _ in range(min(per_session, n - seq + 1)):
                delay = t0 + (seq - 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                head = (b"To: <bench@example.net>\r\nSubject: bench message %010d\r\n"
                        b"X-Bench-Seq: %010d\r\n\r\n" % (seq, seq))
                body = line * max(1, (size - len(head)) // len(line))
                for cmd, code in ((lambda: s.mail("bench@bench.example"), 250),
                                  (lambda: s.rcpt("bench@example.net"), 250),
                                  (lambda: s.docmd("DATA"), 354)):
                    r = cmd()
                    if r[0] != code:
                        raise BenchError(f"Postfix replied {r}")
                s.send(head + body + b".\r\n")
                sent[seq] = time.time_ns()
                r = s.getreply()
                if r[0] != 250:
                    raise BenchError(f"Postfix replied {r} to the text")
                seq += 1
            s.quit()
        finally:
            s.close()
    return sent


def latency_postfix(pf, lat_sink):
    pf.set_mode("latency")
    pf.clear()
    lat_sink.clear_dump()
    sent = smtp_post_paced(pf.port, LAT_N, LAT_RATE, LAT_PER_SESSION, KIB)
    lat = arrival_latencies(lat_sink, sent, LAT_N)
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat)}


def idle_mpp(mpp):
    mpp.start()
    mpp.bench("-c", 4, "-n", 40, "-m", 10)         # warm the daemon up
    fig = mpp.bench("-i", IDLE, "-I", 64, "-c", 1, "-n", IDLE_POSTS, "-m", 1,
                    "-P", mpp.mppd.pid, timeout=1200)
    if fig["idle_open"] != IDLE:
        raise BenchError(f"{fig['idle_open']} of {IDLE} idle sessions held: "
                         f"{fig['idle_first_error']}")
    return {"rss_per_session": fig["rss_per_session_bytes"],
            "rss_before_kib": fig["rss_before_kib"], "rss_after_kib": fig["rss_after_kib"],
            "post_p50": fig["post_p50_ms"], "post_p99": fig["post_p99_ms"],
            "setup_s": fig["idle_setup_s"], "held": fig["idle_open"]}


def cluster_mpp(nodes, k, size, c, m, n, work):
    """Acceptance by k fresh nodes (k == 0: node 1 alone, posted to on
    its plain port, no balancer): msgs/s, and the CPU of every mppd and of
    HAProxy per message."""
    used = nodes[:max(1, k)]
    for node in used:
        node.start()
    lb = None
    try:
        if k:
            lb = HAProxy(work, used)
            lb.start()
        others = used[1:] + ([lb] if lb else [])
        fig = used[0].bench("-c", c, "-n", n, "-m", m, "-z", size,
                            port=lb.port if lb else None, also=others)
    finally:
        if lb:
            lb.stop()
    counts = [node.count() for node in used]
    for node in used:
        node.stop()
    if sum(counts) != n:
        raise BenchError(f"{sum(counts)} of {n} messages in the nodes' indexes")
    if k and min(counts) == 0:
        raise BenchError(f"a node got no message: {counts}")
    lb_cpu = fig["also_cpu_s"][-1] if lb else 0.0
    mppd_cpu = fig["server_cpu_s"] + sum(fig["also_cpu_s"][:len(used) - 1])
    return {"value": fig["msgs_per_s"], "lat_p50_ms": fig["latency_p50_ms"],
            "lat_p99_ms": fig["latency_p99_ms"], "elapsed_s": fig["elapsed_s"],
            "server_us_per_msg": mppd_cpu / n * 1e6,
            "haproxy_us_per_msg": lb_cpu / n * 1e6,
            "client_cpu_s": fig["client_cpu_s"], "per_node": counts}


# ------------------------------------------------- against Postfix+SASL

def sasl_key(size, c, m, pipelined=False):
    return f"sasl{'pipe' if pipelined else ''}_{size // KIB}k_{c}x{m}"


def accept_sasl(pf, bindir, size, c, m, n, pipelined):
    """Postfix with SASL through Dovecot, every session logged in (AUTH
    PLAIN, alice's sha512-crypt hash), driven by mppbench --smtp: the same
    texts, sizes and sessions as mpp's runs; mail deferred as in the plain
    rows. With pipelined, MAIL/RCPT/DATA go in groups (RFC 2920)."""
    pf.set_mode("accept")
    pf.clear()
    cmd = [str(bindir / "mppbench"), "--smtp", "-s", f"127.0.0.1:{pf.sasl_port}",
           "-u", Mpp.USERS["sha512"], "-p", Mpp.PASSWORD, "-F", "alice@bench.example",
           "-c", str(c), "-n", str(n), "-m", str(m), "-z", str(size), "--json"]
    if pipelined:
        cmd.insert(2, "--pipelining")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    try:
        fig = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchError(f"mppbench --smtp printed no figures (exit "
                         f"{r.returncode}): {r.stderr.strip()}")
    if r.returncode != 0:
        raise BenchError(f"mppbench --smtp exit {r.returncode}: {r.stderr.strip()}")
    pf.settle()
    deferred = pf.queued(("deferred",))
    if deferred != n:
        raise BenchError(f"{deferred} of {n} messages in Postfix's deferred queue")
    return {"value": fig["msgs_per_s"], "elapsed_s": fig["elapsed_s"],
            "lat_p50_ms": fig["latency_p50_ms"], "lat_p99_ms": fig["latency_p99_ms"]}


def sasl_rows(add):
    for size, c, m, n in ACCEPT:
        for pipelined in (False, True):
            label = (f"vs SASL{' pipelined' if pipelined else ''} "
                     f"{size_label(size)}, {c} x {m}")
            add(Row(sasl_key(size, c, m, pipelined), label, "msgs/s",
                    lambda a, b: a / b >= 2, "mpp/Postfix+SASL >= 2",
                    ref_label="Postfix+SASL"))


def run_sasl_phase(rep, rows, raw, mpp, pf, bindir, work):
    """Each acceptance row against Postfix+SASL: mpp, then Postfix+SASL
    one command at a time, then pipelined; mpp's figure serves both rows."""
    for size, c, m, n in ACCEPT:
        keys = [sasl_key(size, c, m, p) for p in (False, True)]
        if ROWS and not set(keys) & ROWS:
            continue
        disk = round(disk_probe(work, 1, 0.3))
        # A lone session's ceiling is probed just before its run; a probe
        # that fails fails the run, as the run's own errors do.
        mres = attempt(rows, keys[0], "mpp",
                       lambda: {**(lone.measure(mpp, work, size, m) if c == 1 else {}),
                                **accept_mpp(mpp, size, c, m, n)},
                       raw, rep, disk)
        for key, pipelined in zip(keys, (False, True)):
            p = attempt(rows, key, "postfix-sasl",
                        lambda: accept_sasl(pf, bindir, size, c, m, n, pipelined),
                        raw, rep, disk)
            rows[key].mpp.append(mres["value"] if mres else None)
            rows[key].ref.append(p["value"] if p else None)
            rows[key].extra.append(mres or {})
            show(rows, key)
    mpp.stop()


# ------------------------------------------------------- a large queue

SCALE = [int(x) for x in os.environ.get(
    "BENCH_SCALE", "1000,5000" if QUICK else "0,10000,100000,1000000").split(",")]
SCALE_PF_MAX = 100000           # Postfix's rows: 10,000 and 100,000
SCALE_ACCEPT = 3200             # 32 sessions x 50, 1 KiB
SCALE_DRAIN = SCALE_ACCEPT if QUICK else 5000
SCALE_DUE = 100
SCALE_PURGE = int(os.environ.get("BENCH_SCALE_PURGE", "20000" if QUICK else "1000000"))
TIME = shutil.which("time", path="/usr/bin:/bin")


def timed(cmd, reps=5):
    """Median wall-clock ms of running cmd to its end (output discarded)."""
    ms = []
    for _ in range(reps):
        t0 = time.monotonic()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ms.append((time.monotonic() - t0) * 1000)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(map(str, cmd))}: exit {r.returncode}: "
                             f"{r.stderr.decode(errors='replace').strip()}")
    return statistics.median(ms)


def mpp_fill(mpp, n, state="deferred"):
    """A fresh spool holding n messages made by bin/mppfill (deferred, due
    in a day; or sent and gone): its figures."""
    mpp.stop()
    if mpp.spool.exists():
        mpp.trash.take(mpp.spool)
    if n == 0:
        return {"per_s": 0}
    r = subprocess.run([str(mpp.bin / "mppfill"), "-d", str(mpp.spool), "-n", str(n),
                        "-s", state, "-j"], capture_output=True, text=True, timeout=7200)
    if r.returncode != 0:
        raise BenchError(f"mppfill exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def mppq_cmd(mpp, *args):
    return [str(mpp.bin / "mppq"), "-c", str(mpp.conf), *args]


def json_lines_run(mpp, expect):
    """mppq list --json-lines of every message: records/s, max RSS (KiB,
    from /usr/bin/time, whose child mppq is) and records per CPU second."""
    if TIME is None:
        raise BenchError("/usr/bin/time missing (Debian package time)")
    rss_file = mpp.dir / "jsonl-rss"
    t0 = time.monotonic()
    r = subprocess.run([TIME, "-f", "%M %U %S", "-o", str(rss_file),
                        *mppq_cmd(mpp, "list", "--json-lines")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=3600)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise BenchError(f"mppq list --json-lines: exit {r.returncode}")
    n = r.stdout.count(b"\n")
    if n != expect:
        raise BenchError(f"mppq list --json-lines: {n} of {expect} records")
    rss, user, sys_ = rss_file.read_text().split()[-3:]
    # wall clock, and CPU time (what a machine shared with other work
    # shows more truly)
    return n / dt, int(rss), n / max(float(user) + float(sys_), 1e-3)


def proc_cpu_s(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def index_bytes(spool):
    """Bytes of index.db (the -wal is checkpointed when the daemons stop)."""
    return (spool / "index.db").stat().st_size


def wal_bytes(spool):
    p = spool / "index.db-wal"
    return p.stat().st_size if p.exists() else 0


def scale_drain(mpp, sink, queued):
    """Start mppqueue on a spool whose SCALE_DRAIN queued messages are
    due among `queued` deferred ones due later; until all are sent: the
    time from its start to the first delivery (its reconciliation of the
    spool included), the wall microseconds per delivery from the first to
    the last, and its CPU microseconds per delivery."""
    t0 = time.monotonic()
    q = mpp.start_queue(sink.port)
    first = cpu0 = None

    def done():
        nonlocal first, cpu0
        if q.poll() is not None:
            raise BenchError("mppqueue exited during the drain")
        sent = mpp.count("sent")
        if sent and first is None:
            first, cpu0 = time.monotonic(), proc_cpu_s(q.pid)
        return sent >= SCALE_DRAIN
    wait_for(done, 1800, f"{SCALE_DRAIN} messages sent", interval=0.005)
    t1 = time.monotonic()
    cpu = proc_cpu_s(q.pid) - cpu0
    mpp.stop_queue()
    # From the first delivery on: the start's reconciliation is apart.
    return {"drain_us": (t1 - first) / (SCALE_DRAIN - 1) * 1e6,
            "drain_cpu_us": cpu / (SCALE_DRAIN - 1) * 1e6,
            "first_ms": (first - t0) * 1000, "drain_ms": (t1 - t0) * 1000}


def scale_mpp(mpp, sink, n):
    """mpp with n messages deferred (due in a day): start (reconciliation
    included), acceptance of 1 KiB from 32 x 50, a drain of SCALE_DRAIN due
    among them, mppq stats, list of the SCALE_DUE queued ones, JSON Lines
    of all, the index's size."""
    fill = mpp_fill(mpp, n)
    t0 = time.monotonic()
    mpp.start(fresh=False)
    res = {"fill_per_s": fill["per_s"], "start_ms": (time.monotonic() - t0) * 1000}
    fig = mpp.bench("-c", 32, "-n", SCALE_ACCEPT, "-m", 50, "-z", KIB)
    res["accept"] = fig["msgs_per_s"]
    res["accept_us"] = fig["server_cpu_s"] / SCALE_ACCEPT * 1e6
    res["wal_after_accept"] = wal_bytes(mpp.spool)
    if SCALE_DRAIN > SCALE_ACCEPT:
        mpp.bench("-c", 32, "-n", SCALE_DRAIN - SCALE_ACCEPT, "-m", 50, "-z", KIB)
    if mpp.count("queued") != SCALE_DRAIN:
        raise BenchError(f"{mpp.count('queued')} of {SCALE_DRAIN} queued before the drain")
    res.update(scale_drain(mpp, sink, n))
    res["wal_after_drain"] = wal_bytes(mpp.spool)
    mpp.bench("-c", 4, "-n", SCALE_DUE, "-m", 25, "-z", KIB)
    res["stats_ms"] = timed(mppq_cmd(mpp, "stats"))
    res["list_queued_ms"] = timed(mppq_cmd(mpp, "list", "--state", "queued"))
    res["list_all_ms"] = timed(mppq_cmd(mpp, "list"), reps=1)
    total = n + SCALE_DUE
    res["jsonl_per_s"], res["jsonl_rss_kib"], res["jsonl_per_cpu_s"] = \
        json_lines_run(mpp, total)
    mpp.stop()
    res["index_bytes_per_msg"] = index_bytes(mpp.spool) / (total + SCALE_DRAIN)
    return res


def scale_postfix(pf, sink, n):
    """Postfix with n messages in its deferred queue: acceptance of 1 KiB
    from 32 x 50, postqueue -p, and postqueue -f: the time to the first
    delivery and to SCALE_DRAIN deliveries (from its log)."""
    pf.set_mode("accept")
    pf.clear()
    if n:
        pf.source(32, n, KIB, keep=True, timeout=7200)
        pf.settle(timeout=1800)
    dt = sum(pf.source(32, 32 * 50, KIB, keep=True) for _ in range(SCALE_ACCEPT // 1600))
    pf.settle()
    if pf.queued(("deferred",)) != n + SCALE_ACCEPT:
        raise BenchError(f"{pf.queued(('deferred',))} of {n + SCALE_ACCEPT} deferred")
    res = {"accept": SCALE_ACCEPT / dt}
    res["postqueue_p_ms"] = timed(["postqueue", "-c", str(pf.conf), "-p"], reps=1)
    res.update(pf.flush_start(SCALE_DRAIN))
    pf.reset_queue()
    return res


def scale_purge(mpp, sink):
    """Acceptance (1 KiB, 32 x 50) while mppqueue purges SCALE_PURGE sent
    rows (sent_retention 0), against the same with mppqueue running and
    nothing to purge: alternated, three of each, mppqueue restarted with
    or without the purge before each. Every run starts on an empty queue:
    mppd paces posting to delivery past a backlog, so a run begun behind
    the one before's backlog would be slower for that alone."""
    mpp_fill(mpp, SCALE_PURGE, state="sent")
    mpp.start(fresh=False)
    depth = MppDepth(mpp.spool)
    base, during = [], []
    try:
        for _ in range(3):
            for purging in (False, True):
                start_drained(mpp, sink, depth, purging)
                r = mpp.bench("-c", 32, "-n", SCALE_ACCEPT, "-m", 50, "-z", KIB)
                (during if purging else base).append(r["msgs_per_s"])
                if not purging:
                    mpp.stop_queue()
        left = mpp.count("sent")
        if left == 0:
            raise BenchError("the purge ended before the acceptance runs did: "
                             "raise BENCH_SCALE_PURGE")
        # the rate: the rest of the purge, with nothing else to do
        t0 = time.monotonic()
        wait_for(lambda: mpp.count("sent") < SCALE_ACCEPT * 7 or
                 mpp.queue.poll() is not None, 1800, "the purge to end", interval=0.5)
        rate = (left - mpp.count("sent")) / (time.monotonic() - t0)
    finally:
        depth.close()
        mpp.stop()
    return {"base": statistics.median(base), "during": statistics.median(during),
            "purge_rows_per_s": rate, "left_after_runs": left}


def start_drained(mpp, sink, depth, purging):
    """mppqueue (purging sent rows at once, or keeping them) started and
    ready, and mpp's queue empty."""
    mpp.stop_queue()
    log_path = mpp.dir / "mppqueue.log"
    mark = log_mark(log_path)
    q = mpp.start_queue(sink.port, *(["sent_retention=0"] if purging else []))
    wait_for_log(log_path, mark, b"ready", q, 60, "mppqueue to start")
    wait_for(lambda: depth() == 0, 300, "the queue to drain", interval=0.1)


def scale_rows(add):
    top = max(SCALE)
    for n in SCALE:
        big = n == top
        add(Row(f"scale_accept_{n}", f"{n:,} queued: accept 1 KiB 32 x 50", "msgs/s",
                lambda a, b: a / b >= 0.9, ">= 90 % of empty", ref_label="empty"))
        add(Row(f"scale_claim_{n}", f"{n:,} queued: drain us/delivery", "us",
                lambda a, b: a / b <= 1.2, "<= 120 % of empty", ref_label="empty",
                better="lower"))
        add(Row(f"scale_claimcpu_{n}", f"{n:,} queued: mppqueue CPU us/delivery", "us",
                None, "", ref_label="empty", better="lower"))
        add(Row(f"scale_start_{n}", f"{n:,} queued: mppd start (reconcile)", "ms",
                None, "", ref_label="-", better="lower"))
        add(Row(f"scale_qstart_{n}", f"{n:,} queued: mppqueue start to 1st sent", "ms",
                None, "", ref_label="-", better="lower"))
        add(Row(f"scale_stats_{n}", f"{n:,} queued: mppq stats", "ms",
                (lambda a, b: a < 50) if big else None, "< 50 ms" if big else "",
                ref_label="-", better="lower"))
        add(Row(f"scale_listq_{n}", f"{n:,} queued: list --state queued ({SCALE_DUE})",
                "ms", (lambda a, b: a < 100) if big else None,
                "< 100 ms" if big else "", ref_label="-", better="lower"))
        add(Row(f"scale_jsonl_{n}", f"{n:,} queued: list --json-lines", "rec/s",
                (lambda a, b: a >= 200000) if big else None,
                ">= 200,000/s" if big else "", ref_label="-"))
        add(Row(f"scale_jsonlcpu_{n}", f"{n:,} queued: list --json-lines per CPU s",
                "rec/s", None, "", ref_label="-"))
        add(Row(f"scale_rss_{n}", f"{n:,} queued: list --json-lines RSS", "KiB",
                (lambda a, b: a < 65536) if big else None, "< 64 MiB" if big else "",
                ref_label="-", better="lower"))
        add(Row(f"scale_idx_{n}", f"{n:,} queued: index bytes/message", "B", None, "",
                ref_label="-", better="lower"))
        if 0 < n <= SCALE_PF_MAX:
            add(Row(f"scale_pfaccept_{n}", f"{n:,} deferred: accept, vs Postfix", "msgs/s"))
            add(Row(f"scale_pflist_{n}", f"{n:,} deferred: mppq list / postqueue -p",
                    "ms", better="lower"))
            add(Row(f"scale_pfflush_{n}", f"{n:,} deferred: drain start (1st sent)",
                    "ms", better="lower"))
            add(Row(f"scale_pfdrain_{n}", f"{n:,} deferred: {SCALE_DRAIN} sent after start",
                    "ms", better="lower"))
    add(Row("scale_purge", f"accept during purge of {SCALE_PURGE:,} sent", "msgs/s",
            lambda a, b: a / b >= 0.8, ">= 80 % of without", ref_label="no purge"))


def run_scale_phase(rep, rows, raw, mpp, pf, sink, work):
    """Queue sizes one after another, mpp then (up to SCALE_PF_MAX)
    Postfix at each; the figures at the first size are the "empty" ones."""
    base = None

    def put(key, m, ref):
        if key in rows:
            rows[key].mpp.append(m)
            rows[key].ref.append(ref)
            rows[key].extra.append({})
            show(rows, key)
    for n in SCALE:
        disk = round(disk_probe(work, 1, 0.3))
        m = attempt(rows, f"scale_accept_{n}", "mpp", lambda: scale_mpp(mpp, sink, n),
                    raw, rep, disk)
        if m and base is None:
            base = m
        if m:
            put(f"scale_accept_{n}", m["accept"], base["accept"])
            put(f"scale_claim_{n}", m["drain_us"], base["drain_us"])
            put(f"scale_claimcpu_{n}", m["drain_cpu_us"], base["drain_cpu_us"])
            for k, f in (("start", "start_ms"), ("qstart", "first_ms"),
                         ("stats", "stats_ms"), ("listq", "list_queued_ms"),
                         ("jsonl", "jsonl_per_s"), ("jsonlcpu", "jsonl_per_cpu_s"),
                         ("rss", "jsonl_rss_kib"),
                         ("idx", "index_bytes_per_msg")):
                put(f"scale_{k}_{n}", m[f], None)
        if 0 < n <= SCALE_PF_MAX:
            p = attempt(rows, f"scale_pfaccept_{n}", "postfix",
                        lambda: scale_postfix(pf, sink, n), raw, rep, disk)
            if m and p:
                put(f"scale_pfaccept_{n}", m["accept"], p["accept"])
                put(f"scale_pflist_{n}", m["list_all_ms"], p["postqueue_p_ms"])
                put(f"scale_pfflush_{n}", m["first_ms"], p["first_ms"])
                put(f"scale_pfdrain_{n}", m["drain_ms"], p["drain_ms"])
    m = attempt(rows, "scale_purge", "mpp", lambda: scale_purge(mpp, sink), raw, rep, 0)
    if m:
        put("scale_purge", m["during"], m["base"])
    mpp.stop()


# ------------------------------------------------------------------- rows

class Row:
    """One line of the table: a key, a label, a unit, how a ratio is read,
    a target (a function of the medians, None if none) and its text."""

    def __init__(self, key, label, unit, target=None, target_text="",
                 ref_label="Postfix", better="higher"):
        self.key, self.label, self.unit = key, label, unit
        self.target, self.target_text = target, target_text
        self.ref_label, self.better = ref_label, better
        self.mpp, self.ref, self.extra, self.errors = [], [], [], []

    def median(self, which):
        v = [x for x in getattr(self, which) if x is not None]
        return statistics.median(v) if v else None


def build_rows():
    rows = {}

    def add(r):
        rows[r.key] = r
        return r
    for size, c, m, n in ACCEPT:
        key = f"accept_{size // KIB}k_{c}x{m}"
        target, text = None, ""
        if (size, c, m) == (KIB, 32, 50):
            target, text = (lambda a, b: a / b >= 3), "mpp/Postfix >= 3"
        if (size, c, m) == (KIB, 32, 1):
            target, text = (lambda a, b: a / b >= 1), "mpp/Postfix >= 1"
        add(Row(key, f"accept {size_label(size)}, {c} sess x {m} msg", "msgs/s",
                target, text))
    for method in SESSIONS:
        add(Row(f"sessions_{method}", f"new sessions/s, {method}, 32 at once",
                "sess/s", lambda a, b: a / b >= 0.9, ">= 90 % of bound",
                ref_label="bound"))
    sasl_rows(add)
    if want("scale"):
        scale_rows(add)
    add(Row("drain", f"drain {DRAIN} queued to smtp-sink", "msgs/s",
            lambda a, b: a / b >= 2, "mpp/Postfix >= 2"))
    add(Row("e2e_p50", "posting -> MTA latency p50", "ms",
            lambda a, b: a < 20, "mpp < 20 ms", better="lower"))
    add(Row("e2e_p99", "posting -> MTA latency p99", "ms",
            lambda a, b: a < 200, "mpp < 200 ms", better="lower"))
    add(Row("idle_rss", f"{IDLE} idle sessions: RSS per session", "B",
            lambda a, b: a <= 16384, "<= 16 KiB", ref_label="-", better="lower"))
    add(Row("idle_post_p50", f"{IDLE} idle: fresh client post p50", "ms",
            None, "", ref_label="-", better="lower"))
    add(Row("idle_post_p99", f"{IDLE} idle: fresh client post p99", "ms",
            lambda a, b: a < 50, "< 50 ms", ref_label="-", better="lower"))
    relay.add_rows(add, Row, DRAIN)
    steady.add_rows(add, Row)
    add(Row("outage_first", f"outage: relay back -> first of {OUTAGE} sent", "s",
            lambda a, b: a < 5, "< 5 s", ref_label="-", better="lower"))
    add(Row("outage_last", f"outage: relay back -> last of {OUTAGE} sent", "s",
            None, "", ref_label="-", better="lower"))
    size, c, m, _ = CLUSTER
    add(Row("cluster_direct", f"1 node, no balancer, {size_label(size)} {c}x{m}",
            "msgs/s", ref_label="-"))
    for k in CLUSTER_NODES:
        add(Row(f"cluster_haproxy_{k}", f"HAProxy + {k} node{'s' if k > 1 else ''}, "
                f"{size_label(size)} {c}x{m}", "msgs/s", ref_label="direct"))
    return rows


def attempt(rows, key, which, fn, raw, rep, disk):
    """Run one measurement; record it (or its error) in the row and raw."""
    t0 = time.monotonic()
    try:
        res = fn()
        err = None
    except (BenchError, subprocess.SubprocessError, OSError) as e:
        res, err = None, str(e)
    raw.append({"row": key, "system": which, "rep": rep, "result": res,
                "error": err, "wall_s": round(time.monotonic() - t0, 2),
                "loadavg": os.getloadavg()[0], "disk_writes_per_s": disk})
    if err:
        log(f"  {key} [{which}] FAILED: {err}")
        rows[key].errors.append(f"{which} rep {rep}: {err}")
    return res


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "B":
        return f"{v:,.0f}"
    return f"{v:,.1f}" if v >= 100 or unit not in ("ms", "s") else f"{v:,.2f}"


def show(rows, key):
    r = rows[key]
    m = fmt(r.mpp[-1] if r.mpp else None, r.unit)
    ref = fmt(r.ref[-1] if r.ref else None, r.unit) if r.ref_label != "-" else "-"
    log(f"  {r.label:<44} mpp {m:>10}   {r.ref_label} {ref:>10} {r.unit}")


# The steady state deletes as it delivers, and runs long: last.
PHASES = ("accept", "sasl", "sessions", "latency", "idle", "cluster", "drain",
          "relay", "outage", "scale", "steady")


def run_phase(phase, rep, rows, raw, mpp, pf, sink, lat_sink, work, nodes,
              dovecot=None):
    """One repetition of one phase: each of its rows, mpp then Postfix."""
    def pair(key, mfn, pfn, store, shown):
        if ROWS and key not in ROWS:
            return
        # the disk's state right now: the machine may be shared
        disk = round(disk_probe(work, 1, 0.3))
        m = attempt(rows, key, "mpp", mfn, raw, rep, disk)
        p = attempt(rows, key, "postfix", pfn, raw, rep, disk) if pfn else None
        store(m, p)
        for k in shown:
            show(rows, k)

    def plain(key):
        def store(m, p):
            rows[key].mpp.append(m["value"] if m else None)
            rows[key].ref.append(p["value"] if p else None)
            rows[key].extra.append(m or {})
        return store

    if phase == "accept":
        pf.set_mode("accept")
        for size, c, m, n in ACCEPT:
            key = f"accept_{size // KIB}k_{c}x{m}"
            pair(key, lambda: accept_mpp(mpp, size, c, m, n),
                 lambda: accept_postfix(pf, size, c, m, n), plain(key), [key])
    elif phase == "sessions":
        for method, n in SESSIONS.items():
            key = f"sessions_{method}"

            def store(m, p, key=key):
                rows[key].mpp.append(m["value"] if m else None)
                rows[key].ref.append(m["ref"] if m else None)
                rows[key].extra.append(m or {})
            pair(key, lambda: sessions_mpp(mpp, method, n), None, store, [key])
    elif phase == "latency":
        def store(m, p):
            for q in ("p50", "p99"):
                rows[f"e2e_{q}"].mpp.append(m[q] if m else None)
                rows[f"e2e_{q}"].ref.append(p[q] if p else None)
        pair("e2e_p50", lambda: latency_mpp(mpp, lat_sink, work),
             lambda: latency_postfix(pf, lat_sink), store, ["e2e_p50", "e2e_p99"])
    elif phase == "idle":
        def store(m, p):
            rows["idle_rss"].mpp.append(m["rss_per_session"] if m else None)
            rows["idle_post_p50"].mpp.append(m["post_p50"] if m else None)
            rows["idle_post_p99"].mpp.append(m["post_p99"] if m else None)
        pair("idle_rss", lambda: idle_mpp(mpp), None, store,
             ["idle_rss", "idle_post_p50", "idle_post_p99"])
    elif phase == "cluster":
        run_cluster(rep, rows, raw, nodes, work)
    elif phase == "outage":
        def store(m, p):
            rows["outage_first"].mpp.append(m["value"] if m else None)
            rows["outage_last"].mpp.append(m["last_s"] if m else None)
            rows["outage_first"].extra.append(m or {})
        pair("outage_first", lambda: outage_mpp(mpp, work), None, store,
             ["outage_first", "outage_last"])
    elif phase == "drain":
        pair("drain", lambda: drain_mpp(mpp, sink, DRAIN),
             lambda: drain_postfix(pf, DRAIN), plain("drain"), ["drain"])
    elif phase == "relay":
        relay.run_phase(rep, rows, raw, mpp, pf, work, DRAIN, attempt, show,
                        disk_probe)
    elif phase == "sasl":
        run_sasl_phase(rep, rows, raw, mpp, pf, mpp.bin, work)
    elif phase == "scale":
        run_scale_phase(rep, rows, raw, mpp, pf, sink, work)
    elif phase == "steady":
        wanted = [p for p in PHASES if want(p)]
        steady.run_phase(rep, rows, raw, mpp, pf, dovecot, work, attempt, show,
                         disk_probe, ROWS, wanted.index("steady") > 0)
    mpp.stop()


def run_cluster(rep, rows, raw, nodes, work):
    """One repetition of the cluster rows: no balancer, then 1, 2, 3
    nodes behind HAProxy; each balanced row's reference is this
    repetition's figure without a balancer."""
    direct = None
    balanced = [k for k in CLUSTER_NODES if not ROWS or f"cluster_haproxy_{k}" in ROWS]
    if ROWS and "cluster_direct" not in ROWS and not balanced:
        return
    # the direct row always runs: it is the balanced rows' reference
    for k in [0] + balanced:
        key = f"cluster_haproxy_{k}" if k else "cluster_direct"
        disk = round(disk_probe(work, 1, 0.3))
        res = attempt(rows, key, "mpp", lambda: cluster_mpp(nodes, k, *CLUSTER, work),
                      raw, rep, disk)
        rows[key].mpp.append(res["value"] if res else None)
        rows[key].ref.append(direct if k else None)
        rows[key].extra.append(res or {})
        if k == 0:
            direct = res["value"] if res else None
        show(rows, key)


def table(rows):
    lines = []
    head = (f"{'scenario':<44} {'unit':>6} {'mpp':>10} {'Postfix/ref':>12} "
            f"{'ratio':>7}  {'mpp p50/p99 ms':>15} {'mppd us':>8}  {'target':<18} met")
    lines += [head, "-" * len(head)]
    verdicts = []
    for r in rows.values():
        if not r.mpp and not r.errors:
            continue
        a, b = r.median("mpp"), r.median("ref")
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        lat = ""
        p50 = [e.get("lat_p50_ms") for e in r.extra if e.get("lat_p50_ms") is not None]
        p99 = [e.get("lat_p99_ms") for e in r.extra if e.get("lat_p99_ms") is not None]
        if p50:
            lat = f"{statistics.median(p50):.1f}/{statistics.median(p99):.1f}"
        cpu = [e.get("server_us_per_msg", e.get("server_us_per_session")) for e in r.extra]
        cpu = [c for c in cpu if c is not None]
        cpu = f"{statistics.median(cpu):.0f}" if cpu else ""
        met = ""
        if r.target is not None:
            # latency targets are mpp's own, whatever the reference did
            needs_ref = (r.ref_label != "-" and not r.key.startswith(("e2e_", "sweep_"))
                         and not r.key.endswith(("_post", "_e2e")))
            if a is None or (needs_ref and not b):
                met = "n/a"
            else:
                met = "yes" if r.target(a, b) else "NO"
            verdicts.append((r, met))
        ref = fmt(b, r.unit) if r.ref_label != "-" else "-"
        if r.ref_label == "bound" and b is not None:
            ref = f"{fmt(b, r.unit)} bnd"
        lines.append(f"{r.label:<44} {r.unit:>6} {fmt(a, r.unit):>10} {ref:>12} "
                     f"{ratio:>7}  {lat:>15} {cpu:>8}  {r.target_text:<18} {met}")
    return lines, verdicts


PROBES = [0]


def disk_probe(work, threads, seconds=1.5):
    """Maildir-style writes a second from `threads` threads: create a file
    in tmp/, write 1 KiB, fsync, close, rename into new/ (files are kept
    until the end, like every spool: see Trash)."""
    import threading
    PROBES[0] += 1
    d = work / f"probe-{PROBES[0]}"
    (d / "tmp").mkdir(parents=True)
    (d / "new").mkdir()
    data = b"x" * 1023 + b"\n"
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def writer(t):
        i = 0
        while time.monotonic() < stop:
            name = f"{t}.{i}"
            fd = os.open(d / "tmp" / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.rename(d / "tmp" / name, d / "new" / name)
            i += 1
        counts[t] = i
    t0 = time.monotonic()
    ts = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    fs = subprocess.run(["df", "--output=source,fstype,target", str(OUT)],
                        capture_output=True, text=True).stdout.split("\n")[1:2]
    pfv = subprocess.run(["postconf", "-d", "-h", "mail_version"],
                         capture_output=True, text=True).stdout.strip()
    return {"nproc": NPROC, "cpu": cpu, "kernel": platform.release(),
            "filesystem": fs[0].split() if fs else [], "postfix": pfv,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") *
                                os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


COOL_DOWN = 120     # seconds after the last run deleted its files


def cool_down():
    """A run that starts right after the previous one deleted its work
    directory would measure ext4's scan of recently freed inodes (on a
    filesystem without a journal; see Trash in systems.py): wait."""
    mark = OUT / "last-cleanup"
    if mark.exists():
        left = COOL_DOWN - (time.time() - mark.stat().st_mtime)
        if 0 < left <= COOL_DOWN:
            log(f"waiting {left:.0f} s: the previous run deleted its files "
                f"less than {COOL_DOWN} s ago")
            time.sleep(left)


def main():
    bindir = Path(os.environ.get("MPP_BIN", ROOT / "bin"))
    OUT.mkdir(parents=True, exist_ok=True)
    cool_down()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = OUT / f"work-{stamp}"
    work.mkdir()
    os.chmod(work, 0o755)
    mach = machine()
    log(f"mpp benchmark: {REPS} repetition(s){' (quick)' if QUICK else ''}; "
        f"{mach['nproc']} x {mach['cpu']}; {' '.join(mach['filesystem'])}; "
        f"Postfix {mach['postfix']}; work directory {work}")
    mach["maildir_writes_per_s"] = {n: round(disk_probe(work, n)) for n in (1, 8)}
    log(f"disk: {mach['maildir_writes_per_s'][1]} maildir-style writes/s from one "
        f"thread, {mach['maildir_writes_per_s'][8]} from 8")
    rows, raw = build_rows(), []
    sink, lat_sink = Sink(work, "sink"), Sink(work, "latsink", dump=True)
    mpp = pf = dovecot = None
    nodes = []
    interrupted = False
    t_start = time.monotonic()
    load_start = os.getloadavg()
    try:
        sink.start()
        lat_sink.start()
        trash = Trash(work)
        mpp = Mpp(work, bindir, sink.port, trash)
        nodes = [Mpp(work, bindir, sink.port, trash, name=f"node{i}", proxy=True)
                 for i in range(1, 1 + max(CLUSTER_NODES))] if want("cluster") else []
        pf = Postfix(work, sink.port, lat_sink.port, trash)
        pf.start()
        if want("sasl") or want("steady"):
            dovecot = Dovecot(work, mpp)
            dovecot.start(pf.sasl_socket)
        log("warming up")
        mpp.start()
        mpp.bench("-c", 8, "-n", 400, "-m", 50)
        pf.source(8, 400, KIB, keep=True)
        # Phase after phase, each repeated, mpp and Postfix alternating
        # within. The drain comes last (the outage after it drains too):
        # they are the phases in which files are deleted by design (see
        # Trash in systems.py).
        try:
            for phase in filter(want, PHASES):
                reps = SCALE_REPS if phase == "scale" else REPS
                for rep in range(1, reps + 1):
                    log(f"{phase}, repetition {rep} of {reps} "
                        f"(load average {os.getloadavg()[0]:.2f})")
                    run_phase(phase, rep, rows, raw, mpp, pf, sink, lat_sink, work,
                              nodes, dovecot)
        except KeyboardInterrupt:
            # a long run stopped (^C, SIGINT): what it measured is kept
            interrupted = True
            log("interrupted: the results so far follow")
    finally:
        if mpp:
            mpp.stop()
        for node in nodes:
            node.stop()
        if pf:
            pf.stop()
        if dovecot:
            dovecot.stop()
        relay.stop()
        steady.cleanup()
        sink.stop()
        lat_sink.stop()
    elapsed = time.monotonic() - t_start
    lines, verdicts = table(rows)
    summary = [f"mpp benchmark {stamp}: medians of {REPS} alternating run(s) "
               f"each{' (INTERRUPTED: fewer where it stopped)' if interrupted else ''}; "
               f"{elapsed / 60:.1f} min; load average "
               f"{load_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end",
               f"machine: {mach['nproc']} x {mach['cpu']}, {mach['memory_gib']} GiB, "
               f"kernel {mach['kernel']}, spool and queue on "
               f"{' '.join(mach['filesystem'])}; Postfix {mach['postfix']}",
               f"disk: {mach['maildir_writes_per_s'][1]} maildir-style writes/s "
               f"(1 KiB, fsync) from 1 thread, {mach['maildir_writes_per_s'][8]} "
               f"from 8",
               ""] + lines
    met = sum(1 for _, v in verdicts if v == "yes")
    hashes = []
    for method in SESSIONS:
        one = [e["hash_ms_one_thread"] for e in rows[f"sessions_{method}"].extra
               if e.get("hash_ms_one_thread")]
        if one:
            hashes.append(f"{method} {statistics.median(one):.1f} ms")
    if hashes:
        summary += ["", "one password check (one thread, median): " + ", ".join(hashes)]
    lb = []
    for k in CLUSTER_NODES:
        us = [e["haproxy_us_per_msg"] for e in rows[f"cluster_haproxy_{k}"].extra
              if e.get("haproxy_us_per_msg")]
        if us:
            lb.append(f"{k} node{'s' if k > 1 else ''} {statistics.median(us):.0f} us")
    if lb:
        summary += ["", "cluster rows: mppd us is every node's mppd together; "
                    "HAProxy's CPU per message (median): " + ", ".join(lb)]
    summary += lone.summary(rows, [(sasl_key(size, c, m), m)
                                   for size, c, m, _ in ACCEPT if c == 1])
    summary += relay.summary(rows)
    summary += steady.summary(rows)
    loads = [r["loadavg"] for r in raw]
    disks = sorted(r["disk_writes_per_s"] for r in raw)
    summary += ["", "mppd us: mppd's CPU time per message (per session in the "
                "sessions rows); bnd: the bound nproc / hash time, measured as "
                f"checks/s from {NPROC} threads at once around each run",
                f"during the runs: load average {min(loads, default=0):.1f} to "
                f"{max(loads, default=0):.1f}; disk {disks[0] if disks else 0} to "
                f"{disks[-1] if disks else 0} maildir-style writes/s (1 thread, "
                f"probed before each pair)",
                "", f"targets met: {met} of {len(verdicts)}"]
    errors = [e for r in rows.values() for e in r.errors]
    if errors:
        summary += ["", f"{len(errors)} failed run(s):"] + [f"  {e}" for e in errors]
    text = "\n".join(summary) + "\n"
    print("\n" + text, end="")
    result = {"stamp": stamp, "machine": mach, "reps": REPS, "quick": QUICK,
              "interrupted": interrupted,
              "elapsed_s": round(elapsed, 1), "loadavg_start": load_start,
              "loadavg_end": os.getloadavg(), "runs": raw,
              "medians": {k: {"mpp": r.median("mpp"), "ref": r.median("ref"),
                              "unit": r.unit} for k, r in rows.items() if r.mpp}}
    (OUT / f"results-{stamp}.json").write_text(json.dumps(result, indent=1) + "\n")
    (OUT / f"results-{stamp}.txt").write_text(text)
    shutil.copy(OUT / f"results-{stamp}.json", OUT / "latest.json")
    shutil.copy(OUT / f"results-{stamp}.txt", OUT / "latest.txt")
    log(f"raw figures: {OUT / f'results-{stamp}.json'}")
    if steady.RESULTS:
        png = OUT / f"steady-{stamp}.png"
        if steady.plot(OUT / f"results-{stamp}.json", png):
            shutil.copy(png, OUT / "latest-steady.png")
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(work, ignore_errors=True)     # trash included
        (OUT / "last-cleanup").touch()
    return 1 if errors or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
