/*
 * records.c - ZooKeeper's client-port records on top of the jute codec.
 *
 * Design: each decoder is the record's field list from zookeeper.jute, read
 * top to bottom with the sticky-error reader, and one check at the end. The
 * decoders themselves never compare lengths: jute.c does every bound, so
 * there is exactly one place where a wire length can go wrong.
 *
 * Decoders are faithful to jute rather than to ZooKeeper's semantics: a null
 * path, a null password or a null element in a vector<ustring> decodes fine
 * ({NULL, -1}), exactly as Java's BinaryInputArchive returns null for them.
 * What a null means (usually "bad arguments") is the server's decision, made
 * where paths are validated.
 *
 * Vectors of ACLs and strings are not unpacked into arrays. They are walked
 * once when read, to check every element and find where the vector ends, and
 * kept as the raw span they arrived in: that needs no allocation, and the
 * data tree stores ACLs in exactly this encoding. The iterators re-read that
 * span through a jute_reader of their own, so even a span that never went
 * through the validator (say, one read back from a corrupt snapshot) cannot
 * make them read out of bounds; they just stop.
 */
#include "records.h"

#include <string.h>

/* Smallest encodings of one element: an ACL is an int and two null strings,
 * a ustring is a null length. They bound how many elements a count may claim. */
#define ACL_MIN_SIZE 12
#define USTRING_MIN_SIZE 4

const char *zk_err_name(int err)
{
	switch (err) {
	case ZOK: return "OK";
	case ZSYSTEMERROR: return "SystemError";
	case ZRUNTIMEINCONSISTENCY: return "RuntimeInconsistency";
	case ZDATAINCONSISTENCY: return "DataInconsistency";
	case ZCONNECTIONLOSS: return "ConnectionLoss";
	case ZMARSHALLINGERROR: return "MarshallingError";
	case ZUNIMPLEMENTED: return "Unimplemented";
	case ZOPERATIONTIMEOUT: return "OperationTimeout";
	case ZBADARGUMENTS: return "BadArguments";
	case ZUNKNOWNSESSION: return "UnknownSession";
	case ZNEWCONFIGNOQUORUM: return "NewConfigNoQuorum";
	case ZRECONFIGINPROGRESS: return "ReconfigInProgress";
	case ZAPIERROR: return "APIError";
	case ZNONODE: return "NoNode";
	case ZNOAUTH: return "NoAuth";
	case ZBADVERSION: return "BadVersion";
	case ZNOCHILDRENFOREPHEMERALS: return "NoChildrenForEphemerals";
	case ZNODEEXISTS: return "NodeExists";
	case ZNOTEMPTY: return "NotEmpty";
	case ZSESSIONEXPIRED: return "SessionExpired";
	case ZINVALIDCALLBACK: return "InvalidCallback";
	case ZINVALIDACL: return "InvalidACL";
	case ZAUTHFAILED: return "AuthFailed";
	case ZSESSIONMOVED: return "SessionMoved";
	case ZNOTREADONLY: return "NotReadOnly";
	case ZEPHEMERALONLOCALSESSION: return "EphemeralOnLocalSession";
	case ZNOWATCHER: return "NoWatcher";
	case ZRECONFIGDISABLED: return "ReconfigDisabled";
	case ZSESSIONCLOSEDREQUIRESASLAUTH: return "SessionClosedRequireSaslAuth";
	case ZQUOTAEXCEEDED: return "QuotaExceeded";
	case ZTHROTTLEDOP: return "ThrottledOp";
	default: return "Unknown";
	}
}

const char *zk_op_short_name(int op)
{
	switch (op) {
	case ZOP_PING: return "PING";
	case ZOP_CREATESESSION: return "SESS";
	case ZOP_MULTI: return "MULT";
	case ZOP_MULTIREAD: return "MLTR";
	case ZOP_CREATE: case ZOP_CREATE2: case ZOP_CREATETTL: case ZOP_CREATECONTAINER: return "CREA";
	case ZOP_DELETE: case ZOP_DELETECONTAINER: return "DELE";
	case ZOP_SETDATA: return "SETD";
	case ZOP_RECONFIG: return "RECO";
	case ZOP_SETACL: return "SETA";
	case ZOP_CLOSE: return "CLOS";
	case ZOP_SYNC: return "SYNC";
	case ZOP_CHECK: return "CHEC";
	case ZOP_EXISTS: return "EXIS";
	case ZOP_GETDATA: return "GETD";
	case ZOP_SETWATCHES: return "SETW";
	case ZOP_SETWATCHES2: return "STW2";
	case ZOP_ADDWATCH: return "ADDW";
	case ZOP_GETACL: return "GETA";
	case ZOP_GETCHILDREN: case ZOP_GETCHILDREN2: return "GETC";
	case ZOP_GETALLCHILDRENNUMBER: return "GETACN";
	case ZOP_CHECKWATCHES: return "CHKW";
	case ZOP_REMOVEWATCHES: return "REMW";
	case ZOP_WHOAMI: return "HOMI";
	case ZOP_GETEPHEMERALS: return "GETE";
	default: return "NA";
	}
}

const char *zk_op_name(int op)
{
	switch (op) {
	case ZOP_NOTIFICATION: return "notification";
	case ZOP_CREATE: return "create";
	case ZOP_DELETE: return "delete";
	case ZOP_EXISTS: return "exists";
	case ZOP_GETDATA: return "getData";
	case ZOP_SETDATA: return "setData";
	case ZOP_GETACL: return "getACL";
	case ZOP_SETACL: return "setACL";
	case ZOP_GETCHILDREN: return "getChildren";
	case ZOP_SYNC: return "sync";
	case ZOP_PING: return "ping";
	case ZOP_GETCHILDREN2: return "getChildren2";
	case ZOP_CHECK: return "check";
	case ZOP_MULTI: return "multi";
	case ZOP_CREATE2: return "create2";
	case ZOP_RECONFIG: return "reconfig";
	case ZOP_CHECKWATCHES: return "checkWatches";
	case ZOP_REMOVEWATCHES: return "removeWatches";
	case ZOP_CREATECONTAINER: return "createContainer";
	case ZOP_DELETECONTAINER: return "deleteContainer";
	case ZOP_CREATETTL: return "createTTL";
	case ZOP_MULTIREAD: return "multiRead";
	case ZOP_AUTH: return "auth";
	case ZOP_SETWATCHES: return "setWatches";
	case ZOP_SASL: return "sasl";
	case ZOP_GETEPHEMERALS: return "getEphemerals";
	case ZOP_GETALLCHILDRENNUMBER: return "getAllChildrenNumber";
	case ZOP_SETWATCHES2: return "setWatches2";
	case ZOP_ADDWATCH: return "addWatch";
	case ZOP_WHOAMI: return "whoAmI";
	case ZOP_CREATESESSION: return "createSession";
	case ZOP_CLOSE: return "closeSession";
	case ZOP_ERROR: return "error";
	default: return "unknown";
	}
}

/* The decoders' common ending: one check for the whole record. */
static int done(const struct jute_reader *r)
{
	return jute_ok(r) ? 0 : -1;
}

/* ---- decoders ---------------------------------------------------------- */

int rec_read_connect_req(struct jute_reader *r, struct rec_connect_req *out)
{
	out->protocol_version = jute_read_int(r);
	out->last_zxid_seen = jute_read_long(r);
	out->timeout = jute_read_int(r);
	out->session_id = jute_read_long(r);
	out->passwd = jute_read_buffer(r);
	/* Clients older than read-only mode (3.3 and before) end the record at
	 * the password; ZooKeeper takes the missing flag as false. */
	out->read_only = jute_ok(r) && jute_remaining(r) > 0 ? jute_read_bool(r) : false;
	return done(r);
}

int rec_read_connect_resp(struct jute_reader *r, struct rec_connect_resp *out)
{
	out->protocol_version = jute_read_int(r);
	out->timeout = jute_read_int(r);
	out->session_id = jute_read_long(r);
	struct jute_buf pw = jute_read_buffer(r);
	out->passwd = pw.data;
	out->passwd_len = pw.len;
	/* Old servers omit the flag too; ZooKeeper's own client tolerates it. */
	out->read_only = jute_ok(r) && jute_remaining(r) > 0 ? jute_read_bool(r) : false;
	return done(r);
}

int rec_read_request_header(struct jute_reader *r, struct rec_request_header *out)
{
	out->xid = jute_read_int(r);
	out->type = jute_read_int(r);
	return done(r);
}

int rec_read_reply_header(struct jute_reader *r, struct rec_reply_header *out)
{
	out->xid = jute_read_int(r);
	out->zxid = jute_read_long(r);
	out->err = jute_read_int(r);
	return done(r);
}

int rec_read_stat(struct jute_reader *r, struct zk_stat *out)
{
	out->czxid = jute_read_long(r);
	out->mzxid = jute_read_long(r);
	out->ctime = jute_read_long(r);
	out->mtime = jute_read_long(r);
	out->version = jute_read_int(r);
	out->cversion = jute_read_int(r);
	out->aversion = jute_read_int(r);
	out->ephemeral_owner = jute_read_long(r);
	out->data_length = jute_read_int(r);
	out->num_children = jute_read_int(r);
	out->pzxid = jute_read_long(r);
	return done(r);
}

static void read_acl(struct jute_reader *r, struct rec_acl *out)
{
	out->perms = jute_read_int(r);
	out->scheme = jute_read_buffer(r);
	out->id = jute_read_buffer(r);
}

int rec_read_acl_vector(struct jute_reader *r, struct rec_acl_vec *out)
{
	*out = (struct rec_acl_vec){ NULL, 0, 0 };
	int32_t count = jute_read_count(r, ACL_MIN_SIZE);
	if (!jute_ok(r))
		return -1;
	if (count == -1) {
		out->count = -1;
		return 0;
	}
	size_t start = r->off;
	for (int32_t i = 0; i < count && jute_ok(r); i++) {
		struct rec_acl acl;
		read_acl(r, &acl);
	}
	if (!jute_ok(r))
		return -1;
	out->p = r->p + start;
	out->len = r->off - start;
	out->count = count;
	return 0;
}

bool rec_acl_next(const struct rec_acl_vec *v, size_t *pos, struct rec_acl *out)
{
	if (!v->p || *pos >= v->len)
		return false;
	struct jute_reader r;
	jute_reader_init(&r, v->p, v->len, SIZE_MAX);
	r.off = *pos;
	read_acl(&r, out);
	if (!jute_ok(&r))
		return false;
	*pos = r.off;
	return true;
}

int rec_read_str_vector(struct jute_reader *r, struct rec_str_vec *out)
{
	*out = (struct rec_str_vec){ NULL, 0, 0 };
	int32_t count = jute_read_count(r, USTRING_MIN_SIZE);
	if (!jute_ok(r))
		return -1;
	if (count == -1) {
		out->count = -1;
		return 0;
	}
	size_t start = r->off;
	for (int32_t i = 0; i < count && jute_ok(r); i++)
		jute_read_buffer(r);
	if (!jute_ok(r))
		return -1;
	out->p = r->p + start;
	out->len = r->off - start;
	out->count = count;
	return 0;
}

bool rec_str_next(const struct rec_str_vec *v, size_t *pos, struct jute_buf *out)
{
	if (!v->p || *pos >= v->len)
		return false;
	struct jute_reader r;
	jute_reader_init(&r, v->p, v->len, SIZE_MAX);
	r.off = *pos;
	*out = jute_read_buffer(&r);
	if (!jute_ok(&r))
		return false;
	*pos = r.off;
	return true;
}

int rec_read_create_req(struct jute_reader *r, bool has_ttl, struct rec_create_req *out)
{
	out->path = jute_read_buffer(r);
	out->data = jute_read_buffer(r);
	if (rec_read_acl_vector(r, &out->acl) != 0)
		return -1;
	out->flags = jute_read_int(r);
	/* -1 is what ZooKeeper uses for "no TTL" on the other create ops. */
	out->ttl = has_ttl ? jute_read_long(r) : -1;
	return done(r);
}

int rec_read_path_version(struct jute_reader *r, struct rec_path_version *out)
{
	out->path = jute_read_buffer(r);
	out->version = jute_read_int(r);
	return done(r);
}

int rec_read_path_watch(struct jute_reader *r, struct rec_path_watch *out)
{
	out->path = jute_read_buffer(r);
	out->watch = jute_read_bool(r);
	return done(r);
}

int rec_read_set_data_req(struct jute_reader *r, struct rec_set_data_req *out)
{
	out->path = jute_read_buffer(r);
	out->data = jute_read_buffer(r);
	out->version = jute_read_int(r);
	return done(r);
}

int rec_read_set_acl_req(struct jute_reader *r, struct rec_set_acl_req *out)
{
	out->path = jute_read_buffer(r);
	if (rec_read_acl_vector(r, &out->acl) != 0)
		return -1;
	out->version = jute_read_int(r);
	return done(r);
}

int rec_read_path(struct jute_reader *r, struct rec_path *out)
{
	out->path = jute_read_buffer(r);
	return done(r);
}

int rec_read_path_mode(struct jute_reader *r, struct rec_path_mode *out)
{
	out->path = jute_read_buffer(r);
	out->mode = jute_read_int(r);
	return done(r);
}

int rec_read_auth_packet(struct jute_reader *r, struct rec_auth_packet *out)
{
	out->type = jute_read_int(r);
	out->scheme = jute_read_buffer(r);
	out->auth = jute_read_buffer(r);
	return done(r);
}

int rec_read_multi_header(struct jute_reader *r, struct rec_multi_header *out)
{
	out->type = jute_read_int(r);
	out->done = jute_read_bool(r);
	out->err = jute_read_int(r);
	return done(r);
}

int rec_read_set_watches(struct jute_reader *r, bool v2, struct rec_set_watches *out)
{
	memset(out, 0, sizeof *out);
	out->relative_zxid = jute_read_long(r);
	if (rec_read_str_vector(r, &out->data) != 0 ||
	    rec_read_str_vector(r, &out->exist) != 0 ||
	    rec_read_str_vector(r, &out->child) != 0)
		return -1;
	/* SetWatches (v1) has no persistent watches: they stay empty vectors. */
	if (v2 && (rec_read_str_vector(r, &out->persistent) != 0 ||
		   rec_read_str_vector(r, &out->persistent_recursive) != 0))
		return -1;
	return done(r);
}

int rec_read_watcher_event(struct jute_reader *r, struct rec_watcher_event *out)
{
	out->type = jute_read_int(r);
	out->state = jute_read_int(r);
	struct jute_buf path = jute_read_buffer(r);
	out->path = (const char *)path.data;
	out->path_len = path.len;
	return done(r);
}

/* ---- encoders ---------------------------------------------------------- */

void rec_write_connect_req(struct jute_writer *w, const struct rec_connect_req *v)
{
	jute_write_int(w, v->protocol_version);
	jute_write_long(w, v->last_zxid_seen);
	jute_write_int(w, v->timeout);
	jute_write_long(w, v->session_id);
	jute_write_buffer(w, v->passwd.data, v->passwd.len);
	jute_write_bool(w, v->read_only);
}

void rec_write_connect_resp(struct jute_writer *w, const struct rec_connect_resp *v)
{
	jute_write_int(w, v->protocol_version);
	jute_write_int(w, v->timeout);
	jute_write_long(w, v->session_id);
	jute_write_buffer(w, v->passwd, v->passwd_len);
	jute_write_bool(w, v->read_only);
}

void rec_write_request_header(struct jute_writer *w, const struct rec_request_header *v)
{
	jute_write_int(w, v->xid);
	jute_write_int(w, v->type);
}

void rec_write_reply_header(struct jute_writer *w, const struct rec_reply_header *v)
{
	jute_write_int(w, v->xid);
	jute_write_long(w, v->zxid);
	jute_write_int(w, v->err);
}

void rec_write_stat(struct jute_writer *w, const struct zk_stat *v)
{
	jute_write_long(w, v->czxid);
	jute_write_long(w, v->mzxid);
	jute_write_long(w, v->ctime);
	jute_write_long(w, v->mtime);
	jute_write_int(w, v->version);
	jute_write_int(w, v->cversion);
	jute_write_int(w, v->aversion);
	jute_write_long(w, v->ephemeral_owner);
	jute_write_int(w, v->data_length);
	jute_write_int(w, v->num_children);
	jute_write_long(w, v->pzxid);
}

void rec_write_acl(struct jute_writer *w, int32_t perms, const char *scheme, const char *id)
{
	jute_write_int(w, perms);
	jute_write_string(w, scheme);
	jute_write_string(w, id);
}

void rec_write_multi_header(struct jute_writer *w, const struct rec_multi_header *v)
{
	jute_write_int(w, v->type);
	jute_write_bool(w, v->done);
	jute_write_int(w, v->err);
}

void rec_write_watcher_event(struct jute_writer *w, int32_t type, int32_t state, const char *path, int32_t path_len)
{
	jute_write_int(w, type);
	jute_write_int(w, state);
	jute_write_buffer(w, path, path_len);
}
