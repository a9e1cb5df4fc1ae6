#!/bin/sh
# make bench: mpp against a private Postfix instance on this machine.
# Needs root (Postfix runs as its own user from a private config directory;
# smtp-sink drops to the postfix user), Postfix with smtp-source and
# smtp-sink, and python3. See docs/performance.md; tests/bench/bench.py has
# the knobs (BENCH_REPS, BENCH_OUT, BENCH_QUICK, BENCH_ONLY).
set -e
cd "$(dirname "$0")/../.."

fail() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root (a private Postfix instance is started)"
for t in postfix postconf postsuper postqueue smtp-source smtp-sink python3; do
	command -v "$t" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
	command -v "$t" >/dev/null 2>&1 || fail "$t not found (Debian package postfix, python3)"
done
id postfix >/dev/null 2>&1 || fail "no postfix user (Debian package postfix)"
for b in mppd mppqueue mpppasswd mppbench; do
	[ -x "bin/$b" ] || fail "bin/$b missing: run make first"
done
exec python3 tests/bench/bench.py "$@"
