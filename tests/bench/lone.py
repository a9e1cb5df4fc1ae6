"""The ceiling of a lone session, measured beside its rows.

A session that posts alone waits for each 250 before it sends the next
text, so nothing overlaps its message's syncs. DESIGN.md's durability
promise puts three of them in a row before that 250: the file's fsync,
then (after the rename into new/) the directory's, then the index's WAL
commit. `chain_probe` times that chain by itself, from one thread, with
the row's text size and a one-row SQLite commit (mppd's commit writes
more pages than that, so the probe is a floor). A one-message session
adds one password check. `summary` sets the ceiling this gives each
one-session row beside what the row's 2x target asks."""

import os
import sqlite3
import statistics
import time


def chain_probe(work, size, seconds=0.5):
    """Median microseconds of write + fsync, rename, fsync of new/, WAL
    commit (synchronous=FULL), one after another; files are kept (see
    Trash in systems.py)."""
    chain_probe.n = getattr(chain_probe, "n", 0) + 1
    d = work / f"chain-{chain_probe.n}"
    (d / "tmp").mkdir(parents=True)
    (d / "new").mkdir()
    data = b"x" * (size - 1) + b"\n"
    db = sqlite3.connect(d / "index.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE m (id TEXT PRIMARY KEY, size INTEGER)")
    newfd = os.open(d / "new", os.O_RDONLY | os.O_DIRECTORY)
    us, i = [], 0
    stop = time.monotonic() + seconds
    try:
        while time.monotonic() < stop or len(us) < 20:
            name = str(i)
            t0 = time.monotonic()
            fd = os.open(d / "tmp" / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.rename(d / "tmp" / name, d / "new" / name)
            os.fsync(newfd)
            db.execute("INSERT INTO m VALUES (?, ?)", (name, size))
            us.append((time.monotonic() - t0) * 1e6)
            i += 1
    finally:
        os.close(newfd)
        db.close()
    return statistics.median(us)


def measure(mpp, work, size, m):
    """What a one-session row's ceiling needs: the chain, and for one
    message per session a password check (one thread)."""
    out = {"chain_us": round(chain_probe(work, size))}
    if m == 1:
        out["hash_us"] = round(mpp.hash_rate("sha512", 200, 1)["hash_ms"] * 1000)
    return out


def ceiling(chain_us, hash_us, m):
    """msgs/s a lone session could reach if nothing but its syncs and its
    check took time."""
    return m * 1e6 / (hash_us + m * chain_us)


def summary(rows, keys):
    """A line per one-session row: the ceiling against the target's need."""
    out = []
    for key, m in keys:
        r = rows[key]
        ex = [e for e in r.extra if e.get("chain_us")]
        ref = r.median("ref")
        if not ex or not ref:
            continue
        chain = statistics.median(e["chain_us"] for e in ex)
        hashes = [e["hash_us"] for e in ex if e.get("hash_us")]
        hash_us = statistics.median(hashes) if hashes else 0
        top = ceiling(chain, hash_us, m)
        out.append(f"  {r.label:<44} syncs {chain:>5,.0f} us"
                   + (f" + check {hash_us:,.0f} us" if hash_us else "")
                   + f": at most {top:>7,.1f} msgs/s; 2 x Postfix+SASL is "
                   f"{2 * ref:>7,.1f}; mpp {r.median('mpp'):,.1f}")
    if out:
        out = ["", "one-session ceiling (median of the probes before each mpp "
               "run): DESIGN.md's three syncs in a row, timed alone, and the "
               "password check of a one-message session"] + out
    return out
