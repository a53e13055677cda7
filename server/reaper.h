/*
 * reaper.h - the container and TTL checker thread (zkd-reaper).
 */
#ifndef ZKD_SERVER_REAPER_H
#define ZKD_SERVER_REAPER_H

#include "processors/processors.h"

int reaper_start(struct zk_state *st, int interval_ms, int max_per_minute);
void reaper_stop(void);

#endif
