/*
 * request.c - allocation of pipeline requests.
 */
#include "request.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"

struct zreq *zreq_new(int64_t session_id, int32_t xid, int32_t type, const uint8_t *body, size_t len)
{
	struct zreq *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->session_id = session_id;
	r->xid = xid;
	r->type = type;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	r->recv_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (len) {
		r->body = malloc(len);
		if (!r->body) {
			free(r);
			return NULL;
		}
		memcpy(r->body, body, len);
		r->body_len = len;
	}
	return r;
}

void zreq_free(struct zreq *r)
{
	if (!r)
		return;
	free(r->body);
	ztxn_clear(&r->txn);
	free(r->ids);
	free(r->reply);
	free(r);
}
