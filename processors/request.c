/*
 * request.c - allocation of pipeline requests.
 */
#include "request.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "processors.h"

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
	free(r->qdata);
	free(r->acks);
	free(r);
}

int64_t processors_req_zxid(const struct zreq *r)
{
	return r->txn.zxid;
}

const uint8_t *processors_req_txn(const struct zreq *r, size_t *len)
{
	*len = r->qlen;
	return r->qdata;
}

bool processors_req_forward(const struct zreq *r, struct jute_writer *body, struct jute_writer *auth)
{
	jute_write_long(body, r->session_id);
	jute_write_int(body, r->xid);
	jute_write_int(body, r->type);
	if (r->type == ZOP_CREATESESSION)
		jute_write_int(body, r->txn.timeout);   /* what ZooKeeper's learners send */
	else if (r->body_len)
		jute_write_raw(body, r->body, r->body_len);
	if (!r->ids) {
		jute_write_int(auth, 0);   /* an empty list, never null: ZooKeeper iterates it */
		return true;
	}
	jute_write_int(auth, r->ids->n);
	for (int i = 0; i < r->ids->n; i++) {
		jute_write_string(auth, r->ids->v[i].scheme);
		jute_write_string(auth, r->ids->v[i].id);
	}
	return true;
}
