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
 * finding it.
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

#endif
