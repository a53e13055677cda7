/*
 * snapstream.c - the SNAP sync stream (format in snapstream.h).
 *
 * Everything about the body is snapbody.c's, shared with snapshot files;
 * what is left here is the framing a learner expects around it - none
 * before, the signature after - and the hand-off to the socket. Writing
 * gives snapbody a flush hook that drains the buffer into the caller's
 * sink, so a tree of any size goes out in MiB pieces while it is walked.
 * Reading wraps the caller's pull callback in a snap_in, which asks it for
 * exactly the bytes each item needs, so the stream is consumed to the last
 * byte of the signature and not beyond.
 */
#include "snapstream.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "net/log.h"
#include "net/tsan.h"
#include "quota.h"
#include "snapbody.h"

struct out {
	snapstream_sink_fn sink;
	void *arg;
	bool failed;
};

static int drain(void *arg, struct jute_writer *w)
{
	struct out *o = arg;
	if (w->len && o->sink(o->arg, w->buf, w->len) != 0) {
		o->failed = true;
		return -1;
	}
	w->len = 0;
	return 0;
}

int snapstream_write(struct jute_writer *w, struct ztree *t, int64_t zxid, const struct snap_session *sessions,
		     size_t n_sessions, snapstream_sink_fn sink, void *arg, char *err, size_t errlen)
{
	struct out o = { sink, arg, false };
	struct snapbody_stats st;
	int rc = snapbody_write(w, t, zxid, sessions, n_sessions, sink ? drain : NULL, &o, &st);
	if (rc == 0)
		jute_write_string(w, SNAPSTREAM_SIGNATURE);
	if (rc == 0 && w->err == JUTE_OK && sink)
		rc = drain(&o, w);
	if (rc != 0 || w->err != JUTE_OK) {
		snprintf(err, errlen, "SNAP stream at zxid 0x%" PRIx64 ": %s", (uint64_t)zxid,
			 o.failed ? "the peer connection failed" : "out of memory encoding the tree");
		return -1;
	}
	log_info("SNAP stream at zxid 0x%" PRIx64 ": %ld nodes, %zu ACLs, %zu sessions%s", (uint64_t)zxid, st.nodes,
		 st.acls, n_sessions,
		 st.late_acl || st.skipped ? " (some nodes changed during the walk; the txns after it cover them)" : "");
	return 0;
}

/* The signature: a ustring, so its length is read like any other (bounded)
 * and compared before its bytes are trusted. */
static int read_signature(struct snap_in *in, char *err, size_t errlen)
{
	size_t at = snap_in_offset(in);
	struct snap_view sig = snap_in_buffer(in);
	if (!snap_in_ok(in)) {
		snap_in_describe(in, "signature", err, errlen);
		return -1;
	}
	size_t want = strlen(SNAPSTREAM_SIGNATURE);
	if (sig.len != (int32_t)want || memcmp(snap_in_ptr(in, sig), SNAPSTREAM_SIGNATURE, want) != 0) {
		snprintf(err, errlen, "missing signature at offset %zu: expected the string \"%s\"", at,
			 SNAPSTREAM_SIGNATURE);
		return -1;
	}
	snap_in_next(in);
	return 0;
}

int snapstream_read(snapstream_pull_fn pull, void *arg, size_t max_buffer, snap_session_fn on_session,
		    void *session_arg, struct ztree **tree_out, char *err, size_t errlen)
{
	*tree_out = NULL;
	struct snap_in in;
	snap_in_pull(&in, pull, arg, max_buffer);
	struct snapbody_loaded l;
	char why[400];
	int rc = snapbody_load(&in, &l, why, sizeof why);
	if (rc == 0 && (rc = read_signature(&in, why, sizeof why)) != 0)
		snapbody_loaded_free(&l);
	snap_in_free(&in);
	if (rc != 0) {
		snprintf(err, errlen, "SNAP stream: %s", why);
		return -1;
	}
	/* DataTree.deserialize recounts the quota stats (setupQuota) */
	rcu_read_lock();
	quota_rebuild(l.tree);
	zkd_rcu_read_unlock();
	for (size_t i = 0; on_session && i < l.n_sessions; i++)
		on_session(session_arg, l.sessions[i].id, l.sessions[i].timeout);
	log_info("SNAP stream: loaded %ld nodes, %zu sessions (%zu bytes)", (long)atomic_load(&l.tree->node_count),
		 l.n_sessions, snap_in_offset(&in));
	*tree_out = l.tree;
	l.tree = NULL;
	snapbody_loaded_free(&l);
	return 0;
}
