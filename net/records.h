/*
 * records.h - ZooKeeper 3.8's client protocol: opcodes, error codes and the
 * jute records of zookeeper.jute that cross the client port.
 *
 * Decoders (rec_read_*) fill a struct of views into the frame (no copies):
 * every string/buffer is a struct jute_buf pointing into the reader's input.
 * They return 0, or -1 when the reader's sticky error is set (short input or
 * a length over the bound); the caller then closes the connection.
 * A decoder does not insist that the frame ends after the record: ZooKeeper
 * ignores trailing bytes, and so do we.
 *
 * Encoders (rec_write_*) append to a jute_writer.
 */
#ifndef ZKD_NET_RECORDS_H
#define ZKD_NET_RECORDS_H

#include "jute.h"

/* org.apache.zookeeper.ZooDefs.OpCode */
enum zk_op {
	ZOP_NOTIFICATION = 0,
	ZOP_CREATE = 1,
	ZOP_DELETE = 2,
	ZOP_EXISTS = 3,
	ZOP_GETDATA = 4,
	ZOP_SETDATA = 5,
	ZOP_GETACL = 6,
	ZOP_SETACL = 7,
	ZOP_GETCHILDREN = 8,
	ZOP_SYNC = 9,
	ZOP_PING = 11,
	ZOP_GETCHILDREN2 = 12,
	ZOP_CHECK = 13,
	ZOP_MULTI = 14,
	ZOP_CREATE2 = 15,
	ZOP_RECONFIG = 16,
	ZOP_CHECKWATCHES = 17,
	ZOP_REMOVEWATCHES = 18,
	ZOP_CREATECONTAINER = 19,
	ZOP_DELETECONTAINER = 20,
	ZOP_CREATETTL = 21,
	ZOP_MULTIREAD = 22,
	ZOP_AUTH = 100,
	ZOP_SETWATCHES = 101,
	ZOP_SASL = 102,
	ZOP_GETEPHEMERALS = 103,
	ZOP_GETALLCHILDRENNUMBER = 104,
	ZOP_SETWATCHES2 = 105,
	ZOP_ADDWATCH = 106,
	ZOP_WHOAMI = 107,
	ZOP_CREATESESSION = -10,
	ZOP_CLOSE = -11,
	ZOP_ERROR = -1,
};

/* org.apache.zookeeper.KeeperException.Code */
enum zk_err {
	ZOK = 0,
	ZSYSTEMERROR = -1,
	ZRUNTIMEINCONSISTENCY = -2,
	ZDATAINCONSISTENCY = -3,
	ZCONNECTIONLOSS = -4,
	ZMARSHALLINGERROR = -5,
	ZUNIMPLEMENTED = -6,
	ZOPERATIONTIMEOUT = -7,
	ZBADARGUMENTS = -8,
	ZNEWCONFIGNOQUORUM = -13,
	ZRECONFIGINPROGRESS = -14,
	ZUNKNOWNSESSION = -12,
	ZAPIERROR = -100,
	ZNONODE = -101,
	ZNOAUTH = -102,
	ZBADVERSION = -103,
	ZNOCHILDRENFOREPHEMERALS = -108,
	ZNODEEXISTS = -110,
	ZNOTEMPTY = -111,
	ZSESSIONEXPIRED = -112,
	ZINVALIDCALLBACK = -113,
	ZINVALIDACL = -114,
	ZAUTHFAILED = -115,
	ZSESSIONMOVED = -118,
	ZNOTREADONLY = -119,
	ZEPHEMERALONLOCALSESSION = -120,
	ZNOWATCHER = -121,
	ZRECONFIGDISABLED = -123,
	ZSESSIONCLOSEDREQUIRESASLAUTH = -124,
	ZQUOTAEXCEEDED = -125,
	ZTHROTTLEDOP = -127,
};

/* Special xids of the client protocol. */
#define ZXID_NOTIFICATION (-1)
#define ZXID_PING (-2)
#define ZXID_AUTH (-4)
#define ZXID_SETWATCHES (-8)

/* CreateMode flags as they travel in CreateRequest.flags. */
enum zk_create_mode {
	ZCM_PERSISTENT = 0,
	ZCM_EPHEMERAL = 1,
	ZCM_PERSISTENT_SEQUENTIAL = 2,
	ZCM_EPHEMERAL_SEQUENTIAL = 3,
	ZCM_CONTAINER = 4,
	ZCM_PERSISTENT_WITH_TTL = 5,
	ZCM_PERSISTENT_SEQUENTIAL_WITH_TTL = 6,
};

/* ZooDefs.Perms */
enum zk_perm {
	ZPERM_READ = 1, ZPERM_WRITE = 2, ZPERM_CREATE = 4, ZPERM_DELETE = 8,
	ZPERM_ADMIN = 16, ZPERM_ALL = 31,
};

/* Watcher.Event.EventType and KeeperState */
enum zk_event_type {
	ZEV_NONE = -1, ZEV_CREATED = 1, ZEV_DELETED = 2, ZEV_DATA_CHANGED = 3,
	ZEV_CHILDREN_CHANGED = 4, ZEV_DATA_WATCH_REMOVED = 5,
	ZEV_CHILD_WATCH_REMOVED = 6, ZEV_PERSISTENT_WATCH_REMOVED = 7,
};
#define ZSTATE_SYNC_CONNECTED 3

const char *zk_err_name(int err);   /* "NoNode" etc.; "Unknown" otherwise */
const char *zk_op_name(int op);     /* "create" etc.; "unknown" otherwise */
/* The four-letter code cons shows as a connection's last op ("GETD"), as
 * ZooKeeper's FinalRequestProcessor names them; "NA" otherwise. */
const char *zk_op_short_name(int op);

/* ---- records ---------------------------------------------------------- */

struct rec_connect_req {
	int32_t protocol_version;
	int64_t last_zxid_seen;
	int32_t timeout;
	int64_t session_id;
	struct jute_buf passwd;
	bool read_only;          /* optional trailing field; false when absent */
};
struct rec_connect_resp {
	int32_t protocol_version;
	int32_t timeout;
	int64_t session_id;
	const uint8_t *passwd;   /* 16 bytes; NULL and len -1 if null */
	int32_t passwd_len;
	bool read_only;          /* optional on read too (pre-3.4 servers omit it) */
};
struct rec_request_header { int32_t xid; int32_t type; };
struct rec_reply_header { int32_t xid; int64_t zxid; int32_t err; };

struct zk_stat {
	int64_t czxid, mzxid, ctime, mtime;
	int32_t version, cversion, aversion;
	int64_t ephemeral_owner;
	int32_t data_length, num_children;
	int64_t pzxid;
};

/* A vector<ACL> kept as the raw bytes it arrived in (which is also how the
 * tree stores it): `count` entries in [p, p+len). rec_read_acl_vector checks
 * every entry; rec_acl_next walks them. count -1 = null vector. */
struct rec_acl_vec { const uint8_t *p; size_t len; int32_t count; };
struct rec_acl { int32_t perms; struct jute_buf scheme; struct jute_buf id; };

struct rec_create_req {      /* CreateRequest, and CreateTTLRequest when has_ttl */
	struct jute_buf path;
	struct jute_buf data;
	struct rec_acl_vec acl;
	int32_t flags;
	int64_t ttl;             /* -1 (ZooKeeper's "no TTL") when !has_ttl */
};
struct rec_path_version { struct jute_buf path; int32_t version; }; /* Delete, CheckVersion */
struct rec_path_watch { struct jute_buf path; bool watch; };         /* Exists, GetData, GetChildren(2) */
struct rec_set_data_req { struct jute_buf path; struct jute_buf data; int32_t version; };
struct rec_set_acl_req { struct jute_buf path; struct rec_acl_vec acl; int32_t version; };
struct rec_path { struct jute_buf path; };                          /* Sync, GetACL, GetEphemerals, GetAllChildrenNumber */
struct rec_path_mode { struct jute_buf path; int32_t mode; };       /* AddWatch, RemoveWatches, CheckWatches */
struct rec_auth_packet { int32_t type; struct jute_buf scheme; struct jute_buf auth; };
struct rec_multi_header { int32_t type; bool done; int32_t err; };
/* A vector<ustring> kept raw, like ACLs. Elements may be null ({NULL, -1}),
 * as jute allows; the server rejects them where it validates paths. */
struct rec_str_vec { const uint8_t *p; size_t len; int32_t count; };
struct rec_set_watches {     /* SetWatches, and SetWatches2 when v2 (else the
                              * persistent vectors are empty, count 0) */
	int64_t relative_zxid;
	struct rec_str_vec data, exist, child, persistent, persistent_recursive;
};
struct rec_watcher_event { int32_t type; int32_t state; const char *path; int32_t path_len; };

int rec_read_connect_req(struct jute_reader *r, struct rec_connect_req *out);
int rec_read_request_header(struct jute_reader *r, struct rec_request_header *out);
int rec_read_reply_header(struct jute_reader *r, struct rec_reply_header *out);
int rec_read_connect_resp(struct jute_reader *r, struct rec_connect_resp *out);
int rec_read_stat(struct jute_reader *r, struct zk_stat *out);
int rec_read_acl_vector(struct jute_reader *r, struct rec_acl_vec *out);
/* Iterates a vector checked by rec_read_acl_vector: *pos starts at 0. */
bool rec_acl_next(const struct rec_acl_vec *v, size_t *pos, struct rec_acl *out);
int rec_read_str_vector(struct jute_reader *r, struct rec_str_vec *out);
bool rec_str_next(const struct rec_str_vec *v, size_t *pos, struct jute_buf *out);
int rec_read_create_req(struct jute_reader *r, bool has_ttl, struct rec_create_req *out);
int rec_read_path_version(struct jute_reader *r, struct rec_path_version *out);
int rec_read_path_watch(struct jute_reader *r, struct rec_path_watch *out);
int rec_read_set_data_req(struct jute_reader *r, struct rec_set_data_req *out);
int rec_read_set_acl_req(struct jute_reader *r, struct rec_set_acl_req *out);
int rec_read_path(struct jute_reader *r, struct rec_path *out);
int rec_read_path_mode(struct jute_reader *r, struct rec_path_mode *out);
int rec_read_auth_packet(struct jute_reader *r, struct rec_auth_packet *out);
int rec_read_multi_header(struct jute_reader *r, struct rec_multi_header *out);
int rec_read_set_watches(struct jute_reader *r, bool v2, struct rec_set_watches *out);
int rec_read_watcher_event(struct jute_reader *r, struct rec_watcher_event *out);

void rec_write_connect_req(struct jute_writer *w, const struct rec_connect_req *v);
void rec_write_connect_resp(struct jute_writer *w, const struct rec_connect_resp *v);
void rec_write_request_header(struct jute_writer *w, const struct rec_request_header *v);
void rec_write_reply_header(struct jute_writer *w, const struct rec_reply_header *v);
void rec_write_stat(struct jute_writer *w, const struct zk_stat *v);
void rec_write_acl(struct jute_writer *w, int32_t perms, const char *scheme, const char *id);
void rec_write_multi_header(struct jute_writer *w, const struct rec_multi_header *v);
void rec_write_watcher_event(struct jute_writer *w, int32_t type, int32_t state, const char *path, int32_t path_len);

#endif
