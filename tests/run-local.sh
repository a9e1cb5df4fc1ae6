#!/bin/sh
# make run: a local instance under ./run — spool, a password file with the
# demo user, a config with the maildir transport on a loopback port — then
# mppd and mppqueue in the foreground until Ctrl-C.
set -e
top=$(pwd)
run="$top/run"
port=${MPP_PORT:-2218}
mkdir -p "$run"
if [ ! -f "$run/mpp.conf" ]; then
	cat > "$run/mpp.conf" <<CONF
# Local instance made by make run; edit freely, it is not overwritten.
spool_dir = $run/spool
listen = 127.0.0.1:$port
user =
hostname = localhost
sender_domain = localhost
auth = file:$run/passwd
transport = maildir:$run/maildir
retry_min = 5
CONF
fi
if [ ! -f "$run/passwd" ]; then
	printf 'demo\n' | "$top/bin/mpppasswd" -f "$run/passwd" -s add demo
fi
# The port the config really has (it may have been edited since).
port=$(sed -n 's/^listen *= *127\.0\.0\.1:\([0-9]*\).*/\1/p' "$run/mpp.conf")
nc_hint=
command -v nc >/dev/null 2>&1 ||
	nc_hint="
nc is not installed: as root, apt-get install -y netcat-openbsd"
cat <<MSG
mpp is running on 127.0.0.1:$port (config $run/mpp.conf).
Demo user: demo, password demo. Post with:
  printf 'To: you@localhost\nSubject: hi\n\nHello\n' | MPP_PASSWORD=demo bin/mppsend -s 127.0.0.1:$port -u demo
or by hand with nc -C 127.0.0.1 $port (-C: MPP needs CRLF line ends): USER demo,
PASS demo, DATA, the text, a line holding only '.', QUIT.$nc_hint
Stored:    $run/spool/new/ and index $run/spool/index.db (bin/mppq -c $run/mpp.conf list)
Delivered: $run/maildir/new/
Ctrl-C stops both daemons.
MSG
"$top/bin/mppd" -d -c "$run/mpp.conf" &
mppd=$!
queue=
if [ -x "$top/bin/mppqueue" ]; then
	"$top/bin/mppqueue" -d -c "$run/mpp.conf" &
	queue=$!
fi
trap 'kill $mppd $queue 2>/dev/null; wait; exit 0' INT TERM
wait
