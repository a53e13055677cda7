/*
 * tree.c - the RCU data tree (see tree.h for the model).
 *
 * A change never edits memory a reader may be looking at: the writer builds
 * a new znode_ver, publishes it with rcu_assign_pointer, and hands the old
 * one to call_rcu. Blobs (data, acl, child list) are shared between
 * successive versions by an atomic refcount; the last version to let go of a
 * blob frees it from its RCU callback, after every reader that could have
 * seen it has left its read-side section.
 *
 * Child names in a zkids list point into the child znode's own path. The
 * child znode and the parent version that listed it are both retired through
 * call_rcu in the same grace period, so no reader can follow a name to freed
 * memory.
 */
#include "tree.h"

#include <stdlib.h>
#include <string.h>

#include "net/log.h"
#include "net/tsan.h"
#include "digest.h"
#include "quota.h"
#include "tree_internal.h"

/* ---- blobs ------------------------------------------------------------- */

struct zblob *tree_blob_new(const uint8_t *p, int32_t len)
{
	size_t n = len > 0 ? (size_t)len : 0;
	struct zblob *b = malloc(sizeof *b + n);
	if (!b)
		abort(); /* out of memory in the single writer: nothing sane to do */
	atomic_init(&b->ref, 1);
	b->len = len;
	if (n)
		memcpy(b->bytes, p, n);
	return b;
}

struct zblob *tree_blob_ref(struct zblob *b)
{
	if (b)
		atomic_fetch_add_explicit(&b->ref, 1, memory_order_relaxed);
	return b;
}

void tree_blob_unref(struct zblob *b)
{
	if (b && atomic_fetch_sub_explicit(&b->ref, 1, memory_order_acq_rel) == 1)
		free(b);
}

static struct zkids *kids_alloc(uint32_t n)
{
	struct zkids *k = malloc(sizeof *k + (size_t)n * sizeof(struct zkid));
	if (!k)
		abort();
	atomic_init(&k->ref, 1);
	k->n = n;
	return k;
}

static struct zkids *kids_get(struct zkids *k)
{
	if (k)
		atomic_fetch_add_explicit(&k->ref, 1, memory_order_relaxed);
	return k;
}

void tree_kids_unref(struct zkids *k)
{
	if (k && atomic_fetch_sub_explicit(&k->ref, 1, memory_order_acq_rel) == 1)
		free(k);
}

/* ---- versions and nodes ------------------------------------------------ */

void tree_ver_free_cb(struct rcu_head *h)
{
	TSAN_AFTER_GRACE();
	struct znode_ver *v = caa_container_of(h, struct znode_ver, rcu);
	tree_blob_unref(v->data);
	tree_blob_unref(v->acl);
	tree_kids_unref(v->kids);
	free(v);
}

static void ver_retire(struct znode_ver *v)
{
	if (v)
		call_rcu(&v->rcu, tree_ver_free_cb);
}

/* A new version sharing every blob of `old`; the caller then swaps one. */
struct znode_ver *tree_ver_clone(const struct znode_ver *old)
{
	struct znode_ver *v = malloc(sizeof *v);
	if (!v)
		abort();
	v->stat = old->stat;
	v->data = tree_blob_ref(old->data);
	v->acl = tree_blob_ref(old->acl);
	v->kids = kids_get(old->kids);
	return v;
}

static void node_free_cb(struct rcu_head *h)
{
	TSAN_AFTER_GRACE();
	free(caa_container_of(h, struct znode, rcu));
}

uint64_t tree_hash(const char *path, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)path[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

int tree_node_match(struct cds_lfht_node *ht_node, const void *key)
{
	const struct znode *n = caa_container_of(ht_node, struct znode, hnode);
	const struct path_key *k = key;
	TSAN_ACQUIRE((void *)n);   /* pairs with node_insert's release */
	return n->path_len == k->len && memcmp(n->path, k->p, k->len) == 0;
}

struct znode *tree_lookup(struct ztree *t, const char *path, size_t len)
{
	struct path_key k = { path, len };
	struct cds_lfht_iter it;
	cds_lfht_lookup(t->ht, tree_hash(path, len), tree_node_match, &k, &it);
	struct cds_lfht_node *hn = cds_lfht_iter_get_node(&it);
	return hn ? caa_container_of(hn, struct znode, hnode) : NULL;
}

bool tree_split(const char *path, size_t len, size_t *parent_len, const char **name, size_t *name_len)
{
	if (len < 2 || path[0] != '/')
		return false;
	size_t slash = len;
	while (slash > 0 && path[slash - 1] != '/')
		slash--;
	slash--;                         /* index of the last '/' */
	*parent_len = slash == 0 ? 1 : slash;
	*name = path + slash + 1;
	*name_len = len - slash - 1;
	return true;
}

void tree_client_stat(const struct znode_ver *v, struct zk_stat *out)
{
	*out = v->stat;
	int32_t kids = v->kids ? (int32_t)v->kids->n : 0;
	out->num_children = kids;
	out->cversion = v->stat.cversion * 2 - kids;
	out->data_length = v->data && v->data->len > 0 ? v->data->len : 0;
	if (out->ephemeral_owner == ZK_CONTAINER_OWNER ||
	    (out->ephemeral_owner & ZK_TTL_MASK) == ZK_TTL_PREFIX)
		out->ephemeral_owner = 0;
}

struct ztree *tree_new(void)
{
	struct ztree *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ht = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	if (!t->ht) {
		free(t);
		return NULL;
	}
	return t;
}

/* Inserts a node with its first version; the caller links it into its parent. */
static struct znode *node_insert(struct ztree *t, const char *path, size_t len, struct znode_ver *v)
{
	struct znode *n = malloc(sizeof *n + len + 1);
	if (!n)
		abort();
	cds_lfht_node_init(&n->hnode);
	n->path_len = (uint32_t)len;
	memcpy(n->path, path, len);
	n->path[len] = '\0';
	n->ver = v;
	struct path_key k = { n->path, len };
	TSAN_RELEASE(n);
	struct cds_lfht_node *got = cds_lfht_add_unique(t->ht, tree_hash(path, len), tree_node_match, &k, &n->hnode);
	if (got != &n->hnode) {
		free(n);
		return NULL;
	}
	atomic_fetch_add(&t->node_count, 1);
	atomic_fetch_add(&t->data_bytes, (long)len + (v->data && v->data->len > 0 ? v->data->len : 0));
	tree_digest_enter(t, n);
	return n;
}

static const uint8_t world_anyone_acl[] = {
	0, 0, 0, 1,                          /* one ACL */
	0, 0, 0, 31,                         /* perms ALL */
	0, 0, 0, 5, 'w', 'o', 'r', 'l', 'd',
	0, 0, 0, 6, 'a', 'n', 'y', 'o', 'n', 'e',
};

static struct znode_ver *ver_new_empty(void)
{
	struct znode_ver *v = calloc(1, sizeof *v);
	if (!v)
		abort();
	v->data = tree_blob_new(NULL, 0);
	v->acl = tree_blob_new(world_anyone_acl, (int32_t)sizeof world_anyone_acl);
	return v;
}

/* Publishes `nv` as n's version and retires the old one. */
void tree_node_publish(struct ztree *t, struct znode *n, struct znode_ver *nv)
{
	struct znode_ver *old = n->ver;
	nv->digest = tree_node_digest(n->path, n->path_len, nv);
	atomic_fetch_add_explicit(&t->digest, nv->digest - old->digest, memory_order_relaxed);
	atomic_store_explicit(&n->ver, nv, memory_order_release);
	ver_retire(old);
}

void tree_digest_enter(struct ztree *t, const struct znode *n)
{
	n->ver->digest = tree_node_digest(n->path, n->path_len, n->ver);
	atomic_fetch_add_explicit(&t->digest, n->ver->digest, memory_order_relaxed);
}

void tree_digest_leave(struct ztree *t, const struct znode *n)
{
	atomic_fetch_sub_explicit(&t->digest, n->ver->digest, memory_order_relaxed);
}

static struct zkids *kids_with(const struct zkids *old, const char *name, uint32_t len)
{
	uint32_t n = old ? old->n : 0;
	struct zkids *k = kids_alloc(n + 1);
	if (n)
		memcpy(k->v, old->v, n * sizeof(struct zkid));
	k->v[n].name = name;
	k->v[n].len = len;
	return k;
}

/* Keeps insertion order (so listings are stable), hence memmove not swap. */
static struct zkids *kids_without(const struct zkids *old, const char *name, uint32_t len)
{
	if (!old)
		return NULL;
	uint32_t at = old->n;
	for (uint32_t i = 0; i < old->n; i++)
		if (old->v[i].len == len && memcmp(old->v[i].name, name, len) == 0) {
			at = i;
			break;
		}
	if (at == old->n)
		return kids_get((struct zkids *)old);
	if (old->n == 1)
		return NULL;
	struct zkids *k = kids_alloc(old->n - 1);
	memcpy(k->v, old->v, at * sizeof(struct zkid));
	memcpy(k->v + at, old->v + at + 1, (old->n - at - 1) * sizeof(struct zkid));
	return k;
}

static void link_child(struct ztree *t, struct znode *parent, struct znode *child, int32_t parent_cversion, int64_t zxid)
{
	struct znode_ver *pv = tree_ver_clone(parent->ver);
	tree_kids_unref(pv->kids);
	size_t plen = 0, nlen = 0;
	const char *name = child->path;
	tree_split(child->path, child->path_len, &plen, &name, &nlen);
	pv->kids = kids_with(parent->ver->kids, name, (uint32_t)nlen);
	/* Replaying a log may apply an older cversion; never move it back. */
	if (parent_cversion > pv->stat.cversion)
		pv->stat.cversion = parent_cversion;
	if (zxid > pv->stat.pzxid)
		pv->stat.pzxid = zxid;
	tree_node_publish(t, parent, pv);
}

void tree_init_system_nodes(struct ztree *t)
{
	static const char *sys[] = { "/zookeeper", "/zookeeper/quota", "/zookeeper/config" };
	if (!tree_lookup(t, "/", 1))
		node_insert(t, "/", 1, ver_new_empty());
	for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
		size_t len = strlen(sys[i]);
		if (tree_lookup(t, sys[i], len))
			continue;
		size_t plen = 0, nlen = 0;
		const char *name = sys[i];
		tree_split(sys[i], len, &plen, &name, &nlen);
		struct znode *parent = tree_lookup(t, sys[i], plen);
		struct znode_ver *v = ver_new_empty();
		if (strcmp(sys[i], "/zookeeper/config") == 0) {
			/* as ZooKeeper makes it: world:anyone READ, aversion -1 */
			static const uint8_t read_only[] = {
				0, 0, 0, 1, 0, 0, 0, 1,
				0, 0, 0, 5, 'w', 'o', 'r', 'l', 'd',
				0, 0, 0, 6, 'a', 'n', 'y', 'o', 'n', 'e',
			};
			tree_blob_unref(v->acl);
			v->acl = tree_blob_new(read_only, (int32_t)sizeof read_only);
			v->stat.aversion = -1;
		}
		struct znode *n = node_insert(t, sys[i], len, v);
		/* System nodes do not count as client creations (cversion stays 0). */
		struct znode_ver *pv = tree_ver_clone(parent->ver);
		tree_kids_unref(pv->kids);
		pv->kids = kids_with(parent->ver->kids, n->path + (name - sys[i]), (uint32_t)nlen);
		tree_node_publish(t, parent, pv);
	}
}

int tree_create(struct ztree *t, const struct tree_create_args *a, struct zk_stat *out)
{
	size_t plen = 0, nlen = 0;
	const char *name = NULL;
	if (!tree_split(a->path, a->path_len, &plen, &name, &nlen))
		return ZNODEEXISTS; /* "/" always exists */
	struct znode *parent = tree_lookup(t, a->path, plen);
	if (!parent)
		return ZNONODE;
	if (tree_lookup(t, a->path, a->path_len))
		return ZNODEEXISTS;

	struct znode_ver *v = calloc(1, sizeof *v);
	if (!v)
		abort();
	v->stat.czxid = v->stat.mzxid = v->stat.pzxid = a->zxid;
	v->stat.ctime = v->stat.mtime = a->time;
	v->stat.ephemeral_owner = a->ephemeral_owner;
	v->data = tree_blob_new(a->data, a->data_len);
	v->acl = tree_blob_new(a->acl, (int32_t)a->acl_len);
	struct znode *n = node_insert(t, a->path, a->path_len, v);
	if (!n) {
		tree_ver_free_cb(&v->rcu);
		return ZNODEEXISTS;
	}
	link_child(t, parent, n, a->parent_cversion, a->zxid);
	if (out)
		tree_client_stat(v, out);
	return ZOK;
}

int tree_delete(struct ztree *t, const char *path, size_t len, int64_t zxid)
{
	size_t plen = 0, nlen = 0;
	const char *name = NULL;
	if (!tree_split(path, len, &plen, &name, &nlen))
		return ZBADARGUMENTS;
	struct znode *n = tree_lookup(t, path, len);
	struct znode *parent = tree_lookup(t, path, plen);
	if (!n || !parent)
		return ZNONODE;

	struct znode_ver *pv = tree_ver_clone(parent->ver);
	tree_kids_unref(pv->kids);
	pv->kids = kids_without(parent->ver->kids, name, (uint32_t)nlen);
	if (zxid > pv->stat.pzxid)
		pv->stat.pzxid = zxid;
	tree_node_publish(t, parent, pv);

	struct znode_ver *v = n->ver;
	long bytes = (long)len + (v->data && v->data->len > 0 ? v->data->len : 0);
	tree_digest_leave(t, n);
	cds_lfht_del(t->ht, &n->hnode);
	ver_retire(v);
	call_rcu(&n->rcu, node_free_cb);
	atomic_fetch_sub(&t->node_count, 1);
	atomic_fetch_sub(&t->data_bytes, bytes);
	return ZOK;
}

int tree_set_data(struct ztree *t, const char *path, size_t len, const uint8_t *data,
		  int32_t data_len, int32_t version, int64_t zxid, int64_t time, struct zk_stat *out)
{
	struct znode *n = tree_lookup(t, path, len);
	if (!n)
		return ZNONODE;
	struct znode_ver *v = tree_ver_clone(n->ver);
	long before = v->data && v->data->len > 0 ? v->data->len : 0;
	tree_blob_unref(v->data);
	v->data = tree_blob_new(data, data_len);
	v->stat.version = version;
	v->stat.mzxid = zxid;
	v->stat.mtime = time;
	tree_node_publish(t, n, v);
	atomic_fetch_add(&t->data_bytes, (long)(data_len > 0 ? data_len : 0) - before);
	if (out)
		tree_client_stat(v, out);
	return ZOK;
}

int tree_replace_data(struct ztree *t, const char *path, size_t len, const uint8_t *data, int32_t data_len)
{
	struct znode *n = tree_lookup(t, path, len);
	if (!n)
		return ZNONODE;
	struct znode_ver *v = tree_ver_clone(n->ver);
	long before = v->data && v->data->len > 0 ? v->data->len : 0;
	tree_blob_unref(v->data);
	v->data = tree_blob_new(data, data_len);
	tree_node_publish(t, n, v);
	atomic_fetch_add(&t->data_bytes, (long)(data_len > 0 ? data_len : 0) - before);
	return ZOK;
}

int tree_set_acl(struct ztree *t, const char *path, size_t len, const uint8_t *acl,
		 size_t acl_len, int32_t aversion, struct zk_stat *out)
{
	struct znode *n = tree_lookup(t, path, len);
	if (!n)
		return ZNONODE;
	struct znode_ver *v = tree_ver_clone(n->ver);
	tree_blob_unref(v->acl);
	v->acl = tree_blob_new(acl, (int32_t)acl_len);
	v->stat.aversion = aversion;
	tree_node_publish(t, n, v);
	if (out)
		tree_client_stat(v, out);
	return ZOK;
}

void tree_foreach(struct ztree *t, void (*fn)(void *arg, const struct znode *n), void *arg)
{
	struct cds_lfht_iter it;
	struct znode *n;
	rcu_read_lock();
	cds_lfht_for_each_entry(t->ht, &it, n, hnode) {
		TSAN_ACQUIRE(n);   /* pairs with node_insert's release */
		fn(arg, n);
	}
	zkd_rcu_read_unlock();
}

void tree_free(struct ztree *t)
{
	if (!t)
		return;
	struct cds_lfht_iter it;
	struct znode *n;
	rcu_read_lock();
	cds_lfht_for_each_entry(t->ht, &it, n, hnode) {
		cds_lfht_del(t->ht, &n->hnode);
		ver_retire(n->ver);
		call_rcu(&n->rcu, node_free_cb);
	}
	zkd_rcu_read_unlock();
	rcu_barrier();
	cds_lfht_destroy(t->ht, NULL);
	quota_set_free(t->quotas);
	free(t);
}
