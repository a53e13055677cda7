/*
 * quorum.c - who the ensemble is: lookups over the server.N lines and the
 * majority rule (ZooKeeper's QuorumMaj), shared by the election and ZAB.
 */
#include "election.h"

const struct quorum_member *quorum_member(const struct quorum_config *c, int64_t sid)
{
	for (int i = 0; i < c->n; i++)
		if (c->members[i].sid == sid)
			return &c->members[i];
	return NULL;
}

int quorum_voters(const struct quorum_config *c)
{
	int n = 0;
	for (int i = 0; i < c->n; i++)
		n += !c->members[i].observer;
	return n;
}

bool quorum_has_majority(const struct quorum_config *c, const int64_t *acked, int n)
{
	int votes = 0;
	for (int i = 0; i < n; i++) {
		const struct quorum_member *m = quorum_member(c, acked[i]);
		votes += m && !m->observer;
	}
	return votes > quorum_voters(c) / 2;
}
