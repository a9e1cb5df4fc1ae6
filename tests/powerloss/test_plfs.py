"""Self-test of plfs: programs that write, rename, link, truncate and sync
in a known order, then a power cut; the image must be exactly the state
the strict model predicts (file data as of the file's last fsync, names as
of their directory's last fsync). Without this the power-loss test of the
daemons would prove nothing."""

import errno
import fcntl
import mmap
import os
import sqlite3
import subprocess
import sys

import pytest

from plharness import Plfs, fuse_unusable, tree

pytestmark = pytest.mark.skipif(fuse_unusable() is not None,
                                reason=str(fuse_unusable()))


def fsync_path(p, flags=os.O_RDONLY):
    fd = os.open(p, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(p, data, sync=False, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(p, flags, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def append(p, data, sync=False):
    write(p, data, sync, os.O_WRONLY | os.O_APPEND)


def run_cut(tmp_path, before, actions, torn=False, seed=1):
    """Backing tree from before ({path: bytes or "dir"}), actions(mount),
    then a cut; returns the image's tree."""
    backing = tmp_path / "backing"
    backing.mkdir()
    for rel, content in sorted(before.items()):
        p = backing / rel
        if content == "dir":
            p.mkdir(parents=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content)
    fs = Plfs(backing, tmp_path / "mnt", tmp_path / "image", torn=torn,
              seed=seed).mount()
    try:
        actions(fs.mnt)
        image = fs.cut()
    finally:
        fs.abort()
    return tree(image)


def test_data_durable_only_up_to_fsync(tmp_path):
    def act(m):
        write(m / "f", b"synced\n", sync=True)
        append(m / "f", b"not synced\n")
        fsync_path(m)
    assert run_cut(tmp_path, {}, act) == {"f": b"synced\n"}


def test_new_name_needs_directory_fsync(tmp_path):
    def act(m):
        write(m / "f", b"data", sync=True)
    assert run_cut(tmp_path, {}, act) == {}


def test_name_without_file_fsync_is_empty(tmp_path):
    def act(m):
        write(m / "f", b"data")
        fsync_path(m)
    assert run_cut(tmp_path, {}, act) == {"f": b""}


def test_rename_without_directory_fsync_comes_back_under_old_name(tmp_path):
    def act(m):
        os.rename(m / "tmp" / "x", m / "new" / "x")
    before = {"tmp/x": b"message", "new": "dir"}
    assert run_cut(tmp_path, before, act) == {
        "tmp": "dir", "new": "dir", "tmp/x": b"message"}


def test_rename_synced_in_target_only_leaves_both_names(tmp_path):
    def act(m):
        os.rename(m / "tmp" / "x", m / "new" / "x")
        fsync_path(m / "new")
    before = {"tmp/x": b"message", "new": "dir"}
    got = run_cut(tmp_path, before, act)
    assert got == {"tmp": "dir", "new": "dir", "tmp/x": b"message",
                   "new/x": b"message"}
    img = tmp_path / "image"
    assert os.stat(img / "tmp/x").st_ino == os.stat(img / "new/x").st_ino


def test_rename_synced_in_source_only_loses_the_file(tmp_path):
    """The strict model: a rename is two directory updates; syncing only
    the old directory makes the removal durable and not the new name."""
    def act(m):
        os.rename(m / "new" / "x", m / "cur" / "x")
        fsync_path(m / "new")
    before = {"new/x": b"message", "cur": "dir"}
    assert run_cut(tmp_path, before, act) == {"new": "dir", "cur": "dir"}


def test_link_then_unlink_keeps_the_file_across_directories(tmp_path):
    def act(m):
        os.link(m / "new" / "x", m / "cur" / "x")
        fsync_path(m / "cur")
        os.unlink(m / "new" / "x")
        fsync_path(m / "new")
    before = {"new/x": b"message", "cur": "dir"}
    assert run_cut(tmp_path, before, act) == {
        "new": "dir", "cur": "dir", "cur/x": b"message"}


def test_unlink_without_directory_fsync_is_undone(tmp_path):
    def act(m):
        write(m / "f", b"later, unsynced", flags=os.O_WRONLY)
        os.unlink(m / "f")
    assert run_cut(tmp_path, {"f": b"on disk"}, act) == {"f": b"on disk"}


def test_unlink_with_directory_fsync_is_durable(tmp_path):
    def act(m):
        os.unlink(m / "f")
        fsync_path(m)
    assert run_cut(tmp_path, {"f": b"on disk", "g": b"kept"}, act) == {
        "g": b"kept"}


def test_rename_over_keeps_old_target_until_directory_fsync(tmp_path):
    def act(m):
        write(m / "a.tmp", b"new version", sync=True)
        os.rename(m / "a.tmp", m / "a")
    assert run_cut(tmp_path, {"a": b"old version"}, act) == {
        "a": b"old version"}


def test_rename_over_with_directory_fsync(tmp_path):
    def act(m):
        write(m / "a.tmp", b"new version", sync=True)
        os.rename(m / "a.tmp", m / "a")
        fsync_path(m)
    assert run_cut(tmp_path, {"a": b"old version"}, act) == {
        "a": b"new version"}


def test_hard_link_is_one_inode_in_the_image(tmp_path):
    def act(m):
        write(m / "a", b"shared", sync=True)
        os.link(m / "a", m / "b")
        fsync_path(m)
        append(m / "b", b" + unsynced")
    got = run_cut(tmp_path, {}, act)
    assert got == {"a": b"shared", "b": b"shared"}
    img = tmp_path / "image"
    assert os.stat(img / "a").st_ino == os.stat(img / "b").st_ino


def test_truncate_is_durable_only_after_fsync(tmp_path):
    def act(m):
        fd = os.open(m / "wal", os.O_RDWR)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"x", 0)
        os.close(fd)
        fd = os.open(m / "synced", os.O_RDWR)
        os.ftruncate(fd, 3)
        os.fsync(fd)
        os.ftruncate(fd, 0)
        os.close(fd)
    before = {"wal": b"A" * 10000, "synced": b"0123456789"}
    assert run_cut(tmp_path, before, act) == {"wal": b"A" * 10000,
                                             "synced": b"012"}


def test_truncate_down_then_up_reads_zeros_after_sync(tmp_path):
    def act(m):
        fd = os.open(m / "f", os.O_RDWR)
        os.ftruncate(fd, 2)
        os.ftruncate(fd, 6)
        os.fsync(fd)
        os.close(fd)
    assert run_cut(tmp_path, {"f": b"abcdefgh"}, act) == {
        "f": b"ab\0\0\0\0"}


def test_o_sync_write_is_durable_without_fsync(tmp_path):
    def act(m):
        fd = os.open(m / "f", os.O_WRONLY | os.O_DSYNC)
        os.write(fd, b"dsync")
        os.close(fd)
        fd = os.open(m / "g", os.O_WRONLY)
        os.write(fd, b"plain")
        os.close(fd)
    assert run_cut(tmp_path, {"f": b"", "g": b""}, act) == {
        "f": b"dsync", "g": b""}


def test_fallocate_is_durable_only_after_fsync(tmp_path):
    def act(m):
        fd = os.open(m / "f", os.O_RDWR)
        os.posix_fallocate(fd, 0, 8192)
        os.close(fd)
        fd = os.open(m / "g", os.O_RDWR)
        os.posix_fallocate(fd, 0, 4096)
        os.fsync(fd)
        os.close(fd)
    assert run_cut(tmp_path, {"f": b"", "g": b""}, act) == {
        "f": b"", "g": b"\0" * 4096}


def test_mkdir_needs_parent_fsync(tmp_path):
    def act(m):
        os.mkdir(m / "spool")
        os.mkdir(m / "spool" / "new")
        write(m / "spool" / "new" / "x", b"m", sync=True)
        fsync_path(m / "spool" / "new")
        fsync_path(m / "spool")
    assert run_cut(tmp_path, {}, act) == {}


def test_mkdir_with_parent_fsync(tmp_path):
    def act(m):
        os.mkdir(m / "spool")
        os.mkfifo(m / "spool" / "trigger")
        fsync_path(m / "spool")
        fsync_path(m)
    assert run_cut(tmp_path, {}, act) == {"spool": "dir",
                                         "spool/trigger": "fifo"}


def test_symlink(tmp_path):
    def act(m):
        os.symlink("target", m / "l")
        os.symlink("other", m / "gone")
        fsync_path(m)
        os.unlink(m / "gone")
    assert run_cut(tmp_path, {}, act) == {"l": ("link", "target"),
                                         "gone": ("link", "other")}


def test_writes_through_an_unlinked_open_file(tmp_path):
    """An inode whose last name went away still gets its synced bytes
    under a name that is durable."""
    def act(m):
        fd = os.open(m / "f", os.O_RDWR)
        os.unlink(m / "f")
        os.pwrite(fd, b"NEW", 0)
        os.fsync(fd)
        os.close(fd)
    assert run_cut(tmp_path, {"f": b"old"}, act) == {"f": b"NEW"}


def test_torn_mode_applies_a_sector_prefix_of_unsynced_writes(tmp_path):
    """Torn mode: the unsynced writes reach the disk up to a random
    512-byte boundary; the synced part is always there; other seeds give
    other cuts."""
    data = bytes(range(256)) * 16   # 4096 bytes
    sizes = set()
    for seed in range(1, 9):
        sub = tmp_path / f"s{seed}"
        sub.mkdir()

        def act(m):
            write(m / "f", b"S" * 100, sync=True,
                  flags=os.O_WRONLY)
            fd = os.open(m / "f", os.O_WRONLY)
            os.pwrite(fd, data, 100)
            os.close(fd)
        got = run_cut(sub, {"f": b""}, act, torn=True, seed=seed)["f"]
        assert got[:100] == b"S" * 100
        assert got[100:] == data[:len(got) - 100]
        assert len(got) == 100 or len(got) % 512 == 0 or len(got) == 4196
        sizes.add(len(got))
    assert len(sizes) > 2, sizes


def test_nothing_reaches_the_disk_after_the_cut(tmp_path):
    """A program still running after the freeze (until it is killed)
    changes nothing in the image, torn mode included: its fsync counts for
    nothing, so what it writes next (a checkpoint's pages after its fsync
    of the WAL) must not be among the unsynced writes a torn cut applies.
    Each change fails instead, as on a disk without power."""
    unsynced = b"U" * 4096
    refused = []
    for seed in range(1, 9):
        sub = tmp_path / f"s{seed}"
        sub.mkdir()

        def act(m):
            write(m / "f", b"S" * 100, sync=True, flags=os.O_WRONLY)
            fd = os.open(m / "f", os.O_RDWR)
            os.pwrite(fd, unsynced, 100)
            with open(m / ".plfs-control", "w") as c:
                c.write("freeze\n")
            for step in (lambda: os.fsync(fd),
                         lambda: os.pwrite(fd, b"A" * 8192, 0),
                         lambda: os.fsync(fd),
                         lambda: os.ftruncate(fd, 10),
                         lambda: write(m / "g", b"new", sync=True),
                         lambda: os.rename(m / "f", m / "h"),
                         lambda: fsync_path(m)):
                try:
                    step()
                    refused.append(False)
                except OSError as e:
                    refused.append(e.errno == errno.EIO)
            os.close(fd)
        got = run_cut(sub, {"f": b""}, act, torn=True, seed=seed)
        assert list(got) == ["f"], got
        assert got["f"][:100] == b"S" * 100
        assert got["f"][100:] == unsynced[:len(got["f"]) - 100], seed
    assert all(refused), refused


def test_shared_mmap_and_locks_across_processes(tmp_path):
    """MAP_SHARED (SQLite's -shm) and fcntl locks work between two
    processes on plfs."""
    child = """
import fcntl, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 4096, mmap.MAP_SHARED)
print(m[:5].decode())
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
    print("locked")
except OSError:
    print("busy")
"""
    out = {}

    def act(m):
        p = m / "shm"
        fd = os.open(p, os.O_RDWR)
        mm = mmap.mmap(fd, 4096, mmap.MAP_SHARED)
        mm[:5] = b"hello"
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
        r = subprocess.run([sys.executable, "-c", child, str(p)],
                           capture_output=True, text=True, timeout=30)
        out["child"] = r.stdout.split()
        mm.close()
        os.close(fd)
    got = run_cut(tmp_path, {"shm": b"\0" * 4096}, act)
    assert out["child"] == ["hello", "busy"]
    assert got == {"shm": b"\0" * 4096}     # never synced


def sqlite_rows(path):
    conn = sqlite3.connect(str(path))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")]
    finally:
        conn.close()


SQLITE_CHILD = """
import os, sqlite3, subprocess, sys
path, sync = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(path, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=FULL")
conn.execute("CREATE TABLE t (v INTEGER)")
conn.execute("INSERT INTO t VALUES (1)")
conn.execute("PRAGMA synchronous=" + sync)
conn.execute("INSERT INTO t VALUES (2)")
# Another process reads both rows through the shared -shm meanwhile.
other = sqlite3.connect(path)
n = other.execute("SELECT count(*) FROM t").fetchone()[0]
other.close()
fd = os.open(os.path.dirname(path), os.O_RDONLY)
os.fsync(fd)        # the names are durable; the question is the data
print(n, flush=True)
sys.stdin.read()    # stays open until killed: the cut comes first
"""


@pytest.mark.parametrize("sync,expect", [("FULL", [1, 2]), ("NORMAL", [1])])
def test_sqlite_wal_commit_needs_synchronous_full(tmp_path, sync, expect):
    """SQLite's WAL mode runs on plfs (-shm mapped, locks); a commit at
    synchronous=FULL survives the cut, one at NORMAL does not (NORMAL
    syncs the WAL only at a checkpoint)."""
    def act(m):
        p = subprocess.Popen([sys.executable, "-c", SQLITE_CHILD,
                              str(m / "index.db"), sync],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        assert p.stdout.readline().strip() == "2"
        p.kill()
        p.wait()
    got = run_cut(tmp_path, {}, act)
    assert "index.db" in got and "index.db-wal" in got
    assert sqlite_rows(tmp_path / "image" / "index.db") == expect
