//! Offline checks of `docker-compose.yml` and `ingest/Dockerfile` (these machines have no
//! Docker engine): the compose file validates against the Compose specification
//! (`check-jsonschema --builtin-schema vendor.compose-spec`), its services, images, ports,
//! volumes, environment and commands are what the README's "Run a cluster with docker-compose"
//! section promises and what `tierlog serve` accepts, and the Dockerfile builds the `tierlog`
//! binary into a runtime image.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tierlog_tests::node::tierlog_binary;
use tierlog_tests::tools::require_tool;

/// The bucket the init service creates and the node tiers to.
const BUCKET: &str = "tierlog";
/// The tierlog service.
const NODE: &str = "tierlog-1";

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
    match &service["command"] {
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
    assert_eq!(
        services,
        BTreeSet::from(["minio", "minio-init", "etcd", NODE]),
        "services"
    );
    let declared_volumes: BTreeSet<&str> = compose["volumes"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let section = readme_section("Run a cluster with docker-compose");

    // Every third-party image is pinned to a release, never `latest`.
    for (name, repo_prefix) in [
        ("minio", "minio/minio:RELEASE."),
        ("minio-init", "minio/mc:RELEASE."),
        ("etcd", "quay.io/coreos/etcd:v3."),
    ] {
        let image = service(&compose, name)["image"].as_str().unwrap();
        assert!(
            image.starts_with(repo_prefix),
            "{name}: image {image} is not pinned to a {repo_prefix}… release"
        );
    }

    // Published ports: each is in the README, and every service with state has a named volume.
    for (name, expected_ports, data_dir) in [
        ("minio", vec![(9000, 9000), (9001, 9001)], "/data"),
        ("etcd", vec![(2379, 2379)], "/etcd-data"),
        (NODE, vec![(9092, 9092), (9644, 9644)], "/var/lib/tierlog"),
    ] {
        let s = service(&compose, name);
        assert_eq!(ports(s), expected_ports, "{name}: published ports");
        for (host, _) in &expected_ports {
            assert!(
                section.contains(&host.to_string()),
                "README's compose section does not mention port {host} ({name})"
            );
        }
        let vols = volumes(s);
        assert!(
            vols.iter()
                .any(|(src, dst)| dst == data_dir && declared_volumes.contains(src.as_str())),
            "{name}: no named volume at {data_dir}: {vols:?}"
        );
        assert!(s.get("healthcheck").is_some(), "{name}: no healthcheck");
        assert!(
            section.contains(&format!("`{name}`")),
            "README's compose section does not name the service `{name}`"
        );
    }
    assert!(
        section.contains("`minio-init`"),
        "README names the init service"
    );

    // The init service creates the bucket the node uses, with MinIO's credentials.
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

    // The node: built from the repo's Dockerfile, on MinIO, credentials from the AWS variables.
    let node = service(&compose, NODE);
    assert_eq!(node["build"]["context"], ".", "{NODE}: build context");
    let dockerfile = node["build"]["dockerfile"].as_str().unwrap();
    assert_eq!(dockerfile, "ingest/Dockerfile");
    assert!(repo().join(dockerfile).is_file(), "{dockerfile} is missing");
    assert_eq!(
        node["depends_on"]["minio-init"]["condition"], "service_completed_successfully",
        "{NODE} starts once the bucket exists"
    );
    let cmd = command(node);
    assert_eq!(cmd.first().map(String::as_str), Some("serve"));
    let arg = |flag: &str| -> Option<String> {
        cmd.iter().find_map(|a| {
            a.strip_prefix(&format!("{flag}="))
                .map(str::to_owned)
                .or_else(|| (a == flag).then(String::new))
        })
    };
    let store = arg("--object-store").expect("--object-store");
    assert!(
        store.starts_with(&format!("s3://{BUCKET}/")),
        "{NODE} tiers to {store}, not bucket {BUCKET}"
    );
    assert_eq!(arg("--s3-endpoint").as_deref(), Some("http://minio:9000"));
    assert_eq!(
        arg("--s3-path-style").as_deref(),
        Some(""),
        "--s3-path-style"
    );
    assert_eq!(
        arg("--s3-allow-http").as_deref(),
        Some(""),
        "--s3-allow-http"
    );
    assert_eq!(env(node, "AWS_ACCESS_KEY_ID"), Some(user.clone()));
    assert_eq!(env(node, "AWS_SECRET_ACCESS_KEY"), Some(password.clone()));
    assert!(env(node, "AWS_REGION").is_some() || arg("--s3-region").is_some());
    assert_eq!(
        env(node, "TIERLOG_LISTEN").as_deref(),
        Some("0.0.0.0:9092"),
        "the Kafka listener must bind every interface inside the container"
    );
    assert_eq!(env(node, "TIERLOG_HTTP").as_deref(), Some("0.0.0.0:9644"));
    assert_eq!(
        env(node, "TIERLOG_ADVERTISE").as_deref(),
        Some("localhost:9092"),
        "host clients bootstrap from localhost:9092 and must be told that address"
    );
    assert_eq!(
        env(node, "TIERLOG_DATA_DIR").as_deref(),
        Some("/var/lib/tierlog")
    );
    // Not yet a cluster: the README must say so, and the node must not claim etcd.
    assert_ne!(
        env(node, "TIERLOG_METADATA").map(|m| m.starts_with("etcd")),
        Some(true),
        "etcd metadata is a later issue"
    );
    for promise in [
        "docker compose up --build",
        "localhost:9092",
        "http://localhost:9001",
        "ingest/Dockerfile",
        &format!("s3://{BUCKET}/"),
        &user,
        &password,
    ] {
        assert!(
            section.contains(promise),
            "README's compose section does not mention {promise:?}"
        );
    }
}

#[test]
fn compose_node_settings_are_accepted_by_tierlog_serve() {
    let Some(compose) = compose() else {
        return;
    };
    let binary = match tierlog_binary() {
        Ok(b) => b,
        Err(e) => panic!("{e:#}"),
    };
    let help = Command::new(&binary)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "tierlog serve --help failed");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let node = service(&compose, NODE);
    for a in command(node).iter().skip(1) {
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
        let required = line.contains(&format!("{flag} <")) || line.contains(&format!("{flag}=<"));
        assert!(
            optional || required == value.is_some(),
            "{NODE}: {a} — `tierlog serve --help` says: {}",
            line.trim()
        );
    }
    for (key, _) in env_of(node) {
        if key.starts_with("TIERLOG_") {
            assert!(
                help.contains(&format!("env: {key}=")),
                "{NODE}: {key} is not a `tierlog serve` environment variable"
            );
        }
    }
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
        "cargo build --release --locked -p tierlog-ingest --features etcd --bin tierlog",
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
    let ingest_manifest = read("ingest/Cargo.toml");
    assert!(ingest_manifest.contains("name = \"tierlog-ingest\""));
    assert!(ingest_manifest.contains("[[bin]]\nname = \"tierlog\""));
}
