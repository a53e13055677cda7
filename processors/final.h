/*
 * final.h - the Final stage (internal to processors/).
 */
#ifndef ZKD_PROCESSORS_FINAL_H
#define ZKD_PROCESSORS_FINAL_H

#include "processors.h"
#include "stage.h"

void final_init(struct stage *s, struct zk_state *st, const struct zab_ops *ops);

#endif
