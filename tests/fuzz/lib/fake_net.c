/*
 * fake_net.c - see fake_net.h.
 */
#include "fake_net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/wfcqueue.h>

#define FAKE_MAX_CONNS 4
#define FAKE_FD_BASE 7

struct net_conn {
	bool used;          /* on_open ran, on_close not yet */
	bool closing;       /* net_conn_close: no more reading; on_close at the next turn */
	bool paused;
	bool established;   /* has a session (net_conn_established) */
	net_addr addr;
	void *user;
	char peer[64];
	char x509[256];     /* the verified client certificate's subject, "" = none */
	struct jute_writer out;
};

static struct net_callbacks cbs;
static struct net_conn conns[FAKE_MAX_CONNS];
static uint32_t generation;
static struct cds_wfcq_head inbox_head;
static struct cds_wfcq_tail inbox_tail;
static bool inbox_ready;
static bool trace;          /* FUZZ_LOG set: print every reply frame's header */

void fake_net_init(const struct net_callbacks *cb)
{
	cbs = *cb;
	trace = getenv("FUZZ_LOG") != NULL;
	if (!inbox_ready) {
		cds_wfcq_init(&inbox_head, &inbox_tail);
		inbox_ready = true;
	}
}

struct net_conn *fake_net_open(const char *peer, const char *x509_subject)
{
	for (int i = 0; i < FAKE_MAX_CONNS; i++) {
		struct net_conn *c = &conns[i];
		if (c->used)
			continue;
		memset(c, 0, sizeof *c);
		c->used = true;
		c->addr = ((net_addr)(FAKE_FD_BASE + i) << 32) | ++generation;   /* I/O thread 0 */
		snprintf(c->peer, sizeof c->peer, "%s", peer);
		snprintf(c->x509, sizeof c->x509, "%s", x509_subject ? x509_subject : "");
		jute_writer_init(&c->out, 256);
		if (cbs.on_open)
			cbs.on_open(cbs.ctx, c);
		return c;
	}
	abort();   /* the harness opens a few at most */
}

bool fake_net_reading(const struct net_conn *c)
{
	return c->used && !c->closing;
}

bool fake_net_paused(const struct net_conn *c)
{
	return c->paused;
}

void fake_net_frame(struct net_conn *c, const uint8_t *p, size_t len)
{
	if (!fake_net_reading(c))
		return;
	/* the loop hands up a view into its own buffer: give on_frame an exact
	 * allocation so that ASan sees any read past the frame */
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		abort();
	memcpy(copy, p, len);
	if (cbs.on_frame(cbs.ctx, c, copy, len) < 0)
		c->closing = true;
	free(copy);
}

size_t fake_net_feed(struct net_conn *c, const uint8_t *p, size_t len, uint32_t max_frame, int max_frames)
{
	size_t off = 0;
	int n = 0;
	while (fake_net_reading(c) && !c->paused && len - off >= 4 && (max_frames == 0 || n < max_frames)) {
		int32_t flen = (int32_t)jute_get_u32(p + off);
		if (flen < 0 || (uint32_t)flen > max_frame) {
			c->closing = true;    /* the loop: "Len error", close */
			return len;
		}
		if (len - off - 4 < (size_t)flen)
			return len;           /* a partial frame: the peer never sends the rest */
		fake_net_frame(c, p + off + 4, (size_t)flen);
		off += 4 + (size_t)flen;
		n++;
	}
	return off;
}

/* The output must be whole frames; anything else would desynchronise the
 * client. */
static void check_output(struct net_conn *c)
{
	struct jute_writer *w = &c->out;
	if (w->err != JUTE_OK) {
		fprintf(stderr, "fake_net: output writer failed (err %d)\n", w->err);
		abort();
	}
	size_t off = 0;
	while (off < w->len) {
		if (w->len - off < 4) {
			fprintf(stderr, "fake_net: %zu stray output bytes at %zu\n", w->len - off, off);
			abort();
		}
		uint32_t n = jute_get_u32(w->buf + off);
		if (n > w->len - off - 4) {
			fprintf(stderr, "fake_net: frame at %zu claims %u bytes, %zu written\n", off, n,
				w->len - off - 4);
			abort();
		}
		if (trace && n >= 16)
			fprintf(stderr, "fake_net: %s <- %u bytes: xid %d zxid 0x%llx err %d\n", c->peer, n,
				(int32_t)jute_get_u32(w->buf + off + 4),
				(unsigned long long)jute_get_u32(w->buf + off + 8) << 32 | jute_get_u32(w->buf + off + 12),
				(int32_t)jute_get_u32(w->buf + off + 16));
		else if (trace)
			fprintf(stderr, "fake_net: %s <- %u bytes\n", c->peer, n);
		off += 4 + n;
	}
	w->len = 0;
}

static struct net_conn *by_addr(net_addr a)
{
	for (int i = 0; i < FAKE_MAX_CONNS; i++)
		if (conns[i].used && conns[i].addr == a)
			return &conns[i];
	return NULL;
}

static void deliver_inbox(void)
{
	struct cds_wfcq_node *node;
	/* a message delivered may post more: loop until empty */
	while ((node = cds_wfcq_dequeue_blocking(&inbox_head, &inbox_tail)) != NULL) {
		struct net_msg *m = caa_container_of(node, struct net_msg, node);
		cbs.on_msg(cbs.ctx, by_addr(m->to), m);
	}
}

static void finish(struct net_conn *c)
{
	if (cbs.on_close)
		cbs.on_close(cbs.ctx, c);
	jute_writer_free(&c->out);
	c->used = false;
	c->user = NULL;
}

void fake_net_run(void)
{
	deliver_inbox();
	if (cbs.on_idle)
		cbs.on_idle(cbs.ctx, 0);
	for (int i = 0; i < FAKE_MAX_CONNS; i++) {
		struct net_conn *c = &conns[i];
		if (!c->used)
			continue;
		check_output(c);
		if (c->closing)
			finish(c);
	}
}

void fake_net_shutdown(void)
{
	fake_net_run();
	for (int i = 0; i < FAKE_MAX_CONNS; i++)
		if (conns[i].used)
			finish(&conns[i]);
	deliver_inbox();
	if (cbs.on_idle)
		cbs.on_idle(cbs.ctx, 0);   /* events for the connections just closed are dropped */
}

/* ---- net.h ---------------------------------------------------------------- */

void net_post(net_addr to, struct net_msg *m)
{
	m->to = to;
	cds_wfcq_node_init(&m->node);
	cds_wfcq_enqueue(&inbox_head, &inbox_tail, &m->node);
}

struct net_conn *net_conn_lookup(net_addr a)
{
	return by_addr(a);
}

net_addr net_conn_addr(const struct net_conn *c)
{
	return c->addr;
}

int net_conn_io_index(const struct net_conn *c)
{
	(void)c;
	return 0;
}

void *net_conn_user(const struct net_conn *c)
{
	return c->user;
}

void net_conn_set_user(struct net_conn *c, void *user)
{
	c->user = user;
}

const char *net_conn_peer(const struct net_conn *c)
{
	return c->peer;
}

void net_conn_established(struct net_conn *c)
{
	c->established = true;
}

bool net_conn_secure(const struct net_conn *c)
{
	return c->x509[0] != '\0';
}

int net_conn_x509_subject(const struct net_conn *c, char *out, size_t cap)
{
	size_t n = strlen(c->x509);
	if (n == 0)
		return 0;
	if (n + 1 > cap)
		return -1;
	memcpy(out, c->x509, n + 1);
	return 1;
}

void net_conn_send(struct net_conn *c, const void *p, size_t len)
{
	jute_write_raw(&c->out, p, len);
}

struct jute_writer *net_conn_out(struct net_conn *c)
{
	return &c->out;
}

void net_conn_pause(struct net_conn *c, bool paused)
{
	c->paused = paused;
}

void net_conn_close(struct net_conn *c, const char *reason)
{
	(void)reason;
	c->closing = true;
}

bool net_conn_closing(const struct net_conn *c)
{
	return c->closing;
}

int net_n_threads(void)
{
	return 1;
}

void net_count_sent_packet(void)
{
}

void net_reset_packet_stats(void)
{
}
