/*
 * final.h - the Final stage (internal to processors/).
 */
#ifndef ZKD_PROCESSORS_FINAL_H
#define ZKD_PROCESSORS_FINAL_H

#include "processors.h"
#include "stage.h"

void final_init(struct stage *s, struct zk_state *st, const struct zab_ops *ops);
/* While no stage runs (a role change): applies a txn that is in the log
 * but did not reach Final, without replies or watch events (the clients
 * are gone). */
void final_apply_logged(struct zk_state *st, struct zreq *r);

#endif
