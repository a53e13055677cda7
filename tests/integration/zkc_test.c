/*
 * zkc_test: drives a ZooKeeper-compatible server with the official
 * multi-threaded C client (libzookeeper-mt, Apache ZooKeeper 3.8).
 *
 *   zkc_test host:port
 *
 * The server must be standalone with tickTime=2000 (negotiated session
 * timeouts are clamped to [4000, 40000] ms).  Everything happens under a
 * unique top-level znode that is removed at the end.  Prints one line per
 * check; on the first failure prints FAIL plus the tail of the client
 * library's log and exits 1.  Every wait has a deadline.
 *
 * Session tests route a handle through a small loopback TCP proxy (a thread
 * in this program) so the connection can be cut, or new connections
 * refused, without the client closing its session.
 */
/* the synchronous API (zoo_create, zoo_get, ...) is only declared for the
 * multi-threaded library */
#define THREADED 1
#include <zookeeper/zookeeper.h>

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 15000
#define SESSION_TIMEOUT_MS 10000
#define BURST 1000

/* ThreadSanitizer builds (make tsan) link the uninstrumented system
 * libzookeeper_mt, whose logger formats into shared buffers without a lock;
 * those reports are the library's, not the server's, so they are suppressed.
 * This hook is only consulted by TSan; other builds ignore it. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "race:libzookeeper_mt.so\n";
}

static const char *g_server;
static char g_root[128];
static FILE *g_zklog;
static zhandle_t *g_zh; /* main handle, also used for cleanup on failure */
static int g_checks;

/* ------------------------------------------------------------------ */
/* reporting                                                            */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void remove_tree(zhandle_t *zh, const char *path);

static void dump_zklog(void)
{
    if (!g_zklog)
        return;
    fflush(g_zklog);
    long end = ftell(g_zklog);
    if (end <= 0)
        return;
    long start = end > 6000 ? end - 6000 : 0;
    char buf[6001];
    if (fseek(g_zklog, start, SEEK_SET) != 0)
        return;
    size_t n = fread(buf, 1, (size_t)(end - start), g_zklog);
    buf[n] = '\0';
    fprintf(stderr, "---- libzookeeper log (tail) ----\n%s\n---- end of log ----\n", buf);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL - ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    dump_zklog();
    if (g_zh && g_root[0] && zoo_state(g_zh) == ZOO_CONNECTED_STATE)
        remove_tree(g_zh, g_root); /* best effort */
    _exit(1);
}

static void ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("ok %3d - ", ++g_checks);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond))                                                       \
            fail(__VA_ARGS__);                                             \
    } while (0)

/* Fails unless expr returns want. */
#define EXPECT_RC(expr, want, what)                                        \
    do {                                                                   \
        int rc_ = (expr);                                                  \
        if (rc_ != (want))                                                 \
            fail("%s: got %s (%d), want %s (%d)", (what), zerror(rc_),     \
                 rc_, zerror(want), (want));                               \
    } while (0)

/* ------------------------------------------------------------------ */
/* session watcher                                                      */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;
    int n_connected;
    int n_connecting;
    int n_expired;
    int n_other; /* node events: none expected, no watches are set */
} watch_ctx;

static void watch_init(watch_ctx *w)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &a);
    pthread_condattr_destroy(&a);
    pthread_mutex_init(&w->mu, NULL);
    w->state = 0;
    w->n_connected = w->n_connecting = w->n_expired = w->n_other = 0;
}

static void watch_destroy(watch_ctx *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)path;
    watch_ctx *w = ctx;
    pthread_mutex_lock(&w->mu);
    if (type == ZOO_SESSION_EVENT) {
        w->state = state;
        if (state == ZOO_CONNECTED_STATE)
            w->n_connected++;
        else if (state == ZOO_CONNECTING_STATE)
            w->n_connecting++;
        else if (state == ZOO_EXPIRED_SESSION_STATE)
            w->n_expired++;
    } else {
        w->n_other++;
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int watch_get(watch_ctx *w, const int *field)
{
    pthread_mutex_lock(&w->mu);
    int v = *field;
    pthread_mutex_unlock(&w->mu);
    return v;
}

/* Waits until *field >= atleast; false at the deadline. */
static bool watch_wait(watch_ctx *w, const int *field, int atleast, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    pthread_mutex_lock(&w->mu);
    while (*field < atleast) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    bool done = *field >= atleast;
    pthread_mutex_unlock(&w->mu);
    return done;
}

static zhandle_t *open_handle(const char *host, watch_ctx *w, int timeout_ms,
                              const clientid_t *cid)
{
    watch_init(w);
    zhandle_t *zh = zookeeper_init(host, watcher, timeout_ms, cid, w, 0);
    CHECK(zh != NULL, "zookeeper_init(%s): %s", host, strerror(errno));
    return zh;
}

static zhandle_t *connect_handle(const char *host, watch_ctx *w, int timeout_ms,
                                 const clientid_t *cid)
{
    zhandle_t *zh = open_handle(host, w, timeout_ms, cid);
    CHECK(watch_wait(w, &w->n_connected, 1, CONNECT_TIMEOUT_MS),
          "no ZOO_CONNECTED_STATE from %s within %d ms (state %d)", host,
          CONNECT_TIMEOUT_MS, zoo_state(zh));
    return zh;
}

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static void remove_tree(zhandle_t *zh, const char *path)
{
    struct String_vector kids = {0, NULL};
    if (zoo_get_children(zh, path, 0, &kids) == ZOK) {
        for (int i = 0; i < kids.count; i++) {
            char child[1024];
            snprintf(child, sizeof child, "%s/%s", path, kids.data[i]);
            remove_tree(zh, child);
        }
        deallocate_String_vector(&kids);
    }
    zoo_delete(zh, path, -1);
}

static void sub(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_root, name);
}

static bool has_child(const struct String_vector *v, const char *name)
{
    for (int i = 0; i < v->count; i++)
        if (strcmp(v->data[i], name) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* loopback proxy                                                       */

#define MAX_PAIRS 64

static struct {
    pthread_mutex_t mu;
    int lfd;
    int port;
    bool refuse;
    bool stop;
    int accepted;
    int live;
    pthread_t thr;
    struct addrinfo *up;
    struct pair {
        int a, b;
        bool active;
    } pairs[MAX_PAIRS];
} px = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *pump(void *arg)
{
    struct pair *p = arg;
    struct pollfd fds[2] = {{.fd = p->a, .events = POLLIN}, {.fd = p->b, .events = POLLIN}};
    char buf[65536];
    for (;;) {
        if (poll(fds, 2, 200) < 0 && errno != EINTR)
            break;
        pthread_mutex_lock(&px.mu);
        bool stop = px.stop;
        pthread_mutex_unlock(&px.mu);
        if (stop)
            break;
        bool done = false;
        for (int i = 0; i < 2 && !done; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                done = true;
                break;
            }
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(fds[1 - i].fd, buf + off, (size_t)(n - off));
                if (w <= 0) {
                    done = true;
                    break;
                }
                off += w;
            }
        }
        if (done)
            break;
    }
    pthread_mutex_lock(&px.mu);
    p->active = false;
    shutdown(p->a, SHUT_RDWR);
    shutdown(p->b, SHUT_RDWR);
    close(p->a);
    close(p->b);
    px.live--;
    pthread_mutex_unlock(&px.mu);
    return NULL;
}

static void *accept_loop(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&px.mu);
        bool stop = px.stop;
        pthread_mutex_unlock(&px.mu);
        if (stop)
            return NULL;
        struct pollfd pfd = {.fd = px.lfd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int c = accept(px.lfd, NULL, NULL);
        if (c < 0)
            continue;
        pthread_mutex_lock(&px.mu);
        px.accepted++;
        bool refuse = px.refuse;
        pthread_mutex_unlock(&px.mu);
        if (refuse) {
            close(c);
            continue;
        }
        int u = socket(px.up->ai_family, SOCK_STREAM, 0);
        if (u < 0 || connect(u, px.up->ai_addr, px.up->ai_addrlen) != 0) {
            if (u >= 0)
                close(u);
            close(c);
            continue;
        }
        pthread_mutex_lock(&px.mu);
        struct pair *slot = NULL;
        for (int i = 0; i < MAX_PAIRS && !slot; i++)
            if (!px.pairs[i].active)
                slot = &px.pairs[i];
        if (slot) {
            slot->a = c;
            slot->b = u;
            slot->active = true;
            px.live++;
        }
        pthread_mutex_unlock(&px.mu);
        pthread_t t;
        if (!slot || pthread_create(&t, NULL, pump, slot) != 0) {
            if (slot) {
                pthread_mutex_lock(&px.mu);
                slot->active = false;
                px.live--;
                pthread_mutex_unlock(&px.mu);
            }
            close(c);
            close(u);
            continue;
        }
        pthread_detach(t);
    }
}

static void proxy_start(void)
{
    char host[256];
    const char *colon = strrchr(g_server, ':');
    CHECK(colon && colon != g_server && (size_t)(colon - g_server) < sizeof host,
          "bad server address %s", g_server);
    memcpy(host, g_server, (size_t)(colon - g_server));
    host[colon - g_server] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(host, colon + 1, &hints, &px.up);
    CHECK(gai == 0, "getaddrinfo(%s): %s", g_server, gai_strerror(gai));

    px.lfd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(px.lfd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    CHECK(bind(px.lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(px.lfd, 64) == 0 &&
              getsockname(px.lfd, (struct sockaddr *)&sa, &len) == 0,
          "proxy listen: %s", strerror(errno));
    px.port = ntohs(sa.sin_port);
    px.stop = px.refuse = false;
    CHECK(pthread_create(&px.thr, NULL, accept_loop, NULL) == 0, "pthread_create");
}

static void proxy_refuse(bool on)
{
    pthread_mutex_lock(&px.mu);
    px.refuse = on;
    pthread_mutex_unlock(&px.mu);
}

static int proxy_accepted(void)
{
    pthread_mutex_lock(&px.mu);
    int n = px.accepted;
    pthread_mutex_unlock(&px.mu);
    return n;
}

/* Cuts every proxied connection (the pump threads then close them). */
static void proxy_drop_all(void)
{
    pthread_mutex_lock(&px.mu);
    for (int i = 0; i < MAX_PAIRS; i++) {
        if (px.pairs[i].active) {
            shutdown(px.pairs[i].a, SHUT_RDWR);
            shutdown(px.pairs[i].b, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&px.mu);
}

static void proxy_stop(void)
{
    pthread_mutex_lock(&px.mu);
    px.stop = true;
    pthread_mutex_unlock(&px.mu);
    pthread_join(px.thr, NULL);
    close(px.lfd);
    proxy_drop_all();
    int64_t deadline = mono_ms() + 5000;
    for (;;) {
        pthread_mutex_lock(&px.mu);
        int live = px.live;
        pthread_mutex_unlock(&px.mu);
        if (live == 0 || mono_ms() > deadline)
            break;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    freeaddrinfo(px.up);
}

/* ------------------------------------------------------------------ */
/* tests                                                                */

static void test_connect(void)
{
    static watch_ctx w;
    g_zh = connect_handle(g_server, &w, SESSION_TIMEOUT_MS, NULL);
    CHECK(zoo_state(g_zh) == ZOO_CONNECTED_STATE, "zoo_state %d", zoo_state(g_zh));
    const clientid_t *cid = zoo_client_id(g_zh);
    CHECK(cid && cid->client_id != 0, "session id is 0");
    ok("zookeeper_init: connected, session 0x%" PRIx64, (uint64_t)cid->client_id);
    CHECK(zoo_recv_timeout(g_zh) == SESSION_TIMEOUT_MS, "negotiated timeout %d, want %d",
          zoo_recv_timeout(g_zh), SESSION_TIMEOUT_MS);
    ok("negotiated session timeout = requested %d ms", SESSION_TIMEOUT_MS);
}

static void test_timeout_clamping(void)
{
    static const int req[2] = {1000, 100000}, want[2] = {4000, 40000};
    for (int i = 0; i < 2; i++) {
        watch_ctx w;
        zhandle_t *zh = connect_handle(g_server, &w, req[i], NULL);
        int got = zoo_recv_timeout(zh);
        EXPECT_RC(zookeeper_close(zh), ZOK, "zookeeper_close");
        watch_destroy(&w);
        CHECK(got == want[i], "requested %d ms: negotiated %d, want %d", req[i], got, want[i]);
        ok("session timeout %d ms is clamped to %d ms (tickTime 2000)", req[i], want[i]);
    }
}

static void test_create(void)
{
    char created[512], p[512], buf[64];
    struct Stat st;
    int len;

    snprintf(g_root, sizeof g_root, "/itest-zkc-%d-%" PRId64, (int)getpid(), wall_ms());
    EXPECT_RC(zoo_create(g_zh, g_root, "root", 4, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
                         created, sizeof created),
              ZOK, "zoo_create root");
    CHECK(strcmp(created, g_root) == 0, "created %s, want %s", created, g_root);
    ok("zoo_create persistent %s returns its path", g_root);

    sub(p, sizeof p, "data");
    EXPECT_RC(zoo_create(g_zh, p, "hello", 5, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, created,
                         sizeof created),
              ZOK, "zoo_create data");
    CHECK(strcmp(created, p) == 0, "created %s, want %s", created, p);
    len = sizeof buf;
    EXPECT_RC(zoo_get(g_zh, p, 0, buf, &len, &st), ZOK, "zoo_get data");
    CHECK(len == 5 && memcmp(buf, "hello", 5) == 0, "zoo_get: len %d", len);
    CHECK(st.version == 0 && st.dataLength == 5 && st.numChildren == 0 && st.ephemeralOwner == 0 &&
              st.czxid == st.mzxid && st.ctime == st.mtime,
          "fresh stat: version %d dataLength %d numChildren %d", st.version, st.dataLength,
          st.numChildren);
    CHECK(llabs(st.ctime - wall_ms()) < 60000, "ctime %" PRId64 " is not wall-clock ms",
          st.ctime);
    ok("zoo_get returns the data and a fresh stat");

    EXPECT_RC(zoo_create(g_zh, p, "again", 5, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0),
              ZNODEEXISTS, "zoo_create existing node");
    ok("zoo_create on an existing node -> ZNODEEXISTS");

    sub(p, sizeof p, "missing/child");
    EXPECT_RC(zoo_create(g_zh, p, "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0),
              ZNONODE, "zoo_create without parent");
    ok("zoo_create under a missing parent -> ZNONODE");

    /* NULL data (length -1 on the wire) and empty data are distinct. */
    sub(p, sizeof p, "null");
    EXPECT_RC(zoo_create(g_zh, p, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), ZOK,
              "zoo_create null data");
    len = sizeof buf;
    EXPECT_RC(zoo_get(g_zh, p, 0, buf, &len, &st), ZOK, "zoo_get null data");
    CHECK(len == -1 && st.dataLength == 0, "null data: zoo_get len %d dataLength %d, want -1, 0",
          len, st.dataLength);
    sub(p, sizeof p, "empty");
    EXPECT_RC(zoo_create(g_zh, p, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), ZOK,
              "zoo_create empty data");
    len = sizeof buf;
    EXPECT_RC(zoo_get(g_zh, p, 0, buf, &len, &st), ZOK, "zoo_get empty data");
    CHECK(len == 0 && st.dataLength == 0, "empty data: zoo_get len %d, want 0", len);
    ok("null data reads back as length -1, empty data as length 0");
}

static void test_ephemeral_and_sequence(void)
{
    char created[512], p[512], want[512];
    struct Stat st;
    int64_t sid = zoo_client_id(g_zh)->client_id;

    sub(p, sizeof p, "eph");
    EXPECT_RC(zoo_create(g_zh, p, "e", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, created,
                         sizeof created),
              ZOK, "zoo_create ephemeral");
    CHECK(strcmp(created, p) == 0, "created %s", created);
    EXPECT_RC(zoo_exists(g_zh, p, 0, &st), ZOK, "zoo_exists ephemeral");
    CHECK(st.ephemeralOwner == sid, "ephemeralOwner 0x%" PRIx64 ", want 0x%" PRIx64,
          (uint64_t)st.ephemeralOwner, (uint64_t)sid);
    ok("ephemeral node: ephemeralOwner == session id");
    sub(p, sizeof p, "eph/child");
    EXPECT_RC(zoo_create(g_zh, p, "c", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0),
              ZNOCHILDRENFOREPHEMERALS, "zoo_create child of ephemeral");
    ok("child of an ephemeral -> ZNOCHILDRENFOREPHEMERALS");

    char dir[256];
    sub(dir, sizeof dir, "seq");
    EXPECT_RC(zoo_create(g_zh, dir, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), ZOK,
              "zoo_create seq dir");
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/job-", dir);
        EXPECT_RC(zoo_create(g_zh, p, "j", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL,
                             created, sizeof created),
                  ZOK, "zoo_create sequential");
        snprintf(want, sizeof want, "%s/job-%010d", dir, i);
        CHECK(strcmp(created, want) == 0, "sequential: created %s, want %s", created, want);
    }
    ok("persistent sequential names are prefix + %%010d (0, 1, 2)");
    snprintf(p, sizeof p, "%s/lock-", dir);
    EXPECT_RC(zoo_create(g_zh, p, "l", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, created,
                         sizeof created),
              ZOK, "zoo_create ephemeral sequential");
    snprintf(want, sizeof want, "%s/lock-%010d", dir, 3);
    CHECK(strcmp(created, want) == 0, "ephemeral sequential: created %s, want %s", created, want);
    EXPECT_RC(zoo_exists(g_zh, created, 0, &st), ZOK, "zoo_exists ephemeral sequential");
    CHECK(st.ephemeralOwner == sid, "ephemeral sequential owner");
    ok("ephemeral sequential shares the parent's counter: %s", strrchr(created, '/') + 1);

    /* Deleting children does not rewind or advance the counter. */
    snprintf(p, sizeof p, "%s/job-%010d", dir, 2);
    EXPECT_RC(zoo_delete(g_zh, p, -1), ZOK, "zoo_delete job-2");
    snprintf(p, sizeof p, "%s/job-", dir);
    EXPECT_RC(zoo_create(g_zh, p, "j", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, created,
                         sizeof created),
              ZOK, "zoo_create sequential after delete");
    snprintf(want, sizeof want, "%s/job-%010d", dir, 4);
    CHECK(strcmp(created, want) == 0, "after a delete: created %s, want %s", created, want);
    ok("sequence counter continues after a delete: %s", strrchr(created, '/') + 1);

    /* A too-small path buffer truncates the returned name (client side). */
    char small[8];
    EXPECT_RC(zoo_create(g_zh, p, "j", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, small,
                         sizeof small),
              ZOK, "zoo_create sequential, small buffer");
    CHECK(strlen(small) == sizeof small - 1 && strncmp(small, dir, sizeof small - 1) == 0,
          "truncated name %s", small);
    ok("zoo_create with a short path buffer truncates the name");
}

static void test_get_set_versions(void)
{
    char p[512], buf[64];
    struct Stat st, st2;
    int len;
    sub(p, sizeof p, "data");

    EXPECT_RC(zoo_set(g_zh, p, "v1", 2, 0), ZOK, "zoo_set version 0");
    EXPECT_RC(zoo_set(g_zh, p, "v2", 2, 0), ZBADVERSION, "zoo_set stale version");
    len = sizeof buf;
    EXPECT_RC(zoo_get(g_zh, p, 0, buf, &len, &st), ZOK, "zoo_get after set");
    CHECK(len == 2 && memcmp(buf, "v1", 2) == 0 && st.version == 1,
          "after set: len %d version %d", len, st.version);
    CHECK(st.mzxid > st.czxid && st.mtime >= st.ctime, "mzxid/mtime not advanced by set");
    ok("zoo_set with the right version bumps version to 1; stale version -> ZBADVERSION");

    EXPECT_RC(zoo_set2(g_zh, p, "version two", 11, 1, &st2), ZOK, "zoo_set2");
    CHECK(st2.version == 2 && st2.dataLength == 11 && st2.czxid == st.czxid && st2.mzxid > st.mzxid,
          "zoo_set2 stat: version %d dataLength %d", st2.version, st2.dataLength);
    EXPECT_RC(zoo_set(g_zh, p, "any", 3, -1), ZOK, "zoo_set version -1");
    EXPECT_RC(zoo_exists(g_zh, p, 0, &st), ZOK, "zoo_exists");
    CHECK(st.version == 3 && st.dataLength == 3, "version %d after set(-1)", st.version);
    ok("zoo_set2 returns the new stat; version -1 matches any version");

    /* a large value (256 KiB) round-trips */
    size_t big_len = 256 * 1024;
    char *big = malloc(big_len), *back = malloc(big_len + 1);
    CHECK(big && back, "malloc");
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 7 + (i >> 9));
    EXPECT_RC(zoo_set(g_zh, p, big, (int)big_len, -1), ZOK, "zoo_set 256 KiB");
    len = (int)big_len + 1;
    EXPECT_RC(zoo_get(g_zh, p, 0, back, &len, &st), ZOK, "zoo_get 256 KiB");
    CHECK(len == (int)big_len && memcmp(big, back, big_len) == 0 && st.dataLength == (int)big_len,
          "256 KiB value: got %d bytes", len);
    free(big);
    free(back);
    ok("a 256 KiB value round-trips");
}

static void test_exists(void)
{
    char p[512];
    struct Stat st;
    memset(&st, 0, sizeof st);
    sub(p, sizeof p, "nope");
    EXPECT_RC(zoo_exists(g_zh, p, 0, &st), ZNONODE, "zoo_exists missing");
    ok("zoo_exists on a missing node -> ZNONODE");
    char buf[8];
    int len = sizeof buf;
    EXPECT_RC(zoo_get(g_zh, p, 0, buf, &len, &st), ZNONODE, "zoo_get missing");
    EXPECT_RC(zoo_set(g_zh, p, "x", 1, -1), ZNONODE, "zoo_set missing");
    ok("zoo_get / zoo_set on a missing node -> ZNONODE");
    EXPECT_RC(zoo_exists(g_zh, g_root, 0, &st), ZOK, "zoo_exists root");
    CHECK(st.numChildren == 5, "numChildren %d, want 5 (data null empty eph seq)", st.numChildren);
    ok("zoo_exists on an existing node fills the stat (numChildren %d)", st.numChildren);
}

static void test_children(void)
{
    struct String_vector v = {0, NULL};
    struct Stat st;
    EXPECT_RC(zoo_get_children(g_zh, g_root, 0, &v), ZOK, "zoo_get_children");
    static const char *want[] = {"data", "null", "empty", "eph", "seq"};
    CHECK(v.count == 5, "%d children, want 5", v.count);
    for (int i = 0; i < 5; i++)
        CHECK(has_child(&v, want[i]), "child %s missing", want[i]);
    deallocate_String_vector(&v);
    ok("zoo_get_children lists exactly the 5 children");

    char dir[256];
    sub(dir, sizeof dir, "seq");
    EXPECT_RC(zoo_get_children2(g_zh, dir, 0, &v, &st), ZOK, "zoo_get_children2");
    CHECK(v.count == 5 && st.numChildren == 5 && has_child(&v, "job-0000000000") &&
              has_child(&v, "job-0000000004") && has_child(&v, "lock-0000000003") &&
              has_child(&v, "job-0000000005") && !has_child(&v, "job-0000000002"),
          "seq children: count %d numChildren %d", v.count, st.numChildren);
    /* 6 creates + 1 delete */
    CHECK(st.cversion == 7, "cversion %d, want 7", st.cversion);
    deallocate_String_vector(&v);
    ok("zoo_get_children2 returns children and stat (cversion 7)");

    char p[512];
    sub(p, sizeof p, "data");
    EXPECT_RC(zoo_get_children(g_zh, p, 0, &v), ZOK, "zoo_get_children leaf");
    CHECK(v.count == 0, "leaf has %d children", v.count);
    deallocate_String_vector(&v);
    sub(p, sizeof p, "nope");
    EXPECT_RC(zoo_get_children(g_zh, p, 0, &v), ZNONODE, "zoo_get_children missing");
    ok("leaf -> no children; missing node -> ZNONODE");
}

static void test_delete(void)
{
    char p[512];
    struct Stat st;
    sub(p, sizeof p, "data");
    EXPECT_RC(zoo_delete(g_zh, p, 0), ZBADVERSION, "zoo_delete stale version");
    EXPECT_RC(zoo_exists(g_zh, p, 0, &st), ZOK, "zoo_exists after failed delete");
    EXPECT_RC(zoo_delete(g_zh, p, st.version), ZOK, "zoo_delete");
    EXPECT_RC(zoo_exists(g_zh, p, 0, &st), ZNONODE, "zoo_exists after delete");
    ok("zoo_delete: stale version -> ZBADVERSION, right version -> ZOK, then ZNONODE");
    EXPECT_RC(zoo_delete(g_zh, p, -1), ZNONODE, "zoo_delete missing");
    ok("zoo_delete on a missing node -> ZNONODE");
    sub(p, sizeof p, "seq");
    EXPECT_RC(zoo_delete(g_zh, p, -1), ZNOTEMPTY, "zoo_delete non-empty");
    ok("zoo_delete on a node with children -> ZNOTEMPTY");
}

/* ---- async burst ---- */

typedef struct {
    int seq;         /* position in submission order */
    int index;       /* node index */
    bool is_get;
    int rc;
    bool value_ok;
} op_t;

static struct {
    pthread_mutex_t mu;
    int done;
    int first_out_of_order; /* seq of the first completion out of order, or -1 */
    int out_of_order_at;
} burst = {PTHREAD_MUTEX_INITIALIZER, 0, -1, -1};

static char burst_dir[512];

static void burst_value(int i, char *out, size_t n)
{
    snprintf(out, n, "value-%d", i);
}

static void burst_record(op_t *op, int rc, bool value_ok)
{
    pthread_mutex_lock(&burst.mu);
    if (op->seq != burst.done && burst.first_out_of_order < 0) {
        burst.first_out_of_order = op->seq;
        burst.out_of_order_at = burst.done;
    }
    op->rc = rc;
    op->value_ok = value_ok;
    burst.done++;
    pthread_mutex_unlock(&burst.mu);
}

static void create_done(int rc, const char *value, const void *data)
{
    op_t *op = (op_t *)data;
    char want[600];
    snprintf(want, sizeof want, "%s/n-%04d", burst_dir, op->index);
    burst_record(op, rc, rc == ZOK && value && strcmp(value, want) == 0);
}

static void get_done(int rc, const char *value, int value_len, const struct Stat *stat,
                     const void *data)
{
    op_t *op = (op_t *)data;
    char want[32];
    burst_value(op->index, want, sizeof want);
    bool okv = rc == ZOK && value_len == (int)strlen(want) && memcmp(value, want, strlen(want)) == 0 &&
               stat && stat->version == 0 && stat->dataLength == value_len;
    burst_record(op, rc, okv);
}

static void delete_done(int rc, const void *data)
{
    burst_record((op_t *)data, rc, rc == ZOK);
}

static int burst_wait(int n, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    pthread_mutex_lock(&burst.mu);
    while (burst.done < n && mono_ms() < deadline) {
        pthread_mutex_unlock(&burst.mu);
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&burst.mu);
    }
    int done = burst.done;
    pthread_mutex_unlock(&burst.mu);
    return done;
}

static void burst_reset(void)
{
    pthread_mutex_lock(&burst.mu);
    burst.done = 0;
    burst.first_out_of_order = burst.out_of_order_at = -1;
    pthread_mutex_unlock(&burst.mu);
}

static void burst_verify(op_t *ops, int n, const char *what)
{
    int done = burst_wait(n, 60000);
    CHECK(done == n, "%s: only %d of %d completions within 60 s", what, done, n);
    pthread_mutex_lock(&burst.mu);
    int bad = burst.first_out_of_order, at = burst.out_of_order_at;
    pthread_mutex_unlock(&burst.mu);
    CHECK(bad < 0, "%s: completion of request #%d ran as #%d (out of submission order)", what, bad,
          at);
    for (int i = 0; i < n; i++)
        CHECK(ops[i].rc == ZOK && ops[i].value_ok, "%s: request #%d (%s node %d): rc %s, result %s",
              what, i, ops[i].is_get ? "get" : "create/delete", ops[i].index, zerror(ops[i].rc),
              ops[i].value_ok ? "ok" : "wrong");
}

static void test_async_burst(void)
{
    sub(burst_dir, sizeof burst_dir, "burst");
    EXPECT_RC(zoo_create(g_zh, burst_dir, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0),
              ZOK, "zoo_create burst dir");
    op_t *ops = calloc(2 * BURST, sizeof *ops);
    CHECK(ops, "calloc");

    /* create i, then immediately get i: FIFO order per session means every
     * get sees the create submitted just before it. */
    burst_reset();
    int64_t t0 = mono_ms();
    for (int i = 0; i < BURST; i++) {
        char path[600], val[32];
        snprintf(path, sizeof path, "%s/n-%04d", burst_dir, i);
        burst_value(i, val, sizeof val);
        op_t *c = &ops[2 * i], *g = &ops[2 * i + 1];
        *c = (op_t){.seq = 2 * i, .index = i, .is_get = false, .rc = -1};
        *g = (op_t){.seq = 2 * i + 1, .index = i, .is_get = true, .rc = -1};
        EXPECT_RC(zoo_acreate(g_zh, path, val, (int)strlen(val), &ZOO_OPEN_ACL_UNSAFE,
                              ZOO_PERSISTENT, create_done, c),
                  ZOK, "zoo_acreate submit");
        EXPECT_RC(zoo_aget(g_zh, path, 0, get_done, g), ZOK, "zoo_aget submit");
    }
    burst_verify(ops, 2 * BURST, "acreate/aget burst");
    ok("%d zoo_acreate + %d zoo_aget: all ZOK, completions in submission order (%" PRId64 " ms)",
       BURST, BURST, mono_ms() - t0);

    struct Stat st;
    EXPECT_RC(zoo_exists(g_zh, burst_dir, 0, &st), ZOK, "zoo_exists burst dir");
    CHECK(st.numChildren == BURST && st.cversion == BURST, "burst dir: numChildren %d cversion %d",
          st.numChildren, st.cversion);
    ok("burst dir has %d children", BURST);

    burst_reset();
    for (int i = 0; i < BURST; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/n-%04d", burst_dir, i);
        ops[i] = (op_t){.seq = i, .index = i, .is_get = false, .rc = -1};
        EXPECT_RC(zoo_adelete(g_zh, path, 0, delete_done, &ops[i]), ZOK, "zoo_adelete submit");
    }
    burst_verify(ops, BURST, "adelete burst");
    EXPECT_RC(zoo_exists(g_zh, burst_dir, 0, &st), ZOK, "zoo_exists burst dir");
    CHECK(st.numChildren == 0 && st.cversion == 2 * BURST, "after deletes: numChildren %d cversion %d",
          st.numChildren, st.cversion);
    ok("%d zoo_adelete: all ZOK, in order; parent cversion %d", BURST, 2 * BURST);
    free(ops);
}

/* ---- sessions ---- */

static void retry_exists(zhandle_t *zh, const char *path, struct Stat *st, const char *what)
{
    int64_t deadline = mono_ms() + CONNECT_TIMEOUT_MS;
    int rc;
    while ((rc = zoo_exists(zh, path, 0, st)) == ZCONNECTIONLOSS && mono_ms() < deadline) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    EXPECT_RC(rc, ZOK, what);
}

static void test_sessions(void)
{
    char addr[64], eph[512], eph2[512];
    struct Stat st;
    proxy_start();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", px.port);

    /* 1. the connection drops; the client reconnects to the same session */
    watch_ctx w;
    zhandle_t *zh = connect_handle(addr, &w, SESSION_TIMEOUT_MS, NULL);
    clientid_t cid = *zoo_client_id(zh);
    sub(eph, sizeof eph, "session-eph");
    EXPECT_RC(zoo_create(zh, eph, "s", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0), ZOK,
              "zoo_create ephemeral via proxy");
    int connecting = watch_get(&w, &w.n_connecting), connected = watch_get(&w, &w.n_connected);
    int accepted = proxy_accepted();
    proxy_drop_all();
    CHECK(watch_wait(&w, &w.n_connecting, connecting + 1, 10000),
          "no ZOO_CONNECTING_STATE after the connection was cut");
    CHECK(watch_wait(&w, &w.n_connected, connected + 1, CONNECT_TIMEOUT_MS),
          "did not reconnect within %d ms", CONNECT_TIMEOUT_MS);
    CHECK(proxy_accepted() > accepted, "reconnected without going through the proxy?");
    CHECK(watch_get(&w, &w.n_expired) == 0, "session expired on reconnect");
    const clientid_t *now = zoo_client_id(zh);
    CHECK(now->client_id == cid.client_id && memcmp(now->passwd, cid.passwd, 16) == 0,
          "session changed on reconnect: 0x%" PRIx64 " -> 0x%" PRIx64, (uint64_t)cid.client_id,
          (uint64_t)now->client_id);
    EXPECT_RC(zoo_exists(g_zh, eph, 0, &st), ZOK, "ephemeral after reconnect");
    CHECK(st.ephemeralOwner == cid.client_id, "ephemeral owner changed");
    EXPECT_RC(zoo_set(zh, eph, "t", 1, 0), ZOK, "zoo_set after reconnect");
    ok("connection cut: CONNECTING -> CONNECTED, same session, ephemeral kept");

    /* 2. the client is cut off; another handle resumes its session */
    proxy_refuse(true);
    connecting = watch_get(&w, &w.n_connecting);
    proxy_drop_all();
    CHECK(watch_wait(&w, &w.n_connecting, connecting + 1, 10000),
          "no ZOO_CONNECTING_STATE after the connection was cut");
    watch_ctx w2;
    zhandle_t *zh2 = connect_handle(g_server, &w2, SESSION_TIMEOUT_MS, &cid);
    now = zoo_client_id(zh2);
    CHECK(now->client_id == cid.client_id, "resume by client id: got session 0x%" PRIx64
          ", want 0x%" PRIx64, (uint64_t)now->client_id, (uint64_t)cid.client_id);
    EXPECT_RC(zoo_exists(zh2, eph, 0, &st), ZOK, "ephemeral via resumed handle");
    CHECK(st.ephemeralOwner == cid.client_id, "ephemeral owner");
    sub(eph2, sizeof eph2, "session-eph2");
    EXPECT_RC(zoo_create(zh2, eph2, "s", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0), ZOK,
              "zoo_create ephemeral via resumed handle");
    EXPECT_RC(zoo_exists(g_zh, eph2, 0, &st), ZOK, "zoo_exists eph2");
    CHECK(st.ephemeralOwner == cid.client_id, "eph2 owner");
    ok("zookeeper_init with the client id resumes the session (0x%" PRIx64 ")",
       (uint64_t)cid.client_id);

    /* 3. a wrong password is refused with an expired-session event */
    clientid_t bad = cid;
    for (int i = 0; i < 16; i++)
        bad.passwd[i] = (char)~bad.passwd[i];
    watch_ctx w3;
    zhandle_t *zh3 = open_handle(g_server, &w3, SESSION_TIMEOUT_MS, &bad);
    CHECK(watch_wait(&w3, &w3.n_expired, 1, CONNECT_TIMEOUT_MS),
          "wrong password: no ZOO_EXPIRED_SESSION_STATE (state %d)", zoo_state(zh3));
    CHECK(zoo_state(zh3) == ZOO_EXPIRED_SESSION_STATE, "state %d", zoo_state(zh3));
    CHECK(watch_get(&w3, &w3.n_connected) == 0, "wrong password: connected anyway");
    zookeeper_close(zh3);
    watch_destroy(&w3);
    retry_exists(zh2, eph, &st, "session still usable after a wrong-password attempt");
    CHECK(st.ephemeralOwner == cid.client_id, "ephemeral owner");
    ok("resume with a wrong password -> ZOO_EXPIRED_SESSION_STATE; session unharmed");

    /* 4. closing the session removes its ephemerals at once */
    EXPECT_RC(zookeeper_close(zh2), ZOK, "zookeeper_close resumed handle");
    watch_destroy(&w2);
    EXPECT_RC(zoo_exists(g_zh, eph, 0, &st), ZNONODE, "ephemeral after session close");
    EXPECT_RC(zoo_exists(g_zh, eph2, 0, &st), ZNONODE, "eph2 after session close");
    ok("zookeeper_close deletes the session's ephemerals before it returns");

    /* 5. the original handle comes back to a closed session: expired */
    proxy_refuse(false);
    CHECK(watch_wait(&w, &w.n_expired, 1, CONNECT_TIMEOUT_MS),
          "original handle: no ZOO_EXPIRED_SESSION_STATE (state %d)", zoo_state(zh));
    CHECK(zoo_state(zh) == ZOO_EXPIRED_SESSION_STATE, "state %d", zoo_state(zh));
    EXPECT_RC(zoo_exists(zh, eph, 0, &st), ZINVALIDSTATE, "zoo_exists on an expired handle");
    zookeeper_close(zh);
    watch_destroy(&w);
    ok("the cut-off handle reconnects to a closed session -> ZOO_EXPIRED_SESSION_STATE");
    proxy_stop();
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s host:port\n", argv[0]);
        return 2;
    }
    g_server = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    g_zklog = tmpfile();
    zoo_set_debug_level(getenv("ZKC_DEBUG") ? ZOO_LOG_LEVEL_DEBUG : ZOO_LOG_LEVEL_WARN);
    zoo_set_log_stream(g_zklog ? g_zklog : stderr);
    int64_t t0 = mono_ms();

    test_connect();
    test_timeout_clamping();
    test_create();
    test_ephemeral_and_sequence();
    test_get_set_versions();
    test_exists();
    test_children();
    test_delete();
    test_async_burst();
    test_sessions();

    remove_tree(g_zh, g_root);
    struct Stat st;
    EXPECT_RC(zoo_exists(g_zh, g_root, 0, &st), ZNONODE, "root after cleanup");
    ok("cleanup: %s removed", g_root);
    EXPECT_RC(zookeeper_close(g_zh), ZOK, "zookeeper_close");
    g_zh = NULL;
    ok("zookeeper_close");
    printf("zkc_test: all %d checks passed in %" PRId64 " ms\n", g_checks, mono_ms() - t0);
    if (g_zklog)
        fclose(g_zklog);
    return 0;
}
