/*
 * txncodec.h - a ztxn in ZooKeeper's on-disk (and on-the-quorum-wire) form:
 * TxnHeader{long clientId, int cxid, long zxid, long time, int type} followed
 * by the record of that type from zookeeper.jute's org.apache.zookeeper.txn.
 *
 *   create / create2      CreateTxn{path, data, acl, bool ephemeral, int parentCVersion}
 *   createContainer       CreateContainerTxn{path, data, acl, parentCVersion}
 *   createTTL             CreateTTLTxn{path, data, acl, parentCVersion, long ttl}
 *   delete / deleteContainer  DeleteTxn{path}
 *   setData / reconfig    SetDataTxn{path, data, int version}
 *   setACL                SetACLTxn{path, acl, int version}
 *   check (in a multi)    CheckVersionTxn{path, int version}
 *   createSession         CreateSessionTxn{int timeOut}
 *   closeSession          CloseSessionTxn{vector<ustring> paths2Delete}
 *   error                 ErrorTxn{int err}
 *   multi                 MultiTxn{vector<Txn{int type, buffer record}>}
 *
 * What zkd writes, and why:
 * - No TxnDigest. ZooKeeper 3.8 appends one when zookeeper.digest.enabled
 *   (its default) and reads it when present, but a txn without one is read
 *   fine (SerializeUtils.deserializeTxn treats the missing digest as null and
 *   the digest check is skipped). Writing a wrong digest would make
 *   ZooKeeper log digest mismatches, so we write none. A digest (or any
 *   trailing bytes) on a txn we read is ignored, as ZooKeeper ignores them.
 *   The same holds on the quorum wire: a PROPOSAL's data is this very
 *   encoding (Leader.propose -> Util.marshallTxnEntry; a follower reads it
 *   with SerializeUtils.deserializeTxn), so txn_encode/txn_decode serve
 *   PROPOSALs as they are (tests/unit/test_proposal.c checks both ways
 *   against bytes ZooKeeper 3.8 made).
 * - The ephemeral owner is not in CreateTxn, only `ephemeral`: the owner is
 *   the header's clientId. So a create whose ephemeral_owner is neither 0 nor
 *   the txn's session cannot be written (encode fails loudly rather than
 *   writing a different txn). On read, ephemeral_owner is set to the
 *   clientId, ZK_CONTAINER_OWNER for CreateContainerTxn, and
 *   ZK_TTL_PREFIX|ttl for CreateTTLTxn (EphemeralType.TTL.toEphemeralOwner).
 * - A top-level check is written as a multi holding that one check.
 *   ZooKeeper 3.8 would log OpCode.check with a CheckVersionTxn but cannot
 *   read that back (deserializeTxn: "Unsupported Txn"); inside a multi it is
 *   a normal, no-op, readable entry. Decoding therefore yields a ZOP_MULTI.
 * - create2 is logged as create (type 1) at the top level, like the txn Prep
 *   builds; in a multi the op type is kept (ZooKeeper logs create2 there, and
 *   Final answers by op). Reading type 15 gives type ZOP_CREATE, op ZOP_CREATE2.
 *
 * What reading yields beyond the fields Prep fills:
 * - every txn is fully owned: path, acl, data (data_owned), close_paths, sub;
 *   ztxn_clear() frees it.
 * - op = the type as logged (for a multi's ops and for the top level).
 * - types keep ZooKeeper's distinctions: ZOP_CREATETTL, ZOP_DELETECONTAINER
 *   and ZOP_RECONFIG come back as such (txn_apply knows only their plain
 *   twins; recovery maps them before applying).
 * - a closeSession without a CloseSessionTxn (ZooKeeper before 3.6, or with
 *   zookeeper.closeSessionTxn.enabled=false) gives n_close_paths = -1:
 *   "the list was not logged; delete every ephemeral the session owns".
 *   Encoding n_close_paths = -1 likewise writes no record.
 * - a CreateTxn written before parentCVersion existed (CreateTxnV0) gives
 *   parent_cversion = -1, which means "the parent's cversion + 1"
 *   (DataTree.createNode).
 * - a null ACL vector (which ZooKeeper maps to OPEN_ACL_UNSAFE) is returned
 *   as the encoding of world:anyone with all permissions.
 */
#ifndef ZKD_STORAGE_TXNCODEC_H
#define ZKD_STORAGE_TXNCODEC_H

#include <stddef.h>
#include <stdint.h>

#include "net/jute.h"
#include "txn.h"

/* ZooDefs.Ids.OPEN_ACL_UNSAFE as a jute vector<ACL>: [31, world, anyone]. */
extern const uint8_t zk_open_acl[];
extern const size_t zk_open_acl_len;

/* Appends TxnHeader + record to w. Returns 0, or -1 (with a reason in err)
 * for a txn that has no ZooKeeper encoding (type 0, unknown types, an
 * ephemeral owner that is not the session, a nested multi). */
int txn_encode(struct jute_writer *w, const struct ztxn *t, char *err, size_t errlen);

/* Decodes one txn entry (as stored in a log record or a PROPOSAL) into out,
 * which it zeroes first. Every length is bounded by len. Returns 0, or -1
 * with a reason in err (out is then empty). */
int txn_decode(const uint8_t *p, size_t len, struct ztxn *out, char *err, size_t errlen);

#endif
