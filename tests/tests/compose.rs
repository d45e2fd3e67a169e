//! Offline checks of `docker-compose.yml` and `ingest/Dockerfile` (these machines have no
//! Docker engine): the compose file validates against the Compose specification
//! (`check-jsonschema --builtin-schema vendor.compose-spec`), its services, images, ports,
//! volumes, environment and commands are what the README's "Run a cluster with docker-compose"
//! section promises and what `tierlog serve` accepts, its three nodes form one cluster that
//! clients on the host and the nodes themselves reach at the advertised addresses, and the
//! Dockerfile builds the `tierlog` binary into a runtime image.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tierlog_tests::node::tierlog_binary;
use tierlog_tests::tools::require_tool;

/// The bucket the init service creates and the nodes tier to.
const BUCKET: &str = "tierlog";
/// The tierlog nodes, one cluster.
const NODES: [&str; 3] = ["tierlog-1", "tierlog-2", "tierlog-3"];
/// The service whose network namespace the nodes share, and which publishes their ports.
const NET: &str = "tierlog-net";
/// The image the nodes run, built once from the repository's Dockerfile.
const IMAGE: &str = "tierlog:dev";
/// Where each node keeps its data, inside its container.
const DATA_DIR: &str = "/var/lib/tierlog";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// `docker-compose.yml` as JSON, through PyYAML (`None` when python3/PyYAML are missing
/// outside CI).
fn compose() -> Option<Value> {
    if !require_tool("python3", &["-c", "import yaml"], "compose checks (PyYAML)").unwrap() {
        return None;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(repo().join("docker-compose.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose.yml is not valid YAML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

/// A list-or-map field (`environment`) as `(key, value)` pairs.
fn env_of(service: &Value) -> Vec<(String, String)> {
    match &service["environment"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| {
                let (k, v) = s.split_once('=').unwrap_or((s, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn env(service: &Value, key: &str) -> Option<String> {
    env_of(service)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// `command` as a list of strings (a string command is split on whitespace).
fn command(service: &Value) -> Vec<String> {
    strings(&service["command"])
}

/// A list-or-string field (`command`, a healthcheck's `test`) as a list of strings.
fn strings(field: &Value) -> Vec<String> {
    match field {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Short-syntax `ports` as `(host, container)`.
fn ports(service: &Value) -> Vec<(u16, u16)> {
    service["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(Value::as_str)
                .map(|p| {
                    let (host, container) = p.rsplit_once(':').unwrap_or((p, p));
                    let host = host.rsplit(':').next().unwrap();
                    (host.parse().unwrap(), container.parse().unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Short-syntax `volumes` as `(source, target)`.
fn volumes(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter_map(Value::as_str)
                .map(|v| {
                    let mut parts = v.split(':');
                    (
                        parts.next().unwrap().to_owned(),
                        parts.next().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The README section starting at the heading `title`, up to the next heading of that level.
fn readme_section(title: &str) -> String {
    let readme = read("README.md");
    let start = readme
        .find(&format!("## {title}\n"))
        .unwrap_or_else(|| panic!("README.md has no section \"## {title}\""));
    let body = &readme[start + title.len() + 4..];
    let end = body.find("\n## ").unwrap_or(body.len());
    body[..end].to_owned()
}

/// The value of `--flag=value` in `cmd` (`""` for a bare `--flag`).
fn flag(cmd: &[String], flag: &str) -> Option<String> {
    cmd.iter().find_map(|a| {
        a.strip_prefix(&format!("{flag}="))
            .map(str::to_owned)
            .or_else(|| (a == flag).then(String::new))
    })
}

/// The port of `addr` (`host:port`) when its host is `host`.
fn port_on(addr: &str, host: &str) -> Option<u16> {
    let (h, port) = addr.rsplit_once(':')?;
    (h == host).then(|| port.parse().ok()).flatten()
}

/// A node service as the cluster sees it.
struct Node<'a> {
    name: &'static str,
    service: &'a Value,
    id: String,
    /// The Kafka listener's port (`TIERLOG_LISTEN=0.0.0.0:<port>`).
    kafka: u16,
    /// The admin HTTP port (`TIERLOG_HTTP=0.0.0.0:<port>`).
    http: u16,
    advertised: String,
    store: String,
    metadata: String,
}

fn nodes(compose: &Value) -> Vec<Node<'_>> {
    NODES
        .iter()
        .map(|&name| {
            let service = service(compose, name);
            let var =
                |key: &str| env(service, key).unwrap_or_else(|| panic!("{name}: {key} is not set"));
            let bound = |key: &str| {
                let addr = var(key);
                port_on(&addr, "0.0.0.0").unwrap_or_else(|| {
                    panic!("{name}: {key}={addr} must bind every interface (0.0.0.0:<port>)")
                })
            };
            let cmd = command(service);
            assert_eq!(cmd.first().map(String::as_str), Some("serve"), "{name}");
            Node {
                name,
                service,
                id: var("TIERLOG_NODE_ID"),
                kafka: bound("TIERLOG_LISTEN"),
                http: bound("TIERLOG_HTTP"),
                advertised: var("TIERLOG_ADVERTISE"),
                store: flag(&cmd, "--object-store").expect("--object-store"),
                metadata: var("TIERLOG_METADATA"),
            }
        })
        .collect()
}

/// `tierlog serve --help`.
fn serve_help() -> String {
    let binary = match tierlog_binary() {
        Ok(b) => b,
        Err(e) => panic!("{e:#}"),
    };
    let help = Command::new(&binary)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "tierlog serve --help failed");
    String::from_utf8_lossy(&help.stdout).into_owned()
}

/// The bootstrap string host clients use: every node's advertised address.
fn bootstrap(nodes: &[Node<'_>]) -> String {
    nodes
        .iter()
        .map(|n| n.advertised.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn compose_file_validates_against_the_compose_spec() {
    if !require_tool(
        "check-jsonschema",
        &["--version"],
        "compose spec validation",
    )
    .unwrap()
    {
        return;
    }
    let out = Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(repo().join("docker-compose.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose.yml does not validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_services_match_what_the_readme_promises() {
    let Some(compose) = compose() else {
        return;
    };
    let services: BTreeSet<&str> = compose["services"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = BTreeSet::from(["minio", "minio-init", "etcd", NET]);
    expected.extend(NODES);
    assert_eq!(services, expected, "services");
    let declared_volumes: BTreeSet<&str> = compose["volumes"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let section = readme_section("Run a cluster with docker-compose");
    let nodes = nodes(&compose);

    // Every third-party image is pinned to a release, never `latest`.
    for (name, repo_prefix) in [
        ("minio", "minio/minio:RELEASE."),
        ("minio-init", "minio/mc:RELEASE."),
        ("etcd", "quay.io/coreos/etcd:v3."),
        (NET, "busybox:1."),
    ] {
        let image = service(&compose, name)["image"].as_str().unwrap();
        assert!(
            image.starts_with(repo_prefix),
            "{name}: image {image} is not pinned to a {repo_prefix}… release"
        );
    }

    // Published ports: each is in the README, and every service with state has a named volume
    // (each node its own) and a healthcheck.
    let mut stateful = vec![
        ("minio", vec![9000, 9001], "/data"),
        ("etcd", vec![2379], "/etcd-data"),
    ];
    stateful.extend(
        nodes
            .iter()
            .map(|n| (n.name, vec![n.kafka, n.http], DATA_DIR)),
    );
    let mut node_volumes = BTreeSet::new();
    for (name, host_ports, data_dir) in stateful {
        let s = service(&compose, name);
        for port in &host_ports {
            assert!(
                section.contains(&port.to_string()),
                "README's compose section does not mention port {port} ({name})"
            );
        }
        let vols = volumes(s);
        let volume = vols
            .iter()
            .find(|(src, dst)| dst == data_dir && declared_volumes.contains(src.as_str()))
            .unwrap_or_else(|| panic!("{name}: no named volume at {data_dir}: {vols:?}"));
        assert!(
            section.contains(&format!("`{}`", volume.0)),
            "README's compose section does not name the volume `{}` ({name})",
            volume.0
        );
        if data_dir == DATA_DIR {
            assert!(
                node_volumes.insert(volume.0.clone()),
                "{name} shares its volume {} with another node",
                volume.0
            );
        } else {
            assert_eq!(
                ports(s),
                host_ports.iter().map(|&p| (p, p)).collect::<Vec<_>>(),
                "{name}: published ports"
            );
        }
        assert!(s.get("healthcheck").is_some(), "{name}: no healthcheck");
    }
    for name in &services {
        assert!(
            section.contains(&format!("`{name}`")),
            "README's compose section does not name the service `{name}`"
        );
    }

    // The init service creates the bucket the nodes use, with MinIO's credentials.
    let minio = service(&compose, "minio");
    let user = env(minio, "MINIO_ROOT_USER").unwrap();
    let password = env(minio, "MINIO_ROOT_PASSWORD").unwrap();
    let init = service(&compose, "minio-init");
    assert_eq!(
        init["depends_on"]["minio"]["condition"], "service_healthy",
        "the bucket is created once MinIO is healthy"
    );
    let init_script = command(init).join(" ");
    assert!(
        init_script.contains("http://minio:9000")
            && init_script.contains(&format!("mc mb --ignore-existing local/{BUCKET}")),
        "minio-init does not create bucket {BUCKET}: {init_script}"
    );
    assert_eq!(env(init, "MINIO_ROOT_USER").as_deref(), Some(user.as_str()));
    assert_eq!(
        env(init, "MINIO_ROOT_PASSWORD").as_deref(),
        Some(password.as_str())
    );
    for n in &nodes {
        assert_eq!(env(n.service, "AWS_ACCESS_KEY_ID"), Some(user.clone()));
        assert_eq!(
            env(n.service, "AWS_SECRET_ACCESS_KEY"),
            Some(password.clone())
        );
    }

    // What the README tells a user to type and to expect; the compose file's header says the
    // same about clients and replication.
    let header: String = read("docker-compose.yml")
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let servers = bootstrap(&nodes);
    let client_config = format!("bootstrap.servers={servers}");
    for promise in [&client_config, "replication factor 3", &nodes[0].store] {
        assert!(
            header.contains(promise),
            "docker-compose.yml's header does not say {promise:?}"
        );
    }
    assert!(
        !header.contains("unused") && !header.contains("not connect to etcd"),
        "docker-compose.yml's header still calls etcd unused"
    );
    for promise in [
        "docker compose up --build",
        &servers,
        "docker compose kill tierlog-2",
        "docker compose start tierlog-2",
        "--default-replication-factor",
        "http://localhost:9001",
        "ingest/Dockerfile",
        IMAGE,
        &nodes[0].store,
        &nodes[0].metadata,
        &user,
        &password,
    ] {
        assert!(
            section.contains(promise),
            "README's compose section does not mention {promise:?}"
        );
    }
    assert!(
        !section.contains("Not yet a cluster"),
        "README's compose section still says compose is not a cluster"
    );
}

#[test]
fn compose_nodes_form_one_cluster_reachable_from_the_host() {
    let Some(compose) = compose() else {
        return;
    };
    let nodes = nodes(&compose);

    // One image, built once: only the first node carries `build:`, the others run its tag
    // without trying a registry.
    let with_build: Vec<&str> = compose["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| s.get("build").is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(with_build, [NODES[0]], "services that build an image");
    let build = &service(&compose, NODES[0])["build"];
    assert_eq!(build["context"], ".", "{}: build context", NODES[0]);
    let dockerfile = build["dockerfile"].as_str().unwrap();
    assert_eq!(dockerfile, "ingest/Dockerfile");
    assert!(repo().join(dockerfile).is_file(), "{dockerfile} is missing");
    for n in &nodes {
        assert_eq!(n.service["image"], IMAGE, "{}: image", n.name);
        if n.name != NODES[0] {
            assert_eq!(n.service["pull_policy"], "never", "{}: pull_policy", n.name);
        }
    }

    // One cluster: the same etcd and the same object store location, distinct node ids.
    let etcd = service(&compose, "etcd");
    assert!(
        command(etcd).contains(&"--listen-client-urls=http://0.0.0.0:2379".to_owned()),
        "etcd serves clients on :2379"
    );
    // Offset commits and ISR changes write revisions all the time: without compaction etcd
    // fills its quota and refuses writes.
    assert!(
        command(etcd).contains(&"--auto-compaction-mode=periodic".to_owned())
            && command(etcd)
                .iter()
                .any(|a| a.starts_with("--auto-compaction-retention=")),
        "etcd compacts old revisions"
    );
    for n in &nodes {
        let first = &nodes[0];
        assert!(
            n.metadata.starts_with("etcd://etcd:2379/"),
            "{}: metadata {} is not the compose etcd",
            n.name,
            n.metadata
        );
        assert_eq!(n.metadata, first.metadata, "{}: metadata store", n.name);
        assert!(
            n.store.starts_with(&format!("s3://{BUCKET}/")),
            "{} tiers to {}, not bucket {BUCKET}",
            n.name,
            n.store
        );
        assert_eq!(n.store, first.store, "{}: object store location", n.name);
        let cmd = command(n.service);
        assert_eq!(command(first.service), cmd, "{}: command", n.name);
        assert_eq!(
            flag(&cmd, "--s3-endpoint").as_deref(),
            Some("http://minio:9000")
        );
        assert_eq!(flag(&cmd, "--s3-path-style").as_deref(), Some(""));
        assert_eq!(flag(&cmd, "--s3-allow-http").as_deref(), Some(""));
        assert!(env(n.service, "AWS_REGION").is_some() || flag(&cmd, "--s3-region").is_some());
        assert_eq!(
            env(n.service, "TIERLOG_DATA_DIR").as_deref(),
            Some(DATA_DIR),
            "{}",
            n.name
        );
        for (dependency, condition) in [
            ("etcd", "service_healthy"),
            ("minio-init", "service_completed_successfully"),
            (NET, "service_started"),
        ] {
            assert_eq!(
                n.service["depends_on"][dependency]["condition"], condition,
                "{} waits for {dependency}",
                n.name
            );
        }
    }
    let distinct = |what: &str, values: Vec<String>| {
        let set: BTreeSet<&String> = values.iter().collect();
        assert_eq!(set.len(), values.len(), "{what} must differ: {values:?}");
    };
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    assert_eq!(ids, ["1", "2", "3"], "node ids");
    let all_ports = nodes.iter().flat_map(|n| [n.kafka, n.http]);
    distinct("ports", all_ports.clone().map(|p| p.to_string()).collect());
    distinct(
        "advertised addresses",
        nodes.iter().map(|n| n.advertised.clone()).collect(),
    );

    // Reachable from the host and from each other: a node advertises one address, to clients
    // and to the other nodes' replica fetchers alike. The nodes share tierlog-net's network
    // namespace, where `localhost:<port>` is the same node for everyone, and tierlog-net
    // publishes every port one to one, so the advertised address is right on the host too.
    let net = service(&compose, NET);
    let mut published = ports(net);
    published.sort_unstable();
    let mut wanted: Vec<(u16, u16)> = all_ports.map(|p| (p, p)).collect();
    wanted.sort_unstable();
    assert_eq!(
        published, wanted,
        "{NET} publishes each node port one to one"
    );
    assert!(net.get("volumes").is_none(), "{NET} holds no state");
    for n in &nodes {
        assert_eq!(
            n.service["network_mode"],
            format!("service:{NET}"),
            "{}: network_mode",
            n.name
        );
        assert!(
            n.service.get("ports").is_none(),
            "{}: ports are published by {NET}",
            n.name
        );
        assert_eq!(
            port_on(&n.advertised, "localhost"),
            Some(n.kafka),
            "{}: advertises {} but listens on {}",
            n.name,
            n.advertised,
            n.kafka
        );
        let health = strings(&n.service["healthcheck"]["test"]);
        assert_eq!(
            health,
            [
                "CMD".to_owned(),
                "curl".into(),
                "-fsS".into(),
                format!("http://127.0.0.1:{}/health", n.http)
            ],
            "{}: the healthcheck must ask this node, not a neighbour",
            n.name
        );
    }
}

#[test]
fn compose_node_settings_are_accepted_by_tierlog_serve() {
    let Some(compose) = compose() else {
        return;
    };
    let help = serve_help();
    for n in nodes(&compose) {
        for a in command(n.service).iter().skip(1) {
            let (flag, value) = a
                .split_once('=')
                .map_or((a.as_str(), None), |(f, v)| (f, Some(v)));
            let line = help
                .lines()
                .find(|l| {
                    l.split_whitespace()
                        .any(|w| w.trim_end_matches(',') == flag)
                })
                .unwrap_or_else(|| panic!("`tierlog serve` has no flag {flag}:\n{help}"));
            // `--flag <V>` needs a value, `--flag [<V>]` may take one, `--flag` takes none.
            let optional = line.contains(&format!("{flag} [<"));
            let required =
                line.contains(&format!("{flag} <")) || line.contains(&format!("{flag}=<"));
            assert!(
                optional || required == value.is_some(),
                "{}: {a} — `tierlog serve --help` says: {}",
                n.name,
                line.trim()
            );
        }
        for (key, _) in env_of(n.service) {
            if key.starts_with("TIERLOG_") {
                assert!(
                    help.contains(&format!("env: {key}=")),
                    "{}: {key} is not a `tierlog serve` environment variable",
                    n.name
                );
            }
        }
        // The README and the header promise replication factor 3 by default.
        assert!(
            flag(&command(n.service), "--default-replication-factor").is_none()
                && env(n.service, "TIERLOG_DEFAULT_REPLICATION_FACTOR").is_none(),
            "{}: sets its own default replication factor",
            n.name
        );
    }
    let rf = help
        .split("--default-replication-factor <")
        .nth(1)
        .and_then(|rest| rest.split("[env:").next())
        .unwrap_or_else(|| panic!("`tierlog serve` has no --default-replication-factor"));
    assert!(
        rf.contains("[default: 3]"),
        "`tierlog serve` no longer defaults to replication factor 3: {rf}"
    );
}

#[test]
fn dockerfile_builds_the_tierlog_binary_into_a_slim_runtime_image() {
    let dockerfile = read("ingest/Dockerfile");
    let instructions: Vec<String> = dockerfile
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    let builder = froms[0].split_whitespace().nth(1).unwrap();
    assert!(
        froms[0].ends_with(" AS builder") && builder.starts_with("rust:"),
        "first stage: {}",
        froms[0]
    );
    // The builder's Rust is at least the workspace's rust-version.
    let rust_version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap();
    let image_version = builder
        .trim_start_matches("rust:")
        .split('-')
        .next()
        .unwrap();
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    assert!(
        parse(image_version) >= parse(&rust_version),
        "builder rust {image_version} is older than the workspace's rust-version {rust_version}"
    );
    assert_eq!(froms[1], "FROM debian:bookworm-slim");
    let text = instructions.join("\n");
    for needle in [
        "build-essential",
        "pkg-config",
        "zlib1g-dev",
        "protobuf-compiler libprotobuf-dev",
        "cargo build --release --locked -p tierlog-cli --features etcd --bin tierlog",
        "COPY --from=builder /usr/local/bin/tierlog /usr/local/bin/tierlog",
        "ENTRYPOINT [\"tierlog\"]",
        "CMD [\"serve\"]",
        "EXPOSE 9092 9644",
    ] {
        assert!(text.contains(needle), "ingest/Dockerfile lacks {needle:?}");
    }
    // The builder copies the whole workspace; .dockerignore must keep what cargo needs.
    assert!(instructions.iter().any(|l| l == "COPY . ."));
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(ignored.contains(&"target/"), ".dockerignore keeps target/");
    let members = ["metadata", "tiering", "query", "ingest", "tests"];
    for needed in members
        .iter()
        .copied()
        .chain(["Cargo.toml", "Cargo.lock", ".vendor", ".cargo"])
    {
        assert!(
            !ignored
                .iter()
                .any(|p| p.trim_end_matches('/').trim_start_matches('/') == needed),
            ".dockerignore excludes {needed}, which the build needs"
        );
    }
    // The binary target exists where the Dockerfile builds it.
    let cli_manifest = read("ingest/cli/Cargo.toml");
    assert!(cli_manifest.contains("name = \"tierlog-cli\""));
    assert!(cli_manifest.contains("[[bin]]\nname = \"tierlog\""));
}
