#!/usr/bin/python3
"""Two builds of mpp through the same benchmark rows, in one run.

  before_after.py BEFORE_BIN AFTER_BIN [PAIRS]

bench.py runs PAIRS times (default 2) with each directory of programs as
MPP_BIN, in the order B A, A B, B A...: each build sees the machine
early and late, after the other's deletions and after its own. The
BENCH_* variables pass through (BENCH_ONLY and BENCH_ROWS choose the
rows). The table gives, per row, the median of every mpp figure each build
got (all repetitions of all its runs) and mppd's CPU per message; the
Postfix column of the runs is not used. Results go to
BENCH_OUT/before-after.{json,txt}.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("BENCH_OUT", HERE.parents[1] / "build" / "bench"))


def run(label, bindir, i, prev):
    out = OUT / f"ba-{label}-{i}"
    out.mkdir(parents=True, exist_ok=True)
    # The previous run's mark of its deletions, with its time: bench.py
    # then waits out its cool-down here too, and no run starts on a disk
    # still busy with the last one's unlinks.
    if prev is not None and (prev / "last-cleanup").exists():
        shutil.copy2(prev / "last-cleanup", out / "last-cleanup")
    env = dict(os.environ, MPP_BIN=str(bindir), BENCH_OUT=str(out))
    print(f"before_after: run {i} of the {label} build ({bindir})", flush=True)
    subprocess.run([sys.executable, str(HERE / "bench.py")], env=env, check=True)
    return out, json.loads((out / "latest.json").read_text())


def figures(results):
    """row -> {"value": [...], "server_us_per_msg": [...]} of mpp's runs."""
    got = {}
    for res in results:
        for r in res["runs"]:
            if r["system"] != "mpp" or not isinstance(r["result"], dict):
                continue
            row = got.setdefault(r["row"], {"value": [], "server_us_per_msg": []})
            for k in row:
                if isinstance(r["result"].get(k), (int, float)):
                    row[k].append(r["result"][k])
    return got


def med(xs):
    return statistics.median(xs) if xs else None


def table(before, after):
    lines = [f"{'row':<24} {'before':>10} {'after':>10} {'after/before':>12}"
             f" {'mppd us before':>15} {'after':>8}  runs"]
    for row in sorted(set(before) | set(after)):
        b, a = before.get(row, {}), after.get(row, {})
        bv, av = med(b.get("value", [])), med(a.get("value", []))
        bu, au = med(b.get("server_us_per_msg", [])), med(a.get("server_us_per_msg", []))
        ratio = f"{av / bv:.2f}" if av and bv else "-"
        lines.append(f"{row:<24} {bv or 0:>10,.1f} {av or 0:>10,.1f} {ratio:>12}"
                     f" {bu or 0:>15,.0f} {au or 0:>8,.0f}  "
                     f"{len(b.get('value', []))}/{len(a.get('value', []))}")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    bins = {"before": Path(sys.argv[1]).resolve(), "after": Path(sys.argv[2]).resolve()}
    pairs = int(sys.argv[3]) if len(sys.argv) == 4 else 2
    for b in bins.values():
        if not (b / "mppd").is_file():
            sys.exit(f"before_after: no mppd in {b}")
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    results = {"before": [], "after": []}
    prev = OUT		# a mark left by an earlier bench.py or before_after.py
    for i in range(pairs):
        order = ("before", "after") if i % 2 == 0 else ("after", "before")
        for label in order:
            prev, res = run(label, bins[label], i, prev)
            results[label].append(res)
    if (prev / "last-cleanup").exists():
        shutil.copy2(prev / "last-cleanup", OUT / "last-cleanup")
    figs = {k: figures(v) for k, v in results.items()}
    text = (f"before: {bins['before']}\nafter:  {bins['after']}\n"
            f"{pairs} run(s) each, alternating; {(time.monotonic() - t0) / 60:.1f} min\n\n"
            + table(figs["before"], figs["after"]))
    print("\n" + text, end="")
    (OUT / "before-after.txt").write_text(text)
    (OUT / "before-after.json").write_text(json.dumps(figs, indent=1) + "\n")


if __name__ == "__main__":
    main()
