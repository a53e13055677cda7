/*
 * sync.h - the Sync stage, zkd's fsync thread, and the snapshot thread it
 * wakes (internal to processors/).
 */
#ifndef ZKD_PROCESSORS_SYNC_H
#define ZKD_PROCESSORS_SYNC_H

#include "processors.h"
#include "stage.h"

/* Prepares s as the Sync stage feeding `next` and starts zkd-snap.
 * st->storage.log must be open. */
int syncer_init(struct stage *s, struct stage *next, struct zk_state *st);
/* Stops zkd-snap (after the stage threads have stopped). */
void syncer_stop(void);

#endif
