"""The relay phase of make bench (BENCH_ONLY=relay): one queue of 1 KiB
messages relayed through a smarthost, by mppqueue and by Postfix.

The smarthost is tests/integration/mta.py's private Postfix, on its
submission listener: STARTTLS with a certificate from a test CA, AUTH
required and only inside TLS, SASL through its private Dovecot
(SHA512-CRYPT, no auth cache). No domain is local to it: everything goes
on to an smtp-sink of its own (relayhost). Both clients log in as alice
and verify the smarthost's certificate against the test CA and the name
localhost:

  mpp      mppqueue -d, default concurrency (4), started on a spool of n
           queued messages posted by mppbench (as in the drain phase):
           transport = smtp:localhost:PORT, smtp_tls = verify,
           smtp_tls_ca = the test CA, smtp_auth_file.
  Postfix  the bench's Postfix, its deferred queue of n messages from
           smtp-source flushed with relayhost = [127.0.0.1]:PORT,
           smtp_tls_policy_maps "verify match=localhost", smtp_tls_CAfile,
           smtp_sasl_auth_enable, smtp_sasl_password_maps (texthash):
           once as Postfix comes (no reuse of a TLS connection: a
           connection, a handshake and a login for each message), once
           with smtp_tls_connection_reuse = yes (through tlsproxy).

The figure: messages a second from the first to the last message the
smarthost took in (its queue manager's "queue active" line, read as the
log grows), so neither client's start is counted; beside it the time
from the start to the last, the TLS connections the smarthost saw, and
mppqueue's CPU time per message. Every message must have been
submitted with AUTH (the smarthost's sasl_username lines); after each
run the smarthost's own queue runs dry to the sink before the next."""

import statistics
import subprocess
import sys
import time
from pathlib import Path

from systems import BenchError, Sink, proc_cpu_s, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import mta  # noqa: E402

KIB = 1024
STALL_S = 30        # no message taken in for this long: the run failed
USER = "alice"


class Smarthost:
    """The private Postfix with STARTTLS and AUTH, relaying to a sink."""

    def __init__(self, work):
        why = mta.unavailable()
        if why:
            raise BenchError(f"no smarthost: {why}")
        self.sink = Sink(work, "relay-sink")
        try:
            self.pf = mta.Postfix(base=work / "smarthost",
                                  hostname="smarthost.bench.example")
        except mta.MtaError as e:
            raise BenchError(f"smarthost: {e}")
        self.port = self.pf.ports["submission"]
        self.password = self.pf.users[USER]
        self.running = False

    def start(self):
        if self.running:
            return
        self.sink.start()
        try:
            self.pf.set(virtual_mailbox_domains="",
                        relayhost=f"[127.0.0.1]:{self.sink.port}")
            self.pf.start()
        except mta.MtaError as e:
            raise BenchError(f"smarthost: {e}")
        self.running = True

    def stop(self):
        try:
            self.pf.stop()
        except mta.MtaError:
            pass
        self.sink.stop()
        self.running = False

    def run_dry(self):
        """Wait until everything taken in has gone on to the sink."""
        wait_for(lambda: self.pf.queued() == 0, 600, "the smarthost's queue "
                 "to empty", interval=0.1)


SMARTHOST = []


def smarthost(work):
    """The one smarthost of this bench run, started on first use."""
    if not SMARTHOST:
        SMARTHOST.append(Smarthost(work))
    SMARTHOST[0].start()
    return SMARTHOST[0]


def stop():
    for sh in SMARTHOST:
        sh.stop()


class Taken:
    """Messages the smarthost took in since it was made, counted in its
    log as the log grows (whole lines only)."""

    def __init__(self, sh):
        self.path = sh.pf.maillog
        self.start = self.off = sh.pf.log_mark()
        self.sh = sh
        self.n = 0

    def count(self):
        with open(self.path, "rb") as f:
            f.seek(self.off)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.n += data[:end].count(b" (queue active)")
        self.off += end
        return self.n

    def wait(self, n, alive, why):
        """Poll until n are taken in: the monotonic times of the first
        and the n-th. alive() raises if the client died; why() says what
        went wrong when nothing moves for STALL_S."""
        first = None
        last_n, last_t = 0, time.monotonic()
        while True:
            k = self.count()
            now = time.monotonic()
            if k and first is None:
                first = now
            if k >= n:
                return first, now
            alive()
            if k != last_n:
                last_n, last_t = k, now
            elif now - last_t > STALL_S:
                raise BenchError(f"{k} of {n} taken in by the smarthost, none "
                                 f"for {STALL_S} s: {why()}")
            time.sleep(0.01)

    def check(self, n):
        """Every message submitted with AUTH; the TLS connections."""
        text = self.sh.pf.log(since=self.start)
        authed = text.count(f"sasl_username={USER}")
        if authed != n:
            raise BenchError(f"{authed} of {n} messages submitted with AUTH")
        return text.count("TLS connection established from")


def figures(n, t0, first, last, tls):
    return {"value": (n - 1) / max(last - first, 1e-6), "elapsed_s": last - t0,
            "first_s": first - t0, "tls_connections": tls}


def relay_mpp(mpp, work, n):
    sh = smarthost(work)
    mpp.start()
    mpp.bench("-c", 32, "-n", n, "-m", 50, "-z", KIB)
    if mpp.count("queued") != n:
        raise BenchError(f"{mpp.count('queued')} of {n} queued before the relay")
    auth = mpp.dir / "relay-auth"
    auth.write_text(f"localhost:{sh.port} {USER} {sh.password}\n")
    auth.chmod(0o600)
    taken = Taken(sh)
    mpp.qlog = open(mpp.dir / "mppqueue.log", "ab")
    t0 = time.monotonic()
    q = mpp.queue = subprocess.Popen(
        [str(mpp.bin / "mppqueue"), "-d", "-c", str(mpp.conf),
         "-o", f"transport=smtp:localhost:{sh.port}", "-o", "smtp_tls=verify",
         "-o", f"smtp_tls_ca={sh.pf.ca_file}", "-o", f"smtp_auth_file={auth}"],
        stdout=mpp.qlog, stderr=subprocess.STDOUT)

    def alive():
        if q.poll() is not None:
            raise BenchError(f"mppqueue exited ({q.returncode}) during the relay")

    def why():
        tail = (mpp.dir / "mppqueue.log").read_text(errors="replace")
        return tail.strip().splitlines()[-1:] or "mppqueue logged nothing"
    first, last = taken.wait(n, alive, why)
    cpu = proc_cpu_s(q.pid)
    wait_for(lambda: mpp.count("sent") == n, 60, f"{n} sent in the index")
    mpp.stop_queue()
    res = figures(n, t0, first, last, taken.check(n))
    res["queue_us_per_msg"] = cpu / n * 1e6
    sh.run_dry()
    return res


def relay_postfix(pf, work, n, reuse):
    sh = smarthost(work)
    pf.set_mode("accept")
    pf.clear()
    pf.source(32, n, KIB, keep=True)
    pf.settle()
    if pf.queued(("deferred",)) != n:
        raise BenchError(f"{pf.queued(('deferred',))} of {n} deferred before the relay")
    d = pf.dir / "relay"
    d.mkdir(exist_ok=True)
    dest = f"[127.0.0.1]:{sh.port}"
    (d / "sasl_passwd").write_text(f"{dest} {USER}:{sh.password}\n")
    (d / "sasl_passwd").chmod(0o600)
    (d / "tls_policy").write_text(f"{dest} verify match=localhost\n")
    params = {"smtp_tls_CAfile": sh.pf.ca_file,
              "smtp_tls_policy_maps": f"texthash:{d / 'tls_policy'}",
              "smtp_sasl_auth_enable": "yes",
              "smtp_sasl_password_maps": f"texthash:{d / 'sasl_passwd'}",
              "smtp_sasl_security_options": "noanonymous",
              "smtp_tls_connection_reuse": "yes" if reuse else "no"}
    log = pf.dir / "maillog"
    mark = log.stat().st_size
    pf.cmd("postconf", "-e", f"relayhost = {dest}", "defer_transports =",
           *[f"{k} = {v}" for k, v in params.items()])
    pf.mode = "relay"
    try:
        pf.cmd("postfix", "reload")
        time.sleep(2)       # as set_mode: the queue manager restarts
        taken = Taken(sh)
        t0 = time.monotonic()
        pf.flush()

        def why():
            with open(log, "rb") as f:
                f.seek(mark)
                lines = [x for x in f.read().decode(errors="replace").splitlines()
                         if "status=" in x or "warning" in x]
            return lines[-1:] or "Postfix logged no delivery"
        first, last = taken.wait(n, lambda: None, why)
        wait_for(lambda: pf.queued() == 0, 60, "Postfix's queue to empty")
        res = figures(n, t0, first, last, taken.check(n))
    finally:
        pf.cmd("postconf", "-X", *params, check=False)
        pf.set_mode("accept")       # relayhost and defer_transports back
    sh.run_dry()
    return res


ROWS = (("relay", False, "Postfix"), ("relay_reuse", True, "Postfix+reuse"))
REF_EXTRA = {key: [] for key, _, _ in ROWS}     # the Postfix runs' figures


def add_rows(add, Row, n):
    add(Row("relay", f"relay {n} via smarthost, STARTTLS+AUTH", "msgs/s"))
    add(Row("relay_reuse", f"relay {n} via smarthost, vs TLS reuse", "msgs/s",
            ref_label="Postfix+reuse"))


def summary(rows):
    """The lines the table's summary gets: mppqueue's CPU per message and
    the TLS connections each client opened (medians)."""
    def med(extra, key):
        v = [e[key] for e in extra if e.get(key) is not None]
        return statistics.median(v) if v else None
    cpu = med(rows["relay"].extra, "queue_us_per_msg")
    if cpu is None:
        return []
    conns = [f"{label} {med(REF_EXTRA[key], 'tls_connections') or 0:.0f}"
             for key, _, label in ROWS if REF_EXTRA[key]]
    return ["", f"relay rows: mppqueue's CPU per message (median) {cpu:.0f} us; "
            f"TLS connections to the smarthost: mpp "
            f"{med(rows['relay'].extra, 'tls_connections'):.0f}, " + ", ".join(conns)]


def run_phase(rep, rows, raw, mpp, pf, work, n, attempt, show, disk_probe):
    """One repetition: mpp, then Postfix as it comes, then with reuse;
    mpp's figure serves both rows."""
    keys = [key for key, _, _ in ROWS]
    disk = round(disk_probe(work, 1, 0.3))
    m = attempt(rows, "relay", "mpp", lambda: relay_mpp(mpp, work, n), raw, rep, disk)
    mpp.stop()
    for key, reuse, label in ROWS:
        p = attempt(rows, key, label.lower(),
                    lambda: relay_postfix(pf, work, n, reuse), raw, rep, disk)
        r = rows[key]
        r.mpp.append(m["value"] if m else None)
        r.ref.append(p["value"] if p else None)
        r.extra.append(m or {})
        REF_EXTRA[key].append(p or {})
    for key in keys:
        show(rows, key)
