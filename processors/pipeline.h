/*
 * pipeline.h - entry into the stage chain (internal to processors/).
 */
#ifndef ZKD_PROCESSORS_PIPELINE_H
#define ZKD_PROCESSORS_PIPELINE_H

struct zreq;

/* Any thread: hand a request to Prep. */
void pipeline_submit(struct zreq *r);

#endif
