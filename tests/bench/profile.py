"""Where mppd's time goes under the 32 sessions x 50 messages load of 1 KiB
(PROFILE_SESSIONS, PROFILE_KIB and PROFILE_MESSAGES change it):
`perf record -g` on the running daemon while mppbench posts, then
`perf report --stdio`. Where perf cannot sample (no perf_event support),
mppd runs under valgrind --tool=callgrind on a shorter load instead.

    python3 tests/bench/profile.py            (after make; as root)

Writes build/bench/profile.txt (and keeps perf.data beside it). Not part of
make bench: a profile slows the daemon, so its figures are not comparable.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from systems import Mpp, Sink, Trash, greets, stop_proc, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "build" / "bench"))
TOTAL = int(os.environ.get("PROFILE_MESSAGES", "9600"))
# The load's shape: PROFILE_SESSIONS sessions x 50 messages of PROFILE_KIB.
SESSIONS = int(os.environ.get("PROFILE_SESSIONS", "32"))
KIB = int(os.environ.get("PROFILE_KIB", "1"))


def perf_works():
    if shutil.which("perf") is None:
        print("perf not found: apt-get install linux-perf", file=sys.stderr)
        return False
    r = subprocess.run(["perf", "record", "-o", "/dev/null", "-q", "true"],
                       capture_output=True)
    return r.returncode == 0


def perf_profile(mpp, report):
    data = OUT / "perf.data"
    rec = subprocess.Popen(["perf", "record", "-g", "-o", str(data), "-p",
                            str(mpp.mppd.pid)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    fig = mpp.bench("-c", SESSIONS, "-m", 50, "-n", TOTAL, "-z", KIB * 1024)
    rec.send_signal(signal.SIGINT)
    rec.wait(60)
    with open(report, "w") as f:
        f.write(f"# load: {SESSIONS} sessions x 50 messages of {KIB} KiB, {TOTAL} messages: "
                f"{fig['msgs_per_s']:.0f} msgs/s under perf\n")
        for args in (["--no-children", "--sort", "dso"],
                     ["--no-children", "--sort", "comm,dso,sym", "-g", "none"],
                     ["--children", "-g", "caller,0.5,callee,function,percent"]):
            f.write(f"\n# perf report --stdio {' '.join(args)}\n")
            f.flush()
            r = subprocess.run(["perf", "report", "--stdio", "-i", str(data), *args],
                               capture_output=True, text=True)
            f.write("\n".join(r.stdout.splitlines()[:120]) + "\n")


def callgrind_profile(mpp, report):
    """mppd under callgrind; a shorter run, as it is ~50 times slower."""
    mpp.stop()
    out = OUT / "callgrind.out"
    log = open(mpp.dir / "mppd.log", "ab")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                             str(mpp.bin / "mppd"), "-d", "-c", str(mpp.conf)],
                            stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: greets(mpp.port), 60, "mppd under callgrind")
    mpp.bench("-c", 32, "-m", 50, "-n", 1600, "-z", 1024)
    stop_proc(proc, timeout=120)
    r = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True)
    Path(report).write_text("# callgrind, 1600 messages, 32 sessions x 50\n" +
                            "\n".join(r.stdout.splitlines()[:80]) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "profile-work"
    # An earlier run's spool is deleted only after this one: on a filesystem
    # without a journal, ext4 skips inodes freed in the last minute when it
    # allocates one, and a profile taken right after deleting thousands of
    # files shows mostly that scan (docs/performance.md).
    old = OUT / f"profile-old-{os.getpid()}"
    if work.exists():
        work.rename(old)
    work.mkdir()
    sink = Sink(work, "sink")
    sink.start()
    mpp = Mpp(work, Path(os.environ.get("MPP_BIN", ROOT / "bin")), sink.port,
              Trash(work))
    report = OUT / "profile.txt"
    try:
        mpp.start()
        mpp.bench("-c", 8, "-m", 50, "-n", 400)       # warm up
        if perf_works():
            perf_profile(mpp, report)
        else:
            print("perf cannot sample here: using callgrind", file=sys.stderr)
            callgrind_profile(mpp, report)
    finally:
        mpp.stop()
        sink.stop()
        shutil.rmtree(old, ignore_errors=True)
    print(report.read_text())


if __name__ == "__main__":
    main()
