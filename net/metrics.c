/*
 * metrics.c - the metrics registry (see metrics.h) and its Prometheus text
 * exposition (format 0.0.4).
 *
 * Why a mutex here at all: the registry's list of families only changes at
 * init (a stage starting, a module asking for its metrics once) and is
 * only walked by the operator endpoints, a few times a minute. Neither is
 * on the hot path, which touches the metric objects directly through the
 * pointers registration handed out; so one mutex keeps registration and
 * iteration simple without costing a recorder anything.
 *
 * The exposition writer lives here rather than in server/prometheus.c so
 * that it is testable without the HTTP server and usable by any endpoint.
 */
#include "metrics.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Quantile windows: the base a summary's quantiles are measured from moves
 * up to the newest snapshot once that is WINDOW_STEP old, so the window
 * covers the last 5 to 10 minutes (the Prometheus Java client's summaries
 * that ZooKeeper uses span 10 minutes). */
#define WINDOW_STEP_NS (300LL * 1000000000LL)

/* Readers' state of one summary (registry mutex). */
struct metric_window {
	long long base[METRIC_BUCKETS];  /* cumulative buckets at the window's start */
	long long next[METRIC_BUCKETS];  /* the newest snapshot, the next base */
	long long base_count, next_count;
	int64_t next_ns;                 /* when `next` was taken */
};

struct child {
	char *value;                     /* label value (owned), NULL unlabelled */
	void *obj;                       /* metric_counter / metric_gauge / metric_summary */
	struct child *next;
};

struct family {
	const char *name, *help, *label;
	enum metric_kind kind;
	enum metric_detail detail;
	bool alias;
	struct child *children, **tail;
	struct family *next;
};

/* Registry: written by registration, read by iteration; both under `lock`. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct family *families, **families_tail = &families;

/* Sinks for refused registrations: recorded to by anyone, never shown. */
static struct metric_counter sink_counter;
static struct metric_gauge sink_gauge;
static struct metric_summary sink_summary = { .scale = 1.0 };   /* min: never read */

/* Round robin over the shards, in the order threads first record. */
_Thread_local unsigned metrics_thread_shard;
static atomic_uint shard_next;

unsigned metrics_shard_assign(void)
{
	metrics_thread_shard = atomic_fetch_add_explicit(&shard_next, 1, memory_order_relaxed) % METRIC_SHARDS + 1;
	return metrics_thread_shard;
}

static const double QUANTILES[3] = { 0.5, 0.9, 0.99 };

static struct family *find_family(const char *name)
{
	for (struct family *f = families; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static bool same_label(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void *new_obj(enum metric_kind kind, double scale)
{
	switch (kind) {
	case METRIC_COUNTER: {
		struct metric_counter *c = aligned_alloc(64, sizeof *c);   /* a multiple of 64 */
		if (c)
			memset(c, 0, sizeof *c);
		return c;
	}
	case METRIC_GAUGE:
		return calloc(1, sizeof(struct metric_gauge));
	case METRIC_SUMMARY: {
		/* shards on their own cache lines (metrics.h) */
		size_t sz = (sizeof(struct metric_summary) + 63) / 64 * 64;
		struct metric_summary *s = aligned_alloc(64, sz);
		if (!s)
			return NULL;
		memset(s, 0, sz);
		for (int i = 0; i < METRIC_SHARDS; i++)
			atomic_init(&s->shard[i].min, LLONG_MAX);
		s->scale = scale;
		return s;
	}
	}
	return NULL;
}

static void *sink(enum metric_kind kind)
{
	switch (kind) {
	case METRIC_COUNTER: return &sink_counter;
	case METRIC_GAUGE: return &sink_gauge;
	case METRIC_SUMMARY: return &sink_summary;
	}
	return &sink_summary;
}

/* The object for (name, label=value), created if new. Registry lock held. */
static void *lookup(const char *name, const char *help, enum metric_kind kind, enum metric_detail detail,
		    double scale, const char *label, const char *value, void *alias_of)
{
	struct family *f = find_family(name);
	if (f) {
		if (f->kind != kind || !same_label(f->label, label) || (alias_of != NULL) != f->alias) {
			log_warn("metrics: %s registered again as another kind; not shown", name);
			return sink(kind);
		}
		if (!f->help)
			f->help = help;
	} else {
		f = calloc(1, sizeof *f);
		if (!f)
			goto oom;
		f->name = name;
		f->help = help;
		f->label = label;
		f->kind = kind;
		f->detail = detail;
		f->alias = alias_of != NULL;
		f->tail = &f->children;
		*families_tail = f;
		families_tail = &f->next;
	}
	for (struct child *c = f->children; c; c = c->next)
		if ((!label && !c->value) || (label && c->value && strcmp(c->value, value) == 0))
			return c->obj;
	struct child *c = calloc(1, sizeof *c);
	if (!c)
		goto oom;
	if (label && !(c->value = strdup(value ? value : ""))) {
		free(c);
		goto oom;
	}
	c->obj = alias_of ? alias_of : new_obj(kind, scale);
	if (!c->obj) {
		free(c->value);
		free(c);
		goto oom;
	}
	*f->tail = c;
	f->tail = &c->next;
	return c->obj;
oom:
	log_warn("metrics: out of memory registering %s", name);
	return sink(kind);
}

static void *reg(const char *name, const char *help, enum metric_kind kind, enum metric_detail detail,
		 double scale, const char *label, const char *value, void *alias_of)
{
	pthread_mutex_lock(&lock);
	void *o = lookup(name, help, kind, detail, scale, label, value, alias_of);
	pthread_mutex_unlock(&lock);
	return o;
}

struct metric_counter *metrics_counter(const char *name, const char *help)
{
	return reg(name, help, METRIC_COUNTER, METRIC_BASIC, 1.0, NULL, NULL, NULL);
}

struct metric_counter *metrics_counter_l(const char *name, const char *help, const char *label, const char *value)
{
	return reg(name, help, METRIC_COUNTER, METRIC_BASIC, 1.0, label, value, NULL);
}

struct metric_gauge *metrics_gauge(const char *name, const char *help)
{
	return reg(name, help, METRIC_GAUGE, METRIC_BASIC, 1.0, NULL, NULL, NULL);
}

struct metric_gauge *metrics_gauge_l(const char *name, const char *help, const char *label, const char *value)
{
	return reg(name, help, METRIC_GAUGE, METRIC_BASIC, 1.0, label, value, NULL);
}

struct metric_gauge *metrics_gauge_fn(const char *name, const char *help, double (*fn)(void *arg), void *arg)
{
	return metrics_gauge_fn_l(name, help, NULL, NULL, fn, arg);
}

struct metric_gauge *metrics_gauge_fn_l(const char *name, const char *help, const char *label, const char *value,
					double (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&lock);
	struct metric_gauge *g = lookup(name, help, METRIC_GAUGE, METRIC_BASIC, 1.0, label, value, NULL);
	if (g != &sink_gauge) {
		g->fn = fn;     /* read by iteration, under the same lock */
		g->arg = arg;
	}
	pthread_mutex_unlock(&lock);
	return g;
}

struct metric_summary *metrics_summary(const char *name, const char *help, enum metric_detail detail, double scale)
{
	return reg(name, help, METRIC_SUMMARY, detail, scale, NULL, NULL, NULL);
}

struct metric_summary *metrics_summary_l(const char *name, const char *help, enum metric_detail detail,
					 double scale, const char *label, const char *value)
{
	return reg(name, help, METRIC_SUMMARY, detail, scale, label, value, NULL);
}

void metrics_summary_alias(const char *name, const char *help, enum metric_detail detail,
			   struct metric_summary *target)
{
	reg(name, help, METRIC_SUMMARY, detail, target->scale, NULL, NULL, target);
}

bool metrics_has(const char *name)
{
	pthread_mutex_lock(&lock);
	bool has = find_family(name) != NULL;
	pthread_mutex_unlock(&lock);
	return has;
}

/* ---- reading ------------------------------------------------------------------ */

static long long counter_value(const struct metric_counter *c)
{
	long long v = 0;
	for (int i = 0; i < METRIC_SHARDS; i++)
		v += atomic_load_explicit(&c->shard[i].v, memory_order_relaxed);
	return v;
}

static void bucket_range(int i, double *low, double *width)
{
	if (i < METRIC_SUB) {
		*low = i;
		*width = 1;
		return;
	}
	int g = i / METRIC_SUB, sub = i % METRIC_SUB;
	int shift = g - 1;      /* = exponent - METRIC_SUB_BITS */
	*low = ldexp((double)(METRIC_SUB + sub), shift);
	*width = ldexp(1.0, shift);
}

/* The q-quantile of `n` observations in buckets w, in recorded units,
 * clamped to [lo, hi]. */
static double quantile(const long long *w, long long n, double q, double lo, double hi)
{
	if (n <= 0)
		return NAN;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	double target = q * (double)n;
	if (target < 1)
		target = 1;
	long long cum = 0;
	for (int i = 0; i < METRIC_BUCKETS; i++) {
		if (w[i] <= 0)
			continue;
		if ((double)(cum + w[i]) >= target) {
			double low, width;
			bucket_range(i, &low, &width);
			double v = low;
			if (width > 1)
				v += width * (target - (double)cum) / (double)w[i];
			if (v < lo)
				v = lo;
			if (v > hi)
				v = hi;
			return v;
		}
		cum += w[i];
	}
	return hi;
}

double metric_view_quantile(const struct metric_view *v, double q)
{
	if (v->kind != METRIC_SUMMARY || !v->window || !v->summary)
		return NAN;
	double scale = v->summary->scale;
	double r = quantile(v->window, v->window_count, q, v->min / scale, v->max / scale);
	return r * scale;
}

/* Fills the window's buckets (now - base) into w; moves the base on when
 * due. Registry lock held. */
static long long window_of(struct metric_summary *s, long long *w, int64_t now)
{
	long long cur[METRIC_BUCKETS];
	long long total = 0;
	for (int i = 0; i < METRIC_BUCKETS; i++) {
		cur[i] = 0;
		for (int k = 0; k < METRIC_SHARDS; k++)
			cur[i] += atomic_load_explicit(&s->shard[k].bucket[i], memory_order_relaxed);
		total += cur[i];
	}
	if (!s->win) {
		s->win = calloc(1, sizeof *s->win);
		if (s->win)
			s->win->next_ns = now;
	}
	struct metric_window *mw = s->win;
	if (!mw) {
		memcpy(w, cur, sizeof cur);
		return total;
	}
	if (now - mw->next_ns >= WINDOW_STEP_NS) {
		memcpy(mw->base, mw->next, sizeof mw->base);
		mw->base_count = mw->next_count;
		memcpy(mw->next, cur, sizeof cur);
		mw->next_count = total;
		mw->next_ns = now;
	}
	long long n = 0;
	for (int i = 0; i < METRIC_BUCKETS; i++) {
		w[i] = cur[i] - mw->base[i];
		if (w[i] < 0)   /* a reset raced the snapshot */
			w[i] = 0;
		n += w[i];
	}
	return n;
}

void metrics_each(void (*fn)(void *arg, const struct metric_view *v), void *arg)
{
	static long long w[METRIC_BUCKETS];   /* registry lock held while used */
	int64_t now = metrics_now_ns();
	pthread_mutex_lock(&lock);
	for (struct family *f = families; f; f = f->next) {
		bool first = true;
		for (struct child *c = f->children; c; c = c->next) {
			struct metric_view v = {
				.name = f->name,
				.help = f->help,
				.kind = f->kind,
				.detail = f->detail,
				.label = f->label,
				.label_value = c->value,
				.first = first,
				.alias = f->alias,
			};
			first = false;
			switch (f->kind) {
			case METRIC_COUNTER:
				v.value = (double)counter_value(c->obj);
				break;
			case METRIC_GAUGE: {
				struct metric_gauge *g = c->obj;
				v.value = g->fn ? g->fn(g->arg)
						: (double)atomic_load_explicit(&g->v, memory_order_relaxed);
				break;
			}
			case METRIC_SUMMARY: {
				struct metric_summary *s = c->obj;
				v.summary = s;
				long long sum = 0, mn = LLONG_MAX, mx = 0;
				for (int k = 0; k < METRIC_SHARDS; k++) {
					struct metric_summary_shard *h = &s->shard[k];
					v.cnt += atomic_load_explicit(&h->count, memory_order_relaxed);
					sum += atomic_load_explicit(&h->sum, memory_order_relaxed);
					long long a = atomic_load_explicit(&h->min, memory_order_relaxed);
					long long b = atomic_load_explicit(&h->max, memory_order_relaxed);
					mn = a < mn ? a : mn;
					mx = b > mx ? b : mx;
				}
				v.sum = (double)sum * s->scale;
				if (v.cnt > 0) {
					v.avg = v.sum / (double)v.cnt;
					if (mn == LLONG_MAX)   /* observation in flight */
						mn = mx;
					v.min = (double)mn * s->scale;
					v.max = (double)mx * s->scale;
				}
				v.window = w;
				v.window_count = window_of(s, w, now);
				v.quantiles = QUANTILES;
				v.n_quantiles = f->detail == METRIC_ADVANCED ? 3 : 1;
				for (int i = 0; i < v.n_quantiles; i++)
					v.qvalue[i] = metric_view_quantile(&v, QUANTILES[i]);
				break;
			}
			}
			fn(arg, &v);
		}
	}
	pthread_mutex_unlock(&lock);
}

void metrics_reset(void)
{
	pthread_mutex_lock(&lock);
	for (struct family *f = families; f; f = f->next) {
		if (f->alias)
			continue;   /* its target is reset under its own name */
		for (struct child *c = f->children; c; c = c->next) {
			if (f->kind == METRIC_COUNTER) {
				struct metric_counter *k = c->obj;
				for (int i = 0; i < METRIC_SHARDS; i++)
					atomic_store(&k->shard[i].v, 0);
			} else if (f->kind == METRIC_SUMMARY) {
				struct metric_summary *s = c->obj;
				for (int k = 0; k < METRIC_SHARDS; k++) {
					struct metric_summary_shard *h = &s->shard[k];
					atomic_store(&h->count, 0);
					atomic_store(&h->sum, 0);
					atomic_store(&h->min, LLONG_MAX);
					atomic_store(&h->max, 0);
					for (int i = 0; i < METRIC_BUCKETS; i++)
						atomic_store(&h->bucket[i], 0);
				}
				if (s->win) {
					memset(s->win, 0, sizeof *s->win);
					s->win->next_ns = metrics_now_ns();
				}
			}
		}
	}
	pthread_mutex_unlock(&lock);
}

/* ---- Prometheus text exposition (0.0.4) ----------------------------------------- */

void prom_name(struct outbuf *o, const char *name)
{
	if (!name || !*name) {
		ob_write(o, "_", 1);
		return;
	}
	for (const char *p = name; *p; p++) {
		char ch = *p;
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':' ||
			  (p != name && ch >= '0' && ch <= '9');
		if (p == name && ch >= '0' && ch <= '9')
			ob_write(o, "_", 1);   /* a name may not start with a digit */
		if (!ok && !(ch >= '0' && ch <= '9'))
			ch = '_';
		ob_write(o, &ch, 1);
	}
}

/* HELP text: backslash and newline escaped. Label values: also '"'. */
static void escaped(struct outbuf *o, const char *s, bool quote)
{
	for (const char *p = s; p && *p; p++) {
		if (*p == '\\')
			ob_write(o, "\\\\", 2);
		else if (*p == '\n')
			ob_write(o, "\\n", 2);
		else if (quote && *p == '"')
			ob_write(o, "\\\"", 2);
		else
			ob_write(o, p, 1);
	}
}

void prom_value(struct outbuf *o, double v)
{
	if (isnan(v))
		ob_printf(o, "NaN");
	else if (isinf(v))
		ob_printf(o, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		ob_printf(o, "%.0f", v);
	else
		ob_printf(o, "%.10g", v);
}

void prom_header(struct outbuf *o, const char *name, const char *help, const char *type)
{
	ob_printf(o, "# HELP ");
	prom_name(o, name);
	ob_write(o, " ", 1);
	escaped(o, help && *help ? help : name, false);
	ob_printf(o, "\n# TYPE ");
	prom_name(o, name);
	ob_printf(o, " %s\n", type);
}

/* One sample line: name[suffix]{label="value",extra="xv"} v */
static void sample(struct outbuf *o, const char *name, const char *suffix, const char *label, const char *value,
		   const char *extra, const char *xv, double v)
{
	prom_name(o, name);
	if (suffix)
		ob_printf(o, "%s", suffix);
	if (label || extra) {
		ob_write(o, "{", 1);
		if (label) {
			prom_name(o, label);
			ob_write(o, "=\"", 2);
			escaped(o, value, true);
			ob_write(o, "\"", 1);
		}
		if (extra) {
			if (label)
				ob_write(o, ",", 1);
			ob_printf(o, "%s=\"%s\"", extra, xv);
		}
		ob_write(o, "}", 1);
	}
	ob_write(o, " ", 1);
	prom_value(o, v);
	ob_write(o, "\n", 1);
}

void prom_gauge(struct outbuf *o, const char *name, const char *help, double v)
{
	prom_header(o, name, help, "gauge");
	sample(o, name, NULL, NULL, NULL, NULL, NULL, v);
}

static void render_one(void *arg, const struct metric_view *v)
{
	struct outbuf *o = arg;
	static const char *const type[] = { "counter", "gauge", "summary" };
	if (v->first)
		prom_header(o, v->name, v->help, type[v->kind]);
	const char *label = v->label ? v->label : NULL;
	if (v->kind != METRIC_SUMMARY) {
		sample(o, v->name, NULL, label, v->label_value, NULL, NULL, v->value);
		return;
	}
	for (int i = 0; i < v->n_quantiles; i++) {
		char q[16];
		snprintf(q, sizeof q, "%g", v->quantiles[i]);
		sample(o, v->name, NULL, label, v->label_value, "quantile", q, v->qvalue[i]);
	}
	sample(o, v->name, "_count", label, v->label_value, NULL, NULL, (double)v->cnt);
	sample(o, v->name, "_sum", label, v->label_value, NULL, NULL, v->sum);
}

void metrics_write_prometheus(struct outbuf *o)
{
	metrics_each(render_one, o);
}
