#!/usr/bin/env bash
# tls-certs.sh - a throw-away CA with a server and a client certificate, for
# conf/zoo-tls.cfg and for trying TLS clients. Not for production.
#
#   conf/tls-certs.sh [DIR]        (default: conf/tls next to this script)
#
# Writes into DIR (EC P-256 keys, unencrypted PKCS#8, certificates valid for
# a year):
#   ca.pem, ca-key.pem                the CA; ca.pem is the trust store of
#                                     both sides (ssl.trustStore.location)
#   server.pem                        server key + certificate: a PEM key
#                                     store (ssl.keyStore.location)
#   server-cert.pem, server-key.pem   the same, apart (ssl.certFile, ssl.keyFile)
#   client.pem                        client key + certificate (zkCli's
#                                     zookeeper.ssl.keyStore.location)
#   client-cert.pem, client-key.pem   the same, apart (kazoo's certfile/keyfile)
#
# The server certificate names localhost, 127.0.0.1 and ::1 (clients check
# the name they connected to). The client certificate's subject is what
# the server authenticates the session as:
#   x509:CN=zkd-client,OU=clients,O=zkd test CA
#
# Environment: CLIENT_SUBJ (default "/O=zkd test CA/OU=clients/CN=zkd-client"),
# SERVER_SAN (default "DNS:localhost,IP:127.0.0.1,IP:::1"), DAYS (default 365).
# Existing files in DIR are replaced.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:-$here/tls}"
days="${DAYS:-365}"
client_subj="${CLIENT_SUBJ:-/O=zkd test CA/OU=clients/CN=zkd-client}"
server_san="${SERVER_SAN:-DNS:localhost,IP:127.0.0.1,IP:::1}"

command -v openssl >/dev/null || { echo "tls-certs.sh: openssl is not installed" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# the CA
newkey ca-key.pem
openssl req -x509 -new -key ca-key.pem -sha256 -days "$days" -subj "/O=zkd test CA/CN=zkd test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem

# issue NAME SUBJECT EXTENSIONS...: NAME-key.pem, NAME-cert.pem, NAME.pem
issue() {
  local name=$1 subj=$2; shift 2
  newkey "$name-key.pem"
  openssl req -new -key "$name-key.pem" -subj "$subj" -out "$tmp/$name.csr"
  printf '%s\n' "$@" >"$tmp/$name.ext"
  openssl x509 -req -in "$tmp/$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -CAserial "$tmp/ca.srl" -sha256 -days "$days" -extfile "$tmp/$name.ext" -out "$name-cert.pem" 2>/dev/null
  cat "$name-key.pem" "$name-cert.pem" >"$name.pem"
}

issue server "/O=zkd test CA/OU=servers/CN=localhost" \
  "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth" "subjectAltName=$server_san"
issue client "$client_subj" \
  "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=clientAuth"

chmod 600 ./*key.pem server.pem client.pem
echo "tls-certs.sh: wrote ca.pem, server.pem, client.pem (and the parts) in $dir"
echo "tls-certs.sh: the client is x509:$(openssl x509 -in client-cert.pem -noout -subject -nameopt RFC2253 | sed 's/^subject=//')"
