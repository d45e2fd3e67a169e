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
/// The tierlog nodes, one cluster: three that `up` starts and a fourth in the `scale` profile.
const NODES: [&str; 4] = ["tierlog-1", "tierlog-2", "tierlog-3", "tierlog-4"];
/// The node only the `scale` profile starts.
const SCALE_NODE: &str = "tierlog-4";
/// The service whose network namespace the nodes share, and which publishes their ports.
const NET: &str = "tierlog-net";
/// The image the nodes run, built once from the repository's Dockerfile.
const IMAGE: &str = "tierlog:dev";
/// Where each node keeps its data, inside its container.
const DATA_DIR: &str = "/var/lib/tierlog";
/// The one-shot service that generates the certificates and passwords.
const INIT: &str = "tierlog-init";
/// The script it runs, in the repository and inside its container.
const INIT_SCRIPT: &str = "ingest/compose/tierlog-init.sh";
/// The volume holding the CA, the node certificates and the passwords.
const SECRETS_VOLUME: &str = "tierlog-secrets";
/// Where the nodes see that volume (read-only).
const SECRETS_DIR: &str = "/etc/tierlog/secrets";
/// The clients' listener and the nodes' own.
const CLIENT: &str = "CLIENT";
const INTERNAL: &str = "INTERNAL";
/// The administrator and the inter-broker user.
const ADMIN: &str = "admin";
const BROKER: &str = "broker";

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

/// The `host:port` of listener `name` in a Kafka listener list (`NAME://host:port,…`).
fn listener_addr(list: &str, name: &str) -> Option<String> {
    list.split(',')
        .find_map(|l| l.trim().strip_prefix(&format!("{name}://")))
        .map(str::to_owned)
}

/// A node service as the cluster sees it.
struct Node<'a> {
    name: &'static str,
    service: &'a Value,
    id: String,
    /// The client listener's port (`TIERLOG_LISTENERS=CLIENT://0.0.0.0:<port>,…`).
    kafka: u16,
    /// The inter-broker listener's port (`INTERNAL://127.0.0.1:<port>`), never published.
    internal: u16,
    /// The admin HTTP port (`TIERLOG_HTTP=0.0.0.0:<port>`).
    http: u16,
    /// The client listener's advertised address.
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
            let in_list = |key: &str, listener: &str| {
                listener_addr(&var(key), listener)
                    .unwrap_or_else(|| panic!("{name}: {key} has no {listener} listener"))
            };
            let cmd = command(service);
            assert_eq!(cmd.first().map(String::as_str), Some("serve"), "{name}");
            let client = in_list("TIERLOG_LISTENERS", CLIENT);
            let internal = in_list("TIERLOG_LISTENERS", INTERNAL);
            Node {
                name,
                service,
                id: var("TIERLOG_NODE_ID"),
                kafka: port_on(&client, "0.0.0.0").unwrap_or_else(|| {
                    panic!("{name}: the {CLIENT} listener {client} must bind every interface")
                }),
                internal: port_on(&internal, "127.0.0.1").unwrap_or_else(|| {
                    panic!("{name}: the {INTERNAL} listener {internal} must bind only loopback")
                }),
                http: bound("TIERLOG_HTTP"),
                advertised: in_list("TIERLOG_ADVERTISED_LISTENERS", CLIENT),
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

/// The bootstrap string host clients use: the advertised addresses of the nodes `up` starts.
fn bootstrap(nodes: &[Node<'_>]) -> String {
    // The nodes `up` starts (the `scale` profile's node is found through them).
    nodes
        .iter()
        .filter(|n| n.name != SCALE_NODE)
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
    let mut expected = BTreeSet::from(["minio", "minio-init", "etcd", INIT, NET]);
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
    // Connecting securely, with librdkafka/kcat and the Java client.
    for promise in [
        "SASL_SSL",
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        "ssl.ca.location=ca.crt",
        "ScramLoginModule required",
        "ssl.truststore.type=PEM",
        "docker compose cp tierlog-init:/secrets/ca.crt",
        "docker compose cp tierlog-init:/secrets/admin-password",
        "ingest/SECURITY.md",
        "tierlog serve",
        INIT_SCRIPT,
        SECRETS_VOLUME,
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
            (INIT, "service_completed_successfully"),
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
    assert_eq!(ids, ["1", "2", "3", "4"], "node ids");
    let all_ports = nodes.iter().flat_map(|n| [n.kafka, n.http]);
    distinct(
        "ports",
        nodes
            .iter()
            .flat_map(|n| [n.kafka, n.http, n.internal])
            .map(|p| p.to_string())
            .collect(),
    );
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

/// Every environment variable of a node, `*_FILE` paths under the secrets volume resolved.
fn node_env(n: &Node<'_>, key: &str) -> String {
    env(n.service, key).unwrap_or_else(|| panic!("{}: {key} is not set", n.name))
}

#[test]
fn compose_runs_secured_by_default() {
    let Some(compose) = compose() else {
        return;
    };
    let nodes = nodes(&compose);
    let text = read("docker-compose.yml");
    let published: BTreeSet<u16> = ports(service(&compose, NET))
        .into_iter()
        .map(|(host, _)| host)
        .collect();
    for n in &nodes {
        let name = n.name;
        // Clients and nodes speak SASL_SSL only: no PLAINTEXT or SASL_PLAINTEXT listener.
        let listeners = node_env(n, "TIERLOG_LISTENERS");
        assert_eq!(
            listeners.split(',').count(),
            2,
            "{name}: exactly the {CLIENT} and {INTERNAL} listeners: {listeners}"
        );
        assert_eq!(
            node_env(n, "TIERLOG_LISTENER_SECURITY_PROTOCOL_MAP"),
            format!("{CLIENT}:SASL_SSL,{INTERNAL}:SASL_SSL"),
            "{name}: listener protocols"
        );
        assert_eq!(
            node_env(n, "TIERLOG_INTER_BROKER_LISTENER_NAME"),
            INTERNAL,
            "{name}"
        );
        assert!(
            !published.contains(&n.internal),
            "{name}: the inter-broker port {} is published",
            n.internal
        );
        assert_eq!(
            listener_addr(&node_env(n, "TIERLOG_ADVERTISED_LISTENERS"), INTERNAL),
            Some(format!("localhost:{}", n.internal)),
            "{name}: the other nodes reach {INTERNAL} on the shared localhost"
        );
        // SCRAM only (PLAIN would send the password itself), over TLS with the node's own
        // certificate from the generated volume.
        assert_eq!(
            node_env(n, "TIERLOG_SASL_ENABLED_MECHANISMS"),
            "SCRAM-SHA-512,SCRAM-SHA-256",
            "{name}"
        );
        assert_eq!(
            node_env(n, "TIERLOG_SSL_CERT_FILE"),
            format!("{SECRETS_DIR}/{name}.crt")
        );
        assert_eq!(
            node_env(n, "TIERLOG_SSL_KEY_FILE"),
            format!("{SECRETS_DIR}/{name}.key")
        );
        assert_eq!(
            node_env(n, "TIERLOG_SSL_CA_FILE"),
            format!("{SECRETS_DIR}/ca.crt")
        );
        assert!(
            volumes(n.service).contains(&(SECRETS_VOLUME.to_owned(), SECRETS_DIR.to_owned()))
                && n.service["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == &format!("{SECRETS_VOLUME}:{SECRETS_DIR}:ro")),
            "{name}: mounts {SECRETS_VOLUME} read-only at {SECRETS_DIR}"
        );
        // Users: the administrator from a password file, the inter-broker user likewise; both
        // super users, and nobody else allowed anything without ACLs.
        assert_eq!(node_env(n, "TIERLOG_SASL_BOOTSTRAP_USER"), ADMIN);
        assert_eq!(
            node_env(n, "TIERLOG_SASL_BOOTSTRAP_PASSWORD_FILE"),
            format!("{SECRETS_DIR}/admin-password")
        );
        assert_eq!(node_env(n, "TIERLOG_INTER_BROKER_SASL_USERNAME"), BROKER);
        assert_eq!(
            node_env(n, "TIERLOG_INTER_BROKER_SASL_PASSWORD_FILE"),
            format!("{SECRETS_DIR}/broker-password")
        );
        assert_eq!(
            node_env(n, "TIERLOG_INTER_BROKER_SASL_MECHANISM"),
            "SCRAM-SHA-512"
        );
        assert_eq!(
            node_env(n, "TIERLOG_SUPER_USERS"),
            format!("User:{ADMIN};User:{BROKER}"),
            "{name}: super users"
        );
        assert_eq!(
            node_env(n, "TIERLOG_ALLOW_EVERYONE_IF_NO_ACL_FOUND"),
            "false",
            "{name}: ACLs are enforced"
        );
        // No password in the file: every secret setting names a file.
        for (key, value) in env_of(n.service) {
            if key.contains("PASSWORD") && key.starts_with("TIERLOG_") {
                assert!(
                    key.ends_with("_FILE") && value.starts_with(SECRETS_DIR),
                    "{name}: {key}={value} is not a file in the secrets volume"
                );
            }
        }
    }
    for needle in ["SASL_PLAINTEXT", "PLAINTEXT://", "sasl.password", "PLAIN,"] {
        assert!(
            !text.contains(needle),
            "docker-compose.yml mentions {needle}"
        );
    }
    // etcd holds the credentials and ACLs: reachable from the host's loopback only.
    let etcd_ports = service(&compose, "etcd")["ports"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        etcd_ports
            .iter()
            .all(|p| p.as_str().unwrap().starts_with("127.0.0.1:")),
        "etcd is published beyond the host's loopback: {etcd_ports:?}"
    );

    // tierlog-init: the script from the repository, run with the nodes' image as root (to own
    // the volume), after etcd is up, handing the nodes' files to the image's user.
    let init = service(&compose, INIT);
    assert_eq!(init["image"], IMAGE);
    assert_eq!(init["pull_policy"], "never");
    assert_eq!(init["user"], "0:0");
    assert_eq!(init["restart"], "no");
    assert_eq!(init["depends_on"]["etcd"]["condition"], "service_healthy");
    let entrypoint = strings(&init["entrypoint"]);
    assert_eq!(entrypoint.first().map(String::as_str), Some("/bin/sh"));
    let script_in_container = entrypoint.get(1).expect("the init script");
    let vols = volumes(init);
    assert!(
        vols.contains(&(format!("./{INIT_SCRIPT}"), script_in_container.clone())),
        "{INIT} runs {script_in_container}, which is not ./{INIT_SCRIPT}: {vols:?}"
    );
    assert!(repo().join(INIT_SCRIPT).is_file());
    let init_dir = env(init, "SECRETS_DIR").unwrap();
    assert!(vols.contains(&(SECRETS_VOLUME.to_owned(), init_dir)));
    assert_eq!(env(init, "NODES").unwrap(), NODES.join(" "));
    assert_eq!(
        env(init, "TIERLOG_METADATA"),
        Some(nodes[0].metadata.clone()),
        "{INIT} writes the inter-broker user where the nodes look"
    );
    let dockerfile = read("ingest/Dockerfile");
    let uid = dockerfile
        .split("--uid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the Dockerfile's user id");
    assert_eq!(env(init, "SECRETS_OWNER"), Some(format!("{uid}:{uid}")));
    assert!(
        dockerfile.contains("ca-certificates curl openssl"),
        "the runtime image has no openssl for {INIT}"
    );
    assert!(compose["volumes"].get(SECRETS_VOLUME).is_some());
}

/// A `tierlog` process started with a compose node's environment and command; killed on drop.
struct ComposeNode {
    name: String,
    child: std::process::Child,
    http: u16,
    log: PathBuf,
}

impl Drop for ComposeNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `value` with every `:<port>` of `ports` replaced by `:<its local port>`.
fn remap_ports(value: &str, ports: &std::collections::BTreeMap<u16, u16>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find(':') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mapped = rest[..digits]
            .parse::<u16>()
            .ok()
            .and_then(|p| ports.get(&p));
        match mapped {
            Some(local) => out.push_str(&local.to_string()),
            None => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// The compose cluster without Docker: `ingest/compose/tierlog-init.sh` generates the CA, the node
/// certificates and the passwords and creates the inter-broker user in a real etcd, as the
/// `tierlog-init` service does; three `tierlog serve` processes run with the nodes' own
/// environment and command lines (ports, paths, etcd and the object store mapped to this
/// machine); then librdkafka, configured as the README tells a user, connects over SASL_SSL
/// with SCRAM-SHA-512, the generated CA and the admin password, creates a topic with three
/// replicas (which replicate over the INTERNAL SASL_SSL listener as `broker`), produces and
/// consumes. A user without ACLs does not see that topic; a wrong password, a plaintext client
/// and a TLS client that does not authenticate are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_cluster_runs_secured_outside_docker() {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use rdkafka::Message;
    use rdkafka::consumer::Consumer;
    use rdkafka::producer::{FutureRecord, Producer as _};
    use tierlog_tests::clients::{CLIENT_TIMEOUT, consume_exactly, consumer, producer};
    use tierlog_tests::etcd::EtcdServer;
    use tierlog_tests::node::{free_port, http_get_status};
    use tierlog_tests::wait::{Poll, wait_for};

    let test = "compose_cluster_runs_secured_outside_docker";
    let Some(compose) = compose() else {
        return;
    };
    if !require_tool("openssl", &["version"], test).unwrap() {
        return;
    }
    let Some(etcd) = EtcdServer::start_or_skip(test).unwrap() else {
        return;
    };
    let binary = tierlog_binary().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let secrets = tmp.path().join("secrets");
    let nodes = nodes(&compose);
    let compose_metadata = nodes[0].metadata.clone();
    // etcd://etcd:2379/<prefix> in the compose file: the same prefix on the local etcd.
    let hosts_and_prefix = compose_metadata.strip_prefix("etcd://").unwrap();
    let metadata = etcd.url(&hosts_and_prefix[hosts_and_prefix.find('/').unwrap()..]);

    // The init step, as the tierlog-init service runs it (its environment, this machine's
    // paths; no chown: these processes are not the image's user).
    let init = service(&compose, INIT);
    let mut cmd = Command::new("sh");
    cmd.arg(repo().join(INIT_SCRIPT));
    for (key, value) in env_of(init) {
        cmd.env(key, value);
    }
    let out = cmd
        .env_remove("SECRETS_OWNER")
        .env("SECRETS_DIR", &secrets)
        .env("TIERLOG_METADATA", &metadata)
        .env("TIERLOG", &binary)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{INIT_SCRIPT} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let admin_password = std::fs::read_to_string(secrets.join("admin-password")).unwrap();
    let admin_password = admin_password.trim_end().to_owned();
    assert!(admin_password.len() >= 24, "a weak admin password");
    let ca = secrets.join("ca.crt");
    for n in &nodes {
        // Each certificate is the CA's, names localhost (what clients on the host dial) and
        // the node's compose hostname.
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&ca)
            .arg(secrets.join(format!("{}.crt", n.name)))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {out:?}", n.name);
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(secrets.join(format!("{}.crt", n.name)))
            .output()
            .unwrap();
        let sans = String::from_utf8_lossy(&out.stdout);
        for san in [
            "DNS:localhost",
            "IP Address:127.0.0.1",
            &format!("DNS:{}", n.name),
        ] {
            assert!(sans.contains(san), "{}: SANs {sans} lack {san}", n.name);
        }
    }
    // Run again: nothing changes (the same CA and passwords after `docker compose up` again).
    let before = std::fs::read(&ca).unwrap();
    let mut again = Command::new("sh");
    again.arg(repo().join(INIT_SCRIPT));
    for (key, value) in env_of(init) {
        again.env(key, value);
    }
    let out = again
        .env_remove("SECRETS_OWNER")
        .env("SECRETS_DIR", &secrets)
        .env("TIERLOG_METADATA", &metadata)
        .env("TIERLOG", &binary)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(&ca).unwrap(),
        before,
        "the CA was regenerated"
    );
    assert_eq!(
        std::fs::read_to_string(secrets.join("admin-password"))
            .unwrap()
            .trim_end(),
        admin_password,
        "the admin password was regenerated"
    );

    // Every port of the compose file, mapped to a free local port.
    let mut port_map = BTreeMap::new();
    for n in &nodes {
        for p in [n.kafka, n.internal, n.http] {
            let mut local = free_port().unwrap();
            while port_map.values().any(|&v| v == local) {
                local = free_port().unwrap();
            }
            port_map.insert(p, local);
        }
    }
    let objects = tmp.path().join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    // Starts one node of the compose file as a local process (its command and environment,
    // this machine's paths and ports).
    let launch = |n: &Node<'_>| -> ComposeNode {
        let data = tmp.path().join(n.name);
        std::fs::create_dir_all(&data).unwrap();
        let mut args = Vec::new();
        for a in command(n.service) {
            if a.starts_with("--object-store=") {
                args.push(format!("--object-store=file://{}", objects.display()));
            } else if !a.starts_with("--s3-") {
                args.push(a);
            }
        }
        let log = tmp.path().join(format!("{}.log", n.name));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(&binary);
        cmd.args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        for (key, _) in std::env::vars() {
            if key.starts_with("TIERLOG_") || key.starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        for (key, value) in env_of(n.service) {
            if key.starts_with("AWS_") {
                continue;
            }
            let value = match key.as_str() {
                "TIERLOG_DATA_DIR" => data.display().to_string(),
                "TIERLOG_METADATA" => metadata.clone(),
                _ => remap_ports(
                    &value.replace(SECRETS_DIR, &secrets.display().to_string()),
                    &port_map,
                ),
            };
            cmd.env(key, value);
        }
        let child = cmd.spawn().unwrap();
        ComposeNode {
            name: n.name.to_owned(),
            child,
            http: port_map[&n.http],
            log,
        }
    };
    let wait_healthy = |node: &mut ComposeNode| {
        let http = node.http;
        let result = wait_for(
            &format!("{} healthy", node.name),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                // An exit ends the wait at once (Ready with the reason).
                if let Some(status) = node.child.try_wait()? {
                    return Ok(Poll::Ready(Err(format!("exited with {status}"))));
                }
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], http));
                Ok(match http_get_status(addr, "/health") {
                    Ok(200) => Poll::Ready(Ok(())),
                    other => Poll::Pending(format!("{other:?}")),
                })
            },
        )
        .and_then(|r| r.map_err(anyhow::Error::msg));
        if let Err(e) = result {
            panic!(
                "{}: {e:#}\n{}",
                node.name,
                std::fs::read_to_string(&node.log).unwrap_or_default()
            );
        }
    };
    // `docker compose up` starts every node but the `scale` profile's.
    let mut running: Vec<ComposeNode> = nodes
        .iter()
        .filter(|n| n.name != SCALE_NODE)
        .map(&launch)
        .collect();
    for node in &mut running {
        wait_healthy(node);
    }

    // The client, as the README's "connect securely" configures it.
    let bootstrap = nodes
        .iter()
        .map(|n| remap_ports(&n.advertised, &port_map))
        .collect::<Vec<_>>()
        .join(",");
    let ca_path = ca.display().to_string();
    let secure = |password: &str| -> Vec<(String, String)> {
        vec![
            ("security.protocol".into(), "SASL_SSL".into()),
            ("sasl.mechanism".into(), "SCRAM-SHA-512".into()),
            ("sasl.username".into(), ADMIN.into()),
            ("sasl.password".into(), password.into()),
            ("ssl.ca.location".into(), ca_path.clone()),
        ]
    };
    let props = secure(&admin_password);
    let props_ref: Vec<(&str, &str)> = props
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let logs = || {
        running
            .iter()
            .map(|n| {
                format!(
                    "---- {}\n{}",
                    n.name,
                    std::fs::read_to_string(&n.log).unwrap_or_default()
                )
            })
            .collect::<String>()
    };
    let metadata_with = |extra: &[(&str, &str)]| -> Result<rdkafka::metadata::Metadata, String> {
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("bootstrap.servers", &bootstrap);
        for (k, v) in extra {
            cfg.set(*k, *v);
        }
        let p: rdkafka::producer::BaseProducer = cfg.create().map_err(|e| e.to_string())?;
        p.client()
            .fetch_metadata(None, Duration::from_secs(5))
            .map_err(|e| e.to_string())
    };
    let brokers = wait_for(
        "three brokers over SASL_SSL",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            Ok(match metadata_with(&props_ref) {
                Ok(m) if m.brokers().len() == 3 => Poll::Ready(m.brokers().len()),
                Ok(m) => Poll::Pending(format!("{} brokers", m.brokers().len())),
                Err(e) => Poll::Pending(e),
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
    assert_eq!(brokers, 3);

    // A topic on all three nodes: followers replicate over INTERNAL (SASL_SSL as `broker`).
    let topic = "compose-secured";
    let admin = {
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("bootstrap.servers", &bootstrap);
        for (k, v) in &props {
            cfg.set(k, v);
        }
        cfg.create::<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>>()
            .unwrap()
    };
    let created = admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                topic,
                1,
                rdkafka::admin::TopicReplication::Fixed(3),
            )],
            &tierlog_tests::clients::admin_options(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}\n{}", logs());
    let p = producer(&bootstrap, &props_ref).unwrap();
    for i in 0..50 {
        p.send(
            FutureRecord::to(topic)
                .partition(0)
                .key(&format!("k{i}"))
                .payload(&format!("v{i}")),
            CLIENT_TIMEOUT,
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}\n{}", logs()));
    }
    let c = consumer(&bootstrap, &props_ref).unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let got = consume_exactly(&c, 50, Duration::from_secs(30)).unwrap();
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.payload(), Some(format!("v{i}").as_bytes()));
    }
    wait_for(
        "the ISR holds all three replicas",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let m = metadata_with(&props_ref).map_err(anyhow::Error::msg)?;
            let isr = m
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .and_then(|t| t.partitions().first().map(|p| p.isr().len()))
                .unwrap_or(0);
            Ok(if isr == 3 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("ISR of {isr}"))
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));

    // ACLs are on: another user authenticates but, with no ACL granting it anything, is not
    // shown the admin's topic (Kafka lists only what a principal may describe).
    let alice_password = tmp.path().join("alice-password");
    std::fs::write(&alice_password, "alice-secret-0123456789\n").unwrap();
    let out = Command::new(&binary)
        .args([
            "user",
            "add",
            "--name",
            "alice",
            "--mechanism",
            "SCRAM-SHA-512",
        ])
        .arg("--password-file")
        .arg(&alice_password)
        .env("TIERLOG_METADATA", &metadata)
        .output()
        .unwrap();
    assert!(out.status.success(), "tierlog user add alice: {out:?}");
    let alice = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-secret-0123456789"),
        ("ssl.ca.location", ca_path.as_str()),
    ];
    let seen = wait_for(
        "alice authenticated",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            Ok(match metadata_with(&alice) {
                Ok(m) => Poll::Ready(
                    m.topics()
                        .iter()
                        .map(|t| t.name().to_owned())
                        .collect::<Vec<_>>(),
                ),
                Err(e) => Poll::Pending(e),
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
    assert!(
        !seen.iter().any(|t| t == topic),
        "a user without ACLs sees {topic}: ACLs are not enforced ({seen:?})"
    );

    // Refused: a wrong password, and a client that does not speak TLS.
    let wrong = secure("not-the-password");
    let wrong_ref: Vec<(&str, &str)> = wrong
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert!(
        metadata_with(&wrong_ref).is_err(),
        "a wrong password was accepted"
    );
    assert!(
        metadata_with(&[("security.protocol", "PLAINTEXT")]).is_err(),
        "a plaintext client was served"
    );
    assert!(
        metadata_with(&[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", ca_path.as_str())
        ])
        .is_err(),
        "a client was served without authenticating"
    );

    // Scaling out and in, as the compose file's header says: the `scale` profile's node
    // joins and takes a share of the replicas; drained (`tierlog node drain`), it holds
    // nothing and stops, and every partition keeps three in-sync replicas.
    let scaled = "compose-scaled";
    let created = admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                scaled,
                4,
                rdkafka::admin::TopicReplication::Fixed(3),
            )],
            &tierlog_tests::clients::admin_options(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}\n{}", logs());
    let extra_node = nodes.iter().find(|n| n.name == SCALE_NODE).unwrap();
    let extra_id: i32 = extra_node.id.parse().unwrap();
    // Replicas of `scaled` per node, once all four partitions are listed with a full ISR.
    let placement = || -> anyhow::Result<Option<BTreeMap<i32, usize>>> {
        let m = metadata_with(&props_ref).map_err(anyhow::Error::msg)?;
        let Some(t) = m.topics().iter().find(|t| t.name() == scaled) else {
            return Ok(None);
        };
        if t.partitions().len() != 4
            || t.partitions()
                .iter()
                .any(|p| p.isr().len() != 3 || p.replicas().len() != 3)
        {
            return Ok(None);
        }
        let mut per_node = BTreeMap::new();
        for p in t.partitions() {
            for r in p.replicas() {
                *per_node.entry(*r).or_insert(0) += 1;
            }
        }
        Ok(Some(per_node))
    };
    let mut extra = launch(extra_node);
    wait_healthy(&mut extra);
    let extra_log = extra.log.clone();
    let both_logs = || {
        format!(
            "{}---- {SCALE_NODE}\n{}",
            logs(),
            std::fs::read_to_string(&extra_log).unwrap_or_default()
        )
    };
    wait_for(
        "the scaled-out node holding replicas",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            Ok(match placement()? {
                Some(n) if n.get(&extra_id).copied().unwrap_or(0) >= 2 => Poll::Ready(()),
                other => Poll::Pending(format!("{other:?}")),
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", both_logs()));
    let out = Command::new(&binary)
        .args(["node", "drain", &extra_node.id])
        .env("TIERLOG_METADATA", &metadata)
        .output()
        .unwrap();
    assert!(out.status.success(), "tierlog node drain: {out:?}");
    wait_for(
        "the drained node holding nothing",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            Ok(match placement()? {
                Some(n) if !n.contains_key(&extra_id) => Poll::Ready(()),
                other => Poll::Pending(format!("{other:?}")),
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", both_logs()));
    drop(extra);
}
