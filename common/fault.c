/* fault — see fault.h. */
#include "fault.h"

#ifdef MPP_FAULT_INJECTION
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
fault_point(const char *name)
{
	static atomic_long hits;
	const char *at = getenv("MPP_CRASH_AT");
	const char *after = getenv("MPP_CRASH_AFTER");
	long n = after != NULL ? atol(after) : 1;
	static const char msg[] = "fault: crash point reached\n";

	if (at == NULL || strcmp(at, name) != 0)
		return;
	if (atomic_fetch_add(&hits, 1) + 1 < (n > 0 ? n : 1))
		return;
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	kill(getpid(), SIGKILL);
	_exit(137);
}
#else
typedef int fault_disabled;
#endif
