"""The steady state as a picture: for one run of each system (mpp,
Postfix+SASL, Postfix), the posting latency and the posting -> MTA
latency against time, and the queue's depth with the posted and
delivered rates against time, from the run's JSON file (bench.py's
results-STAMP.json, whose steady runs carry their per-second series).

  python3 tests/bench/plot_steady.py RESULTS.json OUT.png [ROW]

ROW is the row whose runs are drawn (default steady_32_deleted, else
the first steady row found); the last successful run of each system in
it is the one drawn. Needs python3-matplotlib (tests/deps.sh bench):
without it the plot is skipped with a message and exit status 3, so
that make bench's figures never depend on it."""

import json
import sys

SYSTEMS = (("mpp", "mpp"), ("postfix-sasl", "Postfix+SASL"), ("postfix", "Postfix"))
ROWS = ("steady_32_deleted", "steady_32_fresh", "steady_8_deleted", "steady_8_fresh")
SKIPPED = 3
USAGE = "usage: plot_steady.py RESULTS.json OUT.png [ROW]"


def pick(runs, row):
    """{system: result} of row's last successful run of each system."""
    out = {}
    for r in runs:
        if r.get("row") == row and r.get("result") and r["result"].get("series"):
            out[r["system"]] = r["result"]
    return out


def choose(data, row):
    rows = [row] if row else list(ROWS)
    for k in rows + sorted({r.get("row", "") for r in data.get("runs", [])
                            if r.get("row", "").startswith(("steady_", "sweep_"))}):
        got = pick(data.get("runs", []), k)
        if got:
            return k, got
    return None, {}


def num(res, field, fmt=",.0f"):
    v = res.get(field)
    return "-" if v is None else format(v, fmt)


def draw(data, row, runs, png, plt):
    cols = [(s, label) for s, label in SYSTEMS if s in runs]
    fig, axes = plt.subplots(2, len(cols), figsize=(5.2 * len(cols), 7.5),
                             squeeze=False, sharex="col")
    for i, (s, label) in enumerate(cols):
        res = runs[s]
        ser = res["series"]
        t = ser["t"]
        lat = axes[0][i]
        for field, name, style in (("resp_p99", "posting p99", "-"),
                                   ("e2e_p50", "posting -> MTA p50", "--"),
                                   ("e2e_p99", "posting -> MTA p99", "-")):
            pts = [(x, y) for x, y in zip(t, ser[field]) if y is not None and y > 0]
            if pts:
                lat.plot([x for x, _ in pts], [y for _, y in pts], style, label=name,
                         linewidth=1.2)
        lat.set_yscale("log")
        lat.set_ylabel("ms (per second of posting)")
        lat.axvline(res["window_s"], color="grey", linewidth=0.8, linestyle=":")
        lat.grid(True, which="both", alpha=0.3)
        lat.legend(fontsize=8, loc="upper left")
        offered = f"offered {res['rate']:,.0f}/s, " if res.get("rate") else ""
        lat.set_title(f"{label}: {offered}{num(res, 'posted_per_s')} posted/s, "
                      f"{num(res, 'value')} delivered/s\n"
                      f"posting p99 {num(res, 'lat_p99_ms', '.1f')} ms, "
                      f"posting -> MTA p99 {num(res, 'e2e_p99_ms', '.1f')} ms, "
                      f"{num(res, 'server_us_per_msg')} us CPU/msg", fontsize=9)
        q = axes[1][i]
        depth = ser["depth"]
        q.plot([p[0] for p in depth], [p[1] for p in depth], color="black",
               linewidth=1.2, label="queue depth")
        q.set_ylabel("messages in the queue")
        q.set_xlabel("seconds from the first posting (dotted: posting ends)")
        q.axvline(res["window_s"], color="grey", linewidth=0.8, linestyle=":")
        q.grid(True, alpha=0.3)
        rate = q.twinx()
        rate.plot(t, ser["posted"], color="tab:blue", linewidth=0.8, label="posted/s")
        rate.plot(t, ser["delivered"], color="tab:green", linewidth=0.8,
                  label="delivered/s")
        rate.set_ylabel("messages a second")
        lines = q.get_legend_handles_labels()
        more = rate.get_legend_handles_labels()
        q.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    m = data.get("machine", {})
    load = [r["result"].get("loadavg_start") for r in data.get("runs", [])
            if r.get("row") == row and r.get("result")]
    load = [x for x in load if x is not None]
    fig.suptitle(f"{row}: make bench {data.get('stamp', '')}, "
                 f"{m.get('nproc', '?')} x {m.get('cpu', '?')}, Postfix "
                 f"{m.get('postfix', '?')}; load average at the runs' starts "
                 f"{min(load, default=0):.1f}-{max(load, default=0):.1f}"
                 f"{' (quick run)' if data.get('quick') else ''}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def main(argv):
    if len(argv) not in (3, 4):
        print(USAGE, file=sys.stderr)
        return 64
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("steady-state plot skipped: python3-matplotlib is not installed "
              "(tests/deps.sh bench installs it)")
        return SKIPPED
    with open(argv[1]) as f:
        data = json.load(f)
    row, runs = choose(data, argv[3] if len(argv) == 4 else None)
    if not runs:
        print(f"steady-state plot skipped: no steady run with figures in {argv[1]}")
        return SKIPPED
    draw(data, row, runs, argv[2], plt)
    print(f"steady-state plot ({row}): {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
