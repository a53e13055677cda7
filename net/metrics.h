/*
 * metrics.h - the metrics registry: counters, gauges and summaries that any
 * thread records cheaply, and one iteration (metrics_each) from which the
 * operator endpoints print them: mntr (server/monitor.c) and Prometheus
 * /metrics (server/prometheus.c). It lives in net/ so that every directory
 * may record into it.
 *
 * Why this shape:
 *  - Recording is on the hot path of every stage and I/O thread, so it is
 *    a few relaxed atomic adds on memory the caller already holds a pointer
 *    to: no lock, no lookup by name, no allocation. The pointer is obtained
 *    once, at init, by name (metrics_counter(), ...); asking again for the
 *    same name (and label value) returns the same object, as ZooKeeper's
 *    MetricsContext.getCounter does, so a stage restarted for a new role
 *    keeps its series.
 *  - Registration and iteration are cold: they take the registry's mutex.
 *    Metrics are never unregistered; their storage lives until exit.
 *  - A summary is a log-bucketed histogram (8 buckets per power of two, so a
 *    quantile is within about 6% of the truth) plus count, sum, min and max.
 *  - Counters and summaries are split in METRIC_SHARDS cache-line-aligned
 *    shards; a thread records into the shard it was given at its first
 *    recording (round robin), and readers add the shards up. So the I/O
 *    threads answering reads on different cores do not bounce one cache
 *    line between them per request: each atomic add is an uncontended one.
 *
 * Names follow ZooKeeper's where ZooKeeper has the metric (fsynctime,
 * sync_processor_batch_size, ...); zkd's own start with zkd_. ZooKeeper's
 * PrometheusMetricsProvider labels every set with "key"; zkd's own families
 * use a descriptive label name ("stage", "type").
 *
 * Units: a summary records integers (µs, or a count) and exports
 * recorded × scale, e.g. METRIC_US_AS_MS records µs and exports ms, which
 * is ZooKeeper's unit for every time, with µs resolution kept as decimals.
 */
#ifndef ZKD_NET_METRICS_H
#define ZKD_NET_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "outbuf.h"

enum metric_kind { METRIC_COUNTER, METRIC_GAUGE, METRIC_SUMMARY };

/* ZooKeeper's DetailLevel: BASIC summaries export the 0.5 quantile,
 * ADVANCED ones 0.5, 0.9 and 0.99 (PrometheusMetricsProvider). */
enum metric_detail { METRIC_BASIC, METRIC_ADVANCED };

#define METRIC_US_AS_MS 0.001   /* scale: record µs, export ms */
#define METRIC_NS_AS_MS 0.000001
#define METRIC_UNIT 1.0         /* scale: export what is recorded */

/* ---- the recorded objects (fields are the registry's; use the functions) ---- */

#define METRIC_SHARDS 4

/* The recording thread's shard, 1..METRIC_SHARDS (0 until its first
 * recording; then metrics_shard_assign picks one). Per thread. */
extern _Thread_local unsigned metrics_thread_shard;
unsigned metrics_shard_assign(void);

static inline unsigned metric_shard(void)
{
	unsigned i = metrics_thread_shard;
	return (i ? i : metrics_shard_assign()) - 1;
}

/* Writers: any thread (relaxed fetch_add on its shard); readers:
 * metrics_each (the sum of the shards). */
struct metric_counter {
	struct {
		_Alignas(64) atomic_llong v;
	} shard[METRIC_SHARDS];
};

/* A value gauge: writers any thread (store or fetch_add); readers
 * metrics_each. A callback gauge (metrics_gauge_fn) is read by calling fn
 * on the iterating thread, under the registry's mutex. */
struct metric_gauge {
	atomic_llong v;
	double (*fn)(void *arg);
	void *arg;
};

#define METRIC_SUB_BITS 3
#define METRIC_SUB (1 << METRIC_SUB_BITS)      /* buckets per power of two */
#define METRIC_MAX_EXP 40                       /* values >= 2^41 share the last bucket */
#define METRIC_BUCKETS ((METRIC_MAX_EXP - METRIC_SUB_BITS + 2) * METRIC_SUB)

struct metric_window;

/* Writers: any thread, into its shard (relaxed fetch_add; min and max by
 * CAS only when they move); readers: metrics_each, which adds the shards
 * up and never sees a torn value but may see count, sum and buckets of an
 * observation in flight out of step (by one). */
struct metric_summary_shard {
	_Alignas(64) atomic_llong count;
	atomic_llong sum, min, max;           /* min starts at LLONG_MAX */
	atomic_llong bucket[METRIC_BUCKETS];
};

struct metric_summary {
	struct metric_summary_shard shard[METRIC_SHARDS];
	double scale;                         /* exported = recorded * scale */
	struct metric_window *win;            /* the readers' (registry mutex) */
};

/* ---- registration (cold; any thread; never NULL) ------------------------------
 *
 * `name` must be a valid Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*), `help`
 * one line (or NULL: only the first registration's help is kept, and a
 * family without one shows its name); both strings must outlive the
 * program (literals). Label values are copied. The first call
 * for a name creates its family; later calls with the same name return the
 * existing object (for labelled ones: the child with that label value,
 * created if new). On a kind or label mismatch, or out of memory, the call
 * logs once and returns a sink that records fine and is never shown. */
struct metric_counter *metrics_counter(const char *name, const char *help);
struct metric_counter *metrics_counter_l(const char *name, const char *help, const char *label,
					 const char *value);
struct metric_gauge *metrics_gauge(const char *name, const char *help);
struct metric_gauge *metrics_gauge_l(const char *name, const char *help, const char *label,
				     const char *value);
/* fn is called by metrics_each (on the reader's thread, registry mutex
 * held: it must not register metrics). Registering the name again replaces
 * fn/arg. */
struct metric_gauge *metrics_gauge_fn(const char *name, const char *help, double (*fn)(void *arg), void *arg);
struct metric_gauge *metrics_gauge_fn_l(const char *name, const char *help, const char *label, const char *value,
					double (*fn)(void *arg), void *arg);
struct metric_summary *metrics_summary(const char *name, const char *help, enum metric_detail detail,
				       double scale);
struct metric_summary *metrics_summary_l(const char *name, const char *help, enum metric_detail detail,
					 double scale, const char *label, const char *value);
/* A second, unlabelled name for an existing summary (ZooKeeper's name for a
 * series of one of zkd's labelled families): shown under both names, one
 * storage, recorded once. */
void metrics_summary_alias(const char *name, const char *help, enum metric_detail detail,
			   struct metric_summary *target);

/* ---- recording (hot path: any thread, lock-free) ------------------------------ */

static inline void metric_add(struct metric_counter *c, long long n)
{
	atomic_fetch_add_explicit(&c->shard[metric_shard()].v, n, memory_order_relaxed);
}

static inline void metric_inc(struct metric_counter *c)
{
	metric_add(c, 1);
}

static inline void metric_set(struct metric_gauge *g, long long v)
{
	atomic_store_explicit(&g->v, v, memory_order_relaxed);
}

static inline void metric_gauge_add(struct metric_gauge *g, long long d)
{
	atomic_fetch_add_explicit(&g->v, d, memory_order_relaxed);
}

static inline int metric_bucket(long long v)
{
	if (v < METRIC_SUB)
		return v < 0 ? 0 : (int)v;
	int e = 63 - __builtin_clzll((unsigned long long)v);
	if (e > METRIC_MAX_EXP)
		return METRIC_BUCKETS - 1;
	return (e - METRIC_SUB_BITS + 1) * METRIC_SUB + (int)((v >> (e - METRIC_SUB_BITS)) & (METRIC_SUB - 1));
}

/* n observations of value v at once (a batch whose requests all waited v):
 * one call, the same effect as n calls of metric_observe(s, v). */
static inline void metric_observe_n(struct metric_summary *s, long long v, long long n)
{
	if (n <= 0)
		return;
	if (v < 0)
		v = 0;
	struct metric_summary_shard *h = &s->shard[metric_shard()];
	atomic_fetch_add_explicit(&h->count, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v * n, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->bucket[metric_bucket(v)], n, memory_order_relaxed);
	long long m = atomic_load_explicit(&h->min, memory_order_relaxed);
	while (v < m && !atomic_compare_exchange_weak_explicit(&h->min, &m, v, memory_order_relaxed,
							       memory_order_relaxed))
		;
	m = atomic_load_explicit(&h->max, memory_order_relaxed);
	while (v > m && !atomic_compare_exchange_weak_explicit(&h->max, &m, v, memory_order_relaxed,
							       memory_order_relaxed))
		;
}

static inline void metric_observe(struct metric_summary *s, long long v)
{
	metric_observe_n(s, v, 1);
}

/* CLOCK_MONOTONIC in ns / µs (vDSO: about 20 ns). */
static inline int64_t metrics_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t metrics_now_us(void)
{
	return metrics_now_ns() / 1000;
}

/* ---- reading (cold) ----------------------------------------------------------- */

/* One series as metrics_each shows it. Counters and gauges: `value`.
 * Summaries, all in exported units (recorded × scale):
 *   cnt = count, sum = sum, avg = sum / count, min, max   (since start or
 *   the last metrics_reset; avg, min, max are 0 while count is 0), and
 *   quantiles: qvalue[i] is the quantiles[i]-quantile (n_quantiles of them:
 *   0.5 for BASIC, 0.5 0.9 0.99 for ADVANCED, as ZooKeeper's Prometheus
 *   provider exports) over a sliding window of the recent observations
 *   (the last 5 to 10 minutes when read at least every 5 minutes, as the
 *   Prometheus client's 10-minute summaries; before any 5 minutes have
 *   passed, everything since start), NaN when the window saw none.
 *   metric_view_quantile(v, q) gives any other quantile over the same
 *   window (mntr's p95, p999), valid only inside the callback.
 * ZooKeeper's mntr prints a summary `x` as avg_x, min_x, max_x, cnt_x,
 * sum_x (+ p50_x, p95_x, p99_x, p999_x when ADVANCED). */
struct metric_view {
	const char *name;           /* family name */
	const char *help;
	enum metric_kind kind;
	enum metric_detail detail;  /* summaries */
	const char *label;          /* label name; NULL when the family has none */
	const char *label_value;    /* NULL when the family has none */
	bool first;                 /* first series of its family (print # HELP / # TYPE) */
	bool alias;                 /* a second name for another family's series */
	double value;               /* counter, gauge */
	long long cnt;              /* summary: */
	double sum, avg, min, max;
	int n_quantiles;
	const double *quantiles;
	double qvalue[3];
	const struct metric_summary *summary;
	const long long *window;    /* internal: the window's buckets */
	long long window_count;
};

/* Calls fn for every series, families in registration order, each
 * family's series together (children in creation order). Holds the
 * registry's mutex throughout: fn must not register. */
void metrics_each(void (*fn)(void *arg, const struct metric_view *v), void *arg);
double metric_view_quantile(const struct metric_view *v, double q);
/* True if a family (or alias) of that name is registered. */
bool metrics_has(const char *name);
/* srst: zeroes every counter and summary (gauges keep their values). */
void metrics_reset(void);

/* ---- Prometheus text exposition format 0.0.4 ------------------------------------ */

/* Appends every registered series: # HELP and # TYPE per family, summaries
 * as name{quantile="0.5"} ..., name_count, name_sum (label values escaped). */
void metrics_write_prometheus(struct outbuf *o);
/* Pieces for values that are not in the registry (server/prometheus.c):
 * a name with every invalid character made '_'; a sample value (NaN, +Inf,
 * integers without a fraction); a family's # HELP / # TYPE lines; one
 * unlabelled gauge with its header. */
void prom_name(struct outbuf *o, const char *name);
void prom_value(struct outbuf *o, double v);
void prom_header(struct outbuf *o, const char *name, const char *help, const char *type);
void prom_gauge(struct outbuf *o, const char *name, const char *help, double v);

#endif
