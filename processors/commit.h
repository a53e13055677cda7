/*
 * commit.h - the Commit stage (internal to processors/; see commit.c).
 */
#ifndef ZKD_PROCESSORS_COMMIT_H
#define ZKD_PROCESSORS_COMMIT_H

#include "processors.h"
#include "stage.h"

/* Prepares s as the Commit stage of `role` feeding `next` (Final);
 * last_committed is the zxid everything up to which is committed. */
void commit_init(struct stage *s, struct stage *next, struct zk_state *st, enum zk_role role,
		 const struct zab_ops *ops, int64_t last_committed);
/* Once Commit's thread has stopped: the txns it holds that Sync logged
 * (linked by ->link, zxid order), taken out of its hands. */
struct zreq *commit_take_logged(void);
/* Frees what Commit still holds, once its thread has stopped. */
void commit_free(void);

#endif
