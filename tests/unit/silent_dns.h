/*
 * silent_dns — for the unit tests that need a DNS server that never
 * answers (test_net, test_transport_smtp): called in a child process, it
 * moves that process into network and mount namespaces of its own, binds
 * UDP 127.0.0.1:53 there and answers nothing on it, and bind-mounts a
 * private /etc/resolv.conf that names it, with the resolver's retries
 * long (3 tries of 5 s), so a lookup of any name not in /etc/hosts hangs
 * for 15 s. Header-only: each test program is one file.
 *
 * Returns 0, or -1 when namespaces cannot be made (not root): the caller
 * skips then. Exit code SILENT_DNS_SKIP says so to the parent.
 */
#ifndef TEST_SILENT_DNS_H
#define TEST_SILENT_DNS_H

#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <net/if.h>
#include <netinet/in.h>

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SILENT_DNS_SKIP 77

/* Bring up lo in a new network namespace (ip link set lo up). */
static int
silent_dns_lo_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), rc = -1;

	if (fd == -1)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return rc;
}

/* See the top; *sock is the silent server's socket, left open. */
static int
silent_dns(int *sock)
{
	struct sockaddr_in sin;
	char conf[] = "/tmp/mpp-test-resolv-XXXXXX";
	static const char text[] = "nameserver 127.0.0.1\n"
	    "options timeout:5 attempts:3\n";
	int fd, rc;

	if (unshare(CLONE_NEWNS | CLONE_NEWNET) == -1 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
	    silent_dns_lo_up() == -1 ||
	    (*sock = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(53);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(*sock, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    (fd = mkstemp(conf)) == -1)
		return -1;
	rc = write(fd, text, sizeof(text) - 1) == (ssize_t)sizeof(text) - 1 &&
	    mount(conf, "/etc/resolv.conf", NULL, MS_BIND, NULL) == 0 ? 0 : -1;
	close(fd);
	unlink(conf);		/* the mount keeps it */
	return rc;
}

#endif /* TEST_SILENT_DNS_H */
