/*
 * test_metrics.c - the metrics registry (net/metrics.h): registration by
 * name, recording from many threads, summaries' count/sum/min/max and
 * quantiles, and the Prometheus text exposition (format 0.0.4).
 *
 * Each test uses its own metric names, so the tests do not depend on
 * Criterion running each in its own process.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net/metrics.h"
#include "net/outbuf.h"

/* ---- helpers ---------------------------------------------------------------- */

struct found {
	const char *name, *label_value;
	struct metric_view v;
	double q95;
	int seen;
};

static void find_one(void *arg, const struct metric_view *v)
{
	struct found *f = arg;
	if (strcmp(v->name, f->name) != 0)
		return;
	if (f->label_value && (!v->label_value || strcmp(v->label_value, f->label_value) != 0))
		return;
	f->v = *v;
	f->v.window = NULL;   /* valid only inside the callback */
	f->q95 = metric_view_quantile(v, 0.95);
	f->seen++;
}

static struct found lookup(const char *name, const char *label_value)
{
	struct found f = { .name = name, .label_value = label_value };
	metrics_each(find_one, &f);
	return f;
}

static char *render(void)
{
	struct outbuf o = OUTBUF_INIT;
	metrics_write_prometheus(&o);
	cr_assert_not(o.failed);
	return o.buf ? o.buf : strdup("");
}

/* ---- registration ------------------------------------------------------------- */

Test(metrics, same_name_same_object)
{
	struct metric_counter *a = metrics_counter("t_same_total", "a counter");
	struct metric_counter *b = metrics_counter("t_same_total", NULL);
	cr_assert_eq(a, b);
	metric_inc(a);
	metric_add(b, 41);
	struct found f = lookup("t_same_total", NULL);
	cr_assert_eq(f.seen, 1);
	cr_assert_eq(f.v.kind, METRIC_COUNTER);
	cr_assert_float_eq(f.v.value, 42.0, 1e-9);
	cr_assert_str_eq(f.v.help, "a counter");
	cr_assert(metrics_has("t_same_total"));
	cr_assert_not(metrics_has("t_never_registered"));
}

Test(metrics, labelled_children_in_creation_order)
{
	struct metric_counter *x = metrics_counter_l("t_lab_total", "by type", "type", "create");
	struct metric_counter *y = metrics_counter_l("t_lab_total", "by type", "type", "getData");
	cr_assert_neq(x, y);
	cr_assert_eq(metrics_counter_l("t_lab_total", NULL, "type", "create"), x);
	metric_add(y, 3);
	struct found fx = lookup("t_lab_total", "create"), fy = lookup("t_lab_total", "getData");
	cr_assert(fx.v.first, "the first child opens the family");
	cr_assert_not(fy.v.first);
	cr_assert_str_eq(fy.v.label, "type");
	cr_assert_float_eq(fx.v.value, 0.0, 1e-9);
	cr_assert_float_eq(fy.v.value, 3.0, 1e-9);
}

Test(metrics, kind_mismatch_gets_a_sink_never_shown)
{
	metrics_counter("t_kind", "first a counter");
	struct metric_summary *s = metrics_summary("t_kind", NULL, METRIC_BASIC, METRIC_UNIT);
	cr_assert_not_null(s);
	metric_observe(s, 5);   /* harmless */
	struct found f = lookup("t_kind", NULL);
	cr_assert_eq(f.seen, 1);
	cr_assert_eq(f.v.kind, METRIC_COUNTER);
}

static int calls;

static double gauge_fn(void *arg)
{
	calls++;
	return *(double *)arg;
}

Test(metrics, gauges_value_and_callback)
{
	struct metric_gauge *g = metrics_gauge("t_gauge", "a gauge");
	metric_set(g, 10);
	metric_gauge_add(g, -3);
	cr_assert_float_eq(lookup("t_gauge", NULL).v.value, 7.0, 1e-9);
	static double val = 2.5;
	metrics_gauge_fn("t_gauge_fn", "computed", gauge_fn, &val);
	struct found f = lookup("t_gauge_fn", NULL);
	cr_assert_eq(f.v.kind, METRIC_GAUGE);
	cr_assert_float_eq(f.v.value, 2.5, 1e-9);
	cr_assert_geq(calls, 1);
}

/* ---- summaries ---------------------------------------------------------------- */

Test(metrics, bucket_index_is_monotonic_and_bounded)
{
	int prev = -1;
	for (long long v = 0; v < 1 << 20; v += 1 + v / 64) {
		int b = metric_bucket(v);
		cr_assert_geq(b, prev, "v=%lld", v);
		cr_assert_lt(b, METRIC_BUCKETS);
		prev = b;
	}
	cr_assert_eq(metric_bucket(-5), 0);
	cr_assert_eq(metric_bucket(7), 7);
	cr_assert_eq(metric_bucket(8), 8);
	cr_assert_eq(metric_bucket(LLONG_MAX), METRIC_BUCKETS - 1);
}

Test(metrics, summary_count_sum_min_max_avg_scaled)
{
	struct metric_summary *s = metrics_summary("t_sum_ms", "µs in, ms out", METRIC_ADVANCED, METRIC_US_AS_MS);
	metric_observe(s, 1000);
	metric_observe(s, 3000);
	metric_observe_n(s, 2000, 2);
	struct found f = lookup("t_sum_ms", NULL);
	cr_assert_eq(f.v.kind, METRIC_SUMMARY);
	cr_assert_eq(f.v.cnt, 4);
	cr_assert_float_eq(f.v.sum, 8.0, 1e-9);
	cr_assert_float_eq(f.v.avg, 2.0, 1e-9);
	cr_assert_float_eq(f.v.min, 1.0, 1e-9);
	cr_assert_float_eq(f.v.max, 3.0, 1e-9);
	cr_assert_eq(f.v.n_quantiles, 3);
	cr_assert_float_eq(f.v.quantiles[0], 0.5, 1e-9);
	cr_assert_float_eq(f.v.quantiles[1], 0.9, 1e-9);
	cr_assert_float_eq(f.v.quantiles[2], 0.99, 1e-9);
	cr_assert(fabs(f.v.qvalue[0] - 2.0) < 0.15, "p50 %f", f.v.qvalue[0]);
	cr_assert(f.v.qvalue[2] <= 3.0 && f.v.qvalue[2] > 2.5, "p99 %f", f.v.qvalue[2]);
}

Test(metrics, basic_summary_has_the_median_only_and_nan_when_empty)
{
	metrics_summary("t_basic", "basic", METRIC_BASIC, METRIC_UNIT);
	struct found f = lookup("t_basic", NULL);
	cr_assert_eq(f.v.n_quantiles, 1);
	cr_assert_eq(f.v.cnt, 0);
	cr_assert(isnan(f.v.qvalue[0]));
	cr_assert_float_eq(f.v.min, 0.0, 1e-9);
	cr_assert_float_eq(f.v.max, 0.0, 1e-9);
	cr_assert_float_eq(f.v.avg, 0.0, 1e-9);
}

Test(metrics, quantiles_within_the_bucket_error)
{
	struct metric_summary *s = metrics_summary("t_q", "uniform", METRIC_ADVANCED, METRIC_UNIT);
	for (long long v = 1; v <= 100000; v++)
		metric_observe(s, v);
	struct found f = lookup("t_q", NULL);
	double want[3] = { 50000, 90000, 99000 };
	for (int i = 0; i < 3; i++)
		cr_assert(fabs(f.v.qvalue[i] - want[i]) / want[i] < 0.07, "q%g = %f", f.v.quantiles[i], f.v.qvalue[i]);
	cr_assert(fabs(f.q95 - 95000) / 95000 < 0.07, "p95 = %f", f.q95);
	cr_assert_eq(f.v.cnt, 100000);
	cr_assert_float_eq(f.v.min, 1.0, 1e-9);
	cr_assert_float_eq(f.v.max, 100000.0, 1e-9);
}

Test(metrics, small_integers_are_exact)
{
	struct metric_summary *s = metrics_summary("t_small", "batch sizes", METRIC_ADVANCED, METRIC_UNIT);
	for (int i = 0; i < 90; i++)
		metric_observe(s, 1);
	for (int i = 0; i < 10; i++)
		metric_observe(s, 5);
	struct found f = lookup("t_small", NULL);
	cr_assert_float_eq(f.v.qvalue[0], 1.0, 1e-9);
	cr_assert_float_eq(f.v.qvalue[1], 1.0, 1e-9);
	cr_assert_float_eq(f.v.qvalue[2], 5.0, 1e-9);
}

Test(metrics, alias_shows_one_storage_under_two_names)
{
	struct metric_summary *s = metrics_summary_l("t_stage_ms", "per stage", METRIC_ADVANCED, METRIC_US_AS_MS,
						     "stage", "prep");
	metrics_summary_alias("t_prep_ms", "ZooKeeper's name", METRIC_BASIC, s);
	metric_observe(s, 500);
	struct found a = lookup("t_stage_ms", "prep"), b = lookup("t_prep_ms", NULL);
	cr_assert_eq(a.v.cnt, 1);
	cr_assert_eq(b.v.cnt, 1);
	cr_assert(b.v.alias);
	cr_assert_null(b.v.label);
	cr_assert_eq(b.v.n_quantiles, 1, "the alias has its own detail level");
	cr_assert_float_eq(b.v.sum, 0.5, 1e-9);
}

Test(metrics, reset_zeroes_counters_and_summaries_not_gauges)
{
	struct metric_counter *c = metrics_counter("t_rst_total", "c");
	struct metric_summary *s = metrics_summary("t_rst_s", "s", METRIC_BASIC, METRIC_UNIT);
	struct metric_gauge *g = metrics_gauge("t_rst_g", "g");
	metric_add(c, 5);
	metric_observe(s, 9);
	metric_set(g, 4);
	metrics_reset();
	cr_assert_float_eq(lookup("t_rst_total", NULL).v.value, 0.0, 1e-9);
	struct found f = lookup("t_rst_s", NULL);
	cr_assert_eq(f.v.cnt, 0);
	cr_assert(isnan(f.v.qvalue[0]));
	cr_assert_float_eq(lookup("t_rst_g", NULL).v.value, 4.0, 1e-9);
	metric_observe(s, 3);
	f = lookup("t_rst_s", NULL);
	cr_assert_float_eq(f.v.min, 3.0, 1e-9);
	cr_assert_float_eq(f.v.max, 3.0, 1e-9);
}

/* ---- from many threads -------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 200000

struct hammer {
	struct metric_counter *c;
	struct metric_summary *s;
	int id;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	for (long i = 0; i < PER_THREAD; i++) {
		metric_inc(h->c);
		metric_observe(h->s, h->id * 1000 + i % 100);
	}
	return NULL;
}

Test(metrics, concurrent_recording_loses_nothing)
{
	struct metric_counter *c = metrics_counter("t_mt_total", "c");
	struct metric_summary *s = metrics_summary("t_mt", "s", METRIC_ADVANCED, METRIC_UNIT);
	pthread_t t[THREADS];
	struct hammer h[THREADS];
	for (int i = 0; i < THREADS; i++) {
		h[i] = (struct hammer){ c, s, i + 1 };
		cr_assert_eq(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	/* readers run beside the writers */
	for (int i = 0; i < 50; i++)
		lookup("t_mt", NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	struct found f = lookup("t_mt", NULL);
	cr_assert_eq(f.v.cnt, (long long)THREADS * PER_THREAD);
	cr_assert_float_eq(lookup("t_mt_total", NULL).v.value, (double)THREADS * PER_THREAD, 1e-9);
	cr_assert_float_eq(f.v.min, 1000.0, 1e-9);
	cr_assert_float_eq(f.v.max, THREADS * 1000.0 + 99, 1e-9);
	double sum = 0;
	for (int i = 1; i <= THREADS; i++)
		sum += (double)PER_THREAD * (i * 1000) + (double)(PER_THREAD / 100) * (99 * 100 / 2);
	cr_assert_float_eq(f.v.sum, sum, 1e-6);
}

/* ---- exposition ----------------------------------------------------------------- */

Test(metrics, exposition_counter_gauge_summary)
{
	metric_add(metrics_counter("t_exp_total", "Requests answered"), 12);
	metric_set(metrics_gauge("t_exp_depth", "Queued now"), 3);
	struct metric_summary *s = metrics_summary("t_exp_ms", "Latency (ms)", METRIC_BASIC, METRIC_US_AS_MS);
	metric_observe(s, 1500);
	char *t = render();
	cr_assert(strstr(t, "# HELP t_exp_total Requests answered\n# TYPE t_exp_total counter\nt_exp_total 12\n"), "%s", t);
	cr_assert(strstr(t, "# HELP t_exp_depth Queued now\n# TYPE t_exp_depth gauge\nt_exp_depth 3\n"), "%s", t);
	cr_assert(strstr(t, "# HELP t_exp_ms Latency (ms)\n# TYPE t_exp_ms summary\n"
			    "t_exp_ms{quantile=\"0.5\"} 1.5\nt_exp_ms_count 1\nt_exp_ms_sum 1.5\n"), "%s", t);
	free(t);
}

Test(metrics, exposition_labels_escaped_and_quantiles_joined)
{
	struct metric_summary *s =
		metrics_summary_l("t_esc", "Help with \\ and\nnewline", METRIC_ADVANCED, METRIC_UNIT, "key", "a\"b\\c\nd");
	metric_observe(s, 2);
	metrics_counter_l("t_esc_total", "x", "type", "getData");
	char *t = render();
	cr_assert(strstr(t, "# HELP t_esc Help with \\\\ and\\nnewline\n"), "%s", t);
	cr_assert(strstr(t, "t_esc{key=\"a\\\"b\\\\c\\nd\",quantile=\"0.5\"} 2\n"), "%s", t);
	cr_assert(strstr(t, "t_esc{key=\"a\\\"b\\\\c\\nd\",quantile=\"0.9\"} 2\n"), "%s", t);
	cr_assert(strstr(t, "t_esc{key=\"a\\\"b\\\\c\\nd\",quantile=\"0.99\"} 2\n"), "%s", t);
	cr_assert(strstr(t, "t_esc_count{key=\"a\\\"b\\\\c\\nd\"} 1\n"), "%s", t);
	cr_assert(strstr(t, "t_esc_sum{key=\"a\\\"b\\\\c\\nd\"} 2\n"), "%s", t);
	cr_assert(strstr(t, "t_esc_total{type=\"getData\"} 0\n"), "%s", t);
	/* one HELP and one TYPE per family */
	const char *p = strstr(t, "# TYPE t_esc summary\n");
	cr_assert_not_null(p);
	cr_assert_null(strstr(p + 1, "# TYPE t_esc summary\n"));
	free(t);
}

Test(metrics, exposition_empty_summary_is_nan)
{
	metrics_summary("t_nan", "empty", METRIC_BASIC, METRIC_UNIT);
	char *t = render();
	cr_assert(strstr(t, "t_nan{quantile=\"0.5\"} NaN\nt_nan_count 0\nt_nan_sum 0\n"), "%s", t);
	free(t);
}

Test(metrics, exposition_pieces_for_outside_values)
{
	struct outbuf o = OUTBUF_INIT;
	prom_gauge(&o, "znode_count", "Znodes", 5);
	prom_name(&o, "bad-name.x");
	ob_write(&o, "\n", 1);
	prom_name(&o, "9lives");
	ob_write(&o, "\n", 1);
	prom_value(&o, 0.25);
	ob_write(&o, " ", 1);
	prom_value(&o, 1e15);
	ob_write(&o, " ", 1);
	prom_value(&o, INFINITY);
	ob_write(&o, " ", 1);
	prom_value(&o, -INFINITY);
	ob_write(&o, " ", 1);
	prom_value(&o, NAN);
	cr_assert_str_eq(o.buf, "# HELP znode_count Znodes\n# TYPE znode_count gauge\nznode_count 5\n"
				"bad_name_x\n_9lives\n0.25 1000000000000000 +Inf -Inf NaN");
	ob_free(&o);
}
