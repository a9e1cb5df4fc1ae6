"""The systems the benchmark drives: mpp (bin/mppd, bin/mppqueue, the load
generator bin/mppbench), a private Postfix instance with smtp-source as its
load, the same Postfix with SASL through a private Dovecot (mppbench
--smtp as its load), and smtp-sink as the MTA both deliver to.

Everything lives under one work directory on the disk of the work tree (not
a tmpfs), so mpp's spool and Postfix's queue see the same filesystem.
Only loopback addresses are used."""

import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOFILE = 65536                       # descriptors for mppd and mppbench


class BenchError(Exception):
    """A run that could not be done or whose result is not trustworthy."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout}s waiting for {what}")


def log_mark(path):
    """Where a log file ends now: what wait_for_log reads after."""
    return path.stat().st_size if path.exists() else 0


def wait_for_log(path, mark, text, proc, timeout, what, interval=0.02):
    """Wait for text in the log at path past mark, while proc runs."""
    def seen():
        if proc.poll() is not None:
            raise BenchError(f"{proc.args[0]} exited while waiting for {what}")
        with open(path, "rb") as f:
            f.seek(mark)
            return text in f.read()
    wait_for(seen, timeout, what, interval)


def greets(port, banner=b"220"):
    """True when a server on port answers a connection with its banner."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(64).startswith(banner)
    except OSError:
        return False


def raise_nofile():
    """preexec_fn: allow NOFILE descriptors (as root, raise the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, max(NOFILE, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def child_cpu_s():
    """CPU seconds used by the children waited for so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def proc_cpu_s(pid):
    """CPU seconds (user + system) process pid has used so far."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def stop_proc(proc, sig=signal.SIGTERM, timeout=30):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Trash:
    """Where spent spools and queue files go until the benchmark ends.

    Deleting them between runs would skew the next runs: on an ext4
    filesystem without a journal, allocating an inode skips every inode of
    the block group freed less than a minute ago (the kernel's
    recently_deleted() check), so a run that follows the deletion of
    thousands of files spends much of its time in that scan. Renaming frees
    no inode; everything is deleted once, after the last measurement."""

    def __init__(self, work):
        self.dir = work / "trash"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def take(self, path):
        self.n += 1
        dest = self.dir / f"{self.n:06d}-{path.name}"
        os.rename(path, dest)
        return dest


class CloseWatch:
    """The moment each file in a directory is closed after writing
    (inotify IN_CLOSE_WRITE), by name, read by a thread as events come.
    A file's mtime would not do: the kernel may stamp it with a clock that
    lags by up to a timer tick, which is the order of what is measured."""

    IN_CLOSE_WRITE = 0x8

    def __init__(self, path):
        import ctypes
        import struct
        import threading
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0 or libc.inotify_add_watch(
                self.fd, str(path).encode(), self.IN_CLOSE_WRITE) < 0:
            raise BenchError(f"inotify on {path}: {os.strerror(ctypes.get_errno())}")
        self.closed = {}
        self.struct = struct
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except OSError:
                return
            now = time.time_ns()
            off = 0
            while off + 16 <= len(buf):
                _, _, _, n = self.struct.unpack_from("iIII", buf, off)
                name = buf[off + 16:off + 16 + n].rstrip(b"\0").decode()
                self.closed.setdefault(name, now)
                off += 16 + n

    def close(self):
        os.close(self.fd)


class Sink:
    """smtp-sink on a loopback port; with dump, each message is written to
    a file of its own, and the moment smtp-sink closes it (the end of the
    transaction) is its arrival time. dump_dir puts those files elsewhere
    than under the work directory (a tmpfs, for many messages: the MTA's
    writes then do not compete with the spool's and queue's)."""

    def __init__(self, work, name, dump=False, dump_dir=None):
        self.port = free_port()
        self.dir = work / name
        self.dump_dir = dump_dir or (self.dir / "dump" if dump else None)
        self.proc = None
        self.watch = None

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        args = ["smtp-sink", "-u", "postfix", "-m", "1024"]
        if self.dump_dir:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            shutil.chown(self.dump_dir, "postfix")
            # strftime template plus a random suffix: one file a message
            args += ["-d", f"{self.dump_dir}/%H%M%S."]
            self.watch = CloseWatch(self.dump_dir)
        args += [f"127.0.0.1:{self.port}", "1024"]
        self.log = open(self.dir / "sink.log", "ab")
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: greets(self.port), 10, f"smtp-sink on {self.port}")

    def clear_dump(self):
        """Forget what arrived (few files: deleting them skews nothing)."""
        for p in self.dump_dir.iterdir():
            p.unlink()
        self.watch.closed.clear()

    def arrivals(self):
        """(path, wall-clock ns when smtp-sink closed it) for each message."""
        return [(self.dump_dir / name, t) for name, t in list(self.watch.closed.items())]

    def stop(self):
        stop_proc(self.proc)
        self.proc = None
        if self.watch:
            self.watch.close()


class Mpp:
    """mppd and mppqueue over one spool and config; users alice (sha512-crypt)
    and yves (yescrypt), both with the password "secret"."""

    USERS = {"sha512": "alice", "yescrypt": "yves"}
    PASSWORD = "secret"

    def __init__(self, work, bindir, sink_port, trash, name="mpp", proxy=False):
        self.trash = trash
        self.bin = Path(bindir)
        self.dir = work / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spool = self.dir / "spool"
        self.passwd = self.dir / "passwd"
        self.conf = self.dir / "mpp.conf"
        self.port = free_port()
        self.mppd = self.queue = None
        self.sink_port = sink_port
        self.passwd.write_text("")
        self.passwd.chmod(0o640)
        for method, user in self.USERS.items():
            subprocess.run([str(self.bin / "mpppasswd"), "-f", str(self.passwd),
                            "-s", "-m", method, "add", user],
                           input=self.PASSWORD + "\n", text=True, check=True,
                           capture_output=True)
        # A cluster node: a PROXY port for the balancer as well (proxy_port).
        self.proxy_port = free_port() if proxy else None
        extra = (f"proxy_listen = 127.0.0.1:{self.proxy_port}\n"
                 "proxy_trusted = 127.0.0.1\n") if proxy else ""
        self.conf.write_text(
            f"spool_dir = {self.spool}\n"
            f"listen = 127.0.0.1:{self.port}\n"
            f"{extra}"
            "user =\n"
            f"hostname = {name}.bench.example\n"
            "sender_domain = bench.example\n"
            f"auth = file:{self.passwd}\n"
            "idle_timeout = 900\n"
            "max_sessions = 20000\n"
            "max_sessions_per_ip = 20000\n"
            f"transport = smtp:127.0.0.1:{sink_port}\n")

    def hash_of(self, method):
        user = self.USERS[method]
        for line in self.passwd.read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == user:
                return rest.split(":")[0]
        raise BenchError(f"no hash for {user}")

    def start(self, fresh=True):
        """A fresh mppd: a new, empty spool. The old one is moved aside,
        not deleted (see Trash)."""
        self.stop()
        if fresh and self.spool.exists():
            self.trash.take(self.spool)
        self.log = open(self.dir / "mppd.log", "ab")
        self.mppd = subprocess.Popen([str(self.bin / "mppd"), "-d", "-c", str(self.conf)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile)

        def up():
            if self.mppd.poll() is not None:
                raise BenchError("mppd exited at start; see mppd.log")
            return greets(self.port)
        wait_for(up, 20, "mppd to listen")

    def stop(self):
        self.stop_queue()
        stop_proc(self.mppd)
        self.mppd = None

    def start_queue(self, transport_port, *overrides):
        self.qlog = open(self.dir / "mppqueue.log", "ab")
        extra = [a for o in overrides for a in ("-o", o)]
        self.queue = subprocess.Popen(
            [str(self.bin / "mppqueue"), "-d", "-c", str(self.conf), "-o",
             f"transport=smtp:127.0.0.1:{transport_port}", *extra],
            stdout=self.qlog, stderr=subprocess.STDOUT)
        return self.queue

    def stop_queue(self):
        stop_proc(self.queue)
        self.queue = None

    def count(self, state=None):
        db = self.spool / "index.db"
        if not db.exists():
            return 0
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            if state:
                q = conn.execute("SELECT count(*) FROM message WHERE state = ?",
                                 (state,))
            else:
                q = conn.execute("SELECT count(*) FROM message")
            return q.fetchone()[0]
        finally:
            conn.close()

    def cpu_s(self):
        """CPU seconds (user + system) mppd has used so far."""
        return proc_cpu_s(self.mppd.pid)

    def bench(self, *args, method="sha512", timeout=900, port=None, also=()):
        """Run mppbench against this mppd (or whatever listens on port);
        its JSON figures, with the CPU seconds mppd and mppbench used
        meanwhile (server_cpu_s, client_cpu_s) and those of each of also,
        objects with a cpu_s() (also_cpu_s, a list)."""
        cmd = [str(self.bin / "mppbench"), "-s", f"127.0.0.1:{port or self.port}",
               "-u", self.USERS[method], "-p", self.PASSWORD, "--json",
               *[str(a) for a in args]]
        c0, s0 = child_cpu_s(), self.cpu_s()
        a0 = [x.cpu_s() for x in also]
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout, preexec_fn=raise_nofile)
        server, client = self.cpu_s() - s0, child_cpu_s() - c0
        also_cpu = [x.cpu_s() - t for x, t in zip(also, a0)]
        try:
            fig = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise BenchError(f"mppbench printed no figures (exit {r.returncode}): "
                             f"{r.stderr.strip()}")
        if r.returncode != 0:
            raise BenchError(f"mppbench exit {r.returncode}: {r.stderr.strip()}")
        fig["server_cpu_s"], fig["client_cpu_s"] = round(server, 3), round(client, 3)
        fig["also_cpu_s"] = [round(t, 3) for t in also_cpu]
        return fig

    def hash_rate(self, method, checks, threads):
        """crypt(3) checks of the user's hash, `checks` in each of `threads`
        threads: {"hash_ms": one check, "checks_per_s": all threads}."""
        r = subprocess.run([str(self.bin / "mppbench"), "-x", self.hash_of(method),
                            "-p", self.PASSWORD, "-n", str(checks), "-c",
                            str(threads), "--json"],
                           capture_output=True, text=True, check=True)
        return json.loads(r.stdout)


class Postfix:
    """A private Postfix instance: config, queue and data directories of its
    own under the work directory, smtpd on a loopback port, relaying to
    smtp-sink. Modes (set with postconf -e and a reload):
      accept  defer_transports = smtp: accepted mail stays deferred
      drain   nothing deferred: the queue goes to the drain sink
      latency nothing deferred, relayhost = the dumping sink."""

    QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")

    def __init__(self, work, sink_port, lat_port, trash):
        self.trash = trash
        self.dir = work / "postfix"
        self.conf = self.dir / "conf"
        self.queue_dir = self.dir / "queue"
        self.port = free_port()
        self.sasl_port = free_port()        # smtpd with SASL (Dovecot)
        self.sasl_socket = work / "dovecot" / "run" / "auth-postfix"
        self.sink_port, self.lat_port = sink_port, lat_port
        self.mode = "accept"
        self.running = False
        self.client_cpu_s = 0.0     # smtp-source's CPU, summed
        subst = {"@DIR@": str(self.dir), "@SMTPD_PORT@": str(self.port),
                 "@SINK_PORT@": str(sink_port),
                 "@SASL_PORT@": str(self.sasl_port),
                 "@SASL_SOCKET@": str(self.sasl_socket)}
        self.conf.mkdir(parents=True, exist_ok=True)
        for name in ("main.cf", "master.cf"):
            text = (HERE / "postfix" / name).read_text()
            for k, v in subst.items():
                text = text.replace(k, v)
            (self.conf / name).write_text(text)
        self.queue_dir.mkdir(exist_ok=True)     # root's; postfix makes the rest
        (self.dir / "data").mkdir(exist_ok=True)
        shutil.chown(self.dir / "data", "postfix")

    def cmd(self, *args, check=True):
        r = subprocess.run([*args[:1], "-c", str(self.conf), *args[1:]],
                           capture_output=True, text=True)
        if check and r.returncode != 0:
            raise BenchError(f"{' '.join(args)}: exit {r.returncode}: "
                             f"{(r.stderr or r.stdout).strip()}")
        return r

    def start(self):
        self.cmd("postfix", "start")
        self.running = True
        wait_for(lambda: greets(self.port), 20, "Postfix smtpd to listen")

    def stop(self):
        if self.running:
            self.cmd("postfix", "stop", check=False)
            self.running = False

    def set_mode(self, mode):
        if mode == self.mode:
            return
        relay = self.lat_port if mode == "latency" else self.sink_port
        defer = "smtp" if mode == "accept" else ""
        self.cmd("postconf", "-e", f"relayhost = [127.0.0.1]:{relay}",
                 f"defer_transports = {defer}")
        self.cmd("postfix", "reload")
        self.mode = mode
        time.sleep(2)       # let the queue manager restart with the new config

    def queued(self, queues=("incoming", "active", "deferred", "maildrop")):
        n = 0
        for q in queues:
            for _, _, files in os.walk(self.queue_dir / q):
                n += len(files)
        return n

    def settle(self, timeout=120):
        """Wait until the queue manager has taken in everything accepted."""
        wait_for(lambda: self.queued(("incoming", "active", "maildrop")) == 0,
                 timeout, "Postfix's incoming and active queues to empty",
                 interval=0.05)

    def clear(self):
        """Empty the queue: every deferred message and its defer log are
        moved out of the queue directory into the trash (see Trash). With
        queue_run_delay and the backoff times at an hour (main.cf), no
        queue manager process looks at deferred mail meanwhile; postsuper -d
        would delete them at once."""
        self.settle()
        for q in ("deferred", "defer"):
            top = self.queue_dir / q
            if not top.exists():
                continue
            dest = self.trash.dir / f"postfix-{q}-{self.trash.n:06d}"
            self.trash.n += 1
            dest.mkdir()
            for d, _, files in os.walk(top):
                for f in files:
                    os.rename(os.path.join(d, f), dest / f)
        if self.queued(self.QUEUES) != 0:
            raise BenchError("Postfix's queue is not empty after clearing")

    def flush(self):
        self.cmd("postqueue", "-f")

    def sent_in_log(self, offset):
        """Deliveries logged after byte offset of the maillog."""
        try:
            with open(self.dir / "maillog", "rb") as f:
                f.seek(offset)
                return f.read().count(b" status=sent ")
        except OSError:
            return 0

    def flush_start(self, n):
        """postqueue -f on the deferred queue: milliseconds to the first
        delivery and to n deliveries, as the maillog records them."""
        log = self.dir / "maillog"
        off = log.stat().st_size if log.exists() else 0
        self.set_mode("drain")
        t0 = time.monotonic()
        self.flush()
        first = None

        def seen():
            nonlocal first
            k = self.sent_in_log(off)
            if k and first is None:
                first = time.monotonic() - t0
            return k >= n
        wait_for(seen, 1800, f"{n} deliveries after postqueue -f", interval=0.02)
        return {"first_ms": first * 1000, "drain_ms": (time.monotonic() - t0) * 1000}

    def reset_queue(self):
        """Stop, move every queued file into the trash, start in accept
        mode: for a queue still draining (flush_start), where clear()
        would race the queue manager."""
        self.stop()
        dest = self.trash.dir / f"postfix-reset-{self.trash.n:06d}"
        self.trash.n += 1
        dest.mkdir()
        for q in (*self.QUEUES, "defer", "bounce", "trace", "flush"):
            for d, _, files in os.walk(self.queue_dir / q):
                for f in files:
                    os.rename(os.path.join(d, f), dest / f"{q}-{f}")
        self.start()
        self.set_mode("accept")

    def source(self, sessions, total, size, keep=False, timeout=900):
        """smtp-source: total messages from `sessions` parallel sessions,
        all over one connection each with keep; the seconds it took."""
        args = ["smtp-source", "-s", str(sessions), "-m", str(total),
                "-l", str(size), "-f", "bench@bench.example",
                "-t", "bench@example.net", "-M", "client.bench.example"]
        if keep:
            args.append("-d")
        args.append(f"127.0.0.1:{self.port}")
        t0, c0 = time.monotonic(), child_cpu_s()
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        dt = time.monotonic() - t0
        self.client_cpu_s += child_cpu_s() - c0
        if r.returncode != 0:
            raise BenchError(f"smtp-source exit {r.returncode}: "
                             f"{(r.stderr or r.stdout).strip()[-300:]}")
        return dt


HAPROXY_CFG = """\
global
    maxconn 4000
    stats socket {sock} mode 600 level admin

defaults
    mode tcp
    timeout connect 5s
    timeout client 330s
    timeout server 330s
    retries 3
    option redispatch 1

frontend mpp
    bind 127.0.0.1:{port}
    default_backend mpp_nodes

backend mpp_nodes
    balance roundrobin
    option tcp-check
    tcp-check connect default
    tcp-check expect string 220
    tcp-check send QUIT\\r\\n
    tcp-check expect string 221
    default-server send-proxy-v2 proxy-v2-options crc32c check inter 1s fall 2 rise 1
{servers}"""


class HAProxy:
    """Debian's haproxy in TCP mode on a loopback port in front of cluster
    nodes (Mpp with proxy=True): PROXY v2 with its checksum to each node's
    proxy_listen port, and docs/scaling.md's health check (220, QUIT,
    221). Clients are spread round-robin: the load generator posts from
    one address, which balance source would send to one node."""

    BIN = shutil.which("haproxy") or "/usr/sbin/haproxy"

    def __init__(self, work, nodes):
        self.dir = work / "haproxy"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.nodes = nodes
        self.port = free_port()
        self.sock = self.dir / "stats.sock"
        self.proc = None

    def start(self):
        if not os.access(self.BIN, os.X_OK):
            raise BenchError("haproxy not found (Debian package haproxy)")
        servers = "".join(f"    server {n.dir.name} 127.0.0.1:{n.proxy_port}\n"
                          for n in self.nodes)
        cfg = self.dir / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(sock=self.sock, port=self.port,
                                          servers=servers))
        if self.sock.exists():
            self.sock.unlink()
        self.log = open(self.dir / "haproxy.log", "ab")
        self.proc = subprocess.Popen([self.BIN, "-db", "-f", str(cfg)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile)

        def up():
            if self.proc.poll() is not None:
                raise BenchError("haproxy exited at start; see haproxy.log")
            return self.sock.exists() and all(
                st == "UP" for st in self.status().values())
        wait_for(up, 30, "haproxy to see every node up", interval=0.1)

    def status(self):
        """{server: status} from the stats socket."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(self.sock))
                s.sendall(b"show stat\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError:
            return {}
        lines = data.decode().splitlines()
        head = lines[0].lstrip("# ").split(",") if lines else []
        out = {}
        for line in lines[1:]:
            f = dict(zip(head, line.split(",")))
            if f.get("pxname") == "mpp_nodes" and f.get("svname") != "BACKEND":
                st = f["status"].split(" ")[0]
                # UP only once a check has passed, not as HAProxy starts
                if st == "UP" and not f.get("check_status", "").startswith("L7OK"):
                    st = "UP-unchecked"
                out[f["svname"]] = st
        return out

    def cpu_s(self):
        return proc_cpu_s(self.proc.pid)


DOVECOT_CONF = """\
# A private Dovecot for Postfix's SASL, as a site deploys it for
# authenticated submission: the auth service only, on a unix socket,
# passwd-file with SHA512-CRYPT hashes, no auth cache.
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = mpp-bench-{pid}
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_cache_size = 0
log_path = {dir}/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {dir}/users
}}
userdb {{
  driver = static
  args = uid=postfix gid=postfix home=/nonexistent
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""


class Dovecot:
    """Dovecot's auth service for the Postfix+SASL rows: the users and
    sha512-crypt hashes of mpp's password file (so both check the same
    hash for the same password), its socket where Postfix's master.cf
    expects it (Postfix.sasl_socket)."""

    def __init__(self, work, mpp):
        self.dir = work / "dovecot"
        self.mpp = mpp
        self.proc = None

    def start(self, socket_path):
        import grp
        (self.dir / "state").mkdir(parents=True, exist_ok=True)
        (self.dir / "run").mkdir(exist_ok=True)
        users = self.dir / "users"
        users.write_text(f"{self.mpp.USERS['sha512']}:{{SHA512-CRYPT}}"
                         f"{self.mpp.hash_of('sha512')}\n")
        os.chown(users, 0, grp.getgrnam("dovecot").gr_gid)
        users.chmod(0o640)
        conf = self.dir / "dovecot.conf"
        conf.write_text(DOVECOT_CONF.format(dir=self.dir, pid=os.getpid()))
        self.log = open(self.dir / "dovecot.out", "ab")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)],
                                     stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise BenchError("dovecot exited at start; see "
                                 f"{self.dir}/dovecot.log")
            return socket_path.exists()
        wait_for(up, 20, "Dovecot's auth socket")

    def stop(self):
        stop_proc(self.proc)
        self.proc = None
