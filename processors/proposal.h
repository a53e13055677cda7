/*
 * proposal.h - the Proposal stage (internal to processors/; see proposal.c).
 */
#ifndef ZKD_PROCESSORS_PROPOSAL_H
#define ZKD_PROCESSORS_PROPOSAL_H

#include "processors.h"
#include "stage.h"

void proposal_init(struct stage *s, struct stage *next, const struct zab_ops *ops);
void proposal_free(void);

#endif
