//! Offline checks of `terraform/` (the AWS deployment; providers cannot be downloaded here, so
//! no `terraform init`/`validate`/`plan`): `terraform fmt -check -recursive` passes, and
//! `tests/python/check_terraform.py` (python-hcl2) parses every `.tf` file and checks what the
//! README's "Deploy on AWS with Terraform" section promises — bucket locked down and encrypted,
//! TLS-only, multipart uploads aborted, IAM scoped to the bucket/prefix, etcd and admin ports
//! never open to the world, variables described and typed, versions pinned, cluster mode by
//! default (etcd metadata, one shared object-store prefix, replication inputs with their
//! documented defaults, fixed node slots whose id is the slot index, the one-node precondition
//! only in embedded mode — evaluated through `terraform console`) — and renders both user-data
//! templates through `terraform console` (`bash -n` on the output, the node's exact flags and
//! values for every switch combination, each against `tierlog serve --help`, and each slot's
//! `--node-id`/`--rack` equal to its index/zone). Outside CI a missing terraform or python-hcl2 skips loudly;
//! with `CI` set it fails.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use tierlog_tests::node::tierlog_binary;
use tierlog_tests::tools::{in_ci, require_tool, tests_dir};

/// The section of README.md that documents the deployment.
const SECTION: &str = "Deploy on AWS with Terraform";

fn repo() -> PathBuf {
    tests_dir().parent().unwrap().to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn terraform() -> Command {
    let mut cmd = Command::new("terraform");
    // No ~/.terraformrc here; this silences terraform's warning about it.
    cmd.env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("TF_IN_AUTOMATION", "1");
    cmd
}

fn have_terraform(test: &str) -> bool {
    require_tool("terraform", &["version"], test).unwrap()
}

/// The README section starting at `## {title}`, up to the next `## ` heading.
fn readme_section(title: &str) -> String {
    let readme = read("README.md");
    let start = readme
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("README.md has no section \"## {title}\""));
    let body = &readme[start + title.len() + 5..];
    let end = body.find("\n## ").unwrap_or(body.len());
    body[..end].to_owned()
}

/// Names of the `variable` blocks in every `.tf` file of `dir`.
fn variables(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tf") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if let Some(rest) = line.strip_prefix("variable \"") {
                    names.push(rest.split('"').next().unwrap().to_owned());
                }
            }
        }
    }
    names.sort();
    names
}

#[test]
fn terraform_fmt_check_passes() {
    if !have_terraform("terraform fmt -check") {
        return;
    }
    let out = terraform()
        .args(["fmt", "-check", "-recursive", "-diff", "-no-color"])
        .arg(repo().join("terraform"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "terraform fmt -check -recursive terraform/ fails (run `terraform fmt -recursive \
         terraform/`):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn terraform_keeps_its_security_and_deployment_promises() {
    let have_hcl2 = require_tool(
        "python3",
        &["-c", "import hcl2"],
        "terraform checks (python-hcl2)",
    )
    .unwrap();
    if !have_hcl2 || !have_terraform("terraform checks (template rendering)") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut checker = Command::new("python3");
    checker
        .arg(tests_dir().join("python/check_terraform.py"))
        .arg(repo().join("terraform"))
        .args(["--terraform", "terraform"]);
    // The node's ExecStart flags are checked against the real `tierlog serve --help`.
    match tierlog_binary() {
        Ok(bin) => {
            let help = Command::new(&bin)
                .args(["serve", "--help"])
                .output()
                .unwrap();
            assert!(
                help.status.success(),
                "{} serve --help failed",
                bin.display()
            );
            let path = tmp.path().join("serve-help.txt");
            std::fs::write(&path, &help.stdout).unwrap();
            checker.arg("--serve-help").arg(path);
        }
        Err(e) if in_ci() => panic!("the tierlog binary is required in CI: {e:#}"),
        Err(e) => eprintln!(
            "\n!!!!! not checking the node's flags against `tierlog serve --help`: {e:#} !!!!!\n"
        ),
    }
    let out = checker
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/python/check_terraform.py failed:\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains("checks passed"),
        "unexpected checker output:\n{stdout}{stderr}"
    );
    println!("{stdout}");
}

#[test]
fn readme_documents_the_terraform_deployment() {
    let section = readme_section(SECTION);
    let module = repo().join("terraform/modules/tierlog");
    let example = repo().join("terraform/examples/cluster");
    for file in [
        module.join("versions.tf"),
        module.join("variables.tf"),
        module.join("outputs.tf"),
        module.join("templates/node-user-data.sh.tftpl"),
        module.join("templates/etcd-user-data.sh.tftpl"),
        example.join("main.tf"),
        example.join("versions.tf"),
        example.join("terraform.tfvars.example"),
    ] {
        assert!(file.is_file(), "{} is missing", file.display());
    }
    // Every input of the module is documented.
    for var in variables(&module) {
        assert!(
            section.contains(&format!("`{var}`")),
            "README's \"{SECTION}\" does not document the module variable `{var}`"
        );
    }
    // What it deploys, how to run it, and what was and was not validated.
    for promise in [
        "terraform/modules/tierlog",
        "terraform/examples/cluster",
        "terraform.tfvars.example",
        "terraform apply",
        "bootstrap_address",
        "bucket_name",
        "etcd_endpoints",
        "--metadata etcd://",
        "--object-store s3://",
        "aws:SecureTransport",
        "9092",
        "9644",
        "2379",
        "2380",
        "IMDSv2",
        "terraform fmt -check -recursive",
        "python-hcl2",
        "tests/tests/terraform.rs",
        "real AWS account",
        "cluster mode",
        // Cluster mode is the default and what it runs with.
        "metadata_backend = \"etcd\"",
        "s3://<bucket>/<prefix>`",
        "s3://<bucket>/<prefix>/nodes/<node id>",
        "--lease-ttl",
        "--replica-lag-time-max",
        "--default-replication-factor",
        "--min-insync-replicas",
        "`min_insync_replicas = 2`",
        // Node identity and its limitation.
        "--node-id <slot index>",
        "no replica reassignment",
        "under-replicated",
        "instance-store",
        // Zone-aware replica placement (the prose is checked below, whatever its wrapping).
        "--rack <zone>",
        // Rolling nodes.
        "one at a time",
        "-replace='module.tierlog.aws_instance.node[\"node-0\"]'",
        "tierlog_partition_under_replicated",
        "SIGTERM",
        // Security on by default, and how to connect.
        "enable_security = true",
        "SASL_SSL",
        "SCRAM-SHA-512",
        "ca_certificate_pem",
        "admin_password",
        "sensitive = true",
        "SecureString",
        "9093",
        "keep it encrypted",
    ] {
        assert!(
            section.contains(promise),
            "README's \"{SECTION}\" section does not mention {promise:?}"
        );
    }
    let prose = section.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        prose.contains("replicas of a new partition land in distinct zones"),
        "README's \"{SECTION}\" section does not say that a partition's replicas land in distinct zones"
    );
    // Nothing left from before cluster mode existed.
    for stale in [
        "Cluster mode is still being built",
        "refuses `etcd://`",
        "until replication exists",
        "auto-scaling group over every private subnet",
        "node_autoscaling_group_name",
        "Replica placement is not zone-aware",
    ] {
        assert!(
            !section.contains(stale),
            "README's \"{SECTION}\" section still says {stale:?}"
        );
    }
    let tfvars_text = read("terraform/examples/cluster/terraform.tfvars.example");
    assert!(
        !tfvars_text.contains("still being built"),
        "terraform.tfvars.example still says cluster mode is being built"
    );
    // The example's tfvars sets every variable of the example that has no default.
    let tfvars = std::fs::read_to_string(example.join("terraform.tfvars.example")).unwrap();
    for var in variables(&example) {
        let main = std::fs::read_to_string(example.join("variables.tf")).unwrap();
        let block = &main[main.find(&format!("variable \"{var}\"")).unwrap()..];
        let block = &block[..block.find("\n}\n").unwrap()];
        if !block.contains("default") {
            assert!(
                tfvars
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{var} "))),
                "terraform.tfvars.example does not set the required variable {var}"
            );
        }
    }
    // The status table says the Terraform module exists.
    let status = readme_section("Status and roadmap");
    let row = status
        .lines()
        .find(|l| l.contains("Terraform"))
        .expect("the status table has a Terraform row");
    assert!(!row.contains("not yet |"), "status row: {row}");
}
