#!/bin/sh
# Install the Debian packages mpp needs to build and test: with apt-get
# when run as root, else print the exact command and fail.
#   tests/deps.sh          build + test packages
#   tests/deps.sh build    only what building and make run need
#   tests/deps.sh bench    what make bench needs beyond those (the
#                          steady-state plot's matplotlib)
set -e

BUILD_PKGS="gcc make pkg-config libevent-dev libsqlite3-dev libcrypt-dev libbsd-dev libssl-dev
  netcat-openbsd"
TEST_PKGS="libcmocka-dev python3 python3-pytest sqlite3 strace clang
  libclang-rt-14-dev mandoc dovecot-pop3d python3-pyftpdlib git git-email
  postfix valgrind openssl iproute2 systemd fuse3 libfuse3-dev
  libmailtools-perl mutt s-nail logrotate time haproxy prometheus"

BENCH_PKGS="python3-matplotlib"

case "${1:-all}" in
build)	want="$BUILD_PKGS" ;;
bench)	want="$BENCH_PKGS" ;;
*)	want="$BUILD_PKGS $TEST_PKGS"
	[ -f tests/deps-auth.txt ] && want="$want $(cat tests/deps-auth.txt)" ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "mpp needs these Debian packages; as root, run:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing"
# Packages that ship a daemon (postfix, dovecot) must not start it here:
# the tests start private instances of their own.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
	made_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get install -y --no-install-recommends $missing >/dev/null ||
	{ apt-get update >/dev/null && apt-get install -y --no-install-recommends $missing >/dev/null; }
[ -n "$made_policy" ] && rm -f "$policy"
exit 0
