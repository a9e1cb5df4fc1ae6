/*
 * outcome — the three-way result of every mail operation: an auth backend
 * maps it to 250 / 451 / 530, the store to 250 / 451, a transport to
 * sent / deferred / failed.
 */
#ifndef MPP_OUTCOME_H
#define MPP_OUTCOME_H

enum outcome {
	OUTCOME_OK = 0,		/* done */
	OUTCOME_TEMP = 1,	/* not now: try again later */
	OUTCOME_PERM = 2	/* no, for good */
};

#endif
