/*
 * qtls_ctx.c - the quorum's TLS context (sslQuorum, portUnification), and
 * its reload when the certificate files change (sslQuorumReloadCertFiles).
 *
 * ZooKeeper watches the ssl.quorum key and trust stores and rebuilds its
 * SSL context when either changes, so that certificates can be rotated
 * without a restart: connections made from then on use the new ones, and
 * connections already up keep theirs. zkd does the same by looking at the
 * files' identity (device, inode, size, modification time) at most once a
 * second, from the election thread's loop. A rotation written in place or
 * renamed over the old file is seen either way. If the new files do not make
 * a context (a key that does not match, a file caught half written) the old
 * context stays and the failure is logged; the next change is tried again.
 *
 * Threads: the election thread checks and swaps; it, the leader's learner
 * handlers and the learner take new TLS sessions from the context. `mu`
 * (written by qtls_ctx_check, read by qtls_ctx_ssl) guards the pointer only
 * while a session is made: SSL_new takes its own reference to the context,
 * so the old context is released at the swap and freed by OpenSSL when its
 * last session goes.
 */
#include "election.h"

#include "net/log.h"
#include "net/net.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define QTLS_FILES 6
#define QTLS_CHECK_MS 1000

struct file_stamp {
	bool present;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct qtls_ctx {
	pthread_mutex_t mu;
	SSL_CTX *ctx;
	const struct net_tls_config *tls;   /* the quorum config's: lives as long as the quorum */
	bool reload;
	/* the election thread's alone: */
	const char *files[QTLS_FILES];
	struct file_stamp stamps[QTLS_FILES];
	int n_files;
	int64_t next_check_ms;
};

static struct file_stamp stamp_of(const char *path)
{
	struct file_stamp s = { 0 };
	struct stat st;
	if (stat(path, &st) == 0) {
		s.present = true;
		s.dev = st.st_dev;
		s.ino = st.st_ino;
		s.size = st.st_size;
		s.mtime = st.st_mtim;
	}
	return s;
}

static bool same_stamp(const struct file_stamp *a, const struct file_stamp *b)
{
	return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void add_file(struct qtls_ctx *q, const char *path)
{
	if (path && path[0] && q->n_files < QTLS_FILES)
		q->files[q->n_files++] = path;
}

struct qtls_ctx *qtls_ctx_new(const struct net_tls_config *tls, bool reload, char *err, size_t errlen)
{
	struct qtls_ctx *q = calloc(1, sizeof *q);
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->ctx = net_tls_peer_ctx(tls, err, errlen);
	if (!q->ctx) {
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	q->tls = tls;
	q->reload = reload;
	add_file(q, tls->key_store);
	add_file(q, tls->key_store_password_path);
	add_file(q, tls->cert_file);
	add_file(q, tls->key_file);
	add_file(q, tls->trust_store);
	add_file(q, tls->ca_file);
	for (int i = 0; i < q->n_files; i++)
		q->stamps[i] = stamp_of(q->files[i]);
	q->next_check_ms = quorum_now_ms() + QTLS_CHECK_MS;
	return q;
}

struct ssl_st *qtls_ctx_ssl(struct qtls_ctx *q, int fd, bool client)
{
	pthread_mutex_lock(&q->mu);
	SSL *ssl = net_tls_peer_new(q->ctx, fd, client);
	pthread_mutex_unlock(&q->mu);
	return ssl;
}

int qtls_ctx_check(struct qtls_ctx *q)
{
	if (!q || !q->reload)
		return -1;
	int64_t now = quorum_now_ms();
	if (now < q->next_check_ms)
		return (int)(q->next_check_ms - now);
	q->next_check_ms = now + QTLS_CHECK_MS;
	bool changed = false;
	for (int i = 0; i < q->n_files; i++) {
		struct file_stamp s = stamp_of(q->files[i]);
		if (!same_stamp(&s, &q->stamps[i])) {
			q->stamps[i] = s;
			changed = true;
		}
	}
	if (!changed)
		return QTLS_CHECK_MS;
	char err[512];
	SSL_CTX *fresh = net_tls_peer_ctx(q->tls, err, sizeof err);
	if (!fresh) {
		log_warn("sslQuorumReloadCertFiles: the quorum certificate files changed but do not load; "
			 "keeping the certificates in use: %s", err);
		return QTLS_CHECK_MS;
	}
	pthread_mutex_lock(&q->mu);
	SSL_CTX *old = q->ctx;
	q->ctx = fresh;
	pthread_mutex_unlock(&q->mu);
	SSL_CTX_free(old);      /* sessions made from it hold their own references */
	log_info("sslQuorumReloadCertFiles: quorum certificates reloaded (%s%s%s); new quorum and election "
		 "connections use them", q->files[0], q->n_files > 1 ? ", " : "", q->n_files > 1 ? q->files[1] : "");
	return QTLS_CHECK_MS;
}

void qtls_ctx_free(struct qtls_ctx *q)
{
	if (!q)
		return;
	SSL_CTX_free(q->ctx);
	pthread_mutex_destroy(&q->mu);
	free(q);
}
