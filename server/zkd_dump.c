/*
 * zkd_dump.c - bin/zkd-dump: prints ZooKeeper txn logs and snapshots
 * readably, the tool to reach for when something went wrong on disk.
 *
 *   zkd-dump FILE...        a log.<zxid> or snapshot.<zxid> (told apart by
 *                           the magic at offset 0, not by the name)
 *   zkd-dump DIR...         every snapshot.* and log.* in DIR (or in
 *                           DIR/version-2), in zxid order
 *
 * A txn log prints one txn per line, in file order:
 *
 *   zxid=0x5 time=2026-11-22T01:02:03.456Z session=0x1000a2b3c4d0000 cxid=0x3 type=create path=/app
 *       dataLength=6 data="config" acl=world:anyone:cdrwa ephemeral=false parentCVersion=1 offset=213
 *
 * (one line; wrapped here), with the fields of its type: version for
 * setData/setACL/check, ttl for createTTL, timeout for createSession, the
 * ephemerals to delete for closeSession, err for error; a multi prints
 * ops=N and then one indented "  op[i] type=... path=..." line per op.
 * offset is where the record starts, the number recovery messages name.
 *
 * A snapshot prints its header, one "session=" line per session, one
 * "acl=" line per ACL map entry, then one "path=" line per node in file
 * order (persisted stat: czxid, mzxid, pzxid, ctime, mtime, version,
 * cversion, aversion, ephemeralOwner, dataLength, ACL id, data).
 *
 * Lines starting with '#' are about the file (header, counts, where the
 * records end). A file that is damaged (bad checksum, torn record, short
 * snapshot, wrong magic) prints what came before the damage, then a message
 * naming the file and the byte offset on stderr, and zkd-dump exits 1.
 * Exit 0 = every file read clean; 2 = usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/jute.h"
#include "net/records.h"
#include "storage/datadir.h"
#include "storage/logreader.h"
#include "storage/snapreader.h"
#include "storage/snapshot.h"
#include "storage/tree.h"
#include "storage/txnlog.h"

#define DATA_PREVIEW 40             /* bytes of data shown */

static const char *prog = "zkd-dump";

static void usage(FILE *f)
{
	fprintf(f, "usage: %s [-h] FILE|DIR...\n"
		   "  Prints ZooKeeper txn log and snapshot files readably: a log one txn per line,\n"
		   "  a snapshot its sessions, ACLs and one node per line. A directory (a dataDir,\n"
		   "  dataLogDir or their version-2) dumps every snapshot.* and log.* in zxid order.\n"
		   "  Exits 1 if any file is damaged (the message names the file and the offset).\n", prog);
}

/* ---- field formatting ------------------------------------------------------ */

static void print_time(int64_t ms)
{
	int64_t sec = ms / 1000;
	int frac = (int)(ms % 1000);
	if (frac < 0) {                 /* before 1970: floor, never overflows */
		frac += 1000;
		sec--;
	}
	time_t s = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&s, &tm) || tm.tm_year > 9999 - 1900 || tm.tm_year < -1900) {
		printf("%" PRId64, ms);
		return;
	}
	printf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	       tm.tm_min, tm.tm_sec, frac);
}

/* data="text" (escaped), data=0xhex, data=null; "..." when cut. */
static void print_data(const uint8_t *p, int32_t len)
{
	if (len < 0 || (!p && len > 0)) {
		fputs("null", stdout);
		return;
	}
	size_t n = (size_t)len < DATA_PREVIEW ? (size_t)len : DATA_PREVIEW;
	bool text = true;
	for (size_t i = 0; i < n && text; i++)
		text = (p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\n' || p[i] == '\t' || p[i] == '\r';
	if (text) {
		putchar('"');
		for (size_t i = 0; i < n; i++) {
			switch (p[i]) {
			case '"': fputs("\\\"", stdout); break;
			case '\\': fputs("\\\\", stdout); break;
			case '\n': fputs("\\n", stdout); break;
			case '\t': fputs("\\t", stdout); break;
			case '\r': fputs("\\r", stdout); break;
			default: putchar(p[i]);
			}
		}
		putchar('"');
	} else {
		fputs("0x", stdout);
		for (size_t i = 0; i < n; i++)
			printf("%02x", p[i]);
	}
	if (n < (size_t)len)
		fputs("...", stdout);
}

static void print_data_field(const uint8_t *p, int32_t len)
{
	if (len < 0) {
		fputs(" data=null", stdout);
		return;
	}
	printf(" dataLength=%d data=", len);
	print_data(p, len);
}

/* zkCli's letters: c=CREATE d=DELETE r=READ w=WRITE a=ADMIN */
static void print_perms(int32_t perms)
{
	static const struct { int32_t bit; char c; } letters[] = {
		{ 4, 'c' }, { 8, 'd' }, { 1, 'r' }, { 2, 'w' }, { 16, 'a' },
	};
	bool any = false;
	for (size_t i = 0; i < sizeof letters / sizeof letters[0]; i++)
		if (perms & letters[i].bit) {
			putchar(letters[i].c);
			any = true;
		}
	int32_t rest = perms & ~31;
	if (rest || !any)
		printf("%s0x%x", any ? "+" : "", (unsigned)rest);
}

/* scheme:id:perms,... of a jute vector<ACL> (count included). */
static void print_acl(const uint8_t *p, size_t len)
{
	struct jute_reader r;
	jute_reader_init(&r, p, len, len);
	struct rec_acl_vec v;
	if (!p || rec_read_acl_vector(&r, &v) != 0) {
		fputs("(unreadable)", stdout);
		return;
	}
	if (v.count < 0) {
		fputs("null", stdout);
		return;
	}
	if (v.count == 0) {
		fputs("[]", stdout);
		return;
	}
	size_t pos = 0;
	struct rec_acl a;
	for (int i = 0; rec_acl_next(&v, &pos, &a); i++) {
		printf("%s%.*s:%.*s:", i ? "," : "", a.scheme.len > 0 ? a.scheme.len : 0,
		       a.scheme.data ? (const char *)a.scheme.data : "", a.id.len > 0 ? a.id.len : 0,
		       a.id.data ? (const char *)a.id.data : "");
		print_perms(a.perms);
	}
}

/* Request.op2String */
static const char *type_name(int32_t type)
{
	switch (type) {
	case ZOP_CREATE: return "create";
	case ZOP_CREATE2: return "create2";
	case ZOP_CREATECONTAINER: return "createContainer";
	case ZOP_CREATETTL: return "createTTL";
	case ZOP_DELETE: return "delete";
	case ZOP_DELETECONTAINER: return "deleteContainer";
	case ZOP_SETDATA: return "setData";
	case ZOP_SETACL: return "setACL";
	case ZOP_CHECK: return "check";
	case ZOP_MULTI: return "multi";
	case ZOP_RECONFIG: return "reconfig";
	case ZOP_CREATESESSION: return "createSession";
	case ZOP_CLOSE: return "closeSession";
	case ZOP_ERROR: return "error";
	default: return NULL;
	}
}

/* KeeperException.Code */
static const char *code_name(int32_t err)
{
	switch (err) {
	case 0: return "OK";
	case -1: return "SYSTEMERROR";
	case -2: return "RUNTIMEINCONSISTENCY";
	case -3: return "DATAINCONSISTENCY";
	case -4: return "CONNECTIONLOSS";
	case -5: return "MARSHALLINGERROR";
	case -6: return "UNIMPLEMENTED";
	case -7: return "OPERATIONTIMEOUT";
	case -8: return "BADARGUMENTS";
	case -13: return "NEWCONFIGNOQUORUM";
	case -14: return "RECONFIGINPROGRESS";
	case -100: return "APIERROR";
	case -101: return "NONODE";
	case -102: return "NOAUTH";
	case -103: return "BADVERSION";
	case -108: return "NOCHILDRENFOREPHEMERALS";
	case -110: return "NODEEXISTS";
	case -111: return "NOTEMPTY";
	case -112: return "SESSIONEXPIRED";
	case -113: return "INVALIDCALLBACK";
	case -114: return "INVALIDACL";
	case -115: return "AUTHFAILED";
	case -118: return "SESSIONMOVED";
	case -119: return "NOTREADONLY";
	case -120: return "EPHEMERALONLOCALSESSION";
	case -121: return "NOWATCHER";
	case -122: return "REQUESTTIMEOUT";
	case -123: return "RECONFIGDISABLED";
	case -124: return "SESSIONCLOSEDREQUIRESASLAUTH";
	case -125: return "QUOTAEXCEEDED";
	case -127: return "THROTTLEDOP";
	default: return "?";
	}
}

static void print_owner(int64_t owner)
{
	printf("0x%" PRIx64, (uint64_t)owner);
	if (owner == ZK_CONTAINER_OWNER)
		fputs("(container)", stdout);
	else if ((owner & ZK_TTL_MASK) == ZK_TTL_PREFIX)
		printf("(ttl=%" PRId64 ")", owner & ZK_TTL_MAX);
}

/* The fields of one txn record after its type (a top-level txn or an op). */
static void print_txn_body(const struct ztxn *t)
{
	int32_t shown = t->op ? t->op : t->type;
	const char *name = type_name(shown);
	if (name)
		printf("type=%s", name);
	else
		printf("type=%d", shown);
	if (t->path && t->type != ZOP_CREATESESSION && t->type != ZOP_CLOSE && t->type != ZOP_ERROR)
		printf(" path=%s", t->path);
	switch (t->type) {
	case ZOP_CREATE:
	case ZOP_CREATECONTAINER:
	case ZOP_CREATETTL:
		print_data_field(t->data, t->data_len);
		fputs(" acl=", stdout);
		print_acl(t->acl, t->acl_len);
		if (t->type == ZOP_CREATETTL)
			printf(" ttl=%" PRId64, t->ephemeral_owner & ZK_TTL_MAX);
		else if (t->type == ZOP_CREATE)
			printf(" ephemeral=%s", t->ephemeral_owner ? "true" : "false");
		if (t->parent_cversion == -1)
			fputs(" parentCVersion=(not logged)", stdout);
		else
			printf(" parentCVersion=%d", t->parent_cversion);
		break;
	case ZOP_SETDATA:
	case ZOP_RECONFIG:
		printf(" version=%d", t->version);
		print_data_field(t->data, t->data_len);
		break;
	case ZOP_SETACL:
		printf(" version=%d acl=", t->version);
		print_acl(t->acl, t->acl_len);
		break;
	case ZOP_CHECK:
		printf(" version=%d", t->version);
		break;
	case ZOP_CREATESESSION:
		printf(" timeout=%d", t->timeout);
		break;
	case ZOP_CLOSE:
		if (t->n_close_paths < 0) {
			fputs(" paths2Delete=(not logged)", stdout);
		} else {
			fputs(" paths2Delete=[", stdout);
			for (int i = 0; i < t->n_close_paths; i++)
				printf("%s%s", i ? "," : "", t->close_paths[i]);
			putchar(']');
		}
		break;
	case ZOP_ERROR:
		printf(" err=%d(%s)", t->err, code_name(t->err));
		break;
	case ZOP_MULTI:
		printf(" ops=%d", t->n_sub);
		break;
	default:
		break;
	}
}

/* ---- txn logs ------------------------------------------------------------ */

static int dump_log(const char *path)
{
	struct logreader r;
	char err[512];
	if (logreader_open(&r, path, err, sizeof err) != 0) {
		fflush(stdout);
		fprintf(stderr, "%s: %s\n", prog, err);
		return 1;
	}
	printf("# txn log %s: magic ZKLG, version %d, dbid %" PRId64 ", %zu bytes\n", path, r.version, r.dbid,
	       r.size);
	struct logreader_rec rec;
	int rc;
	int64_t first = -1, last = -1;
	while ((rc = logreader_next(&r, &rec, err, sizeof err)) == 1) {
		const struct ztxn *t = &rec.txn;
		if (first < 0)
			first = t->zxid;
		last = t->zxid;
		printf("zxid=0x%" PRIx64 " time=", (uint64_t)t->zxid);
		print_time(t->time);
		printf(" session=0x%" PRIx64 " cxid=0x%x ", (uint64_t)t->session_id, (unsigned)t->cxid);
		print_txn_body(t);
		printf(" offset=%zu\n", rec.offset);
		for (int i = 0; t->type == ZOP_MULTI && i < t->n_sub; i++) {
			printf("  op[%d] ", i);
			print_txn_body(&t->sub[i]);
			putchar('\n');
		}
		ztxn_clear(&rec.txn);
	}
	int status = 0;
	if (rc == 0) {
		size_t zeros = r.size - r.off;
		printf("# end of the records at offset %zu: %ld txn(s)", r.off, r.records);
		if (r.records)
			printf(", zxid 0x%" PRIx64 "..0x%" PRIx64, (uint64_t)first, (uint64_t)last);
		if (zeros)
			printf("; %zu preallocated zero byte(s) follow", zeros);
		putchar('\n');
	} else {
		printf("# %ld txn(s) before the bad record", r.records);
		if (r.records)
			printf(", zxid 0x%" PRIx64 "..0x%" PRIx64, (uint64_t)first, (uint64_t)last);
		putchar('\n');
		fflush(stdout);
		if (r.next_intact != SIZE_MAX)
			fprintf(stderr, "%s: %s: %s; intact records follow it (the first at offset %zu): the log is "
				"corrupt, not torn, and zkd refuses to start from it\n", prog, path, err, r.next_intact);
		else
			fprintf(stderr, "%s: %s: %s; nothing intact follows: a torn tail (zkd cuts the newest log "
				"there at start)\n", prog, path, err);
		status = 1;
	}
	logreader_close(&r);
	return status;
}

/* ---- snapshots ----------------------------------------------------------- */

struct snapdump {
	const char *path;
	long sessions, acls, nodes;
	bool sessions_head, acls_head, nodes_head;
	int64_t max_zxid;
};

static void s_header(void *arg, int32_t magic, int32_t version, int64_t dbid, size_t size)
{
	struct snapdump *d = arg;
	(void)magic;
	printf("# snapshot %s: magic ZKSN, version %d, dbid %" PRId64 ", %zu bytes\n", d->path, version, dbid, size);
}

static void s_session(void *arg, int64_t id, int32_t timeout)
{
	struct snapdump *d = arg;
	if (!d->sessions_head) {
		puts("# sessions");
		d->sessions_head = true;
	}
	printf("session=0x%" PRIx64 " timeout=%d\n", (uint64_t)id, timeout);
	d->sessions++;
}

static void s_acl(void *arg, int64_t id, const uint8_t *acl, size_t len)
{
	struct snapdump *d = arg;
	if (!d->acls_head) {
		puts("# ACL map");
		d->acls_head = true;
	}
	printf("acl=%" PRId64 " ", id);
	print_acl(acl, len);
	putchar('\n');
	d->acls++;
}

static void s_node(void *arg, const struct snapreader_node *n)
{
	struct snapdump *d = arg;
	if (!d->nodes_head) {
		puts("# nodes");
		d->nodes_head = true;
	}
	const struct zk_stat *s = &n->stat;
	printf("path=%.*s czxid=0x%" PRIx64 " mzxid=0x%" PRIx64 " pzxid=0x%" PRIx64 " ctime=", (int)n->path_len,
	       n->path, (uint64_t)s->czxid, (uint64_t)s->mzxid, (uint64_t)s->pzxid);
	print_time(s->ctime);
	fputs(" mtime=", stdout);
	print_time(s->mtime);
	printf(" version=%d cversion=%d aversion=%d ephemeralOwner=", s->version, s->cversion, s->aversion);
	print_owner(s->ephemeral_owner);
	printf(" dataLength=%d acl=%" PRId64 " data=", n->data_len < 0 ? 0 : n->data_len, n->acl_id);
	print_data(n->data, n->data_len);
	putchar('\n');
	d->nodes++;
	if (s->mzxid > d->max_zxid)
		d->max_zxid = s->mzxid;
	if (s->pzxid > d->max_zxid)
		d->max_zxid = s->pzxid;
}

static void s_sealed(void *arg, size_t offset, uint32_t checksum)
{
	struct snapdump *d = arg;
	printf("# %ld session(s), %ld ACL(s), %ld node(s) (highest zxid in them 0x%" PRIx64 "); checksum 0x%08x "
	       "at offset %zu: ok\n", d->sessions, d->acls, d->nodes, (uint64_t)d->max_zxid, checksum, offset);
}

static void s_digest(void *arg, int64_t zxid, int32_t version, int64_t digest)
{
	(void)arg;
	printf("# digest: zxid=0x%" PRIx64 " version=%d digest=0x%" PRIx64 "%s; seal ok\n", (uint64_t)zxid, version,
	       (uint64_t)digest, zxid == 0 && digest == 0 ? " (none recorded)" : "");
}

static int dump_snapshot(const char *path)
{
	struct snapdump d = { .path = path };
	struct snapreader_cb cb = { s_header, s_session, s_acl, s_node, s_sealed, s_digest };
	char err[512];
	if (snapreader_walk(path, &cb, &d, err, sizeof err) != 0) {
		printf("# %ld session(s), %ld ACL(s), %ld node(s) before the damage\n", d.sessions, d.acls, d.nodes);
		fflush(stdout);
		fprintf(stderr, "%s: %s; ZooKeeper and zkd skip this snapshot and start from an older one\n", prog,
			err);
		return 1;
	}
	return 0;
}

/* ---- files and directories ----------------------------------------------- */

static int dump_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fflush(stdout);
		fprintf(stderr, "%s: %s: cannot open: %s\n", prog, path, strerror(errno));
		return 1;
	}
	uint8_t head[4];
	ssize_t n = read(fd, head, sizeof head);
	close(fd);
	if (n < 0) {
		fflush(stdout);
		fprintf(stderr, "%s: %s: cannot read: %s\n", prog, path, strerror(errno));
		return 1;
	}
	if (n < 4) {
		fflush(stdout);
		fprintf(stderr, "%s: %s: only %zd byte(s): not a txn log or a snapshot (no magic at offset 0)\n", prog,
			path, n);
		return 1;
	}
	uint32_t magic = jute_get_u32(head);
	if (magic == TXNLOG_MAGIC)
		return dump_log(path);
	if (magic == SNAP_MAGIC)
		return dump_snapshot(path);
	fflush(stdout);
	if (head[0] == 0x1f && head[1] == 0x8b)
		fprintf(stderr, "%s: %s: a gzip-compressed snapshot; zkd-dump reads uncompressed ones only "
			"(gunzip it first)\n", prog, path);
	else if (!memcmp(head, "\x82SNAPPY", 4))
		fprintf(stderr, "%s: %s: a snappy-compressed snapshot; zkd-dump reads uncompressed ones only\n", prog,
			path);
	else if (magic == 0)
		fprintf(stderr, "%s: %s: zeros at offset 0: the file header was never written\n", prog, path);
	else
		fprintf(stderr, "%s: %s: magic 0x%08x at offset 0 is neither a txn log (0x%08x \"ZKLG\") nor a "
			"snapshot (0x%08x \"ZKSN\")\n", prog, path, magic, TXNLOG_MAGIC, SNAP_MAGIC);
	return 1;
}

struct entry {
	int64_t zxid;
	bool is_log;
	char name[DATADIR_NAME_MAX];
};

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->zxid != y->zxid)
		return x->zxid < y->zxid ? -1 : 1;
	return (int)y->is_log - (int)x->is_log;   /* log.N before snapshot.N */
}

static int dump_dir(const char *dir)
{
	char err[512];
	char *vdir = datadir_path(dir, DATADIR_VERSION);
	struct stat st;
	if (stat(vdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		free(vdir);
		vdir = strdup(dir);
		if (!vdir)
			abort();
	}
	struct dd_file *logs = NULL, *snaps = NULL;
	int nl = datadir_list(vdir, "log", true, &logs, err, sizeof err);
	int ns = nl < 0 ? -1 : datadir_list(vdir, "snapshot", true, &snaps, err, sizeof err);
	int status = 0;
	if (nl < 0 || ns < 0) {
		fflush(stdout);
		fprintf(stderr, "%s: %s: %s\n", prog, vdir, err);
		status = 1;
		goto out;
	}
	if (nl + ns == 0) {
		fflush(stdout);
		fprintf(stderr, "%s: %s: no log.* or snapshot.* files\n", prog, vdir);
		status = 1;
		goto out;
	}
	struct entry *v = calloc((size_t)(nl + ns), sizeof *v);
	if (!v)
		abort();
	for (int i = 0; i < nl; i++) {
		v[i] = (struct entry){ logs[i].zxid, true, "" };
		snprintf(v[i].name, sizeof v[i].name, "%s", logs[i].name);
	}
	for (int i = 0; i < ns; i++) {
		v[nl + i] = (struct entry){ snaps[i].zxid, false, "" };
		snprintf(v[nl + i].name, sizeof v[nl + i].name, "%s", snaps[i].name);
	}
	qsort(v, (size_t)(nl + ns), sizeof *v, cmp_entry);
	for (int i = 0; i < nl + ns; i++) {
		char *path = datadir_path(vdir, v[i].name);
		if (i)
			putchar('\n');
		if (dump_file(path) != 0)
			status = 1;
		free(path);
	}
	free(v);
out:
	free(logs);
	free(snaps);
	free(vdir);
	return status;
}

int main(int argc, char **argv)
{
	int first = 1;
	for (; first < argc && argv[first][0] == '-' && argv[first][1]; first++) {
		if (!strcmp(argv[first], "-h") || !strcmp(argv[first], "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[first], "--")) {
			first++;
			break;
		}
		fprintf(stderr, "%s: unknown option %s\n", prog, argv[first]);
		usage(stderr);
		return 2;
	}
	if (first >= argc) {
		usage(stderr);
		return 2;
	}
	int status = 0;
	for (int i = first; i < argc; i++) {
		if (i > first)
			putchar('\n');
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			status |= dump_dir(argv[i]);
		else
			status |= dump_file(argv[i]);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: writing the output failed: %s\n", prog, strerror(errno));
		return 1;
	}
	return status;
}
