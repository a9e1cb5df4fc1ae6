"""Power cuts under load (issue "Prove the 250"): mppd and mppqueue run
with the spool on plfs while clients post continuously (four sessions,
1 KiB and 100 KiB texts) and mppq holds, releases and deletes; mppqueue
delivers through a sendmail stand-in to a maildir outside plfs, deferring
some recipients now and then. At a random instant, or when a daemon of
the fault-injection build reaches a FAULT_POINT, the power is cut: the
model is frozen, the daemons are killed, and plfs writes the image the
disk would hold (every other random cut with torn unsynced writes).

Each image is checked before it is mounted again:
  - the index opens and passes PRAGMA integrity_check;
  - every row not yet sent has its file in new/ or cur/, whole;
  - a file without a row is never lost (reconciliation moves it to
    orphans/);
  - a message the image records as sent is never delivered again;
then both daemons start on it, reconcile, and must deliver every message
that got 250 before the cut (at least once; doubles are counted).

PL_CUTS cuts (default 20), seed PL_SEED (else random; printed). With
PL_KEEP=DIR a failing image's index files are copied there with those of
the disk as it stood at the cut, and the logs. PL_CUT_GAP=S lets the
programs run S seconds after the freeze before they are killed: nothing
they do then may reach the image (plfs refuses it), so any S must pass."""

import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from plharness import Plfs, fuse_unusable

from conftest import BIN, FAULT_BIN, Client, free_port

pytestmark = pytest.mark.skipif(fuse_unusable() is not None,
                                reason=str(fuse_unusable()))

CUTS = int(os.environ.get("PL_CUTS", "20"))
SEED = int(os.environ["PL_SEED"]) if os.environ.get("PL_SEED") else \
    random.SystemRandom().randrange(1, 2**31)
SESSIONS = 4
MPPD_POINTS = ["after-tmp-write", "after-fsync", "after-rename",
               "after-commit", "before-250"]
QUEUE_POINTS = ["after-mta-accept"]
DRAIN_TIMEOUT = 30
KEEP = os.environ.get("PL_KEEP")
CUT_GAP = float(os.environ.get("PL_CUT_GAP", "0"))

SENDMAIL = """#!/bin/sh
# sendmail -i -f SENDER -- RCPT...: a recipient named defer-* is deferred
# (EX_TEMPFAIL) at its first attempt.
for a; do
	case "$a" in defer-*)
		[ -e "{md}/defer/$a" ] || {{ : > "{md}/defer/$a"; exit 75; }};;
	esac
done
t={md}/tmp/$$.$(date +%s%N)
cat > "$t" && mv "$t" {md}/new/
"""


class Failure(AssertionError):
    pass


def text_for(tag, size, rcpt):
    filler = "".join(f"{tag} {i:06d} ........................................\r\n"
                     for i in range(size // 60))
    return (f"From: alice@example.org\r\nTo: {rcpt}\r\nSubject: {tag}\r\n\r\n"
            f"{filler}END {tag}\r\n")


class Run:
    """One run: the disks, the daemons, the load, the bookkeeping."""

    def __init__(self, base, seed):
        self.base = base
        self.rng = random.Random(seed)
        self.seed = seed
        self.mnt = base / "mnt"
        self.spool = self.mnt / "spool"
        self.maildir = base / "maildir"
        for sub in ("tmp", "new", "cur", "defer"):
            (self.maildir / sub).mkdir(parents=True)
        self.logs = base / "logs"
        self.logs.mkdir()
        self.port = free_port()
        self.sendmail = base / "sendmail"
        self.sendmail.write_text(SENDMAIL.format(md=self.maildir))
        self.sendmail.chmod(0o755)
        self.passwd = base / "passwd"
        self.passwd.write_text("")
        self.passwd.chmod(0o640)
        subprocess.run([str(BIN / "mpppasswd"), "-f", str(self.passwd), "-s",
                        "-m", "sha512", "add", "alice"], input="secret\n",
                       text=True, check=True, capture_output=True)
        self.conf = base / "mpp.conf"
        self.conf.write_text("".join(f"{k} = {v}\n" for k, v in {
            "spool_dir": self.spool, "listen": f"127.0.0.1:{self.port}",
            "user": "", "hostname": "mpp.test",
            "sender_domain": "example.org", "auth": f"file:{self.passwd}",
            "idle_timeout": 30, "transport": f"sendmail:{self.sendmail}",
            "retry_min": 1, "retry_max": 2, "queue_interval": 1,
            "sent_retention": 1, "lease_time": 10, "delivery_timeout": 5,
            "concurrency": 4}.items()))
        self.disk = 0
        (base / "disk0").mkdir()
        self.fs = None
        self.mppd = self.queue = None
        self.acked = {}          # tag -> cut number when it got 250
        self.deletable = set()   # tags mppq may delete
        self.delivered = {}      # maildir file name -> (tag, id)
        self.sent_in_image = {}  # id -> deliveries when the image said sent
        self.rowless = set()     # files of the last image without a row
        self.stats = {"cuts": 0, "torn": 0, "points": {}, "acked": 0,
                      "rows_checked": 0, "reached": 0}
        self.cut_flag = threading.Event()
        self.mppq_proc = None
        self.mppq_lock = threading.Lock()

    def fail(self, cut, what):
        self.keep_failure(cut, self.disk_path(self.disk) / "spool")
        raise Failure(f"seed={self.seed} cut={cut}: {what}\n"
                      f"replay: PL_SEED={self.seed} PL_CUTS={CUTS} make powerloss")

    # Disks and mounts.

    def disk_path(self, n):
        return self.base / f"disk{n}"

    def mount(self, torn):
        self.fs = Plfs(self.disk_path(self.disk), self.mnt,
                       self.disk_path(self.disk + 1), torn=torn,
                       seed=self.rng.randrange(1, 2**31),
                       log=self.logs / "plfs.log").mount()

    def retire_disk(self):
        """The disk before the cut goes; with PL_KEEP it is kept as
        live/ until the next image is checked: the files as the programs
        saw them when the power went (plfs changes nothing after that)."""
        old = self.disk_path(self.disk)
        self.disk += 1
        if KEEP:
            shutil.rmtree(self.base / "live", ignore_errors=True)
            old.rename(self.base / "live")
        else:
            shutil.rmtree(old)

    def keep_failure(self, cut, spool):
        """PL_KEEP=DIR: the index files of the image and of the disk as
        it was at the cut, the names in new/ and cur/, and the logs,
        copied aside for a post-mortem."""
        if not KEEP:
            return
        dest = Path(KEEP) / f"seed{self.seed}-cut{cut}"
        shutil.rmtree(dest, ignore_errors=True)
        live = self.base / "live" / "spool"
        for sub, src in (("image", spool), ("live", live)):
            (dest / sub).mkdir(parents=True)
            for name in ("index.db", "index.db-wal", "index.db-shm"):
                if (src / name).exists():
                    shutil.copy(src / name, dest / sub / name)
            names = [f"{d}/{p.name}\n" for d in ("new", "cur", "orphans")
                     if (src / d).is_dir()
                     for p in sorted((src / d).iterdir())]
            (dest / sub / "files.txt").write_text("".join(names))
        for name in ("plfs.log", "mppd.log", "mppqueue.log"):
            if (self.logs / name).exists():
                shutil.copy(self.logs / name, dest / name)
        sys.stderr.write(f"powerloss: failing image kept in {dest}\n")

    # Daemons.

    def start_daemons(self, mppd_env=None, queue_env=None):
        env = {**os.environ, **(mppd_env or {})}
        self.mppd = subprocess.Popen(
            [str((FAULT_BIN if mppd_env else BIN) / "mppd"), "-d", "-v", "-c",
             str(self.conf)], env=env, stdout=open(self.logs / "mppd.log", "ab"),
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            if self.mppd.poll() is not None:
                raise AssertionError("mppd exited: " + self.tail("mppd.log"))
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.recv(64)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("mppd did not listen")
                time.sleep(0.02)
        qlog = self.logs / "mppqueue.log"
        mark = qlog.read_text(errors="replace").count("ready") if qlog.exists() else 0
        env = {**os.environ, **(queue_env or {})}
        self.queue = subprocess.Popen(
            [str((FAULT_BIN if queue_env else BIN) / "mppqueue"), "-d", "-v",
             "-c", str(self.conf)], env=env, stdout=open(qlog, "ab"),
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while qlog.read_text(errors="replace").count("ready") <= mark:
            if self.queue.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("mppqueue did not start: " +
                                     self.tail("mppqueue.log"))
            time.sleep(0.02)

    def kill_daemons(self):
        for p in (self.mppd, self.queue):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in (self.mppd, self.queue):
            if p is not None:
                p.wait(30)
        self.mppd = self.queue = None

    def tail(self, name, n=3000):
        p = self.logs / name
        return p.read_text(errors="replace")[-n:] if p.exists() else ""

    def mppq(self, *args):
        with self.mppq_lock:
            if self.cut_flag.is_set():
                return None
            self.mppq_proc = subprocess.Popen(
                [str(BIN / "mppq"), "-c", str(self.conf), *args],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            p = self.mppq_proc
        out, _ = p.communicate()
        return out if p.returncode == 0 else None

    # Load.

    def client(self, cut, t, seed):
        rng = random.Random(seed)
        i = 0
        while not self.cut_flag.is_set():
            try:
                c = Client(self.port, timeout=10).greet()
                if c.login("alice", "secret") != 250:
                    return
                for _ in range(rng.randint(1, 3)):
                    tag = f"c{cut}t{t}n{i}"
                    i += 1
                    r = rng.random()
                    rcpt = (f"defer-{tag}@example.com" if r < 0.2 else
                            "del@example.com" if r < 0.3 else "bob@example.com")
                    if rcpt.startswith("del"):
                        self.deletable.add(tag)
                    size = 100 * 1024 if rng.random() < 0.2 else 1024
                    code = c.post(text_for(tag, size, rcpt))
                    # A 250 read after the cut is not counted: it may
                    # have left before the power went, or not.
                    if code == 250 and not self.cut_flag.is_set():
                        self.acked[tag] = cut
                c.cmd("QUIT")
                c.close()
            except (OSError, AssertionError, ValueError):
                if not self.cut_flag.is_set():
                    time.sleep(0.01)

    def admin(self, seed):
        """Hold, release and delete now and then (every state move)."""
        rng = random.Random(seed)
        while not self.cut_flag.wait(rng.uniform(0.05, 0.2)):
            out = self.mppq("list", "--json")
            if not out:
                continue
            try:
                msgs = json.loads(out)
            except ValueError:
                continue
            if not msgs:
                continue
            m = rng.choice(msgs)
            if "del@example.com" in m["recipients"]:
                self.mppq("delete", m["id"])
            elif m["state"] == "held":
                self.mppq("release", m["id"])
            elif m["state"] in ("queued", "deferred") and rng.random() < 0.3:
                self.mppq("hold", m["id"])

    # Checks.

    def scan_maildir(self):
        for p in (self.maildir / "new").iterdir():
            if p.name in self.delivered:
                continue
            text = p.read_bytes()
            tag = re.search(rb"(?m)^Subject: (\S+)$", text)
            qid = re.search(rb"with MPP id (\S+);", text)
            if not tag or not qid:
                continue
            self.delivered[p.name] = (tag.group(1).decode(), qid.group(1).decode())
            end = f"\nEND {tag.group(1).decode()}\n".encode()
            if not text.endswith(end):
                raise Failure(f"seed={self.seed}: delivered {p.name} is not whole")

    def deliveries(self, key):
        """Deliveries of each tag (key=0) or queue id (key=1)."""
        out = {}
        for v in self.delivered.values():
            out[v[key]] = out.get(v[key], 0) + 1
        return out

    def check_image(self, cut):
        """The image as the disk holds it, before anything runs on it."""
        img = self.disk_path(self.disk)
        spool = img / "spool"
        self.scan_maildir()
        if not (spool / "index.db").exists():
            if any(t not in self.deletable for t in self.acked):
                self.fail(cut, "no index in the image, after 250s")
            return
        tmp = self.base / "dbcheck"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name in ("index.db", "index.db-wal"):
            if (spool / name).exists():
                shutil.copy(spool / name, tmp / name)
        try:
            conn = sqlite3.connect(str(tmp / "index.db"))
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            rows = conn.execute("SELECT id, state FROM message").fetchall()
            conn.close()
        except sqlite3.DatabaseError as e:
            self.fail(cut, f"index does not open: {e}")
        if ok != "ok":
            self.fail(cut, f"integrity_check: {ok}")
        self.check_rowless(cut, spool, {qid for qid, _ in rows})
        by_id = self.deliveries(1)
        for qid, state in rows:
            self.stats["rows_checked"] += 1
            if state == "sent":
                self.sent_in_image.setdefault(qid, by_id.get(qid, 0))
                continue
            f = spool / "cur" / qid
            if not f.exists():
                f = spool / "new" / qid
            if not f.exists():
                self.fail(cut, f"row {qid} ({state}) has no file")
            text = f.read_bytes()
            tag = re.search(rb"(?m)^Subject: (\S+)$", text)
            if not tag or not text.endswith(b"\nEND " + tag.group(1) + b"\n"):
                self.fail(cut, f"file of row {qid} ({state}) is not whole "
                          f"({len(text)} bytes)")

    def check_rowless(self, cut, spool, ids):
        """A file without a row (a commit the cut stopped, or an orphan)
        is never removed, only moved to orphans/: each one of the last
        image must still be in new/, cur/ or orphans/."""
        now = set()
        for sub in ("new", "cur", "orphans"):
            d = spool / sub
            if d.is_dir():
                now |= {p.name for p in d.iterdir()
                        if sub == "orphans" or p.name not in ids}
        lost = self.rowless - now
        if lost:
            self.fail(cut, f"files without a row were lost: {sorted(lost)[:5]}")
        self.rowless = now

    def age_image(self):
        """No process runs on a restored disk: every file without a row is
        an orphan and every tmp file stale. Age them so reconciliation
        acts on them now."""
        spool = self.disk_path(self.disk) / "spool"
        for sub, age in (("new", 7200), ("cur", 7200), ("tmp", 40 * 3600)):
            d = spool / sub
            if d.is_dir():
                t = time.time() - age
                for p in d.iterdir():
                    os.utime(p, (t, t))

    def check_sent_once(self, cut):
        by_id = self.deliveries(1)
        for qid, n in self.sent_in_image.items():
            if by_id.get(qid, 0) > n:
                self.fail(cut, f"{qid} was recorded sent on disk and "
                          f"delivered again ({by_id[qid]} > {n})")

    def drain(self, cut):
        """Release what is held; wait until every 250 is delivered."""
        out = self.mppq("list", "--json", "--state", "held")
        for m in json.loads(out or "[]"):
            self.mppq("release", m["id"])
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while True:
            self.scan_maildir()
            got = self.deliveries(0)
            missing = [t for t in self.acked
                       if t not in got and t not in self.deletable]
            if not missing:
                break
            if time.monotonic() > deadline:
                listing = self.mppq("list", "--json", "--state", "all") or ""
                self.fail(cut, f"{len(missing)} messages that got 250 were "
                          f"never delivered: {sorted(missing)[:10]}\n"
                          f"queue: {listing[:2000]}\n"
                          f"mppqueue: {self.tail('mppqueue.log', 1500)}")
            time.sleep(0.05)
        self.check_sent_once(cut)

    # One cycle.

    def phase(self, name):
        now = time.monotonic()
        if os.environ.get("PL_VERBOSE"):
            print(f"  {name}: {now - self.t0:.2f}s", flush=True)
        self.t0 = now

    def cycle(self, cut):
        self.t0 = time.monotonic()
        kind = cut % 3
        points = MPPD_POINTS + QUEUE_POINTS
        point = points[(cut // 3) % len(points)] if kind == 2 else None
        torn = kind == 1
        if cut > 0:
            self.check_image(cut - 1)
            self.age_image()
        self.phase("check")
        self.mount(torn)
        self.cut_flag.clear()
        self.start_daemons()
        self.phase("start")
        if cut > 0:
            self.drain(cut - 1)
        self.phase("drain")
        if point is not None:
            # Restart the daemon that is to crash from the fault build.
            env = {"MPP_CRASH_AT": point,
                   "MPP_CRASH_AFTER": str(self.rng.randint(1, 12))}
            self.kill_daemons()
            if point in MPPD_POINTS:
                self.start_daemons(mppd_env=env)
            else:
                self.start_daemons(queue_env=env)
        threads = [threading.Thread(target=self.client,
                                    args=(cut, t, self.rng.random()))
                   for t in range(SESSIONS)]
        threads.append(threading.Thread(target=self.admin,
                                        args=(self.rng.random(),)))
        for t in threads:
            t.start()
        if point is None:
            time.sleep(self.rng.uniform(0.2, 1.2))
        else:
            victim = self.mppd if point in MPPD_POINTS else self.queue
            deadline = time.monotonic() + 4
            while victim.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            if victim.poll() is not None:
                self.stats["reached"] += 1
            self.stats["points"][point] = self.stats["points"].get(point, 0) + 1
        self.phase(f"load {point or ('torn' if torn else 'random')}")
        # The cut: no 250 counts after the flag; no sync after the freeze.
        self.cut_flag.set()
        self.fs.freeze()
        time.sleep(CUT_GAP)
        self.kill_daemons()
        with self.mppq_lock:
            if self.mppq_proc is not None and self.mppq_proc.poll() is None:
                self.mppq_proc.kill()
        for t in threads:
            t.join(30)
        self.fs.unmount()
        self.fs = None
        self.retire_disk()
        self.phase("cut")
        self.stats["cuts"] += 1
        self.stats["torn"] += torn

    def finish(self):
        """Last image: check, start, drain, stop cleanly."""
        cut = self.stats["cuts"]
        self.check_image(cut - 1)
        self.age_image()
        self.mount(False)
        self.cut_flag.clear()
        self.start_daemons()
        self.drain(cut - 1)
        for p in (self.mppd, self.queue):
            p.send_signal(signal.SIGTERM)
            assert p.wait(30) == 0
        self.mppd = self.queue = None
        self.fs.unmount()
        self.fs = None
        self.retire_disk()

    def cleanup(self):
        self.cut_flag.set()
        self.kill_daemons()
        if self.fs is not None:
            self.fs.abort()


def test_power_cuts(tmp_path):
    if not (FAULT_BIN / "mppd").exists():
        pytest.skip("fault-injection build missing (make fault-build)")
    print(f"powerloss: seed={SEED} cuts={CUTS} (replay: PL_SEED={SEED})")
    run = Run(tmp_path, SEED)
    started = time.monotonic()
    try:
        for cut in range(CUTS):
            run.cycle(cut)
        run.finish()
    except Exception:
        sys.stderr.write(f"powerloss: failed with seed={SEED}\n")
        raise
    finally:
        run.cleanup()
    got = run.deliveries(0)
    doubles = sum(n - 1 for n in got.values() if n > 1)
    must = [t for t in run.acked if t not in run.deletable]
    assert all(t in got for t in must)
    print(f"powerloss: seed={SEED}: {run.stats['cuts']} cuts "
          f"({run.stats['torn']} torn, fault points {run.stats['points']}, "
          f"{run.stats['reached']} reached), {len(run.acked)} messages got 250, "
          f"{len(got)} delivered, {doubles} delivered twice or more, "
          f"{run.stats['rows_checked']} index rows checked, "
          f"{time.monotonic() - started:.0f} s")
