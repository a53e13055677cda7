/*
 * prep.c - the Prep stage (zkd-prep): ZooKeeper's PrepRequestProcessor.
 *
 * Prep decides every write before it happens. It sees the tree as Final has
 * applied it plus the changes it has itself decided but Final has not yet
 * applied ("outstanding changes", kept per path in a table only this thread
 * touches). So a create right after a create of the same path fails with
 * NodeExists although the tree does not have the node yet, and a sequential
 * name uses the parent's creation counter including creations in flight.
 *
 * Every write gets the next zxid, also when it fails: a failure is an error
 * txn that flows on to Final, which answers with the error, exactly as
 * ZooKeeper logs and answers it. Checks run in ZooKeeper's order, because
 * clients see which error wins (e.g. NoNode for a missing parent before
 * BadArguments for a malformed name).
 *
 * Prep also keeps the ephemerals of each session (decided, not just applied),
 * so a closeSession txn can carry the exact list of nodes to delete.
 */
#include "prep.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "net/log.h"
#include "net/tsan.h"
#include "path.h"
#include "request.h"
#include "session.h"

/* ---- outstanding changes ------------------------------------------------ */

struct change {
	struct change *hnext;           /* hash chain */
	struct change *fnext;           /* FIFO by zxid */
	int64_t zxid;
	bool exists;
	struct zk_stat stat;            /* persisted form: cversion = creations */
	int32_t num_children;
	uint8_t *acl;
	size_t acl_len;
	size_t path_len;
	char path[];
};

#define CHANGE_BUCKETS 4096

/* A node as Prep sees it: from a change record or from the tree. Pointers
 * stay valid for the current request (Prep holds rcu_read_lock). */
struct view {
	struct zk_stat stat;
	int32_t num_children;
	const uint8_t *acl;
	size_t acl_len;
};

struct eph_set {                    /* ephemerals of one session */
	struct eph_set *next;
	int64_t session_id;
	int n, cap;
	char **paths;
};

#define EPH_BUCKETS 1024

struct prep {
	struct zk_state *st;
	int64_t next_zxid;
	/* A learner's Prep only forwards (zkd-prep owns all of these): */
	bool learner;
	bool leader;                    /* of an ensemble: the zxid counter may run out */
	struct zab_ops ops;
	struct zreq **fwd;
	int n_fwd, cap_fwd;
	struct jute_writer out;
	struct change *table[CHANGE_BUCKETS];
	struct change *fifo_head, *fifo_tail;
	struct eph_set *eph[EPH_BUCKETS];
	/* Sessions whose createSession Prep passed but Final has not applied
	 * yet (ZooKeeper's leader tracks a session from prep on): a follower
	 * may answer its client first, and the client's next request must not
	 * find the session missing here. Pruned once applied. */
	struct { int64_t id, zxid; } *born;
	int n_born, cap_born;
};

static struct prep prep_state;

static size_t change_bucket(const char *path, size_t len)
{
	return tree_hash(path, len) % CHANGE_BUCKETS;
}

static struct change *change_find(struct prep *p, const char *path, size_t len)
{
	for (struct change *c = p->table[change_bucket(path, len)]; c; c = c->hnext)
		if (c->path_len == len && memcmp(c->path, path, len) == 0)
			return c;
	return NULL;
}

static void change_unhash(struct prep *p, struct change *c)
{
	struct change **pp = &p->table[change_bucket(c->path, c->path_len)];
	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = c->hnext;
}

/* Records the state a path will have once txn `zxid` is applied. */
static void change_add(struct prep *p, int64_t zxid, const char *path, size_t len, const struct view *v)
{
	struct change *c = calloc(1, sizeof *c + len + 1);
	if (!c)
		abort();
	c->zxid = zxid;
	c->path_len = len;
	memcpy(c->path, path, len);
	if (v) {
		c->exists = true;
		c->stat = v->stat;
		c->num_children = v->num_children;
		if (v->acl_len) {
			c->acl = malloc(v->acl_len);
			if (!c->acl)
				abort();
			memcpy(c->acl, v->acl, v->acl_len);
			c->acl_len = v->acl_len;
		}
	}
	struct change *old = change_find(p, path, len);
	if (old)
		change_unhash(p, old);
	size_t b = change_bucket(path, len);
	c->hnext = p->table[b];
	p->table[b] = c;
	if (p->fifo_tail)
		p->fifo_tail->fnext = c;
	else
		p->fifo_head = c;
	p->fifo_tail = c;
}

/* Drops the records Final has applied: the tree now says the same. */
static void changes_prune(struct prep *p)
{
	int64_t applied = atomic_load_explicit(&p->st->last_applied, memory_order_acquire);
	while (p->fifo_head && p->fifo_head->zxid <= applied) {
		struct change *c = p->fifo_head;
		p->fifo_head = c->fnext;
		if (!p->fifo_head)
			p->fifo_tail = NULL;
		if (change_find(p, c->path, c->path_len) == c)
			change_unhash(p, c);
		free(c->acl);
		free(c);
	}
}

/* getRecordForPath: the newest decided state, or ZNONODE. */
static int get_record(struct prep *p, const char *path, size_t len, struct view *out)
{
	struct change *c = change_find(p, path, len);
	if (c) {
		if (!c->exists)
			return ZNONODE;
		out->stat = c->stat;
		out->num_children = c->num_children;
		out->acl = c->acl;
		out->acl_len = c->acl_len;
		return ZOK;
	}
	struct znode *n = tree_lookup(p->st->tree, path, len);
	if (!n)
		return ZNONODE;
	const struct znode_ver *v = tree_ver(n);
	out->stat = v->stat;
	out->num_children = v->kids ? (int32_t)v->kids->n : 0;
	out->acl = v->acl ? v->acl->bytes : NULL;
	out->acl_len = v->acl && v->acl->len > 0 ? (size_t)v->acl->len : 0;
	return ZOK;
}

/* ---- ephemerals by session ------------------------------------------------ */

static struct eph_set **eph_slot(struct prep *p, int64_t sid)
{
	struct eph_set **pp = &p->eph[(uint64_t)sid % EPH_BUCKETS];
	while (*pp && (*pp)->session_id != sid)
		pp = &(*pp)->next;
	return pp;
}

static void eph_add(struct prep *p, int64_t sid, const char *path, size_t len)
{
	struct eph_set **pp = eph_slot(p, sid);
	if (!*pp) {
		*pp = calloc(1, sizeof **pp);
		if (!*pp)
			abort();
		(*pp)->session_id = sid;
	}
	struct eph_set *e = *pp;
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 4;
		e->paths = realloc(e->paths, (size_t)e->cap * sizeof *e->paths);
		if (!e->paths)
			abort();
	}
	e->paths[e->n++] = strndup(path, len);
}

static void eph_remove(struct prep *p, int64_t sid, const char *path, size_t len)
{
	struct eph_set *e = *eph_slot(p, sid);
	if (!e)
		return;
	for (int i = 0; i < e->n; i++)
		if (strlen(e->paths[i]) == len && memcmp(e->paths[i], path, len) == 0) {
			free(e->paths[i]);
			e->paths[i] = e->paths[--e->n];
			return;
		}
}

/* Unlinks and returns the session's set (caller frees). */
static struct eph_set *eph_take(struct prep *p, int64_t sid)
{
	struct eph_set **pp = eph_slot(p, sid);
	struct eph_set *e = *pp;
	if (e)
		*pp = e->next;
	return e;
}

static void eph_seed_one(void *arg, const struct znode *n)
{
	const struct znode_ver *v = tree_ver(n);
	int64_t owner = v->stat.ephemeral_owner;
	if (owner != 0 && owner != ZK_CONTAINER_OWNER && (owner & ZK_TTL_MASK) != ZK_TTL_PREFIX)
		eph_add(arg, owner, n->path, n->path_len);
}

/* ---- txn building ----------------------------------------------------------- */

static void txn_set_path(struct ztxn *t, const char *path, size_t len)
{
	t->path = strndup(path, len);
	if (!t->path)
		abort();
	t->path_len = len;
}

static bool has_nul(struct jute_buf b)
{
	return b.len > 0 && memchr(b.data, '\0', (size_t)b.len) != NULL;
}

/* Parent of a path given on the wire: ZooKeeper's lastIndexOf('/') rule. */
static int parent_of(struct jute_buf path, size_t *parent_len)
{
	if (path.len < 0)
		return ZMARSHALLINGERROR;      /* a null path: Java fails to use it */
	if (path.len == 0 || has_nul(path))
		return ZBADARGUMENTS;
	const char *s = (const char *)path.data;
	size_t i = (size_t)path.len;
	while (i > 0 && s[i - 1] != '/')
		i--;
	if (i == 0)
		return ZBADARGUMENTS;
	*parent_len = i - 1;               /* "/a" -> "" (the root's name here) */
	return ZOK;
}

static int check_version(int32_t current, int32_t expected)
{
	return expected != -1 && expected != current ? ZBADVERSION : ZOK;
}

/* The parent's path as the tree keys it ("" -> "/"). */
static void parent_key(const char *path, size_t plen, const char **p, size_t *len)
{
	if (plen == 0) {
		*p = "/";
		*len = 1;
	} else {
		*p = path;
		*len = plen;
	}
}

/* Every prep_<op> reads its request record from rd, checks it against the
 * tree and the outstanding changes, and on success fills t (whose zxid and
 * time are set) and records the changes. On failure it changes nothing. */

static int prep_create(struct prep *p, struct jute_reader *rd, int32_t op, int64_t session,
		       const struct auth_ids *ids, struct ztxn *t)
{
	bool ttl = op == ZOP_CREATETTL;
	struct rec_create_req req;
	if (rec_read_create_req(rd, ttl, &req) != 0)
		return ZMARSHALLINGERROR;
	int mode = req.flags;
	if (op == ZOP_CREATECONTAINER)
		mode = ZCM_CONTAINER;
	if (mode < ZCM_PERSISTENT || mode > ZCM_PERSISTENT_SEQUENTIAL_WITH_TTL)
		return ZBADARGUMENTS;
	bool is_ttl = mode == ZCM_PERSISTENT_WITH_TTL || mode == ZCM_PERSISTENT_SEQUENTIAL_WITH_TTL;
	bool sequential = mode == ZCM_PERSISTENT_SEQUENTIAL || mode == ZCM_EPHEMERAL_SEQUENTIAL ||
			  mode == ZCM_PERSISTENT_SEQUENTIAL_WITH_TTL;
	bool ephemeral = mode == ZCM_EPHEMERAL || mode == ZCM_EPHEMERAL_SEQUENTIAL;
	/* EphemeralType.validateTTL: a TTL mode needs 0 < ttl <= 2^40-1, any
	 * other mode no TTL at all */
	if (is_ttl && !p->st->limits.extended_types)
		return ZUNIMPLEMENTED;
	if (is_ttl ? req.ttl <= 0 || req.ttl > ZK_TTL_MAX : ttl && req.ttl >= 0)
		return ZBADARGUMENTS;
	if (mode == ZCM_CONTAINER && op != ZOP_CREATECONTAINER)
		return ZBADARGUMENTS;

	size_t plen;
	int rc = parent_of(req.path, &plen);
	if (rc != ZOK)
		return rc;
	uint8_t *acl = NULL;
	size_t acl_len = 0;
	rc = acl_fixup(&req.acl, ids, &acl, &acl_len);
	if (rc != ZOK)
		return rc;

	const char *pk;
	size_t pklen;
	parent_key((const char *)req.path.data, plen, &pk, &pklen);
	struct view parent;
	rc = get_record(p, pk, pklen, &parent);
	if (rc == ZOK && !acl_allows(parent.acl, parent.acl_len, ZPERM_CREATE, ids))
		rc = ZNOAUTH;
	if (rc != ZOK) {
		free(acl);
		return rc;
	}

	char *path = malloc((size_t)req.path.len + 11);
	if (!path)
		abort();
	memcpy(path, req.path.data, (size_t)req.path.len);
	size_t len = (size_t)req.path.len;
	if (sequential)
		len += (size_t)snprintf(path + len, 11, "%010d", parent.stat.cversion);
	path[len] = '\0';

	struct view existing;
	if (!path_valid(path, len))
		rc = ZBADARGUMENTS;
	else if (get_record(p, path, len, &existing) == ZOK)
		rc = ZNODEEXISTS;
	else if (parent.stat.ephemeral_owner != 0 && parent.stat.ephemeral_owner != ZK_CONTAINER_OWNER &&
		 (parent.stat.ephemeral_owner & ZK_TTL_MASK) != ZK_TTL_PREFIX)
		rc = ZNOCHILDRENFOREPHEMERALS;
	if (rc != ZOK) {
		free(path);
		free(acl);
		return rc;
	}

	t->type = op == ZOP_CREATECONTAINER ? ZOP_CREATECONTAINER : is_ttl ? ZOP_CREATETTL : ZOP_CREATE;
	t->path = path;
	t->path_len = len;
	t->data = req.data.data;
	t->data_len = req.data.len;
	t->acl = acl;
	t->acl_len = acl_len;
	t->parent_cversion = parent.stat.cversion + 1;
	t->ephemeral_owner = mode == ZCM_CONTAINER ? ZK_CONTAINER_OWNER :
			     is_ttl ? (ZK_TTL_PREFIX | req.ttl) : ephemeral ? session : 0;

	struct view pv = parent;
	pv.num_children++;
	pv.stat.cversion = t->parent_cversion;
	pv.stat.pzxid = t->zxid;
	change_add(p, t->zxid, pk, pklen, &pv);

	struct view nv = { 0 };
	nv.stat.czxid = nv.stat.mzxid = nv.stat.pzxid = t->zxid;
	nv.stat.ctime = nv.stat.mtime = t->time;
	nv.stat.ephemeral_owner = t->ephemeral_owner;
	nv.acl = acl;
	nv.acl_len = acl_len;
	change_add(p, t->zxid, path, len, &nv);
	return ZOK;
}

/* The parent and node records of a delete, after ZooKeeper's checks. */
static int prep_delete_checks(struct prep *p, struct jute_buf path, int32_t version,
			      const struct auth_ids *ids, struct view *parent, struct view *node,
			      const char **pk, size_t *pklen)
{
	size_t plen;
	int rc = parent_of(path, &plen);
	if (rc != ZOK)
		return rc;
	if (path_special((const char *)path.data, (size_t)path.len))
		return ZBADARGUMENTS;
	parent_key((const char *)path.data, plen, pk, pklen);
	rc = get_record(p, *pk, *pklen, parent);
	if (rc != ZOK)
		return rc;
	if (!acl_allows(parent->acl, parent->acl_len, ZPERM_DELETE, ids))
		return ZNOAUTH;
	rc = get_record(p, (const char *)path.data, (size_t)path.len, node);
	if (rc != ZOK)
		return rc;
	if (check_version(node->stat.version, version) != ZOK)
		return ZBADVERSION;
	if (node->num_children > 0)
		return ZNOTEMPTY;
	return ZOK;
}

static void record_delete(struct prep *p, int64_t zxid, const char *pk, size_t pklen,
			  const struct view *parent, const char *path, size_t len)
{
	struct view pv = *parent;
	pv.num_children--;
	pv.stat.pzxid = zxid;
	change_add(p, zxid, pk, pklen, &pv);
	change_add(p, zxid, path, len, NULL);
}

static int prep_delete(struct prep *p, struct jute_reader *rd, const struct auth_ids *ids, struct ztxn *t)
{
	struct rec_path_version req;
	if (rec_read_path_version(rd, &req) != 0)
		return ZMARSHALLINGERROR;
	struct view parent, node;
	const char *pk;
	size_t pklen;
	int rc = prep_delete_checks(p, req.path, req.version, ids, &parent, &node, &pk, &pklen);
	if (rc != ZOK)
		return rc;
	t->type = ZOP_DELETE;
	txn_set_path(t, (const char *)req.path.data, (size_t)req.path.len);
	t->ephemeral_owner = node.stat.ephemeral_owner;   /* for the ephemeral index */
	record_delete(p, t->zxid, pk, pklen, &parent, t->path, t->path_len);
	return ZOK;
}

/* deleteContainer (from the container checker): the body is the bare path.
 * Refused if the node gained children meanwhile or is an ordinary ephemeral. */
static int prep_delete_container(struct prep *p, const uint8_t *body, size_t len, struct ztxn *t)
{
	struct jute_buf path = { body, (int32_t)len };
	size_t plen;
	if (len == 0 || parent_of(path, &plen) != ZOK || path_special((const char *)body, len))
		return ZBADARGUMENTS;
	const char *pk;
	size_t pklen;
	parent_key((const char *)body, plen, &pk, &pklen);
	struct view node, parent;
	int rc = get_record(p, (const char *)body, len, &node);
	if (rc != ZOK)
		return rc;
	if (node.num_children > 0)
		return ZNOTEMPTY;
	int64_t owner = node.stat.ephemeral_owner;
	if (owner != ZK_CONTAINER_OWNER && (owner & ZK_TTL_MASK) != ZK_TTL_PREFIX)
		return ZBADVERSION;
	rc = get_record(p, pk, pklen, &parent);
	if (rc != ZOK)
		return rc;
	t->type = ZOP_DELETE;
	txn_set_path(t, (const char *)body, len);
	t->ephemeral_owner = owner;
	record_delete(p, t->zxid, pk, pklen, &parent, t->path, t->path_len);
	return ZOK;
}

static int prep_set_data(struct prep *p, struct jute_reader *rd, const struct auth_ids *ids, struct ztxn *t)
{
	struct rec_set_data_req req;
	if (rec_read_set_data_req(rd, &req) != 0)
		return ZMARSHALLINGERROR;
	if (req.path.len < 0)
		return ZMARSHALLINGERROR;
	const char *path = (const char *)req.path.data;
	size_t len = req.path.len > 0 ? (size_t)req.path.len : 0;
	if (!path_valid(path, len))
		return ZBADARGUMENTS;
	struct view node;
	int rc = get_record(p, path, len, &node);
	if (rc != ZOK)
		return rc;
	if (!acl_allows(node.acl, node.acl_len, ZPERM_WRITE, ids))
		return ZNOAUTH;
	if (check_version(node.stat.version, req.version) != ZOK)
		return ZBADVERSION;
	t->type = ZOP_SETDATA;
	txn_set_path(t, path, len);
	t->data = req.data.data;
	t->data_len = req.data.len;
	t->version = node.stat.version + 1;
	node.stat.version = t->version;
	node.stat.mtime = t->time;
	node.stat.mzxid = t->zxid;
	change_add(p, t->zxid, path, len, &node);
	return ZOK;
}

static int prep_set_acl(struct prep *p, struct jute_reader *rd, const struct auth_ids *ids, struct ztxn *t)
{
	struct rec_set_acl_req req;
	if (rec_read_set_acl_req(rd, &req) != 0)
		return ZMARSHALLINGERROR;
	if (req.path.len < 0)
		return ZMARSHALLINGERROR;
	const char *path = (const char *)req.path.data;
	size_t len = req.path.len > 0 ? (size_t)req.path.len : 0;
	if (!path_valid(path, len))
		return ZBADARGUMENTS;
	uint8_t *acl = NULL;
	size_t acl_len = 0;
	int rc = acl_fixup(&req.acl, ids, &acl, &acl_len);
	if (rc != ZOK)
		return rc;
	struct view node;
	rc = get_record(p, path, len, &node);
	if (rc == ZOK && !acl_allows(node.acl, node.acl_len, ZPERM_ADMIN, ids))
		rc = ZNOAUTH;
	if (rc == ZOK && check_version(node.stat.aversion, req.version) != ZOK)
		rc = ZBADVERSION;
	if (rc != ZOK) {
		free(acl);
		return rc;
	}
	t->type = ZOP_SETACL;
	txn_set_path(t, path, len);
	t->acl = acl;
	t->acl_len = acl_len;
	t->version = node.stat.aversion + 1;
	node.stat.aversion = t->version;
	node.acl = acl;
	node.acl_len = acl_len;
	change_add(p, t->zxid, path, len, &node);
	return ZOK;
}

static int prep_check(struct prep *p, struct jute_reader *rd, const struct auth_ids *ids, struct ztxn *t)
{
	struct rec_path_version req;
	if (rec_read_path_version(rd, &req) != 0)
		return ZMARSHALLINGERROR;
	if (req.path.len < 0)
		return ZMARSHALLINGERROR;
	const char *path = (const char *)req.path.data;
	size_t len = req.path.len > 0 ? (size_t)req.path.len : 0;
	if (!path_valid(path, len))
		return ZBADARGUMENTS;
	struct view node;
	int rc = get_record(p, path, len, &node);
	if (rc != ZOK)
		return rc;
	if (!acl_allows(node.acl, node.acl_len, ZPERM_READ, ids))
		return ZNOAUTH;
	if (check_version(node.stat.version, req.version) != ZOK)
		return ZBADVERSION;
	t->type = ZOP_CHECK;
	txn_set_path(t, path, len);
	t->version = node.stat.version + 1;
	return ZOK;
}

/* closeSession: the txn lists the session's ephemerals, each deleted. */
static int prep_close(struct prep *p, struct zreq *r)
{
	struct ztxn *t = &r->txn;
	t->type = ZOP_CLOSE;
	struct eph_set *e = eph_take(p, r->session_id);
	if (!e)
		return ZOK;
	t->close_paths = e->paths;
	t->n_close_paths = e->n;
	for (int i = 0; i < e->n; i++) {
		const char *path = e->paths[i];
		size_t len = strlen(path), plen;
		struct view node, parent;
		struct jute_buf b = { (const uint8_t *)path, (int32_t)len };
		const char *pk;
		size_t pklen;
		if (parent_of(b, &plen) != ZOK || get_record(p, path, len, &node) != ZOK)
			continue;
		parent_key(path, plen, &pk, &pklen);
		if (get_record(p, pk, pklen, &parent) != ZOK)
			continue;
		record_delete(p, t->zxid, pk, pklen, &parent, path, len);
	}
	free(e);
	return ZOK;
}

static bool is_write(int type)
{
	switch (type) {
	case ZOP_CREATE: case ZOP_CREATE2: case ZOP_CREATECONTAINER: case ZOP_CREATETTL:
	case ZOP_DELETE: case ZOP_SETDATA: case ZOP_SETACL: case ZOP_CHECK: case ZOP_MULTI:
	case ZOP_CREATESESSION: case ZOP_CLOSE: case ZOP_DELETECONTAINER:
		return true;
	default:
		return false;
	}
}

static void born_prune(struct prep *p)
{
	int64_t applied = atomic_load_explicit(&p->st->last_applied, memory_order_acquire);
	int k = 0;
	for (int i = 0; i < p->n_born; i++)
		if (p->born[i].zxid > applied)
			p->born[k++] = p->born[i];
	p->n_born = k;
}

static void born_add(struct prep *p, int64_t id, int64_t zxid)
{
	if (p->n_born == p->cap_born) {
		int cap = p->cap_born ? p->cap_born * 2 : 64;
		void *v = realloc(p->born, (size_t)cap * sizeof *p->born);
		if (!v)
			abort();
		p->born = v;
		p->cap_born = cap;
	}
	p->born[p->n_born].id = id;
	p->born[p->n_born].zxid = zxid;
	p->n_born++;
}

static bool born_pending(struct prep *p, int64_t id)
{
	for (int i = 0; i < p->n_born; i++)
		if (p->born[i].id == id)
			return true;
	return false;
}

/* A request's session may no longer write once it is closing or gone. */
static int check_session(struct prep *p, const struct zreq *r)
{
	if (r->type == ZOP_CREATESESSION || r->type == ZOP_CLOSE || r->type == ZOP_DELETECONTAINER)
		return ZOK;
	struct zsession *s = sessions_find(p->st->sessions, r->session_id);
	if (!s && p->n_born && born_pending(p, r->session_id))
		return ZOK;   /* its createSession is on its way through the pipeline */
	if (!s || atomic_load(&s->closing))
		return ZSESSIONEXPIRED;
	/* in an ensemble: only the server that holds the session's connection
	 * may act for it (a client that moved leaves a stale connection) */
	if (atomic_load(&p->st->role) != ZK_LEADER)
		return ZOK;
	int64_t from = r->learner_sid ? r->learner_sid : p->st->limits.myid;
	long long unknown = 0;
	if (!atomic_compare_exchange_strong(&s->owner, &unknown, from) && unknown != from)
		return ZSESSIONMOVED;   /* a new leader learns owners as ZooKeeper's does: first come */
	return ZOK;
}

/* One operation, alone or inside a multi. */
static int prep_op(struct prep *p, struct jute_reader *rd, int32_t op, int64_t session,
		   const struct auth_ids *ids, struct ztxn *t)
{
	switch (op) {
	case ZOP_CREATE: case ZOP_CREATE2: case ZOP_CREATECONTAINER: case ZOP_CREATETTL:
		return prep_create(p, rd, op, session, ids, t);
	case ZOP_DELETE:
		return prep_delete(p, rd, ids, t);
	case ZOP_SETDATA:
		return prep_set_data(p, rd, ids, t);
	case ZOP_SETACL:
		return prep_set_acl(p, rd, ids, t);
	case ZOP_CHECK:
		return prep_check(p, rd, ids, t);
	default:
		return ZUNIMPLEMENTED;
	}
}

/* Keeps the per-session ephemeral index in step with a decided txn. */
static void eph_apply(struct prep *p, const struct ztxn *t, int64_t session)
{
	int64_t owner = t->ephemeral_owner;
	bool normal = owner != 0 && owner != ZK_CONTAINER_OWNER && (owner & ZK_TTL_MASK) != ZK_TTL_PREFIX;
	if (!normal)
		return;
	if (t->type == ZOP_CREATE && owner == session)
		eph_add(p, owner, t->path, t->path_len);
	else if (t->type == ZOP_DELETE)
		eph_remove(p, owner, t->path, t->path_len);
}

/* Undoes the change records added since `mark` (the FIFO tail before a
 * multi began): drops them and makes the newest older record of each path
 * visible again, as ZooKeeper's rollbackPendingChanges does. */
static void changes_rollback(struct prep *p, struct change *mark)
{
	struct change *c = mark ? mark->fnext : p->fifo_head;
	if (mark)
		mark->fnext = NULL;
	else
		p->fifo_head = NULL;
	p->fifo_tail = mark;
	while (c) {
		struct change *next = c->fnext;
		if (change_find(p, c->path, c->path_len) == c) {
			change_unhash(p, c);
			struct change *older = NULL;
			for (struct change *o = p->fifo_head; o; o = o->fnext)
				if (o->path_len == c->path_len && memcmp(o->path, c->path, c->path_len) == 0)
					older = o;
			if (older) {
				size_t b = change_bucket(older->path, older->path_len);
				older->hnext = p->table[b];
				p->table[b] = older;
			}
		}
		free(c->acl);
		free(c);
		c = next;
	}
}

static bool multi_op_allowed(int32_t op)
{
	switch (op) {
	case ZOP_CREATE: case ZOP_CREATE2: case ZOP_CREATECONTAINER: case ZOP_CREATETTL:
	case ZOP_DELETE: case ZOP_SETDATA: case ZOP_CHECK:
		return true;
	default:
		return false;
	}
}

static int skip_op_record(struct jute_reader *rd, int32_t op)
{
	union {
		struct rec_create_req c;
		struct rec_path_version pv;
		struct rec_set_data_req sd;
	} u;
	switch (op) {
	case ZOP_CREATE: case ZOP_CREATE2: case ZOP_CREATECONTAINER: case ZOP_CREATETTL:
		return rec_read_create_req(rd, op == ZOP_CREATETTL, &u.c);
	case ZOP_DELETE: case ZOP_CHECK:
		return rec_read_path_version(rd, &u.pv);
	case ZOP_SETDATA:
		return rec_read_set_data_req(rd, &u.sd);
	default:
		return -1;
	}
}

/* multi: every op shares the multi's zxid. The first failure rolls back the
 * records of the ops before it; the failing op carries its error and every
 * later one RuntimeInconsistency (Final then answers each accordingly). */
static int prep_multi(struct prep *p, struct zreq *r)
{
	struct jute_reader rd;
	jute_reader_init(&rd, r->body, r->body_len, p->st->limits.max_buffer);
	struct ztxn *t = &r->txn;
	t->type = ZOP_MULTI;
	struct change *mark = p->fifo_tail;
	int failed = ZOK;
	for (;;) {
		struct rec_multi_header h;
		if (rec_read_multi_header(&rd, &h) != 0)
			return ZMARSHALLINGERROR;
		if (h.done)
			break;
		if (t->n_sub == t->cap_sub) {
			t->cap_sub = t->cap_sub ? t->cap_sub * 2 : 4;
			t->sub = realloc(t->sub, (size_t)t->cap_sub * sizeof *t->sub);
			if (!t->sub)
				abort();
		}
		struct ztxn *sub = &t->sub[t->n_sub++];
		memset(sub, 0, sizeof *sub);
		sub->zxid = t->zxid;
		sub->time = t->time;
		sub->op = h.type;
		int rc;
		if (!multi_op_allowed(h.type))
			return ZMARSHALLINGERROR;   /* ZooKeeper cannot even decode such a multi */
		if (failed != ZOK) {
			/* still parse the record so the next header is found */
			rc = ZRUNTIMEINCONSISTENCY;
			if (skip_op_record(&rd, h.type) != 0)
				return ZMARSHALLINGERROR;
		} else {
			rc = prep_op(p, &rd, h.type, r->session_id, r->ids, sub);
			if (rc == ZMARSHALLINGERROR)
				return rc;
			if (rc != ZOK) {
				failed = rc;
				changes_rollback(p, mark);
			}
		}
		if (rc != ZOK) {
			ztxn_clear(sub);
			sub->zxid = t->zxid;
			sub->op = h.type;
			sub->type = ZOP_ERROR;
			sub->err = rc;
		}
	}
	if (failed == ZOK)
		for (int i = 0; i < t->n_sub; i++)
			eph_apply(p, &t->sub[i], r->session_id);
	return ZOK;
}

static int prep_one(struct prep *p, struct zreq *r)
{
	int rc = check_session(p, r);
	if (rc != ZOK)
		return rc;
	switch (r->type) {
	case ZOP_CREATESESSION:
		r->txn.type = ZOP_CREATESESSION;
		born_add(p, r->session_id, r->txn.zxid);
		return ZOK;
	case ZOP_CLOSE:
		return prep_close(p, r);
	case ZOP_MULTI:
		return prep_multi(p, r);
	case ZOP_DELETECONTAINER:
		return prep_delete_container(p, r->body, r->body_len, &r->txn);
	default: {
		struct jute_reader rd;
		jute_reader_init(&rd, r->body, r->body_len, p->st->limits.max_buffer);
		rc = prep_op(p, &rd, r->type, r->session_id, r->ids, &r->txn);
		if (rc == ZOK)
			eph_apply(p, &r->txn, r->session_id);
		return rc;
	}
	}
}

/* A learner decides nothing: ZooKeeper's FollowerRequestProcessor sends
 * every write (and sync, and session create/close) to the leader, and
 * Commit waits for the leader's txn to answer the client. */
static void forward_handle(struct stage *s, struct zreq *r)
{
	struct prep *p = s->ctx;
	r->local = true;
	if (p->n_fwd == p->cap_fwd) {
		int cap = p->cap_fwd ? p->cap_fwd * 2 : 64;
		struct zreq **v = realloc(p->fwd, (size_t)cap * sizeof *v);
		if (!v)
			abort();
		p->fwd = v;
		p->cap_fwd = cap;
	}
	p->fwd[p->n_fwd++] = r;
	stage_forward(s, r);
}

static void forward_batch_done(struct stage *s)
{
	struct prep *p = s->ctx;
	if (!p->n_fwd)
		return;
	/* Encode while the requests are ours, hand them to Commit, and only
	 * then let the leader see them: its answer must find them there. */
	p->out.len = 0;
	p->ops.forward(p->ops.ctx, p->fwd, p->n_fwd, &p->out);
	p->n_fwd = 0;
	stage_flush(s);
	p->ops.send(p->ops.ctx, p->out.buf, p->out.len);
}

static void prep_handle(struct stage *s, struct zreq *r)
{
	struct prep *p = s->ctx;
	changes_prune(p);
	if (p->n_born)
		born_prune(p);
	if (is_write(r->type) && p->leader && (p->next_zxid & 0xffffffffLL) == 0xffffffffLL) {
		/* the counter would run into the epoch: ZooKeeper's leader gives
		 * up the epoch here (XidRolloverException) and a new election
		 * starts the next one at counter 1; the request is dropped with
		 * the client connections the leader closes on stepping down */
		if (!atomic_exchange(&p->st->zxid_exhausted, true))
			log_warn("zxid 0x%" PRIx64 ": the counter is used up; forcing a new election",
				 (uint64_t)p->next_zxid);
		if (r->counted)
			atomic_fetch_sub_explicit(&p->st->stats.outstanding, 1, memory_order_relaxed);
		zreq_free(r);
		return;
	}
	if (is_write(r->type)) {
		r->txn.zxid = p->next_zxid++;
		r->txn.time = wall_ms();
		r->txn.session_id = r->session_id;
		r->txn.cxid = r->xid;
		rcu_read_lock();
		int rc = prep_one(p, r);
		zkd_rcu_read_unlock();
		if (rc != ZOK) {
			if (rc < ZAPIERROR || rc == ZMARSHALLINGERROR)
				log_info("session 0x%" PRIx64 ": %s refused: %s", (uint64_t)r->session_id,
					 zk_op_name(r->type), zk_err_name(rc));
			struct ztxn keep = r->txn;
			ztxn_clear(&r->txn);
			r->txn.zxid = keep.zxid;
			r->txn.time = keep.time;
			r->txn.session_id = keep.session_id;
			r->txn.cxid = keep.cxid;
			r->txn.type = ZOP_ERROR;
			r->txn.err = rc;
		}
	} else {
		r->txn.type = 0;   /* sync: rides the pipeline for its ordering only */
	}
	stage_forward(s, r);
}

void prep_init(struct stage *s, struct stage *next, struct zk_state *st)
{
	prep_init_role(s, next, st, ZK_STANDALONE, NULL, atomic_load(&st->last_applied) + 1);
}

void prep_init_role(struct stage *s, struct stage *next, struct zk_state *st, enum zk_role role,
		    const struct zab_ops *ops, int64_t next_zxid)
{
	struct prep *p = &prep_state;
	prep_free();
	memset(p, 0, sizeof *p);
	p->st = st;
	p->next_zxid = next_zxid;
	p->learner = role == ZK_FOLLOWER || role == ZK_OBSERVER;
	p->leader = role == ZK_LEADER;
	if (p->learner) {
		p->ops = *ops;
		jute_writer_init(&p->out, 4096);
		stage_init(s, "zkd-prep", forward_handle, next, p);
		s->batch_done = forward_batch_done;
		return;
	}
	tree_foreach(st->tree, eph_seed_one, p);
	stage_init(s, "zkd-prep", prep_handle, next, p);
}

void prep_free(void)
{
	struct prep *p = &prep_state;
	free(p->born);
	p->born = NULL;
	p->n_born = p->cap_born = 0;
	free(p->fwd);
	p->fwd = NULL;
	p->n_fwd = p->cap_fwd = 0;
	if (p->learner)
		jute_writer_free(&p->out);
	p->learner = false;
	while (p->fifo_head) {
		struct change *c = p->fifo_head;
		p->fifo_head = c->fnext;
		free(c->acl);
		free(c);
	}
	p->fifo_tail = NULL;
	memset(p->table, 0, sizeof p->table);
	for (size_t b = 0; b < EPH_BUCKETS; b++) {
		while (p->eph[b]) {
			struct eph_set *e = p->eph[b];
			p->eph[b] = e->next;
			for (int i = 0; i < e->n; i++)
				free(e->paths[i]);
			free(e->paths);
			free(e);
		}
	}
}
