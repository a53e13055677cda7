/*
 * reqmetrics.h - requests by type: how many were answered and how long each
 * took, per ZooKeeper op name (net/metrics.h families zkd_requests_total
 * and zkd_request_latency_ms, label "type"), and ZooKeeper's readlatency /
 * updatelatency summaries.
 */
#ifndef ZKD_PROCESSORS_REQMETRICS_H
#define ZKD_PROCESSORS_REQMETRICS_H

/* I/O threads, when a reply to a request of type `op` (ZOP_*) is sent;
 * us = from its arrival to the reply. Lock-free. */
void reqmetrics_reply(int op, long us);
/* Registers the series (so they show from the start); idempotent, any
 * thread. stage.c calls it when the pipeline is first set up. */
void reqmetrics_register(void);

#endif
