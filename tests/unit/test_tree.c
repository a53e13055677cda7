/*
 * test_tree.c - the RCU data tree: ZooKeeper's Stat rules, child lists,
 * blob sharing between versions, and readers racing the writer.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "storage/digest.h"
#include "storage/tree.h"

static struct ztree *t;

static void setup(void)
{
	rcu_register_thread();
	t = tree_new();
	rcu_read_lock();
	tree_init_system_nodes(t);
	rcu_read_unlock();
}

static void teardown(void)
{
	tree_free(t);
	rcu_unregister_thread();
}

TestSuite(tree, .init = setup, .fini = teardown);

static const uint8_t open_acl[] = { 0, 0, 0, 1, 0, 0, 0, 31, 0, 0, 0, 5, 'w', 'o', 'r', 'l', 'd',
				    0, 0, 0, 6, 'a', 'n', 'y', 'o', 'n', 'e' };

static int create(const char *path, const char *data, int64_t zxid, int32_t cversion, int64_t owner)
{
	struct tree_create_args a = {
		.path = path, .path_len = strlen(path),
		.data = (const uint8_t *)data, .data_len = data ? (int32_t)strlen(data) : -1,
		.acl = open_acl, .acl_len = sizeof open_acl,
		.ephemeral_owner = owner, .parent_cversion = cversion, .zxid = zxid, .time = 1000 + zxid,
	};
	rcu_read_lock();
	int rc = tree_create(t, &a, NULL);
	rcu_read_unlock();
	return rc;
}

static struct zk_stat stat_of(const char *path)
{
	struct zk_stat st;
	memset(&st, 0xff, sizeof st);
	rcu_read_lock();
	struct znode *n = tree_lookup(t, path, strlen(path));
	if (n)
		tree_client_stat(tree_ver(n), &st);
	rcu_read_unlock();
	return st;
}

Test(tree, system_nodes_exist_with_zero_stats)
{
	struct zk_stat root = stat_of("/");
	cr_assert_eq(root.num_children, 1, "/ has /zookeeper");
	cr_assert_eq(root.cversion, -1, "system nodes are not client creations: 2*0 - 1 child");
	cr_assert_eq(stat_of("/zookeeper").num_children, 2, "quota and config");
	cr_assert_eq(atomic_load(&t->node_count), 4);
}

Test(tree, create_sets_stat_and_parent)
{
	cr_assert_eq(create("/a", "hello", 5, 1, 0), ZOK);
	struct zk_stat a = stat_of("/a");
	cr_assert_eq(a.czxid, 5);
	cr_assert_eq(a.mzxid, 5);
	cr_assert_eq(a.pzxid, 5);
	cr_assert_eq(a.data_length, 5);
	cr_assert_eq(a.version, 0);
	struct zk_stat root = stat_of("/");
	cr_assert_eq(root.pzxid, 5);
	cr_assert_eq(root.num_children, 2);
}

Test(tree, create_refuses_missing_parent_and_duplicates)
{
	cr_assert_eq(create("/x/y", "", 2, 1, 0), ZNONODE);
	cr_assert_eq(create("/x", "", 3, 1, 0), ZOK);
	cr_assert_eq(create("/x", "", 4, 2, 0), ZNODEEXISTS);
}

Test(tree, cversion_counts_creations_and_deletions)
{
	create("/p", "", 1, 1, 0);
	create("/p/a", "", 2, 1, 0);
	create("/p/b", "", 3, 2, 0);
	cr_assert_eq(stat_of("/p").cversion, 2);
	rcu_read_lock();
	cr_assert_eq(tree_delete(t, "/p/a", 4, 4), ZOK);
	rcu_read_unlock();
	struct zk_stat p = stat_of("/p");
	cr_assert_eq(p.cversion, 3, "a delete counts as a child change for clients");
	cr_assert_eq(p.num_children, 1);
	cr_assert_eq(p.pzxid, 4);
}

Test(tree, set_data_keeps_children_and_bumps_version)
{
	create("/d", "one", 1, 1, 0);
	create("/d/c", "", 2, 1, 0);
	struct zk_stat out;
	rcu_read_lock();
	cr_assert_eq(tree_set_data(t, "/d", 2, (const uint8_t *)"three", 5, 1, 3, 99, &out), ZOK);
	struct znode *n = tree_lookup(t, "/d", 2);
	const struct znode_ver *v = tree_ver(n);
	cr_assert_eq(v->kids->n, 1);
	cr_assert_eq(memcmp(v->data->bytes, "three", 5), 0);
	rcu_read_unlock();
	cr_assert_eq(out.version, 1);
	cr_assert_eq(out.mzxid, 3);
	cr_assert_eq(out.mtime, 99);
	cr_assert_eq(out.czxid, 1);
}

Test(tree, null_data_reads_back_as_null)
{
	create("/n", NULL, 1, 1, 0);
	rcu_read_lock();
	const struct znode_ver *v = tree_ver(tree_lookup(t, "/n", 2));
	cr_assert_eq(v->data->len, -1);
	rcu_read_unlock();
	cr_assert_eq(stat_of("/n").data_length, 0);
}

Test(tree, container_owner_is_hidden_from_clients)
{
	create("/c", "", 1, 1, ZK_CONTAINER_OWNER);
	cr_assert_eq(stat_of("/c").ephemeral_owner, 0);
	create("/e", "", 2, 2, 0x1234);
	cr_assert_eq(stat_of("/e").ephemeral_owner, 0x1234);
}

Test(tree, split_paths)
{
	size_t plen, nlen;
	const char *name;
	cr_assert(tree_split("/a/bc", 5, &plen, &name, &nlen));
	cr_assert_eq(plen, 2);
	cr_assert_eq(nlen, 2);
	cr_assert_eq(strncmp(name, "bc", 2), 0);
	cr_assert(tree_split("/a", 2, &plen, &name, &nlen));
	cr_assert_eq(plen, 1);
	cr_assert_not(tree_split("/", 1, &plen, &name, &nlen));
}

/* Readers walk a node's children while the writer adds and removes them: a
 * reader must always see a consistent version (numChildren == list length,
 * every name readable), never freed memory (ASan watches that). */
static atomic_bool stop_readers;
static atomic_long reads_done;

static void *reader(void *arg)
{
	(void)arg;
	rcu_register_thread();
	long seen = 0;
	while (!atomic_load(&stop_readers)) {
		rcu_read_lock();
		struct znode *n = tree_lookup(t, "/race", 5);
		if (n) {
			const struct znode_ver *v = tree_ver(n);
			struct zk_stat st;
			tree_client_stat(v, &st);
			uint32_t k = v->kids ? v->kids->n : 0;
			cr_assert_eq((uint32_t)st.num_children, k);
			for (uint32_t i = 0; i < k; i++)
				cr_assert(v->kids->v[i].len > 0 && v->kids->v[i].name[0] == 'c');
			seen++;
			atomic_fetch_add(&reads_done, 1);
		}
		rcu_read_unlock();
	}
	rcu_unregister_thread();
	return (void *)seen;
}

Test(tree, readers_see_consistent_versions_under_churn)
{
	create("/race", "", 1, 1, 0);
	pthread_t th[2];
	atomic_store(&stop_readers, false);
	atomic_store(&reads_done, 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader, NULL);
	char path[32];
	int64_t zxid = 2;
	/* at least 2000 changes, and go on until the readers have raced a good
	 * number of them (bounded: 2 million changes at most) */
	for (int round = 0; round < 2000000 && (round < 2000 || atomic_load(&reads_done) < 20000); round++) {
		snprintf(path, sizeof path, "/race/c%d", round % 16);
		rcu_read_lock();
		struct znode *n = tree_lookup(t, path, strlen(path));
		rcu_read_unlock();
		if (n) {
			rcu_read_lock();
			tree_delete(t, path, strlen(path), zxid++);
			rcu_read_unlock();
		} else {
			create(path, "v", zxid++, round + 2, 0);
		}
	}
	atomic_store(&stop_readers, true);
	long seen = 0;
	for (int i = 0; i < 2; i++) {
		void *r;
		pthread_join(th[i], &r);
		seen += (long)r;
	}
	cr_assert(seen > 0, "readers ran");
}

/* The `hash` command reads the running digest: it must always equal the
 * digest summed over the whole tree, whatever changed in between. */
Test(tree, running_digest_follows_every_change)
{
	rcu_read_lock();
	cr_assert_eq(atomic_load(&t->digest), tree_digest(t), "after the system nodes");
	rcu_read_unlock();
	char path[64], data[32];
	unsigned seed = 7;
	for (int zxid = 1; zxid <= 400; zxid++) {
		seed = seed * 1103515245 + 12345;
		int k = (int)((seed >> 16) % 20);
		snprintf(path, sizeof path, "/d%d", k % 5);
		if (k >= 5) {
			size_t len = strlen(path);
			snprintf(path + len, sizeof path - len, "/c%d", k);
		}
		snprintf(data, sizeof data, "v%d", zxid);
		rcu_read_lock();
		switch ((seed >> 8) % 4) {
		case 0:
			create(path, data, zxid, -1, (seed & 1) ? 0x42 : 0);
			break;
		case 1:
			tree_delete(t, path, strlen(path), zxid);
			break;
		case 2:
			tree_set_data(t, path, strlen(path), (const uint8_t *)data, (int32_t)strlen(data), zxid, zxid,
				      5000 + zxid, NULL);
			break;
		default:
			tree_set_acl(t, path, strlen(path), open_acl, sizeof open_acl, zxid, NULL);
			break;
		}
		cr_assert_eq(atomic_load(&t->digest), tree_digest(t), "after change %d to %s", zxid, path);
		rcu_read_unlock();
	}
}
