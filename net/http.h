/*
 * http.h - a small HTTP/1.1 server for the operator endpoints: the
 * AdminServer (admin.serverPort, /commands/...) and Prometheus
 * (metricsProvider.httpPort, /metrics).
 *
 * Each server is one thread (named by `name`, e.g. zkd-admin) that polls
 * its listener and its connections, all non-blocking: a slow or hostile
 * client cannot stall another, and a request that does not arrive whole
 * within a bound is dropped. Requests are GET or POST with small heads;
 * answers are whole bodies built by the handler.
 *
 * The handler runs on the server's thread, which is registered with RCU, so
 * it may take rcu_read_lock to read the tree.
 *
 * Bounds (http.c): a request (head and body) of at most 64 KB, whole within
 * 10 s of the connection; one request per connection ("Connection: close").
 * http.c answers malformed requests itself (400, 413, 431, 501, 505); HEAD
 * is handed to the handler as GET and answered without the body; a 405
 * answer carries "Allow: GET, HEAD".
 */
#ifndef ZKD_NET_HTTP_H
#define ZKD_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "outbuf.h"

struct http_request {
	const char *method;        /* "GET", "POST", ... */
	const char *path;          /* decoded path, without the query: "/commands/stat" */
	const char *query;         /* after '?', "" if none */
	const char *body;          /* POST body ("" if none) */
	size_t body_len;
	const char *authorization; /* the Authorization header, "" if none */
};

struct http_response {
	int status;                /* 200 unless the handler says otherwise */
	const char *content_type;  /* default "text/plain; charset=utf-8" */
	struct outbuf body;        /* the handler writes here; freed by http.c */
};

/* The value of query parameter `name` ("a=1&b=x%20y"), decoded (%XX, '+'),
 * into out; false if absent, malformed or longer than outlen - 1. */
bool http_query_param(const char *query, const char *name, char *out, size_t outlen);

typedef void (*http_handler)(void *ctx, const struct http_request *req, struct http_response *resp);

struct http_server;

/* Binds bind_addr:port ("" = all addresses; port 0 = any) and starts the
 * thread. NULL with err filled on failure. */
struct http_server *http_start(const char *name, const char *bind_addr, int port, http_handler handler,
			       void *ctx, char *err, size_t errlen);
/* The port actually bound (tests use port 0). */
int http_port(const struct http_server *s);
/* Closes every connection, joins the thread, frees s. NULL is fine. */
void http_stop(struct http_server *s);

#endif
