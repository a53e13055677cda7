/*
 * test_session.c - session ids and passwords are ZooKeeper's, so a session
 * can move between zkd and ZooKeeper servers of one ensemble.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "processors/session.h"

static void hex(const uint8_t *p, char *out)
{
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* Expected values computed with java.util.Random(id ^ 0xB3415C00).nextBytes,
 * which is what ZooKeeperServer.generatePasswd does. */
Test(session, password_matches_zookeeper)
{
	uint8_t pw[16];
	char s[33];
	session_password(72057594037927936LL, pw);
	hex(pw, s);
	cr_assert_str_eq(s, "f22acd4a97e69d6d20a49bb638eadb38");
	session_password(1234567890123LL, pw);
	hex(pw, s);
	cr_assert_str_eq(s, "40b51d0074cd652e16c884a0cf746290");
}

Test(session, ids_carry_myid_in_the_top_byte_and_increase)
{
	rcu_register_thread();
	struct session_table *t = sessions_new(3);
	int64_t a = sessions_next_id(t), b = sessions_next_id(t);
	cr_assert_eq((uint64_t)a >> 56, 3);
	cr_assert_eq(b, a + 1);
	/* the time part: (now_ms << 24) >> 8 keeps 40 bits of milliseconds at bit 16 */
	int64_t ms = (int64_t)(((uint64_t)a & 0x00ffffffffffffffULL) >> 16);
	int64_t now = wall_ms() & 0xffffffffffLL;
	cr_assert(now - ms < 60000 && now - ms >= 0, "id encodes the start time");
	sessions_free(t);
	rcu_unregister_thread();
}

Test(session, table_add_find_remove)
{
	rcu_register_thread();
	struct session_table *t = sessions_new(0);
	sessions_add(t, 42, 4000);
	rcu_read_lock();
	struct zsession *s = sessions_find(t, 42);
	cr_assert_not_null(s);
	cr_assert_eq(atomic_load(&s->timeout_ms), 4000);
	rcu_read_unlock();
	cr_assert_eq(atomic_load(&t->count), 1);
	rcu_read_lock();
	s = sessions_find(t, 42);
	rcu_read_unlock();
	sessions_remove(t, s);
	rcu_read_lock();
	cr_assert_null(sessions_find(t, 42));
	rcu_read_unlock();
	cr_assert_eq(atomic_load(&t->count), 0);
	sessions_free(t);
	rcu_unregister_thread();
}
