/*
 * tsan.h - telling ThreadSanitizer what liburcu's queues guarantee.
 *
 * liburcu is not built with ThreadSanitizer, so it cannot see that a
 * wfcqueue enqueue happens-before the consumer's splice of that node. Every
 * queue hand-off in zkd is annotated: the producer calls TSAN_RELEASE on the
 * queue before enqueueing, the consumer TSAN_ACQUIRE after splicing. Outside
 * TSan builds both are nothing.
 *
 * The same holds for RCU publication (rcu_assign_pointer and a cds_lfht
 * insert are stores with a barrier the tool cannot see): the writer
 * releases on the published object, the reader acquires on it after
 * finding it. And for RCU's grace periods: see zkd_rcu_read_unlock below.
 */
#ifndef ZKD_NET_TSAN_H
#define ZKD_NET_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define ZKD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ZKD_TSAN 1
#endif
#endif

#ifdef ZKD_TSAN
#include <sanitizer/tsan_interface.h>
#define TSAN_RELEASE(p) __tsan_release(p)
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define TSAN_RELEASE(p) ((void)(p))
#define TSAN_ACQUIRE(p) ((void)(p))
#endif

/*
 * Grace periods. A call_rcu callback (or the code after synchronize_rcu)
 * runs after every reader that could have seen the retired object has left
 * its read-side section; liburcu knows it from per-thread counters the tool
 * cannot see. So every reader leaves through zkd_rcu_read_unlock, which
 * releases on one object, and every callback starts with
 * TSAN_AFTER_GRACE(), which acquires it: what a reader did before leaving
 * happens-before the free. (Without this each free is a report to
 * suppress, and a TSan zkd falls minutes behind freeing old versions.)
 */
#ifdef ZKD_TSAN
extern char zkd_rcu_grace;      /* net/tsan.c: only its address is used */
#define zkd_rcu_read_unlock()                    \
	do {                                     \
		__tsan_release(&zkd_rcu_grace);  \
		rcu_read_unlock();               \
	} while (0)
#define TSAN_AFTER_GRACE() __tsan_acquire(&zkd_rcu_grace)
#else
#define zkd_rcu_read_unlock() rcu_read_unlock()
#define TSAN_AFTER_GRACE() ((void)0)
#endif

#endif
