"""Quorum TLS (issue 7): sslQuorum=true with ZooKeeper's ssl.quorum.* keys.

Certificates: a throw-away CA and one certificate per ensemble that every
member uses on both sides of a connection (extendedKeyUsage serverAuth and
clientAuth; subjectAltName IP:127.0.0.1, which hostname verification, on by
default as in ZooKeeper, checks against the loopback addresses), made with
openssl in a temp directory; a second CA's certificate for the refusal test.

  elect, replicate, fail over   3 zkd members, sslQuorum=true: one leader,
                                a write through each member read through
                                every member; the leader kill -9'd: a new
                                leader, writes again, the old one rejoins,
                                trees converge. The logs show TLS.
  plain member refused          2 TLS zkd members + 1 with sslQuorum=false:
                                the TLS pair elects and serves; the plain one
                                never serves; the TLS members log why
                                (a failed TLS handshake).
  untrusted certificate         a member whose certificate another CA signed
                                never joins; the other two keep serving.
  certificate rotation          sslQuorumReloadCertFiles: every member's files
                                swapped for another CA's while running; a
                                member restarted on the new files rejoins.
  rolling upgrade               3 plain zkd members moved to TLS one restart
                                at a time (portUnification, then sslQuorum,
                                then portUnification off), with a quorum and
                                writes through the restarted member at every
                                step.
  mixed zkd + ZooKeeper         zkd,zkd,zk and zkd,zk,zk with sslQuorum=true,
                                PEM stores (ZooKeeper 3.8 reads PEM key and
                                trust stores): elect, replicate, fail over.
                                Skipped without java/ZooKeeper.
"""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

import ensemble
from ensemble import Ensemble, JAVA, ZK_CP

TEST_TIMEOUT = 180


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _make_ca(d, name):
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", name + "-key.pem", cwd=d)
    _openssl("req", "-x509", "-new", "-key", name + "-key.pem", "-sha256", "-days", "2",
             "-subj", "/O=zkd quorum test/CN=" + name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", name + ".pem", cwd=d)


def _issue(d, ca, name, san):
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", name + "-key.pem", cwd=d)
    _openssl("req", "-new", "-key", name + "-key.pem", "-subj", "/O=zkd quorum test/CN=" + name,
             "-out", name + ".csr", cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth,clientAuth\n"
                "subjectAltName=%s\n" % san)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + "-key.pem",
             "-CAcreateserial", "-sha256", "-days", "2", "-extfile", name + ".ext",
             "-out", name + "-cert.pem", cwd=d)
    with open(os.path.join(d, name + ".pem"), "w") as out:
        for part in (name + "-key.pem", name + "-cert.pem"):
            with open(os.path.join(d, part)) as f:
                out.write(f.read())


@pytest.fixture(scope="module")
def certs():
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tempfile.mkdtemp(prefix="zkd-qtls.")
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    _issue(d, "ca", "peer", "IP:127.0.0.1,DNS:localhost")
    _issue(d, "other-ca", "stranger", "IP:127.0.0.1,DNS:localhost")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tls_keys(d, key="peer.pem", ca="ca.pem"):
    return {
        "sslQuorum": "true",
        "ssl.quorum.keyStore.location": os.path.join(d, key),
        "ssl.quorum.keyStore.type": "PEM",
        "ssl.quorum.trustStore.location": os.path.join(d, ca),
        "ssl.quorum.trustStore.type": "PEM",
        "ssl.quorum.hostnameVerification": "true",
    }


def log_text(e, i):
    with open(e.members[i].log, errors="replace") as f:
        return f.read()


def write_everywhere_and_read(e, prefix):
    live = e.live()
    clients = {i: e.client(i) for i in live}
    for i, c in clients.items():
        c.create("/%s-%d" % (prefix, i), b"v%d" % i, makepath=True)
    for i, c in clients.items():
        c.sync("/")
        for j in live:
            data, _ = c.get("/%s-%d" % (prefix, j))
            assert data == b"v%d" % j
    for c in clients.values():
        e.close_client(c)


def elect_replicate_failover(e):
    e.start_all()
    leader = e.wait_quorum(timeout=60)
    write_everywhere_and_read(e, "a")
    e.kill(leader)
    new_leader = e.wait_quorum(timeout=60, members=[i for i in range(e.n) if i != leader])
    assert new_leader != leader
    write_everywhere_and_read(e, "b")
    e.start(leader)
    e.wait_mode(leader, timeout=60)
    e.wait_converged(timeout=60)
    return leader


def test_zkd_ensemble_tls(certs):
    with Ensemble(["zkd", "zkd", "zkd"], extra=tls_keys(certs), name="qtls") as e:
        elect_replicate_failover(e)
        for i in range(e.n):
            assert "sslQuorum: TLS on the quorum and election ports" in log_text(e, i)


def test_plain_member_cannot_join(certs):
    tls = tls_keys(certs)
    with Ensemble(["zkd", "zkd", "zkd"], extra=[tls, tls, {}], name="qtls-plain") as e:
        e.start_all()
        e.wait_quorum(timeout=60, members=[0, 1])
        write_everywhere_and_read_members(e, [0, 1])
        time.sleep(3)
        assert not e.serving(2), "the plain member got a quorum with TLS members"
        assert e.alive(0) and e.alive(1) and e.serving(0) and e.serving(1)
        logs = log_text(e, 0) + log_text(e, 1)
        assert "TLS handshake failed" in logs, "the TLS members did not say why"


def test_untrusted_certificate_refused(certs):
    tls = tls_keys(certs)
    bad = tls_keys(certs, key="stranger.pem", ca="other-ca.pem")
    with Ensemble(["zkd", "zkd", "zkd"], extra=[tls, tls, bad], name="qtls-ca") as e:
        e.start_all()
        e.wait_quorum(timeout=60, members=[0, 1])
        time.sleep(3)
        assert not e.serving(2)
        assert e.serving(0) and e.serving(1)
        logs = log_text(e, 0) + log_text(e, 1)
        assert "TLS handshake failed" in logs


def rolling_restart(e, extra, step):
    """Each member in turn: stopped, its zoo.cfg rewritten with extra, started
    again; the ensemble keeps a quorum throughout and the member's writes
    reach every member."""
    for i in range(e.n):
        e.stop(i)
        e.wait_quorum(timeout=60, members=[j for j in range(e.n) if j != i])
        e._write_config(e.members[i], extra)
        e.start(i)
        e.wait_mode(i, timeout=60)
        write_everywhere_and_read(e, "%s-%d" % (step, i))
    e.wait_converged(timeout=60)


@pytest.mark.parametrize("kinds", [["zkd", "zkd", "zkd"], ["zkd", "zkd", "zk"]], ids=lambda k: "-".join(k))
def test_rolling_upgrade_to_tls_with_port_unification(certs, kinds, monkeypatch):
    """ZooKeeper's way to move a running ensemble to quorum TLS one member at
    a time: portUnification=true everywhere (each member then accepts TLS
    and plain), then sslQuorum=true member by member (it connects with TLS,
    to members that may still connect in plain), then portUnification off."""
    keys = tls_keys(certs)
    unified_plain = dict(keys, sslQuorum="false", portUnification="true")
    unified_tls = dict(keys, portUnification="true")
    if "zk" in kinds:
        if not _have_zk() or not os.path.exists(NETTY_JAR):
            pytest.skip("needs java, Debian's zookeeper package and libnetty-java")
        monkeypatch.setattr(ensemble, "ZK_CP", ":".join([ensemble.ZK_CP] + [
            j for j in NETTY_JARS if os.path.exists(j)]))
    with Ensemble(kinds, name="qtls-roll") as e:
        e.start_all()
        e.wait_quorum(timeout=60)
        write_everywhere_and_read(e, "plain")
        rolling_restart(e, unified_plain, "unified")
        for i in range(e.n):
            if kinds[i] == "zkd":
                assert "connecting in plain TCP (sslQuorum=false)" in log_text(e, i)
        rolling_restart(e, unified_tls, "unified-tls")
        rolling_restart(e, keys, "tls")
        for i in range(e.n):
            if kinds[i] == "zkd":
                assert "sslQuorum: TLS on the quorum and election ports" in log_text(e, i)
        # the TLS-only ensemble fails over as any other
        leader = e.leader()
        e.kill(leader)
        e.wait_quorum(timeout=60, members=[i for i in range(e.n) if i != leader])
        write_everywhere_and_read(e, "after")


def test_reload_cert_files_rotates_to_a_new_ca_without_restarts(certs):
    """sslQuorumReloadCertFiles: each member's key and trust store files are
    replaced by ones of another CA while it runs. A member restarted
    afterwards starts with the new files only, so it can rejoin only if the
    members that never restarted now present and trust the new ones."""
    work = tempfile.mkdtemp(prefix="zkd-qtls-rotate.")
    try:
        extras = []
        for i in range(3):
            key, ca = os.path.join(work, "m%d-key.pem" % i), os.path.join(work, "m%d-ca.pem" % i)
            shutil.copy(os.path.join(certs, "peer.pem"), key)
            shutil.copy(os.path.join(certs, "ca.pem"), ca)
            extras.append(dict(tls_keys(certs), **{
                "ssl.quorum.keyStore.location": key, "ssl.quorum.trustStore.location": ca,
                "sslQuorumReloadCertFiles": "true"}))
        with Ensemble(["zkd", "zkd", "zkd"], extra=extras, name="qtls-rotate") as e:
            e.start_all()
            e.wait_quorum(timeout=60)
            write_everywhere_and_read(e, "before")
            for i in range(3):
                for src, dst in (("stranger.pem", "m%d-key.pem"), ("other-ca.pem", "m%d-ca.pem")):
                    tmp = os.path.join(work, "incoming")
                    shutil.copy(os.path.join(certs, src), tmp)
                    os.replace(tmp, os.path.join(work, dst % i))    # as a rotation tool would
            deadline = time.monotonic() + 30
            while not all("quorum certificates reloaded" in log_text(e, i) for i in range(3)):
                assert time.monotonic() < deadline, "not every member reloaded its certificates"
                time.sleep(0.1)
            e.stop(2)
            e.wait_quorum(timeout=60, members=[0, 1])
            e.start(2)
            e.wait_mode(2, timeout=60)
            write_everywhere_and_read(e, "after")
            e.wait_converged(timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_everywhere_and_read_members(e, members):
    clients = {i: e.client(i) for i in members}
    for i, c in clients.items():
        c.create("/p-%d" % i, b"v", makepath=True)
    for c in clients.values():
        c.sync("/")
        for j in members:
            assert c.exists("/p-%d" % j)
    for c in clients.values():
        e.close_client(c)


def _have_zk():
    return os.access(JAVA, os.X_OK) and all(os.path.exists(p) for p in ZK_CP.split(":"))


# ZooKeeper's quorum TLS needs Netty (its LearnerHandler and the election
# listener use Netty's SSL helpers), which ensemble.py's class path leaves out.
# (Debian's netty-all.jar is an empty shell: the modules are separate jars.)
NETTY_JARS = ["/usr/share/java/netty-%s.jar" % m for m in
              ("common", "buffer", "codec", "handler", "resolver", "transport",
               "transport-native-unix-common", "transport-native-epoll")]
NETTY_JAR = NETTY_JARS[0]


@pytest.mark.skipif(not _have_zk(), reason="needs java and Debian's zookeeper package")
@pytest.mark.skipif(not os.path.exists(NETTY_JAR),
                    reason="ZooKeeper's quorum TLS needs Netty (%s, Debian's libnetty-java)" % NETTY_JAR)
@pytest.mark.parametrize("kinds", [["zkd", "zkd", "zk"], ["zkd", "zk", "zk"]],
                         ids=lambda k: "-".join(k))
def test_mixed_ensemble_tls(certs, kinds, monkeypatch):
    jars = [j for j in NETTY_JARS if os.path.exists(j)]
    monkeypatch.setattr(ensemble, "ZK_CP", ":".join([ensemble.ZK_CP] + jars))
    with Ensemble(kinds, extra=tls_keys(certs), name="qtls-mixed") as e:
        elect_replicate_failover(e)
