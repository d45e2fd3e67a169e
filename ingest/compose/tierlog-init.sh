#!/bin/sh
# docker-compose.yml's `tierlog-init` service: everything the secured cluster needs before its
# nodes start, written once into the `tierlog-secrets` volume and kept across restarts.
#
#   ca.crt, ca.key                   a private CA (EC P-256, 10 years); clients trust ca.crt
#   <node>.crt, <node>.key           each node's certificate, signed by the CA, with the names
#                                    clients and the other nodes use for it (SANs below);
#                                    re-issued when it expires within 30 days or the CA changed
#   admin-password                   the administrator's password (user `admin`, a super user):
#                                    the nodes create the SCRAM credentials from it at their
#                                    first start (--sasl-bootstrap-user); change it later with
#                                    kafka-configs, this file is not read again once it exists
#   broker-password                  the inter-broker user's password (user `broker`, a super
#                                    user): its SCRAM-SHA-512 credential is (re)written into the
#                                    metadata store at every run, so this file stays the truth
#
# Nothing is regenerated that already exists, so `docker compose up` after `down` keeps the
# same CA and passwords (`down -v` drops them with the other volumes).
#
# Settings (environment):
#   SECRETS_DIR      where to write (default /secrets)
#   NODES            node names, space separated (default "tierlog-1 tierlog-2 tierlog-3")
#   NODE_SANS        extra subjectAltNames of every node certificate (default
#                    "DNS:localhost,IP:127.0.0.1,DNS:tierlog-net": the nodes share tierlog-net's
#                    network namespace and advertise localhost:<port>)
#   SECRETS_OWNER    uid:gid that must read the keys and passwords (the image's `tierlog` user);
#                    unset: leave them to whoever runs this
#   BROKER_USER      the inter-broker user (default broker)
#   TIERLOG_METADATA the cluster's metadata store; unset: skip creating the inter-broker user
#   TIERLOG          the tierlog binary (default: tierlog on PATH)
#
# The tests run this very script outside Docker (tests/tests/compose.rs).
set -eu

dir="${SECRETS_DIR:-/secrets}"
nodes="${NODES:-tierlog-1 tierlog-2 tierlog-3}"
sans="${NODE_SANS:-DNS:localhost,IP:127.0.0.1,DNS:tierlog-net}"
broker="${BROKER_USER:-broker}"
tierlog="${TIERLOG:-tierlog}"

umask 077
mkdir -p "$dir"
cd "$dir"

# A password of 32 characters from the CSPRNG, without characters a shell or a properties file
# would need quoted.
new_password() {
  openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | cut -c1-32
}

# ---- the CA -----------------------------------------------------------------------------------
if [ ! -s ca.key ] || [ ! -s ca.crt ]; then
  echo "tierlog-init: creating the cluster CA"
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key.new
  openssl req -x509 -new -key ca.key.new -sha256 -days 3650 \
    -subj "/O=tierlog/CN=tierlog compose CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.crt.new
  mv ca.key.new ca.key
  mv ca.crt.new ca.crt
fi

# ---- one certificate per node -----------------------------------------------------------------
for node in $nodes; do
  if [ -s "$node.crt" ] && [ -s "$node.key" ] \
    && openssl verify -CAfile ca.crt "$node.crt" >/dev/null 2>&1 \
    && openssl x509 -in "$node.crt" -noout -checkend 2592000 >/dev/null; then
    continue
  fi
  echo "tierlog-init: issuing the certificate of $node"
  openssl ecparam -name prime256v1 -genkey -noout -out "$node.ec.key"
  # PKCS#8, the form every TLS stack reads.
  openssl pkcs8 -topk8 -nocrypt -in "$node.ec.key" -out "$node.key.new"
  rm -f "$node.ec.key"
  openssl req -new -key "$node.key.new" -subj "/O=tierlog/CN=$node" -out "$node.csr"
  printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=DNS:$node,$sans" >"$node.ext"
  openssl x509 -req -in "$node.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -sha256 -days 825 -extfile "$node.ext" -out "$node.crt.new" 2>/dev/null
  rm -f "$node.csr" "$node.ext"
  mv "$node.key.new" "$node.key"
  mv "$node.crt.new" "$node.crt"
done

# ---- passwords --------------------------------------------------------------------------------
for secret in admin-password broker-password; do
  if [ ! -s "$secret" ]; then
    echo "tierlog-init: generating $secret"
    new_password >"$secret.new"
    mv "$secret.new" "$secret"
  fi
done

# The nodes' keys and the passwords readable by the nodes only (the CA key stays with root);
# the CA certificate by everyone.
chmod 0644 ca.crt
if [ -n "${SECRETS_OWNER:-}" ]; then
  for node in $nodes; do chown "$SECRETS_OWNER" "$node.crt" "$node.key"; done
  chown "$SECRETS_OWNER" admin-password broker-password
fi

# ---- the inter-broker user ---------------------------------------------------------------------
if [ -n "${TIERLOG_METADATA:-}" ]; then
  "$tierlog" user add --name "$broker" --password-file broker-password \
    --mechanism SCRAM-SHA-512
fi
echo "tierlog-init: done"
