"""Driving plfs (tests/powerloss/plfs.c): mount a backing directory,
cut the power, get the image the disk would hold."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

PLFS = Path(os.environ.get("MPP_PLFS", ROOT / "build" / "powerloss" / "plfs"))
FUSERMOUNT = "fusermount3"
CONTROL = ".plfs-control"


def fuse_unusable():
    """Why plfs cannot run here, or None."""
    if not PLFS.exists():
        return f"{PLFS} not built (make plfs)"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        return f"/dev/fuse is unusable here: {e}"
    if subprocess.run(["which", FUSERMOUNT], capture_output=True).returncode:
        return f"{FUSERMOUNT} is not installed (fuse3)"
    return None


class Plfs:
    """One mount: backing -> mountpoint; on unmount the image appears."""

    def __init__(self, backing, mountpoint, image, torn=False, seed=1,
                 log=None):
        self.backing = Path(backing)
        self.mnt = Path(mountpoint)
        self.image = Path(image)
        self.torn = torn
        self.seed = seed
        self.logpath = Path(log) if log else self.image.with_suffix(".plfs.log")
        self.proc = None

    def mount(self):
        self.mnt.mkdir(parents=True, exist_ok=True)
        opts = f"backing={self.backing},image={self.image},seed={self.seed}"
        if self.torn:
            opts += ",torn"
        self.logf = open(self.logpath, "ab")
        # Under make asan plfs is built with the sanitizers too; its model
        # lives until exit on purpose, so leaks are not reported.
        env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0"}
        self.proc = subprocess.Popen(
            [str(PLFS), str(self.mnt), "-f", "-o", opts],
            stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 10
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("plfs did not mount: " + self.log())
            time.sleep(0.01)
        return self

    def control(self):
        return self.mnt / CONTROL

    def freeze(self):
        """The power cut: no sync changes the disk's state after this."""
        with open(self.control(), "w") as f:
            f.write("freeze\n")

    def stats(self):
        text = self.control().read_text()
        return dict(kv.split("=") for kv in text.split())

    def unmount(self, timeout=30):
        """Unmount (every program using the mount must be dead) and wait
        for plfs to write the image."""
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run([FUSERMOUNT, "-u", str(self.mnt)],
                               capture_output=True, text=True)
            if r.returncode == 0 or not os.path.ismount(self.mnt):
                break
            if time.monotonic() > deadline:
                raise AssertionError("cannot unmount: " + r.stderr)
            time.sleep(0.05)
        rc = self.proc.wait(timeout)
        self.logf.close()
        self.proc = None
        assert rc == 0, f"plfs exited {rc}: {self.log()}"
        assert self.image.is_dir(), "plfs wrote no image: " + self.log()
        return self.image

    def cut(self):
        self.freeze()
        return self.unmount()

    def abort(self):
        """Cleanup after a failure: unmount whatever is left."""
        if self.proc is not None:
            subprocess.run([FUSERMOUNT, "-u", "-z", str(self.mnt)],
                           capture_output=True)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.logf.close()
            self.proc = None

    def log(self):
        return self.logpath.read_text(errors="replace") if self.logpath.exists() else ""


def tree(root):
    """{relative path: bytes for a file, "dir", "fifo" or ("link", target)}."""
    root = Path(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = Path(dirpath) / d
            out[str(p.relative_to(root))] = "dir"
        for f in filenames:
            p = Path(dirpath) / f
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_fifo():
                out[rel] = "fifo"
            else:
                out[rel] = p.read_bytes()
    return out
