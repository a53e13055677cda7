/*
 * proposal.c - the Proposal stage (zkd-proposal), leader only: ZooKeeper's
 * ProposalRequestProcessor.
 *
 * Each txn of a batch is encoded once, as TxnHeader + record (the bytes a
 * PROPOSAL, an INFORM and the leader's committed log all carry, kept on the
 * zreq as qdata), and the whole batch goes to the followers in one
 * zab_ops.propose call before the batch moves on to this server's own Sync:
 * followers start their fsyncs while the leader starts its own.
 */
#include "proposal.h"

#include <inttypes.h>
#include <stdlib.h>

#include "net/log.h"
#include "request.h"
#include "storage/txncodec.h"

struct proposal {
	struct zab_ops ops;
	struct zreq **batch;         /* zkd-proposal only */
	int n, cap;
	struct metric_counter *proposal_count;  /* zkd-proposal records (net/metrics.h) */
};

static struct proposal proposal_state;

static void proposal_handle(struct stage *s, struct zreq *r)
{
	struct proposal *p = s->ctx;
	if (r->txn.zxid && r->txn.type) {
		struct jute_writer w;
		char err[256];
		jute_writer_init(&w, 128);
		if (txn_encode(&w, &r->txn, err, sizeof err) != 0) {
			/* Prep built it, so this is our bug; the txn cannot be
			 * replicated, and skipping a zxid would stall every
			 * follower: stop as a failed log write would */
			log_error("zxid 0x%" PRIx64 ": cannot encode the txn: %s", (uint64_t)r->txn.zxid, err);
			abort();
		}
		r->qdata = jute_writer_take(&w, &r->qlen);
		if (p->n == p->cap) {
			int cap = p->cap ? p->cap * 2 : 64;
			struct zreq **v = realloc(p->batch, (size_t)cap * sizeof *v);
			if (!v)
				abort();
			p->batch = v;
			p->cap = cap;
		}
		p->batch[p->n++] = r;
	}
	stage_forward(s, r);
}

static void proposal_batch_done(struct stage *s)
{
	struct proposal *p = s->ctx;
	/* before stage.c hands the batch to Sync, so the zreqs are still ours */
	if (p->n) {
		p->ops.propose(p->ops.ctx, p->batch, p->n);
		metric_add(p->proposal_count, p->n);
	}
	p->n = 0;
}

void proposal_init(struct stage *s, struct stage *next, const struct zab_ops *ops)
{
	struct proposal *p = &proposal_state;
	p->ops = *ops;
	p->n = 0;
	p->proposal_count = metrics_counter("proposal_count", NULL);   /* help: reqmetrics.c */
	stage_init(s, "zkd-proposal", proposal_handle, next, p);
	s->batch_done = proposal_batch_done;
}

void proposal_free(void)
{
	free(proposal_state.batch);
	proposal_state.batch = NULL;
	proposal_state.n = proposal_state.cap = 0;
}
