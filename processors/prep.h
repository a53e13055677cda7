/*
 * prep.h - the Prep stage (internal to processors/).
 */
#ifndef ZKD_PROCESSORS_PREP_H
#define ZKD_PROCESSORS_PREP_H

#include "processors.h"
#include "stage.h"

/* Prepares s as the Prep stage feeding `next`; seeds the per-session
 * ephemeral index from the tree. Call before the stage starts. */
void prep_init(struct stage *s, struct stage *next, struct zk_state *st);
/* The same for a role of an ensemble: a learner's Prep forwards to the
 * leader (ops); a leader's numbers txns from next_zxid. */
void prep_init_role(struct stage *s, struct stage *next, struct zk_state *st, enum zk_role role,
		    const struct zab_ops *ops, int64_t next_zxid);
/* Frees Prep's tables once its thread has stopped. */
void prep_free(void);

#endif
