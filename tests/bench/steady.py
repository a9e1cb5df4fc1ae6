"""The steady-state phase of make bench (BENCH_ONLY=steady): posting and
delivery at once, for a while, mpp against Postfix doing the same work.

Three systems, each posting 1 KiB texts from 8 or 32 sessions of 50
messages (mppbench -D: as fast as they go, for STEADY_S seconds) while
its own queue delivers them to an smtp-sink:

  mpp           mppd, every session logged in (PASS, sha512-crypt), and
                mppqueue -d (as it comes: concurrency 4) to the sink
  Postfix+SASL  smtpd with SASL through the private Dovecot (AUTH PLAIN,
                the same user and hash), its qmgr and smtp client
                relaying to the sink (relayhost)
  Postfix       the plain smtpd (relaying for loopback, no AUTH), the
                same queue manager and client

Postfix's load is mppbench --smtp --pipelining (its best client: MAIL,
RCPT, DATA in one write, the next envelope behind each text); both get
the same texts, sessions and messages per session.

The sink dumps every message to a file of its own on a tmpfs (so the
MTA's writes do not compete with the spool's and the queue's for the
disk); the moment it closes that file is the arrival, and the message's
X-Bench-Seq names it in mppbench's -T file, so each message's posting
-> MTA latency is its arrival minus the moment its final "." left.

Figures of a run: posted/s; delivered/s while the posting lasted; the
queue's depth sampled every SAMPLE_S (mpp: queued + sending + deferred
in the index's state_total; Postfix: the files of incoming, active,
deferred and maildrop) and its slope over the second half; posting
latency p50/p99 (mppbench's response time: from the message's first
command, or with a rate from when it was due, to its 250) and the "."
-> 250 latency; posting -> MTA p50/p99; CPU per delivered message of
mppd and mppqueue (from /proc), and of Postfix's whole process tree and
Dovecot's (live processes and those reaped meanwhile), from the start
of the posting until the last message arrived.

The disk's history: on this ext4 (no journal) a file created less than
a minute after many were deleted costs far more (docs/performance.md,
"Where the time goes"), and a steady state deletes as it delivers. So
each row runs twice per system, one after the other: "fresh", after
COOL_S seconds without any deletion (mpp on a new spool), then "after
deletions", at once on the same spool or queue directory, whose
previous run has just deleted every message it delivered, as a spool
in production always has.

The sweep: open-loop posting (mppbench -r: message i due at i/rate
whichever of the 32 sessions takes it, its waiting counted) at 25, 50,
75, 100 and 125 % of mpp's maximum, the delivered/s of its 32-session
run after deletions in the same repetition; every system is offered
the same rates (one axis of offered load: a system's own closed-loop
figure can lie below what it sustains open-loop, as Postfix's delivery
slows while its queue fills), every point after deletions. It shows
where each system's latency turns upward and what happens past it: the
queue grows or posting waits, posting stays answered, nothing is
refused but by a configured limit (failed sessions are counted).

Environment (beside bench.py's): BENCH_STEADY_S, BENCH_SWEEP_S (seconds
of posting per run), BENCH_COOL_S, BENCH_SINK_DIR (where the sink's
files go: default /dev/shm), BENCH_STEADY_SYSTEMS (comma-separated, of
mpp, postfix-sasl, postfix: default all; mpp alone for a quicker
comparison of two builds with before_after.py)."""

import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import threading
import time
from pathlib import Path

from systems import (BenchError, Mpp, Sink, log_mark, proc_cpu_s, raise_nofile,
                     wait_for, wait_for_log)

QUICK = os.environ.get("BENCH_QUICK") == "1"
KIB = 1024
PER_SESSION = 50
SESSIONS = (8, 32)
VARIANTS = ("fresh", "deleted")
SWEEP = (25, 50, 75, 100, 125)
STEADY_S = int(os.environ.get("BENCH_STEADY_S", "10" if QUICK else "60"))
SWEEP_S = int(os.environ.get("BENCH_SWEEP_S", "10" if QUICK else "30"))
COOL_S = int(os.environ.get("BENCH_COOL_S", "10" if QUICK else "120"))
SINK_DIR = Path(os.environ.get("BENCH_SINK_DIR", "/dev/shm"))
SAMPLE_S = 0.25
TAIL_S = 900        # the most a queue gets to run dry after the posting
STALL_S = 60        # nothing delivered for this long: the run failed
ALL_SYSTEMS = ("mpp", "postfix-sasl", "postfix")

def chosen_systems(text):
    """BENCH_STEADY_SYSTEMS: the systems named, in ALL_SYSTEMS' order; all
    when empty. An unknown name is an error, not a silently empty run."""
    names = set(filter(None, text.split(",")))
    unknown = names - set(ALL_SYSTEMS)
    if unknown:
        raise SystemExit(f"BENCH_STEADY_SYSTEMS: unknown {', '.join(sorted(unknown))} "
                         f"(of {', '.join(ALL_SYSTEMS)})")
    return tuple(n for n in ALL_SYSTEMS if not names or n in names)


SYSTEMS = chosen_systems(os.environ.get("BENCH_STEADY_SYSTEMS", ""))
LABEL = {"mpp": "mpp", "postfix-sasl": "Postfix+SASL", "postfix": "Postfix"}
SEQ_RE = re.compile(rb"^X-Bench-Seq: (\d+)\r?$", re.M)

# Each system's figures by row key, for the summary (the table's rows
# take one reference each).
RESULTS = {}
LAST_DELETION = [None]      # monotonic time the last run stopped deleting
RUNS = [0]
LOAD = [None]               # the load average as the last run began


# ------------------------------------------------------------ measuring

class Depth(threading.Thread):
    """The queue's depth every SAMPLE_S (or ten times as long as one
    sample takes, so a large Postfix queue's walk stays a small load):
    [(wall ns, depth)]."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.samples = fn, []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t0 = time.monotonic()
            d = self.fn()       # None: not readable just now, skipped
            if d is not None:
                self.samples.append((time.time_ns(), d))
            cost = time.monotonic() - t0
            self.halt.wait(max(SAMPLE_S, 10 * cost))

    def stop(self):
        self.halt.set()
        self.join()


class MppDepth:
    """Messages in mpp's queue (queued, sending, deferred), from the
    index's totals (schema 4) or, before them, a count. One read-only
    connection, shared by the sampler and the wait for the end."""

    STATES = ("queued", "sending", "deferred")

    def __init__(self, spool):
        self.db, self.conn = spool / "index.db", None
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            if self.conn is None:
                if not self.db.exists():
                    return 0
                self.conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True,
                                            timeout=10, check_same_thread=False)
            marks = ",".join("?" * len(self.STATES))
            try:
                q = self.conn.execute("SELECT sum(n) FROM state_total WHERE state "
                                      f"IN ({marks})", self.STATES)
            except sqlite3.OperationalError:
                q = self.conn.execute("SELECT count(*) FROM message WHERE state "
                                      f"IN ({marks})", self.STATES)
            return q.fetchone()[0] or 0

    def close(self):
        with self.lock:
            if self.conn:
                self.conn.close()
                self.conn = None


def proc_table():
    """{pid: (ppid, own CPU s, reaped children's CPU s)} of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            f = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(d)] = (int(f[1]), (int(f[11]) + int(f[12])) / tick,
                       (int(f[13]) + int(f[14])) / tick)
    return out


class TreeCpu:
    """CPU seconds used by process trees (Postfix's master and its
    services, Dovecot's) between two snapshots: what live processes
    used, plus what reaped ones did (their parent's children's time),
    less what those had used before the first snapshot."""

    def __init__(self, roots):
        self.roots = [r for r in roots if r]

    def snapshot(self):
        table = proc_table()
        kids = {}
        for pid, (ppid, _, _) in table.items():
            kids.setdefault(ppid, []).append(pid)
        own, reaped, todo = {}, 0.0, list(self.roots)
        while todo:
            pid = todo.pop()
            if pid not in table or pid in own:
                continue
            own[pid] = table[pid][1]
            reaped += table[pid][2]
            todo += kids.get(pid, [])
        return own, reaped

    @staticmethod
    def used(before, after):
        (own0, reaped0), (own1, reaped1) = before, after
        live = sum(c - own0.get(pid, 0.0) for pid, c in own1.items())
        gone = sum(c for pid, c in own0.items() if pid not in own1)
        return max(0.0, live + (reaped1 - reaped0) - gone)


def postfix_master(pf):
    try:
        return int((pf.queue_dir / "pid" / "master.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        raise BenchError("Postfix's master.pid unreadable")


def times_of(path):
    """mppbench -T: {seq: (sent, ok, due)}, wall-clock ns."""
    out = {}
    for line in path.read_text().splitlines():
        seq, sent, ok, due = (int(x) for x in line.split())
        out[seq] = (sent, ok, due)
    return out


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = max(1, min(len(v), int(p / 100.0 * len(v) + 0.999999)))
    return v[k - 1]


def slope(points):
    """Least-squares growth per second of [(t s, value)]."""
    if len(points) < 2:
        return 0.0
    mt = statistics.fmean(t for t, _ in points)
    mv = statistics.fmean(v for _, v in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def rnd(v, k=2):
    return None if v is None else round(v, k)


def series(t0, sent, arrived, depth):
    """Per second from the start: posted and delivered counts, posting
    latency p50/p99 by the second a message was due, posting -> MTA
    p50/p99 by the second it was posted; the depth samples."""
    end = max([a for a in arrived.values()] + [ok for _, ok, _ in sent.values()]
              + [t0])
    n = int((end - t0) // 1_000_000_000) + 1
    posted, delivered = [0] * n, [0] * n
    resp, e2e = [[] for _ in range(n)], [[] for _ in range(n)]
    for seq, (s, ok, due) in sent.items():
        if ok:
            posted[int((ok - t0) // 1_000_000_000)] += 1
            resp[int((due - t0) // 1_000_000_000)].append((ok - due) / 1e6)
        if seq in arrived:
            e2e[int((s - t0) // 1_000_000_000)].append((arrived[seq] - s) / 1e6)
    for a in arrived.values():
        delivered[int((a - t0) // 1_000_000_000)] += 1
    return {"t": list(range(n)), "posted": posted, "delivered": delivered,
            "resp_p50": [rnd(pct(x, 50)) for x in resp],
            "resp_p99": [rnd(pct(x, 99)) for x in resp],
            "e2e_p50": [rnd(pct(x, 50)) for x in e2e],
            "e2e_p99": [rnd(pct(x, 99)) for x in e2e],
            "depth": [[round((t - t0) / 1e9, 2), d] for t, d in depth]}


def arrivals(sink):
    """{seq: arrival wall ns} of what the sink closed, read from the
    dumped texts (files it never finished are left out)."""
    out = {}
    for name, t in list(sink.watch.closed.items()):
        try:
            m = SEQ_RE.search((sink.dump_dir / name).read_bytes())
        except OSError:
            continue
        if m:
            out.setdefault(int(m.group(1)), t)
    return out


# -------------------------------------------------------------- running

class System:
    """One of SYSTEMS made ready to post to and deliver from: start()
    before the run, the mppbench arguments, depth(), cpu(), stop()."""

    def __init__(self, name, mpp, pf, dovecot):
        self.name, self.mpp, self.pf, self.dovecot = name, mpp, pf, dovecot
        self.depth_fn = None

    def start(self, sink, fresh):
        if self.name == "mpp":
            self.mpp.start(fresh=fresh)
            log_path = self.mpp.dir / "mppqueue.log"
            mark = log_mark(log_path)
            q = self.mpp.start_queue(sink.port)
            wait_for_log(log_path, mark, b"ready", q, 20, "mppqueue to start")
            self.depth_fn = MppDepth(self.mpp.spool)
            return
        pf = self.pf
        pf.cmd("postconf", "-e", f"relayhost = [127.0.0.1]:{sink.port}",
               "defer_transports =")
        pf.mode = "steady"      # set_mode("accept") puts both back
        pf.cmd("postfix", "reload")
        time.sleep(2)           # as set_mode: the queue manager restarts
        if pf.queued(pf.QUEUES) != 0:
            raise BenchError("Postfix's queue is not empty before the run")
        self.tree = TreeCpu([postfix_master(pf)])
        self.auth = TreeCpu([self.dovecot.proc.pid if self.dovecot and
                             self.dovecot.proc else None])
        self.depth_fn = pf.queued

    def bench_args(self):
        if self.name == "mpp":
            return ["-s", f"127.0.0.1:{self.mpp.port}", "-u", Mpp.USERS["sha512"],
                    "-p", Mpp.PASSWORD]
        if self.name == "postfix-sasl":
            return ["--smtp", "--pipelining", "-s", f"127.0.0.1:{self.pf.sasl_port}",
                    "-u", Mpp.USERS["sha512"], "-p", Mpp.PASSWORD,
                    "-F", "alice@bench.example"]
        return ["--smtp", "--pipelining", "--no-auth", "-s",
                f"127.0.0.1:{self.pf.port}", "-F", "bench@bench.example"]

    def cpu(self):
        """A snapshot for cpu_used()."""
        if self.name == "mpp":
            return (proc_cpu_s(self.mpp.mppd.pid), proc_cpu_s(self.mpp.queue.pid))
        return (self.tree.snapshot(), self.auth.snapshot())

    def cpu_used(self, a, b):
        """{part: CPU seconds} between snapshots a and b."""
        if self.name == "mpp":
            return {"mppd": b[0] - a[0], "mppqueue": b[1] - a[1]}
        return {"postfix": TreeCpu.used(a[0], b[0]),
                "dovecot": TreeCpu.used(a[1], b[1])}

    def depth(self):
        """The queue's depth, None when it could not be read just now."""
        try:
            return self.depth_fn()
        except (sqlite3.Error, OSError):
            return None

    def alive(self):
        if self.name == "mpp" and (self.mpp.queue.poll() is not None or
                                   self.mpp.mppd.poll() is not None):
            raise BenchError("mppd or mppqueue exited during the run")

    def stop(self):
        if self.name == "mpp":
            if isinstance(self.depth_fn, MppDepth):
                self.depth_fn.close()
            self.mpp.stop()


def post(system, work, c, seconds, rate, times):
    """mppbench against the system: its JSON figures (a run with failed
    sessions still has figures: they are what is recorded)."""
    import json
    cmd = [str(system.mpp.bin / "mppbench"), *system.bench_args(), "-c", str(c),
           "-m", str(PER_SESSION), "-z", str(KIB), "-D", str(seconds),
           "-T", str(times), "--json"]
    if rate:
        cmd += ["-r", str(int(rate))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300,
                       preexec_fn=raise_nofile)
    try:
        fig = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchError(f"mppbench printed no figures (exit {r.returncode}): "
                         f"{r.stderr.strip()}")
    if r.returncode not in (0, 1):
        raise BenchError(f"mppbench exit {r.returncode}: {r.stderr.strip()}")
    return fig


def dumped(sink):
    with os.scandir(sink.dump_dir) as it:
        return sum(1 for _ in it)


def wait_dry(system, sink, posted, deadline):
    """Until the queue is empty and the sink has every posted message
    (raises when nothing arrives for STALL_S, or at the deadline). The
    sink's files are counted too: should inotify's queue overflow, a
    message would have arrived without an arrival time."""
    last_n, last_t = -1, time.monotonic()
    while True:
        n = len(sink.watch.closed)
        now = time.monotonic()
        if system.depth() == 0 and (n >= posted or dumped(sink) >= posted):
            return
        system.alive()
        if n != last_n:
            last_n, last_t = n, now
        elif now - last_t > STALL_S:
            raise BenchError(f"{n} of {posted} at the sink, none for {STALL_S} s")
        if now > deadline:
            raise BenchError(f"{n} of {posted} at the sink after {TAIL_S} s")
        time.sleep(0.05)


def run_one(name, ctx, c, seconds, rate=0, fresh=False):
    """One run of one system: c sessions posting for `seconds` (at `rate`
    a second with a rate, as fast as they go without) while its queue
    delivers to a new sink; its figures, with the per-second series."""
    mpp, pf, dovecot, work = ctx
    RUNS[0] += 1
    tag = f"steady-{RUNS[0]:03d}"
    dump = SINK_DIR / f"mpp-bench-{os.getpid()}" / tag
    times = dump.parent / f"{tag}-times.txt"    # beside the dump, off the disk
    sink = Sink(work, f"{tag}-sink", dump_dir=dump)
    system = System(name, mpp, pf, dovecot)
    sampler = None
    try:
        sink.start()
        system.start(sink, fresh)
        sampler = Depth(system.depth)
        sampler.start()
        LOAD[0] = os.getloadavg()[0]
        cpu0, c0 = system.cpu(), time.time_ns()
        fig = post(system, work, c, seconds, rate, times)
        t_end = time.time_ns()
        failed = None
        try:
            wait_dry(system, sink, fig["messages"], time.monotonic() + TAIL_S)
        except BenchError as e:
            failed = str(e)
        cpu = system.cpu_used(cpu0, system.cpu())
        t_dry = time.time_ns()
        sampler.stop()
        LAST_DELETION[0] = time.monotonic()
        res = figures(name, c, seconds, rate, fresh, fig, times, sink, sampler,
                      cpu, c0, t_end, t_dry, failed)
        print(f"    {LABEL[name]}, {c} sessions, {'fresh' if fresh else 'after deletions'}"
              f"{f', offered {rate}/s' if rate else ''}: {res['posted_per_s']:,.0f} "
              f"posted/s, {res['value']:,.0f} delivered/s, queue max "
              f"{res['depth_max']:,}, posting p99 {res['lat_p99_ms'] or 0:.1f} ms, "
              f"posting -> MTA p99 {res['e2e_p99_ms'] or 0:.1f} ms", flush=True)
        return res
    finally:
        if sampler and sampler.is_alive():
            sampler.stop()
        system.stop()
        sink.stop()
        shutil.rmtree(dump, ignore_errors=True)     # a tmpfs: no disk history
        times.unlink(missing_ok=True)
        LAST_DELETION[0] = time.monotonic()


def figures(name, c, seconds, rate, fresh, fig, times, sink, sampler, cpu, c0,
            t_end, t_dry, failed):
    sent = times_of(times)
    arrived = arrivals(sink)
    if failed and not arrived:
        raise BenchError(failed)
    t0 = min([due for _, _, due in sent.values()] or [c0])
    window = max((t_end - t0) / 1e9, 1e-3)
    e2e = [(arrived[s] - v[0]) / 1e6 for s, v in sent.items() if s in arrived]
    resp = [(ok - due) / 1e6 for _, ok, due in sent.values() if ok]
    in_window = sum(1 for a in arrived.values() if a <= t_end)
    depth = sampler.samples
    during = [((t - t0) / 1e9, d) for t, d in depth if t <= t_end]
    half = [p for p in during if p[0] >= window / 2]
    delivered = len(arrived)
    used = sum(cpu.values())
    res = {"value": in_window / window, "system": name, "sessions": c,
           "seconds": seconds, "rate": rate, "fresh": fresh,
           "posted": fig["messages"], "posted_per_s": fig["messages"] / window,
           "delivered": delivered, "delivered_in_window": in_window,
           "matched": len(e2e), "unmatched_at_sink": len(sink.watch.closed) - len(arrived),
           "failed_sessions": fig["failed_sessions"],
           "failed_messages": fig["failed_messages"],
           "first_error": fig.get("first_error", ""), "not_dry": failed,
           "window_s": round(window, 3), "dry_after_s": round((t_dry - t_end) / 1e9, 3),
           "depth_max": max([d for _, d in depth] or [0]),
           "depth_end": during[-1][1] if during else 0,
           "depth_slope_per_s": round(slope(half), 2),
           "lat_p50_ms": rnd(pct(resp, 50), 3), "lat_p99_ms": rnd(pct(resp, 99), 3),
           "dot_p50_ms": fig["latency_p50_ms"], "dot_p99_ms": fig["latency_p99_ms"],
           "e2e_p50_ms": rnd(pct(e2e, 50), 3), "e2e_p99_ms": rnd(pct(e2e, 99), 3),
           "e2e_max_ms": rnd(max(e2e, default=None), 3),
           "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
           "server_us_per_msg": used / max(delivered, 1) * 1e6,
           "loadavg_start": LOAD[0],
           "series": series(t0, sent, arrived, depth)}
    for k, v in cpu.items():
        res[f"{k}_us_per_msg"] = round(v / max(delivered, 1) * 1e6, 1)
    if failed:
        raise BenchError(f"{failed} ({delivered} of {fig['messages']} delivered)")
    return res


def cool_down():
    """A fresh run starts COOL_S after the last deletion."""
    if LAST_DELETION[0] is None:
        return
    left = LAST_DELETION[0] + COOL_S - time.monotonic()
    if left > 0:
        print(f"  waiting {left:.0f} s: no deletion for {COOL_S} s before a fresh run",
              flush=True)
        time.sleep(left)


# ------------------------------------------------------------- the rows

def key(c, variant):
    return f"steady_{c}_{variant}"


def add_rows(add, Row):
    for c in SESSIONS:
        for v in VARIANTS:
            what = "fresh" if v == "fresh" else "after deletions"
            big = c == 32
            add(Row(key(c, v), f"steady {c} sess, {what}: delivered", "msgs/s",
                    (lambda a, b: a / b >= 2) if big else None,
                    "mpp/Postfix+SASL >= 2" if big else "", ref_label="Postfix+SASL"))
            add(Row(f"{key(c, v)}_plain", f"steady {c} sess, {what}: vs plain",
                    "msgs/s", (lambda a, b: a / b >= 1.5) if big else None,
                    "mpp/Postfix >= 1.5" if big else ""))
            add(Row(f"{key(c, v)}_post", f"steady {c} sess, {what}: posting p99", "ms",
                    (lambda a, b: a < 50) if big else None, "mpp < 50 ms" if big else "",
                    ref_label="Postfix+SASL", better="lower"))
            add(Row(f"{key(c, v)}_e2e", f"steady {c} sess, {what}: post->MTA p99",
                    "ms", None, "", ref_label="Postfix+SASL", better="lower"))
    for p in SWEEP:
        at75 = p == 75
        add(Row(f"sweep_{p}_e2e", f"sweep {p} % of max: post->MTA p99", "ms",
                (lambda a, b: a < 200) if at75 else None, "mpp < 200 ms" if at75 else "",
                ref_label="Postfix+SASL", better="lower"))
        add(Row(f"sweep_{p}_post", f"sweep {p} % of max: posting p99", "ms", None, "",
                ref_label="Postfix+SASL", better="lower"))


def wanted(rows_filter, k):
    return not rows_filter or any(r == k or r.startswith(k + "_") for r in rows_filter)


def record(rows, k, res, show):
    """Put one row's three runs into the table's rows and RESULTS."""
    m, s, p = (res.get(n) for n in ALL_SYSTEMS)
    RESULTS.setdefault(k, {n: [] for n in SYSTEMS})
    for n in SYSTEMS:
        RESULTS[k][n].append(strip(res.get(n)))

    def put(rk, field, ref):
        if rk not in rows:
            return
        rows[rk].mpp.append(m[field] if m else None)
        rows[rk].ref.append(ref[field] if ref else None)
        rows[rk].extra.append(strip(m) if field == "value" else {})
        show(rows, rk)
    if k.startswith("sweep_"):
        put(f"{k}_e2e", "e2e_p99_ms", s)
        put(f"{k}_post", "lat_p99_ms", s)
        return
    put(k, "value", s)
    put(f"{k}_plain", "value", p)
    put(f"{k}_post", "lat_p99_ms", s)
    put(f"{k}_e2e", "e2e_p99_ms", s)


def strip(res):
    return {k: v for k, v in res.items() if k != "series"} if res else None


def run_phase(rep, rows, raw, mpp, pf, dovecot, work, attempt, show, disk_probe,
              rows_filter, after_others):
    """One repetition: each row, each system fresh then after deletions;
    then the sweep, each point mpp, Postfix+SASL, Postfix."""
    ctx = (mpp, pf, dovecot, work)
    if after_others and LAST_DELETION[0] is None:
        LAST_DELETION[0] = time.monotonic()     # earlier phases deleted
    pf.set_mode("accept")
    pf.clear()
    maxima = {}
    sweep = any(wanted(rows_filter, f"sweep_{p}") for p in SWEEP)
    for c in SESSIONS:
        ks = [key(c, v) for v in VARIANTS]
        # the sweep needs the 32-session maximum of this repetition
        if not any(wanted(rows_filter, k) for k in ks) and not (
                sweep and c == max(SESSIONS)):
            continue
        res = {k: {} for k in ks}
        for name in SYSTEMS:
            for v, k in zip(VARIANTS, ks):
                fresh = v == "fresh"
                if fresh:
                    cool_down()
                disk = round(disk_probe(work, 1, 0.3))
                r = attempt(rows, k, name, lambda: run_one(name, ctx, c, STEADY_S,
                                                           fresh=fresh),
                            raw, rep, disk)
                res[k][name] = r
        for k in ks:
            record(rows, k, res[k], show)
        if c == max(SESSIONS):
            # the sweep's 100 %: after deletions, as every sweep point runs
            for name in SYSTEMS:
                r = res[key(c, "deleted")].get(name) or res[key(c, "fresh")].get(name)
                if r:
                    maxima[name] = r["value"]
    # Every system is offered the same rates, from mpp's maximum: one
    # axis of offered load, on which each system's knee shows where it
    # is (a system's own closed-loop figure may lie below what it can
    # sustain open-loop: Postfix's delivery slows while its queue fills).
    top = maxima.get("mpp") or max_of("mpp")
    if not sweep:
        pf.set_mode("accept")
        return
    for p in SWEEP:
        k = f"sweep_{p}"
        if not wanted(rows_filter, k):
            continue
        res = {}
        for name in SYSTEMS:
            if not top:
                continue
            rate = max(1, round(top * p / 100))
            disk = round(disk_probe(work, 1, 0.3))
            res[name] = attempt(rows, f"{k}_e2e", name,
                                lambda: run_one(name, ctx, max(SESSIONS), SWEEP_S,
                                                rate=rate),
                                raw, rep, disk)
        record(rows, k, res, show)
    pf.set_mode("accept")


def max_of(name):
    """When this repetition's 32-session runs of name failed: the median
    of the earlier repetitions' (None if there are none: no sweep)."""
    v = [r["value"] for k in (key(max(SESSIONS), "deleted"), key(max(SESSIONS), "fresh"))
         for r in RESULTS.get(k, {}).get(name, []) if r]
    return statistics.median(v) if v else None


# ------------------------------------------------------------ summary

def summary(rows):
    """The lines the table's summary gets: every system's figures per row
    (medians over the repetitions)."""
    if not RESULTS:
        return []

    def med(runs, field):
        v = [r[field] for r in runs if r and r.get(field) is not None]
        return statistics.median(v) if v else None

    def f(v, fmt="{:,.0f}"):
        return "-" if v is None else fmt.format(v)
    head = (f"{'row':<18} {'system':<13} {'offered/s':>9} {'posted/s':>9} "
            f"{'deliv/s':>8} {'q max':>7} {'q end':>7} {'q slope/s':>9} "
            f"{'post p50/p99 ms':>16} {'post->MTA p50/p99 ms':>21} {'CPU us/msg':>10} "
            f"{'failed':>6}")
    out = ["", "steady state: medians of each system's runs; offered: the "
           "sweep's rate (closed loop: -); q: queue depth; CPU: mppd + mppqueue, "
           "or Postfix's processes + Dovecot's, per delivered message", head,
           "-" * len(head)]
    for k, per in RESULTS.items():
        for n in SYSTEMS:
            runs = per.get(n, [])
            if not any(runs):
                continue
            rate = med(runs, "rate")
            out.append(
                f"{k:<18} {LABEL[n]:<13} {f(rate) if rate else '-':>9} "
                f"{f(med(runs, 'posted_per_s')):>9} {f(med(runs, 'value')):>8} "
                f"{f(med(runs, 'depth_max')):>7} {f(med(runs, 'depth_end')):>7} "
                f"{f(med(runs, 'depth_slope_per_s'), '{:,.1f}'):>9} "
                f"{f(med(runs, 'lat_p50_ms'), '{:.1f}') + '/' + f(med(runs, 'lat_p99_ms'), '{:.1f}'):>16} "
                f"{f(med(runs, 'e2e_p50_ms'), '{:.1f}') + '/' + f(med(runs, 'e2e_p99_ms'), '{:.1f}'):>21} "
                f"{f(med(runs, 'server_us_per_msg')):>10} "
                f"{f(med(runs, 'failed_sessions')):>6}")
    return out


def plot(results_json, png):
    """The PNG of latency and queue depth over time (plot_steady.py); a
    missing matplotlib skips it with a message, never fails the run."""
    import sys
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("plot_steady.py")),
                        str(results_json), str(png)], capture_output=True, text=True)
    msg = (r.stdout + r.stderr).strip()
    if msg:
        print(msg, flush=True)
    return r.returncode == 0


def cleanup():
    shutil.rmtree(SINK_DIR / f"mpp-bench-{os.getpid()}", ignore_errors=True)
