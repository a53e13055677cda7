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
/* Frees Prep's tables once its thread has stopped. */
void prep_free(void);

#endif
