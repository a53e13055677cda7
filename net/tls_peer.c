/*
 * tls_peer.c - TLS between servers (sslQuorum): the context the quorum and
 * election connections use, their SSL objects, and ZooKeeper's hostname
 * verification of the other server's certificate.
 *
 * ZooKeeper 3.8 (QuorumX509Util, ZKTrustManager) reads ssl.quorum.* like
 * ssl.*, asks the connecting server for a certificate (ssl.quorum.clientAuth,
 * need by default), and with ssl.quorum.hostnameVerification (default true)
 * checks the certificate of either side against the address the socket is
 * connected to: the IP address first, then the name a reverse lookup gives.
 * zkd checks the IP address, then the names its caller knows for that
 * address (the host it dialed; the server.N hosts resolving to the address
 * that connected), so that nothing blocks on a reverse lookup.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

SSL_CTX *net_tls_peer_ctx(const struct net_tls_config *cfg, char *err, size_t errlen)
{
	return tls_ctx_make(cfg, true, err, errlen);
}

SSL *net_tls_peer_new(SSL_CTX *ctx, int fd, bool client)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	if (client) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		SSL_set_connect_state(ssl);
	} else {
		SSL_set_accept_state(ssl);
	}
	return ssl;
}

static bool peer_ip(int fd, char *ip, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return false;
	if (ss.ss_family == AF_INET)
		return inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, (socklen_t)cap) != NULL;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))   /* a dual-stack listener's IPv4 peer */
			return inet_ntop(AF_INET, &a->s6_addr[12], ip, (socklen_t)cap) != NULL;
		return inet_ntop(AF_INET6, a, ip, (socklen_t)cap) != NULL;
	}
	return false;
}

int net_tls_peer_check(SSL *ssl, const char *const *names, int n_names, char *why, size_t whylen)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	if (!cert)
		return 0;       /* none asked for (clientAuth none/want): nothing to check */
	char ip[INET6_ADDRSTRLEN] = "";
	bool ok = peer_ip(SSL_get_fd(ssl), ip, sizeof ip) && X509_check_ip_asc(cert, ip, 0) == 1;
	for (int i = 0; !ok && i < n_names; i++)
		ok = names[i] && names[i][0] &&
		     X509_check_host(cert, names[i], strlen(names[i]), 0, NULL) == 1;
	if (!ok) {
		char subject[256] = "?";
		X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
		size_t n = (size_t)snprintf(why, whylen, "hostname verification failed: the certificate of %s "
					    "names neither %s", subject, ip[0] ? ip : "its address");
		for (int i = 0; i < n_names && n < whylen; i++)
			if (names[i] && names[i][0])
				n += (size_t)snprintf(why + n, whylen - n, " nor %s", names[i]);
		if (n < whylen)
			snprintf(why + n, whylen - n, " (ssl.quorum.hostnameVerification=false turns this off)");
	}
	X509_free(cert);
	ERR_clear_error();
	return ok ? 0 : -1;
}

const char *net_tls_error(SSL *ssl, char *buf, size_t cap)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(buf, cap, "%s", r ? r : "");
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (v != X509_V_OK) {
		size_t n = strlen(buf);
		snprintf(buf + n, cap - n, "%s%s", n ? ": " : "", X509_verify_cert_error_string(v));
	}
	ERR_clear_error();
	return buf;
}
