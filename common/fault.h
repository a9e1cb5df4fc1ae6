/*
 * fault — named crash points for the crash tests (issue: reliability).
 * Compiled in only when MPP_FAULT_INJECTION is defined (the test build
 * under build/fault); otherwise FAULT_POINT() is nothing at all.
 *
 * At run time, MPP_CRASH_AT=NAME kills the process with SIGKILL (no
 * cleanup, like a power cut for the process) the Nth time point NAME is
 * reached, N from MPP_CRASH_AFTER (default 1).
 */
#ifndef MPP_FAULT_H
#define MPP_FAULT_H

#ifdef MPP_FAULT_INJECTION
void fault_point(const char *name);
#define FAULT_POINT(name) fault_point(name)
#else
#define FAULT_POINT(name) ((void)0)
#endif

#endif
