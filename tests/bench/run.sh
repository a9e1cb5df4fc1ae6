#!/bin/sh
# make bench: mpp against a private Postfix instance on this machine,
# with and without SASL through a private Dovecot. Needs root (Postfix and
# Dovecot run as their own users from private config directories;
# smtp-sink drops to the postfix user), Postfix with smtp-source and
# smtp-sink, Dovecot, /usr/bin/time and python3. See docs/performance.md; tests/bench/bench.py has
# the knobs (BENCH_REPS, BENCH_OUT, BENCH_QUICK, BENCH_ONLY).
set -e
cd "$(dirname "$0")/../.."

fail() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root (a private Postfix instance is started)"
for t in postfix postconf postsuper postqueue smtp-source smtp-sink dovecot python3; do
	command -v "$t" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
	command -v "$t" >/dev/null 2>&1 || fail "$t not found (Debian packages postfix, dovecot-core, python3)"
done
[ -x /usr/bin/time ] || fail "/usr/bin/time not found (Debian package time)"
id dovecot >/dev/null 2>&1 || fail "no dovecot user (Debian package dovecot-core)"
id postfix >/dev/null 2>&1 || fail "no postfix user (Debian package postfix)"
for b in mppd mppqueue mpppasswd mppq mppbench mppfill; do
	[ -x "bin/$b" ] || fail "bin/$b missing: run make first"
done
# Debian's interpreter, where python3-matplotlib (the steady-state plot)
# is installed, even when another python3 comes first in PATH.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" tests/bench/bench.py "$@"
