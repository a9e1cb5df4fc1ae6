#!/bin/sh
# tests/fresh-root.sh [COMMAND]
#
# Runs the README's quick start on a machine as new as a fresh Debian 12
# server install, to catch a package the project needs but does not
# install: a Debian bookworm root of the "important" variant (what a
# standard server has, nothing a developer added) is built with
# mmdebstrap once and kept as a tarball; each run unpacks it anew, clones
# this checkout's HEAD into /root/mpp, and runs as root in a chroot:
#
#     apt-get update; apt-get install -y make; COMMAND (default: make test)
#
# Only committed work is tested, as in CI. The chroot has its own mount
# namespace, /proc, /sys, /dev and a tmpfs /tmp; nothing it mounts reaches
# the host. Needs root and Debian's package archive.
#
#   FRESH_ROOT_CACHE   the base tarball (default /var/tmp/mpp-bookworm-important.tar)
#   FRESH_ROOT_KEEP=1  keep the unpacked root afterwards (its path is printed)
#
# Exit status: the command's, or 2 when the root could not be made.
set -u
cmd=${1:-make test}
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${FRESH_ROOT_CACHE:-/var/tmp/mpp-bookworm-important.tar}

die() { echo "fresh-root: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "must run as root (it builds a chroot)"
if ! command -v mmdebstrap >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y mmdebstrap >/dev/null 2>&1 ||
	    die "cannot install mmdebstrap"
fi
if [ ! -s "$cache" ]; then
	# The host's own archive configuration: CI may reach only a mirror.
	sources=/etc/apt/sources.list.d/debian.sources
	[ -f "$sources" ] || sources=/etc/apt/sources.list
	echo "fresh-root: building the base root (once) into $cache"
	mmdebstrap --quiet --format=tar --variant=important \
	    --include=ca-certificates \
	    bookworm "$cache.part" "$sources" || die "mmdebstrap failed"
	mv "$cache.part" "$cache"
fi

work=$(mktemp -d /var/tmp/mpp-fresh-root.XXXXXX) || die "mktemp failed"
if [ "${FRESH_ROOT_KEEP:-0}" = 1 ]; then
	echo "fresh-root: keeping $work/root"
else
	trap 'rm -rf --one-file-system "$work"' EXIT INT TERM
fi
root=$work/root
mkdir "$root" && tar -C "$root" -xf "$cache" || die "cannot unpack $cache"
git clone -q "$top" "$root/root/mpp" || die "cannot clone $top"

# Inside: a private mount namespace, then the chroot with a clean
# environment, as a root login on the new machine would have.
unshare --mount --propagation private sh -c '
	root=$1 cmd=$2
	# The root a mount point of its own, as on a real machine: tests
	# that make a mount namespace of their own need / to be one.
	mount --bind "$root" "$root" &&
	    mount -t proc proc "$root/proc" &&
	    mount --rbind /sys "$root/sys" &&
	    mount --rbind /dev "$root/dev" &&
	    mount -t tmpfs tmpfs "$root/tmp" || exit 2
	exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
	    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	    /bin/sh -c "cd /root/mpp && apt-get update >/dev/null &&
	        DEBIAN_FRONTEND=noninteractive apt-get install -y make >/dev/null &&
	        $cmd"
' fresh-root "$root" "$cmd"
rc=$?
echo "fresh-root: exit status $rc"
exit $rc
