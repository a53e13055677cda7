/*
 * session_tracker.h - the zkd-session thread: session expiry on a tick wheel.
 */
#ifndef ZKD_SERVER_SESSION_TRACKER_H
#define ZKD_SERVER_SESSION_TRACKER_H

#include <stdint.h>

#include "processors/processors.h"

int tracker_start(struct zk_state *st);
void tracker_stop(void);
/* Final's on_session_created hook: start timing a session (any thread). */
void tracker_add(void *arg, int64_t session_id);

#endif
