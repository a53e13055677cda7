"""TLS on secureClientPort and the x509 auth scheme, with real clients.

This module starts its own zkd servers (the binary from $ZKD) with
certificates made by conf/tls-certs.sh (plus a few more signed by the same
throw-away CA with openssl):

  * "want": clientPort and secureClientPort, a PEM key store and trust
    store, ssl.clientAuth=want, and an x509 superUser;
  * "need": TLS only (no clientPort), ssl.certFile/keyFile/caFile,
    ssl.clientAuth=need (ZooKeeper's default), TLSv1.2 only with two
    cipher suites named as Java names them.

and checks:

  * kazoo with use_ssl (CA, client certificate and key), TLSv1.2 and 1.3;
  * zkCli.sh over TLS (ClientCnxnSocketNetty, PEM stores) with and without a
    client certificate, its transcript diffed against a real ZooKeeper 3.8
    run with the same certificates (NettyServerCnxnFactory);
  * the x509 id of a session is the certificate subject exactly as Java's
    X500Principal.getName() writes it (compared with Java itself for awkward
    subjects), x509 ACLs, the superUser, and which x509 ids setACL accepts
    (compared with new X500Principal(id));
  * bad TLS input (garbage, plaintext on the TLS port, an old protocol, an
    untrusted certificate, a stalled handshake) closes that one connection
    with a logged reason while other sessions carry on;
  * SIGHUP reloads the server certificate for new connections without
    dropping sessions, and a broken file leaves the old certificate in use.
"""

import base64
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import pytest

import zkraw
from standalone import free_port

ZKD = os.environ.get("ZKD")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CERTS_SH = os.path.join(ROOT, "conf", "tls-certs.sh")
JAVA = os.environ.get("JAVA", "/usr/bin/java")
ZKCLI = os.environ.get("ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
# Debian's zookeeper.jar lists most of Netty in its manifest, but not these
# two, which ClientCnxnSocketNetty and NettyServerCnxnFactory need.
NETTY_EXTRA = ["/usr/share/java/netty-resolver.jar", "/usr/share/java/netty-codec.jar"]
ZK_JAR = "/usr/share/java/zookeeper.jar"
TEST_TIMEOUT = 180

pytestmark = pytest.mark.skipif(not ZKD, reason="ZKD (path to the zkd binary) is not set")

CLIENT_DN = "CN=zkd-client,OU=clients,O=zkd test CA"
ADMIN_DN = "CN=admin,O=zkd test CA"
ALL = 31


# ---------------------------------------------------------------- helpers


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


class PKI:
    """conf/tls-certs.sh's files in a temp dir, and more certificates from
    the same CA."""

    def __init__(self, base):
        self.dir = os.path.join(base, "tls")
        run(["bash", CERTS_SH, self.dir])
        self.serial = 100

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, subj, ext=("extendedKeyUsage=clientAuth",), config=None, utf8=False,
              multivalue=False, key=None):
        """name-key.pem, name-cert.pem and name.pem (key + cert), signed by the CA."""
        key = key or self.path(name + "-key.pem")
        if not os.path.exists(key):
            run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", key])
        csr = self.path(name + ".csr")
        cmd = ["openssl", "req", "-new", "-key", key, "-subj", subj, "-out", csr]
        if config:
            cmd += ["-config", config]
        if utf8:
            cmd.append("-utf8")
        if multivalue:
            cmd.append("-multivalue-rdn")
        run(cmd)
        extfile = self.path(name + ".ext")
        with open(extfile, "w") as f:
            f.write("\n".join(ext) + "\n")
        self.serial += 1
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.path("ca.pem"),
             "-CAkey", self.path("ca-key.pem"), "-set_serial", str(self.serial), "-days", "2",
             "-extfile", extfile, "-out", self.path(name + "-cert.pem")])
        with open(self.path(name + ".pem"), "w") as out:
            for part in (key, self.path(name + "-cert.pem")):
                with open(part) as f:
                    out.write(f.read())
        return self.serial


class Zkd:
    def __init__(self, base, name, settings, plain=True, secure=True):
        """secure=False: no secureClientPort; tls_port is then the client
        port (for a server that unifies them). Every server has an
        AdminServer on admin_port."""
        self.dir = os.path.join(base, name)
        self.admin_port = free_port()
        os.makedirs(os.path.join(self.dir, "data"))
        self.port = free_port() if plain else None
        self.tls_port = free_port() if secure else self.port
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write("tickTime=2000\ndataDir=%s/data\n" % self.dir)
            if plain:
                f.write("clientPort=%d\nclientPortAddress=127.0.0.1\n" % self.port)
            if secure:
                f.write("secureClientPort=%d\nsecureClientPortAddress=127.0.0.1\n" % self.tls_port)
            f.write("maxClientCnxns=0\n4lw.commands.whitelist=*\n")
            f.write("admin.serverAddress=127.0.0.1\nadmin.serverPort=%d\n" % self.admin_port)
            f.write(settings)
        self.logpath = os.path.join(self.dir, "zkd.log")
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen([ZKD, self.cfg], stdout=self.log, stderr=self.log)

    def log_text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def admin(self, command):
        import json
        import urllib.request
        url = "http://127.0.0.1:%d/commands/%s" % (self.admin_port, command)
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)

    def wait_log(self, pattern, timeout=15.0, start=0):
        """The first log line matching pattern after offset start."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            for line in self.log_text()[start:].splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError("no log line matching %r in %s" % (pattern, self.logpath))
            time.sleep(0.05)

    def log_size(self):
        return len(self.log_text())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def client_ctx(pki, cert=None, key=None, minv=None, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.path("ca.pem"))
    if cert:
        ctx.load_cert_chain(cert, key)
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    return ctx


class TlsZk:
    """A blocking ZooKeeper session over TLS, enough for whoAmI and a few
    requests (zkraw's encoders)."""

    def __init__(self, port, ctx, timeout=10.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.xid = 0
        self.sock.sendall(zkraw.frame(zkraw.connect_request()))
        r = zkraw.Reader(self.read_frame())
        r.int()
        self.timeout_ms = r.int()
        self.session_id = r.long()

    def read_exact(self, n):
        b = b""
        while len(b) < n:
            chunk = self.sock.recv(n - len(b))
            if not chunk:
                raise zkraw.ConnectionClosed()
            b += chunk
        return b

    def read_frame(self):
        (n,) = struct.unpack(">i", self.read_exact(4))
        return self.read_exact(n)

    def call(self, op, body=b""):
        self.xid += 1
        self.sock.sendall(zkraw.request_frame(self.xid, op, body))
        while True:
            r = zkraw.Reader(self.read_frame())
            xid, _, err = r.int(), r.long(), r.int()
            if xid == self.xid:
                return err, r

    def whoami(self):
        err, r = self.call(zkraw.WHO_AM_I)
        assert err == 0
        return [(r.string(), r.string()) for _ in range(r.int())]

    def x509_ids(self):
        return [i for s, i in self.whoami() if s == "x509"]

    def close(self):
        try:
            self.call(zkraw.CLOSE_SESSION)
        except OSError:
            pass
        self.sock.close()


def tls_ready(port, pki, deadline, proc):
    while True:
        assert proc.poll() is None, "zkd exited at start"
        try:
            c = TlsZk(port, client_ctx(pki, pki.path("client-cert.pem"), pki.path("client-key.pem")),
                      timeout=2)
            c.close()
            return
        except (OSError, ssl.SSLError, zkraw.ConnectionClosed, struct.error):
            pass
        assert time.monotonic() < deadline, "zkd did not accept a TLS session"
        time.sleep(0.1)


def kazoo(port, pki, cert=True, **kw):
    from kazoo.client import KazooClient
    args = dict(use_ssl=True, ca=pki.path("ca.pem"), verify_certs=True)
    if cert:
        args.update(certfile=pki.path("client-cert.pem"), keyfile=pki.path("client-key.pem"))
    args.update(kw)
    zk = KazooClient(hosts="127.0.0.1:%d" % port, timeout=10, **args)
    zk.start(timeout=15)
    return zk


def java_ok():
    return os.access(JAVA, os.X_OK) and os.path.exists(ZK_JAR) and all(map(os.path.exists, NETTY_EXTRA))


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def env():
    base = tempfile.mkdtemp(prefix="zkd-tls-")
    pki = PKI(base)
    pki.issue("admin", "/O=zkd test CA/CN=admin")
    pki.issue("zkcli", "/CN=zkcli")
    # a client from another CA: refused
    other = os.path.join(base, "other")
    run(["bash", CERTS_SH, other])
    servers = {}
    try:
        servers["want"] = Zkd(base, "want",
                              "ssl.keyStore.location=%s\nssl.keyStore.type=PEM\n"
                              "ssl.trustStore.location=%s\nssl.trustStore.type=PEM\n"
                              "ssl.clientAuth=want\n"
                              "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n"
                              "X509AuthenticationProvider.superUser=%s\n"
                              % (pki.path("server.pem"), pki.path("ca.pem"), ADMIN_DN))
        servers["need"] = Zkd(base, "need",
                              "ssl.certFile=%s\nssl.keyFile=%s\nssl.caFile=%s\n"
                              "ssl.enabledProtocols=TLSv1.2\n"
                              "ssl.ciphersuites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,"
                              "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n"
                              % (pki.path("server-cert.pem"), pki.path("server-key.pem"),
                                 pki.path("ca.pem")), plain=False)
        servers["unified"] = Zkd(base, "unified",
                                 "client.portUnification=true\n"
                                 "ssl.certFile=%s\nssl.keyFile=%s\nssl.caFile=%s\nssl.clientAuth=want\n"
                                 % (pki.path("server-cert.pem"), pki.path("server-key.pem"),
                                    pki.path("ca.pem")), secure=False)
        deadline = time.monotonic() + 30
        for s in servers.values():
            tls_ready(s.tls_port, pki, deadline, s.proc)
        yield {"base": base, "pki": pki, "other": other, **servers}
    finally:
        for s in servers.values():
            s.stop()
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- kazoo

def test_kazoo_with_a_client_certificate_is_x509_and_x509_acls_hold(env):
    pki, srv = env["pki"], env["want"]
    from kazoo.exceptions import NoAuthError
    from kazoo.security import make_acl
    zk = kazoo(srv.tls_port, pki)
    try:
        zk.ensure_path("/tls")
        zk.create("/tls/x509-only", b"secret", acl=[make_acl("x509", CLIENT_DN, all=True)])
        assert zk.get("/tls/x509-only")[0] == b"secret"
        acl, _ = zk.get_acls("/tls/x509-only")
        assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(ALL, "x509", CLIENT_DN)]
        zk.set("/tls/x509-only", b"still mine")
    finally:
        zk.stop()
        zk.close()
    # over TLS without a certificate, and over plain TCP: not x509
    for z in (kazoo(srv.tls_port, pki, cert=False), ):
        try:
            with pytest.raises(NoAuthError):
                z.get("/tls/x509-only")
        finally:
            z.stop()
            z.close()
    from kazoo.client import KazooClient
    plain = KazooClient(hosts="127.0.0.1:%d" % srv.port, timeout=10)
    plain.start(timeout=15)
    try:
        with pytest.raises(NoAuthError):
            plain.get("/tls/x509-only")
        assert plain.exists("/tls")
    finally:
        plain.stop()
        plain.close()
    srv.wait_log(r"authenticated as x509:" + re.escape(CLIENT_DN))


def test_addauth_x509_succeeds_only_with_a_verified_client_certificate(env):
    """X509AuthenticationProvider.handleAuthentication: OK when the
    connection's certificate chain verified (the identity is the one the
    handshake gave), AuthFailed without a certificate."""
    pki, srv = env["pki"], env["want"]
    from kazoo.exceptions import AuthFailedError
    zk = kazoo(srv.tls_port, pki)
    try:
        zk.add_auth("x509", "ignored")
        assert zk.exists("/") is not None
    finally:
        zk.stop()
        zk.close()
    anon = kazoo(srv.tls_port, pki, cert=False)
    try:
        with pytest.raises(AuthFailedError):
            anon.add_auth("x509", "ignored")
    finally:
        anon.stop()
        anon.close()
    srv.wait_log(r"authentication failed for scheme 'x509' \(no verified client certificate\)")


def test_port_unification_serves_tls_plain_and_4lw_on_the_client_port(env):
    """client.portUnification (NettyServerCnxnFactory's DualModeSslHandler):
    one port, TLS clients told from plain ones by their first bytes."""
    pki, srv = env["pki"], env["unified"]
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError
    from kazoo.security import make_acl
    srv.wait_log(r"listening on 127\.0\.0\.1:%d \(plain and TLS: client\.portUnification\)" % srv.port)
    tls = kazoo(srv.port, pki)
    plain = KazooClient(hosts="127.0.0.1:%d" % srv.port, timeout=10)
    plain.start(timeout=15)
    try:
        tls.create("/unified", b"tls only", acl=[make_acl("x509", CLIENT_DN, all=True)])
        assert tls.get("/unified")[0] == b"tls only"
        with pytest.raises(NoAuthError):
            plain.get("/unified")
        plain.create("/plain", b"anyone")
        assert tls.get("/plain")[0] == b"anyone"
        assert zkraw.four_letter("127.0.0.1:%d" % srv.port, "ruok") == "imok"
        cons = zkraw.four_letter("127.0.0.1:%d" % srv.port, "cons")
        assert cons.count("/127.0.0.1:") >= 3, cons    # both clients and this 4lw
    finally:
        for c in (tls, plain):
            c.stop()
            c.close()
    srv.wait_log(r"authenticated as x509:" + re.escape(CLIENT_DN))


def session_ids(conns):
    return {c["session_id"] for c in conns}


def test_admin_lists_secure_port_clients_under_secure_connections(env):
    """ZooKeeper keeps the secure client port's connections in their own
    factory: the AdminServer lists them under secure_connections. TLS
    clients of a unified client port belong to the plain factory."""
    pki = env["pki"]
    from kazoo.client import KazooClient
    srv = env["want"]
    tls = kazoo(srv.tls_port, pki)
    plain = KazooClient(hosts="127.0.0.1:%d" % srv.port, timeout=10)
    plain.start(timeout=15)
    uni = env["unified"]
    uni_tls = kazoo(uni.port, pki)
    try:
        r = srv.admin("connections")
        assert tls.client_id[0] in session_ids(r["secure_connections"]), r
        assert tls.client_id[0] not in session_ids(r["connections"]), r
        assert plain.client_id[0] in session_ids(r["connections"]), r
        assert plain.client_id[0] not in session_ids(r["secure_connections"]), r
        r = uni.admin("connections")
        assert uni_tls.client_id[0] in session_ids(r["connections"]) and not r["secure_connections"], r
    finally:
        for c in (tls, plain, uni_tls):
            c.stop()
            c.close()


def test_kazoo_over_tls13_and_over_tls12_with_java_suite_names(env):
    """"want" serves both versions (kazoo gets TLSv1.3); "need" is set to
    ssl.enabledProtocols=TLSv1.2 and two suites by their Java names."""
    pki = env["pki"]
    for name, proto in (("want", "TLSv1.3"), ("need", "TLSv1.2")):
        srv = env[name]
        zk = kazoo(srv.tls_port, pki)
        try:
            path = "/tls-" + proto
            zk.create(path, b"v", ephemeral=True)
            assert zk.get(path)[0] == b"v"
            assert zk._connection._socket.version() == proto
        finally:
            zk.stop()
            zk.close()
    need = env["need"]
    c = TlsZk(need.tls_port, client_ctx(pki, pki.path("client-cert.pem"), pki.path("client-key.pem")))
    assert c.sock.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    c.close()
    with pytest.raises((ssl.SSLError, OSError)):
        TlsZk(need.tls_port, client_ctx(pki, pki.path("client-cert.pem"), pki.path("client-key.pem"),
                                        minv=ssl.TLSVersion.TLSv1_3))
    c = TlsZk(env["want"].tls_port, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2))
    assert c.sock.version() == "TLSv1.2"
    c.close()


def test_large_values_over_tls(env):
    pki, srv = env["pki"], env["want"]
    zk = kazoo(srv.tls_port, pki)
    try:
        data = bytes((i * 7 + 3) & 0xFF for i in range(1000000))
        zk.create("/tls-big", data)
        for _ in range(3):
            assert zk.get("/tls-big")[0] == data
        zk.delete("/tls-big")
    finally:
        zk.stop()
        zk.close()


def test_need_serves_tls_only_and_refuses_clients_without_a_certificate(env):
    pki, srv = env["pki"], env["need"]
    c = TlsZk(srv.tls_port, client_ctx(pki, pki.path("client-cert.pem"), pki.path("client-key.pem")))
    assert c.x509_ids() == [CLIENT_DN]
    c.close()
    mark = srv.log_size()
    with pytest.raises((ssl.SSLError, OSError, zkraw.ConnectionClosed)):
        c = TlsZk(srv.tls_port, client_ctx(pki))
        c.whoami()
    srv.wait_log(r"TLS handshake failed: peer did not return a certificate", start=mark)
    # 4lw over TLS: no client port at all
    ctx = client_ctx(pki, pki.path("client-cert.pem"), pki.path("client-key.pem"))
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.tls_port), timeout=5),
                         server_hostname="localhost") as s:
        s.sendall(b"conf")
        out = zkraw.read_until_closed(s, 5)
    assert b"clientPort=-1\n" in out
    assert ("secureClientPort=%d\n" % srv.tls_port).encode() in out


# ---------------------------------------------------------------- x509 ids

DN_CASES = [
    # (name, subject for openssl req, extra req options)
    ("plain", "/C=US/ST=Some State/L=Town/O=Acme, Inc./OU=a/CN=client one", {}),
    ("escapes", '/O=a\\+b/OU=x=y/CN=client #1 <x>;"q"\\\\z ', {}),
    ("spaces", "/O=  lead/OU=trail  /CN=#hash", {}),
    ("oids", "/emailAddress=a@b.c/serialNumber=42/DC=example/DC=com/UID=u1/title=Boss/CN=x", {}),
    ("utf8", "/CN=Jos\u00e9 \u65e5\u672c/O=caf\u00e9", {"utf8": True}),
    ("multi", "/O=zkd+OU=multi/CN=m", {"multivalue": True}),
    ("bmp", "/CN=Jos\u00e9 BMP/O=plain", {"utf8": True, "bmp": True}),
]


def java_dn(base, certs):
    src = os.path.join(base, "Dn.java")
    with open(src, "w") as f:
        f.write("""
import java.io.FileInputStream;
import java.io.PrintStream;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
public class Dn {
    public static void main(String[] a) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        for (String f : a) {
            try (FileInputStream in = new FileInputStream(f)) {
                X509Certificate c = (X509Certificate) cf.generateCertificate(in);
                out.println(java.util.Base64.getEncoder().encodeToString(
                    c.getSubjectX500Principal().getName().getBytes("UTF-8")));
            }
        }
    }
}
""")
    out = run([JAVA, src] + certs).stdout.decode().split()
    return [base64.b64decode(x).decode("utf-8") for x in out]


@pytest.mark.skipif(not java_ok(), reason="no Java")
def test_x509_id_is_the_subject_as_java_writes_it(env):
    pki, srv, base = env["pki"], env["want"], env["base"]
    bmp_cnf = os.path.join(base, "bmp.cnf")
    with open(bmp_cnf, "w") as f:
        f.write("[req]\ndistinguished_name = dn\nstring_mask = pkix\n[dn]\n")
    certs = []
    for name, subj, opts in DN_CASES:
        pki.issue("dn-" + name, subj, utf8=opts.get("utf8", False),
                  multivalue=opts.get("multivalue", False),
                  config=bmp_cnf if opts.get("bmp") else None)
        certs.append(pki.path("dn-%s-cert.pem" % name))
    want = java_dn(base, certs)
    for (name, _, _), expected in zip(DN_CASES, want):
        c = TlsZk(srv.tls_port, client_ctx(pki, pki.path("dn-%s-cert.pem" % name),
                                           pki.path("dn-%s-key.pem" % name)))
        got = c.x509_ids()
        c.close()
        assert got == [expected], "%s: zkd says %r, Java %r" % (name, got, expected)


X509_IDS = [
    "", "foo", "CN=foo", "cn=foo", "CN=", "CN=foo,O=bar", "CN=foo;O=bar", "CN=foo, O=bar",
    " CN=foo", "CN = foo", "CN=foo+OU=x", "CN=a\\,b", "CN=a,b", "CN=a\\qb", "CN=a\\2cb",
    "CN=a\\2", 'CN="a,b"', 'CN="unterminated', "CN=#0c03616263", "CN=#0c0361626", "CN=#zz",
    "FOO=bar", "OID.2.5.4.3=x", "2.5.4.3=x", "1=x", "EMAIL=a@b", "S=x", "SERIALNUMBER=1",
    "CN=a=b", "CN=a<b", "CN=a#b", "CN=a;b", 'CN=a"b', "CN=foo,", ",CN=foo", "=foo",
    "CN", "CN=foo+", "CN=a\\\\b", CLIENT_DN,
]


@pytest.mark.skipif(not java_ok(), reason="no Java")
def test_setacl_accepts_the_x509_ids_x500principal_accepts(env):
    pki, srv, base = env["pki"], env["want"], env["base"]
    src = os.path.join(base, "V.java")
    with open(src, "w") as f:
        f.write("""
import javax.security.auth.x500.X500Principal;
public class V { public static void main(String[] a) throws Exception {
  java.io.BufferedReader r = new java.io.BufferedReader(new java.io.InputStreamReader(System.in, "UTF-8"));
  String l; while ((l = r.readLine()) != null) {
    String s = new String(java.util.Base64.getDecoder().decode(l), "UTF-8");
    try { new X500Principal(s); System.out.println("valid"); }
    catch (IllegalArgumentException e) { System.out.println("invalid"); } } } }
""")
    stdin = "".join(base64.b64encode(i.encode()).decode() + "\n" for i in X509_IDS)
    verdicts = run([JAVA, src], input=stdin.encode()).stdout.decode().split()
    assert len(verdicts) == len(X509_IDS)
    c = TlsZk(srv.tls_port, client_ctx(pki, pki.path("admin-cert.pem"), pki.path("admin-key.pem")))
    try:
        err, _ = c.call(*zkraw.create("/acl-ids"))
        assert err in (0, zkraw.NODEEXISTS)
        wrong = []
        for ident, verdict in zip(X509_IDS, verdicts):
            err, _ = c.call(*zkraw.set_acl("/acl-ids", [(ALL, "x509", ident)]))
            ok = err == 0
            if ok != (verdict == "valid"):
                wrong.append((ident, verdict, err))
        assert not wrong, "x509 ids judged differently from X500Principal: %r" % wrong
    finally:
        c.close()


def test_superuser_certificate_passes_every_acl(env):
    pki, srv = env["pki"], env["want"]
    from kazoo.security import make_acl
    zk = kazoo(srv.tls_port, pki)
    try:
        zk.create("/tls-private", b"x", acl=[make_acl("x509", CLIENT_DN, read=True, write=True,
                                                      admin=True)])
    finally:
        zk.stop()
        zk.close()
    c = TlsZk(srv.tls_port, client_ctx(pki, pki.path("admin-cert.pem"), pki.path("admin-key.pem")))
    try:
        ids = c.whoami()
        assert ("x509", ADMIN_DN) in ids and any(s == "super" for s, _ in ids)
        err, r = c.call(*zkraw.get_data("/tls-private"))
        assert err == 0 and r.buffer() == b"x"
        err, _ = c.call(*zkraw.delete("/tls-private"))
        assert err == 0
    finally:
        c.close()


# ---------------------------------------------------------------- bad input

def test_bad_tls_input_closes_only_that_connection(env):
    pki, srv, other = env["pki"], env["want"], env["other"]
    zk = kazoo(srv.tls_port, pki)
    try:
        zk.create("/tls-alive", b"1", ephemeral=True)
        mark = srv.log_size()

        def raw(data):
            with socket.create_connection(("127.0.0.1", srv.tls_port), timeout=5) as s:
                s.sendall(data)
                try:
                    while s.recv(4096):
                        pass
                except ConnectionResetError:
                    pass
        raw(b"\x00\x00\x00\x2c" + b"\x00" * 44)              # a plaintext ConnectRequest
        srv.wait_log(r"TLS handshake failed: wrong version number", start=mark)
        raw(b"\x16\x03\x01\xff\xff" + os.urandom(300))     # a record far too long
        srv.wait_log(r"TLS handshake failed: packet length too long", start=mark)
        raw(b"\x16\x03\x01\x00\x20" + os.urandom(32))      # a handshake record of noise
        # an old protocol
        with pytest.raises((ssl.SSLError, OSError)):
            TlsZk(srv.tls_port, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_1))
        srv.wait_log(r"TLS handshake failed: (unsupported protocol|no protocols available)", start=mark)
        # a certificate from another CA
        with pytest.raises((ssl.SSLError, OSError, zkraw.ConnectionClosed)):
            c = TlsZk(srv.tls_port, client_ctx(pki, os.path.join(other, "client-cert.pem"),
                                               os.path.join(other, "client-key.pem")))
            c.whoami()
        srv.wait_log(r"TLS handshake failed: certificate verify failed", start=mark)
        # a TLS ClientHello on the plain port is a bad frame length there
        ctx = client_ctx(pki)
        with pytest.raises((ssl.SSLError, OSError)):
            ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=5),
                            server_hostname="localhost")
        assert zk.get("/tls-alive")[0] == b"1"
        assert zk.connected
    finally:
        zk.stop()
        zk.close()


def test_a_stalled_handshake_is_closed_and_blocks_nobody(env):
    pki, srv = env["pki"], env["want"]
    zk = kazoo(srv.tls_port, pki)
    try:
        mark = srv.log_size()
        silent = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=20)
        half = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=20)
        half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")   # a ClientHello's start
        t0 = time.monotonic()
        # while both stall, everyone else is served at once
        worst = 0.0
        while time.monotonic() - t0 < 3:
            t = time.monotonic()
            zk.set("/tls", b"ping")
            worst = max(worst, time.monotonic() - t)
        assert worst < 1.0, "a request took %.2fs while a handshake stalled" % worst
        for s in (silent, half):
            assert s.recv(100) == b""      # closed by the server
            s.close()
        took = time.monotonic() - t0
        assert 8.0 < took < 15.0, "stalled handshake closed after %.1fs" % took
        srv.wait_log(r"TLS handshake not finished within 10000 ms", start=mark)
        assert zk.connected
    finally:
        zk.stop()
        zk.close()


# ---------------------------------------------------------------- SIGHUP

def peer_serial(port, pki):
    ctx = client_ctx(pki)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                         server_hostname="localhost") as s:
        return int(s.getpeercert()["serialNumber"], 16)


def test_sighup_reloads_the_certificate_without_dropping_sessions(env):
    pki, srv = env["pki"], env["want"]
    states = []
    zk = kazoo(srv.tls_port, pki)
    zk.add_listener(states.append)
    try:
        zk.create("/tls-eph", b"e", ephemeral=True)
        session = zk.client_id
        before = peer_serial(srv.tls_port, pki)
        saved = {n: open(pki.path(n)).read() for n in ("server.pem",)}
        # a renewed server certificate, written over the key store
        serial = pki.issue("renewed", "/O=zkd test CA/OU=servers/CN=localhost",
                           ext=("extendedKeyUsage=serverAuth",
                                "subjectAltName=DNS:localhost,IP:127.0.0.1"))
        shutil.copy(pki.path("renewed.pem"), pki.path("server.pem"))
        mark = srv.log_size()
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_log(r"TLS: reloaded", start=mark)
        assert peer_serial(srv.tls_port, pki) == serial != before
        assert zk.get("/tls-eph")[0] == b"e"
        assert zk.client_id == session and states == [], "the session noticed: %r" % states

        # a broken key store: the reload fails, the renewed certificate stays
        with open(pki.path("server.pem"), "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
        mark = srv.log_size()
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_log(r"TLS certificates not reloaded, the old ones stay in use", start=mark)
        assert peer_serial(srv.tls_port, pki) == serial
        assert zk.get("/tls-eph")[0] == b"e" and zk.client_id == session
        for n, text in saved.items():
            with open(pki.path(n), "w") as f:
                f.write(text)
        mark = srv.log_size()
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_log(r"TLS: reloaded", start=mark)
        assert peer_serial(srv.tls_port, pki) == before
        assert srv.proc.poll() is None
    finally:
        zk.stop()
        zk.close()


# ---------------------------------------------------------------- zkCli against ZooKeeper 3.8

ZKCLI_SESSIONS = [
    ("zkcli", [
        "whoami",
        "create /tls_test hello",
        "create /tls_test/mine m x509:CN=zkcli:cdrwa",
        "getAcl /tls_test/mine",
        "get /tls_test/mine",
        "create /tls_test/bad x x509:foo:cdrwa",
        "create /tls_test/ok x world:anyone:r,x509:CN=zkcli:cdrwa",
        "getAcl /tls_test/ok",
        "setAcl /tls_test x509:CN=zkcli:cdrwa",
        "getAcl /tls_test",
        "quit",
    ]),
    (None, [
        "whoami",
        "get /tls_test/mine",
        "get /tls_test/ok",
        "ls /tls_test",
        "set /tls_test/mine nope",
        "set /tls_test/ok nope",
        "quit",
    ]),
    ("zkcli", [
        "ls /tls_test",
        "deleteall /tls_test",
        "ls /tls_test",
        "quit",
    ]),
]


class TlsOracle:
    """Apache ZooKeeper 3.8 with a secure client port (Netty) and the same
    certificates."""

    def __init__(self, base, pki):
        self.dir = os.path.join(base, "oracle")
        os.makedirs(os.path.join(self.dir, "data"))
        self.port, self.tls_port = free_port(), free_port()
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("tickTime=2000\ndataDir=%s/data\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "secureClientPort=%d\nsecureClientPortAddress=127.0.0.1\n"
                    "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
                    "ssl.keyStore.location=%s\nssl.keyStore.type=PEM\n"
                    "ssl.trustStore.location=%s\nssl.trustStore.type=PEM\nssl.clientAuth=want\n"
                    "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n"
                    "maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n"
                    % (self.dir, self.port, self.tls_port, pki.path("server.pem"), pki.path("ca.pem")))
        cp = ":".join([ZK_JAR, "/usr/share/java/slf4j-simple.jar"] + NETTY_EXTRA)
        self.logpath = os.path.join(self.dir, "zk.log")
        with open(self.logpath, "wb") as log:
            self.proc = subprocess.Popen(
                [JAVA, "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", cp,
                 "org.apache.zookeeper.server.ZooKeeperServerMain", cfg],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        tls_ready(self.tls_port, pki, time.monotonic() + 60, self.proc)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def zkcli_flags(pki, who):
    cp = ":".join(["/etc/zookeeper/conf", ZK_JAR] + NETTY_EXTRA)
    flags = ["-cp", cp, "-Dzookeeper.client.secure=true",
             "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
             "-Dzookeeper.ssl.trustStore.location=" + pki.path("ca.pem"),
             "-Dzookeeper.ssl.trustStore.type=PEM"]
    if who:
        flags += ["-Dzookeeper.ssl.keyStore.location=" + pki.path(who + ".pem"),
                  "-Dzookeeper.ssl.keyStore.type=PEM"]
    return " ".join(flags)


def sort_whoami(lines):
    """ZooKeeper keeps a session's identities in a hash set, so whoami lists
    them in hash order; compare them as a set."""
    out, i = [], 0
    while i < len(lines):
        out.append(lines[i])
        if lines[i] == "> whoami" and i + 1 < len(lines) and lines[i + 1] == "Auth scheme: User":
            j = i + 2
            while j < len(lines) and not lines[j].startswith(">") and not lines[j].startswith("==="):
                j += 1
            out.append(lines[i + 1])
            out.extend(sorted(lines[i + 2:j]))
            i = j
            continue
        i += 1
    return out


@pytest.mark.skipif(not (java_ok() and os.access(ZKCLI, os.X_OK)), reason="no zkCli.sh / Java")
def test_zkcli_over_tls_matches_zookeeper(env, monkeypatch):
    import zkcli_tutorial as zt
    pki, srv, base = env["pki"], env["want"], env["base"]

    def transcript(port):
        results = []
        for who, cmds in ZKCLI_SESSIONS:
            monkeypatch.setenv("CLIENT_JVMFLAGS", zkcli_flags(pki, who))
            results.append(zt.run_zkcli("127.0.0.1:%d" % port, cmds))
        return sort_whoami(zt.normalize(results, [c for _, c in ZKCLI_SESSIONS])), results

    oracle = TlsOracle(base, pki)
    try:
        want, _ = transcript(oracle.tls_port)
    finally:
        oracle.stop()
    got, raw = transcript(srv.tls_port)
    if want != got:
        import difflib
        diff = "".join(difflib.unified_diff([l + "\n" for l in want], [l + "\n" for l in got],
                                            "zookeeper-3.8", "zkd", n=3))
        pytest.fail("zkCli over TLS differs from ZooKeeper 3.8:\n%s\nraw zkd output:\n%s"
                    % (diff, "\n".join(out for _, out in raw)))
    # the transcript really went through TLS with a certificate
    assert "x509: CN=zkcli" in got
