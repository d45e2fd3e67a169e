#!/usr/bin/env bash
# Installs what the tierlog test suite needs on Debian 12 (run as root, or with sudo available).
# Idempotent: every step checks first, so a re-run on a prepared machine takes about a second.
#
#   apt:  kcat (Debian's, built on librdkafka 2.0.2: an old client on purpose),
#         protobuf-compiler libprotobuf-dev (etcd-client's build script runs protoc and needs
#         the well-known .proto includes; the `etcd` feature is built for the tests),
#         etcd-server etcd-client (cluster-mode tests),
#         build-essential pkg-config zlib1g-dev (rdkafka-sys builds its bundled librdkafka with
#         ./configure && make; features tokio,libz,zstd need a C toolchain, make and zlib;
#         zstd is vendored by zstd-sys), libssl-dev (the `ssl` feature: SSL, SASL_SSL and
#         SCRAM tests),
#         python3 python3-pip.
#   pip:  kafka-python and aiokafka (compatibility, groups and exactly-once tests), moto[s3] flask flask-cors (S3 test server:
#         `moto_server`, started by tests/src/s3.rs), check-jsonschema (validates
#         docker-compose.yml against the Compose spec it vendors: works offline), PyYAML
#         (tests/tests/compose.rs reads docker-compose.yml through it), python-hcl2
#         (tests/python/check_terraform.py parses terraform/ with it), pyarrow (with Flight:
#         tests/python/flight_read.py reads `tierlog query serve`), duckdb and pyspark
#         (tests/python/read_parquet.py and spark_read.py read `tierlog export` output; pyspark
#         runs on the machine's Java 17).
#   apt (only if no `java` is on the PATH): openjdk-17-jre-headless, for pyspark.
#   cargo: cargo-nextest (only if missing).
#   maven: tests/kafka/pom.xml — Apache Kafka 4.3.1 (broker, tools, Java client, Streams, Connect)
#         into tests/kafka/target/lib, and the Java test programs of tests/kafka/src into
#         tests/kafka/target/tierlog-kafka-compat.jar (only when the pom or a source is newer).
#   go:   tests/franz (a franz-go client program) into tests/franz/target/franz-check (same rule).
#   npm:  tests/node (kafkajs 2.2.4, pinned by the committed package-lock.json) into
#         tests/node/node_modules with `npm ci` (only when package.json or the lock is newer than
#         the installed tree). Needs node and npm; Debian's nodejs and npm if npm is missing.
set -euo pipefail

APT_PACKAGES=(
  kcat
  protobuf-compiler
  libprotobuf-dev
  etcd-server
  etcd-client
  build-essential
  pkg-config
  zlib1g-dev
  libssl-dev
  python3
  python3-pip
)

PIP_PACKAGES=(
  "kafka-python==3.0.12"
  "aiokafka==0.14.0"
  "moto[s3]==5.2.1"
  "flask==3.1.3"
  "flask-cors==6.0.2"
  "check-jsonschema==0.39.0"
  "PyYAML==6.0.3"
  "python-hcl2==8.1.4"
  "pyarrow==26.0.1"
  "duckdb==1.4.4"
  "pyspark==4.0.1"
)

log() { printf 'install.sh: %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  fi
fi

# ---- apt ------------------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
# pyspark needs a JVM (17); a machine with one already (any vendor) keeps it.
if ! command -v java >/dev/null 2>&1 \
  && ! dpkg-query -W -f='${Status}' openjdk-17-jre-headless 2>/dev/null | grep -q 'install ok installed'; then
  missing+=(openjdk-17-jre-headless)
fi
# Maven builds tests/kafka; polyglot machines come with it.
if ! command -v mvn >/dev/null 2>&1; then
  missing+=(maven)
fi
# npm installs kafkajs for tests/node; a machine with node and npm already (any source) keeps them.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "apt: all packages present"
fi

# ---- pip ------------------------------------------------------------------------------------
PYTHON=python3
pip_missing=()
frozen="$("$PYTHON" -m pip freeze 2>/dev/null | tr '[:upper:]_' '[:lower:]-' || true)"
for spec in "${PIP_PACKAGES[@]}"; do
  # "moto[s3]==5.2.1" is satisfied by "moto==5.2.1" in pip freeze.
  plain="$(printf '%s' "${spec/\[*\]/}" | tr '[:upper:]_' '[:lower:]-')"
  if ! grep -qx -- "$plain" <<<"$frozen"; then
    pip_missing+=("$spec")
  fi
done
if [ "${#pip_missing[@]}" -gt 0 ]; then
  log "pip: installing ${pip_missing[*]}"
  # Debian's system python is "externally managed" (PEP 668); this machine is a test box.
  PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install --quiet --disable-pip-version-check \
    --root-user-action=ignore "${pip_missing[@]}"
else
  log "pip: all packages present"
fi

# ---- cargo ----------------------------------------------------------------------------------
if ! cargo nextest --version >/dev/null 2>&1; then
  log "cargo: installing cargo-nextest"
  # --debug: compiles in a fraction of the release time; the runner itself does little work.
  cargo install --locked --debug cargo-nextest
else
  log "cargo: cargo-nextest present"
fi

# ---- maven: Apache Kafka and the Java test programs -----------------------------------------
TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_DIR="$TESTS_DIR/kafka"
KAFKA_JAR="$KAFKA_DIR/target/tierlog-kafka-compat.jar"
if [ ! -f "$KAFKA_JAR" ] || [ ! -d "$KAFKA_DIR/target/lib" ] \
  || [ -n "$(find "$KAFKA_DIR/pom.xml" "$KAFKA_DIR/src" -newer "$KAFKA_JAR" -print -quit)" ]; then
  log "maven: building tests/kafka (Apache Kafka jars and the Java test programs)"
  (cd "$KAFKA_DIR" && mvn -q -B -Dstyle.color=never package)
else
  log "maven: tests/kafka up to date"
fi

# ---- go: the franz-go client program --------------------------------------------------------
FRANZ_DIR="$TESTS_DIR/franz"
FRANZ_BIN="$FRANZ_DIR/target/franz-check"
if [ -f "$FRANZ_DIR/go.mod" ]; then
  if [ ! -x "$FRANZ_BIN" ] \
    || [ -n "$(find "$FRANZ_DIR" -name '*.go' -newer "$FRANZ_BIN" -print -quit)" ] \
    || [ "$FRANZ_DIR/go.sum" -nt "$FRANZ_BIN" ]; then
    log "go: building tests/franz"
    (cd "$FRANZ_DIR" && go build -mod=readonly -o target/franz-check .)
  else
    log "go: tests/franz up to date"
  fi
fi

# ---- npm: kafkajs for the Node test program -------------------------------------------------
NODE_DIR="$TESTS_DIR/node"
# npm writes node_modules/.package-lock.json last: its age tells whether the tree is current.
NODE_INSTALLED="$NODE_DIR/node_modules/.package-lock.json"
if [ ! -f "$NODE_INSTALLED" ] \
  || [ "$NODE_DIR/package.json" -nt "$NODE_INSTALLED" ] \
  || [ "$NODE_DIR/package-lock.json" -nt "$NODE_INSTALLED" ]; then
  log "npm: installing tests/node (npm ci)"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
else
  log "npm: tests/node up to date"
fi

# ---- sanity ---------------------------------------------------------------------------------
command -v kcat >/dev/null || { log "kcat missing after install"; exit 1; }
command -v protoc >/dev/null || { log "protoc missing after install"; exit 1; }
command -v etcd >/dev/null || { log "etcd missing after install"; exit 1; }
"$PYTHON" -c 'import kafka' || { log "kafka-python not importable"; exit 1; }
# The tests start moto through the interpreter (not a wrapper script) so SIGSTOP reaches it.
"$PYTHON" -c 'import moto.server, flask, flask_cors' \
  || { log "moto.server/flask/flask_cors not importable"; exit 1; }
command -v moto_server >/dev/null || { log "moto_server missing after install"; exit 1; }
command -v check-jsonschema >/dev/null || { log "check-jsonschema missing after install"; exit 1; }
"$PYTHON" -c 'import yaml' || { log "PyYAML not importable"; exit 1; }
"$PYTHON" -c 'import hcl2' || { log "python-hcl2 not importable"; exit 1; }
"$PYTHON" -c 'import pyarrow.flight' || { log "pyarrow (with Flight) not importable"; exit 1; }
for mod in duckdb pyspark; do
  "$PYTHON" -c "import $mod" || { log "$mod not importable"; exit 1; }
done
command -v java >/dev/null || { log "java missing after install (pyspark needs Java 17)"; exit 1; }
command -v mvn >/dev/null || { log "mvn missing (Maven builds tests/kafka)"; exit 1; }
[ -f "$KAFKA_JAR" ] || { log "$KAFKA_JAR missing after the Maven build"; exit 1; }
node -e 'require(process.argv[1])' "$NODE_DIR/node_modules/kafkajs" \
  || { log "kafkajs not loadable from tests/node/node_modules after npm ci"; exit 1; }
log "done in ${SECONDS}s"
