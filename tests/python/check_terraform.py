#!/usr/bin/env python3
"""Offline checks of tierlog's Terraform (run by tests/tests/terraform.rs).

Parses every .tf file under the given directory with python-hcl2 and checks what the README
promises about the AWS deployment, without any provider or AWS account:

- every directory with .tf files has a versions.tf pinning Terraform >= 1.5 and the AWS
  provider's major version (and a version for every other provider);
- every variable has a description and a type; the module's key inputs have validation;
- the segment bucket blocks all public access, is encrypted (SSE-S3 by default, KMS only if a
  key is given), has a TLS-only bucket policy (aws:SecureTransport deny) and a lifecycle rule
  that aborts incomplete multipart uploads, and is force-destroyed only if a variable (default
  false) asks;
- every IAM policy is an aws_iam_policy_document; no Allow statement has a "*" resource or
  wildcard actions; S3 actions name only the bucket's ARN or an object prefix under it; the
  nodes can get/put/delete/list and abort multipart uploads there;
- no ingress rule opens the etcd ports (2379/2380) to any CIDR, and no ingress rule on any port
  (admin 9644 included) is open to 0.0.0.0/0 or ::/0: literal CIDRs are checked, CIDRs from
  variables must come from variables whose validation refuses both;
- cluster mode: metadata_backend defaults to etcd; the replication inputs exist with their
  documented defaults (RF 3, min.insync 2, lease 3 s, lag 10 s) and whole-number range
  validation; every node uses the one shared object-store prefix s3://<bucket>/<prefix> and the
  etcd URL of the three members; nodes are fixed slots (aws_instance per slot with its own
  network interface and, with EBS, its own data volume that outlives the instance, detached
  only after a clean stop), the node id is the slot index (node-<i> => i), the rack is the
  slot's zone, and no plan replaces nodes for a new AMI or user data;
- with --terraform BIN: the nodes' preconditions are evaluated (terraform console) over a table
  of settings: node_count > 1 is refused only with embedded metadata, RF <= node_count and
  min.insync <= RF only with etcd; the slot map is evaluated too; both user-data templates
  render for every combination of their switches, the output passes `bash -n`, and the node's
  ExecStart runs `tierlog serve` with exactly the promised flags and values (the replication
  flags from the inputs with etcd, forced to 1 with embedded metadata; --rack the zone, in both
  modes), each one checked against `tierlog serve --help` when --serve-help FILE is given; and
  each slot's user data, rendered from the module's own templatefile arguments with the
  evaluated slot, runs its node with --node-id <slot index> and --rack <slot zone>.

- listener security (enable_security, default true): a tls-provider CA and one certificate per
  node slot naming the load balancer's DNS name and the slot's address; random_password admin
  and broker passwords; keys and passwords only in SecureString SSM parameters under
  /<name>/kafka, which the nodes (and nothing wider) may read; every output that carries a
  password or a private key is `sensitive = true`, and no output or String parameter carries
  one otherwise; the inter-broker port 9093 is open to security groups only; the rendered node
  user data (with --terraform) runs SASL_SSL listeners with ACLs on, reads its secrets from SSM
  and creates the inter-broker user, or the one PLAINTEXT listener with enable_security = false.

Prints every failure and exits 1 if there is any.
"""

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import hcl2

FAILURES = []
CHECKS = 0

ETCD_PORTS = (2379, 2380)
ADMIN_PORT = 9644
KAFKA_PORT = 9092
INTERNAL_PORT = 9093
OPEN_CIDRS = ("0.0.0.0/0", "::/0")


def check(ok, msg):
    global CHECKS
    CHECKS += 1
    if not ok:
        FAILURES.append(msg)
    return ok


# ---- parsing ------------------------------------------------------------------------------------


def unquote(s):
    """python-hcl2 8 keeps the quotes of string literals; expressions come as ${...}."""
    if isinstance(s, str) and len(s) >= 2 and s.startswith('"') and s.endswith('"'):
        return s[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return s


def norm(v):
    if isinstance(v, dict):
        return {unquote(k): norm(x) for k, x in v.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(v, list):
        return [norm(x) for x in v]
    return unquote(v)


class Dir:
    """Everything declared in one directory (one Terraform module)."""

    def __init__(self, path):
        self.path = path
        self.files = {}
        self.resources = {}  # (type, name) -> body
        self.data = {}
        self.variables = {}
        self.locals = {}
        self.terraform = []  # (file, body)
        self.outputs = {}  # name -> body
        self.where = {}  # (kind, type, name) -> file


def load(root):
    dirs = {}
    for f in sorted(root.rglob("*.tf")):
        d = dirs.setdefault(f.parent, Dir(f.parent))
        with open(f) as fh:
            doc = norm(hcl2.load(fh))
        d.files[f.name] = f.read_text()
        for block in doc.get("resource", []):
            for typ, named in block.items():
                for name, body in named.items():
                    d.resources[(typ, name)] = body
                    d.where[("resource", typ, name)] = f
        for block in doc.get("data", []):
            for typ, named in block.items():
                for name, body in named.items():
                    d.data[(typ, name)] = body
        for block in doc.get("variable", []):
            for name, body in block.items():
                d.variables[name] = (f, body)
        for block in doc.get("locals", []):
            d.locals.update(block)
        for block in doc.get("terraform", []):
            d.terraform.append((f, block))
        for block in doc.get("output", []):
            for name, body in block.items():
                d.outputs[name] = body
    return dirs


def blocks(body, key):
    """Nested blocks named `key`, plus the contents of `dynamic "key"` blocks."""
    out = list(body.get(key, []) or [])
    for dyn in body.get("dynamic", []) or []:
        for name, inner in dyn.items():
            if name == key:
                out.extend(inner.get("content", []) or [])
    return out


def first(body, key):
    b = blocks(body, key)
    return b[0] if b else None


def rel(root, p):
    return os.path.relpath(p, root.parent)


# ---- versions.tf --------------------------------------------------------------------------------


def lower_bound(constraint):
    """Smallest version a constraint like ">= 1.5.0", "~> 1.5" or ">= 1.5, < 2.0" allows."""
    best = None
    for part in constraint.split(","):
        m = re.match(r"^\s*(>=|~>|=|>)?\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$", part)
        if not m:
            continue
        op = m.group(1) or "="
        if op in (">=", "~>", "=", ">"):
            v = tuple(int(x or 0) for x in m.group(2, 3, 4))
            best = v if best is None or v > best else best
    return best


def check_versions(root, dirs):
    for path, d in dirs.items():
        where = rel(root, path)
        if not check("versions.tf" in d.files, f"{where}: no versions.tf"):
            continue
        blocks_here = [b for f, b in d.terraform if f.name == "versions.tf"]
        if not check(blocks_here, f"{where}/versions.tf: no terraform block"):
            continue
        tf = blocks_here[0]
        rv = tf.get("required_version")
        lb = lower_bound(rv) if isinstance(rv, str) else None
        check(
            lb is not None and lb[0] == 1 and lb >= (1, 5, 0),
            f"{where}/versions.tf: required_version {rv!r} does not pin Terraform >= 1.5",
        )
        providers = {}
        for rp in tf.get("required_providers", []):
            providers.update(rp)
        aws = providers.get("aws")
        if check(isinstance(aws, dict), f"{where}/versions.tf: no aws in required_providers"):
            check(aws.get("source") == "hashicorp/aws", f"{where}/versions.tf: aws source is {aws.get('source')!r}")
            check(
                re.fullmatch(r"~>\s*[56]\.\d+(\.\d+)?", str(aws.get("version", ""))) is not None,
                f"{where}/versions.tf: aws version {aws.get('version')!r} does not pin major 5 or 6 (~> 5.x / ~> 6.x)",
            )
        for name, spec in providers.items():
            check(
                isinstance(spec, dict) and spec.get("version"),
                f"{where}/versions.tf: provider {name} has no version constraint",
            )


# ---- variables ----------------------------------------------------------------------------------

# The module's inputs the issue names: instance types, node count, zones, allowed CIDRs, tags,
# and the release URL.
MUST_VALIDATE = [
    "name",
    "vpc_id",
    "private_subnet_ids",
    "kafka_allowed_cidrs",
    "admin_allowed_cidrs",
    "tierlog_binary_url",
    "tierlog_binary_sha256",
    "node_count",
    "node_instance_type",
    "etcd_instance_type",
    "tags",
    "metadata_backend",
    "default_replication_factor",
    "min_insync_replicas",
    "lease_ttl_seconds",
    "replica_lag_time_max_seconds",
]


def check_variables(root, dirs, module):
    for path, d in dirs.items():
        for name, (f, body) in d.variables.items():
            where = f"{rel(root, f)}: variable {name}"
            desc = body.get("description")
            check(isinstance(desc, str) and len(desc.strip()) >= 10, f"{where} has no description")
            check("type" in body, f"{where} has no type")
    for name in MUST_VALIDATE:
        if check(name in module.variables, f"module: no variable {name}"):
            f, body = module.variables[name]
            check(body.get("validation"), f"{rel(root, f)}: variable {name} has no validation block")
    if "tierlog_binary_url" in module.variables:
        f, body = module.variables["tierlog_binary_url"]
        check("default" not in body, f"{rel(root, f)}: tierlog_binary_url must be required (no default)")
        conds = " ".join(str(v.get("condition", "")) for v in body.get("validation", []))
        check("https://" in conds, f"{rel(root, f)}: tierlog_binary_url's validation does not require https://")


def var_refs(expr):
    return set(re.findall(r"\bvar\.([A-Za-z0-9_]+)", expr if isinstance(expr, str) else ""))


# ---- S3 -----------------------------------------------------------------------------------------


def refers_to(value, typ, name):
    return isinstance(value, str) and re.search(rf"\b{typ}\.{name}\.(id|bucket|arn)\b", value) is not None


def bucket_resource(d, typ, bucket):
    found = [body for (t, _), body in d.resources.items() if t == typ and refers_to(body.get("bucket"), "aws_s3_bucket", bucket)]
    check(found, f"module: no {typ} for aws_s3_bucket.{bucket}")
    return found


def policy_doc_of(d, expr):
    m = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)(\[[^\]]+\])?\.json\}", expr or "")
    if not m:
        return None, None
    return m.group(1), d.data.get(("aws_iam_policy_document", m.group(1)))


def check_bucket(root, module):
    buckets = [name for (t, name) in module.resources if t == "aws_s3_bucket"]
    if not check(len(buckets) == 1, f"module: expected one aws_s3_bucket, found {buckets}"):
        return None
    b = buckets[0]
    body = module.resources[("aws_s3_bucket", b)]

    fd = body.get("force_destroy", False)
    if isinstance(fd, str) and var_refs(fd):
        (v,) = var_refs(fd) or {None}
        default = module.variables.get(v, (None, {}))[1].get("default")
        check(fd == f"${{var.{v}}}" and default is False, f"aws_s3_bucket.{b}: force_destroy = {fd} whose default is {default!r}, not false")
    else:
        check(fd is False, f"aws_s3_bucket.{b}: force_destroy = {fd!r}")

    for pab in bucket_resource(module, "aws_s3_bucket_public_access_block", b):
        for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            check(pab.get(k) is True, f"aws_s3_bucket_public_access_block: {k} is {pab.get(k)!r}, not true")

    for sse in bucket_resource(module, "aws_s3_bucket_server_side_encryption_configuration", b):
        rule = first(sse, "rule") or {}
        default = first(rule, "apply_server_side_encryption_by_default") or {}
        alg = default.get("sse_algorithm", "")
        check("AES256" in alg, f"SSE: sse_algorithm {alg!r} is not SSE-S3 (AES256) by default")
        if "aws:kms" in alg:
            # Conditional: SSE-S3 unless a key variable (default null) is set.
            vs = var_refs(alg)
            check(
                "AES256" in alg and vs and all(module.variables.get(v, (None, {}))[1].get("default", "x") is None for v in vs),
                f"SSE: sse_algorithm {alg!r} is not SSE-S3 by default with KMS chosen by a variable defaulting to null",
            )
            check(var_refs(default.get("kms_master_key_id", "")) == vs, "SSE: kms_master_key_id is not the KMS key variable")

    for pol in bucket_resource(module, "aws_s3_bucket_policy", b):
        name, doc = policy_doc_of(module, pol.get("policy"))
        if not check(doc is not None, f"aws_s3_bucket_policy: policy {pol.get('policy')!r} is not an aws_iam_policy_document"):
            continue
        tls_deny = False
        for st in blocks(doc, "statement"):
            conds = blocks(st, "condition")
            principals = blocks(st, "principals")
            res = st.get("resources", [])
            if (
                st.get("effect") == "Deny"
                and "s3:*" in st.get("actions", [])
                and any(p.get("identifiers") == ["*"] for p in principals)
                and any(
                    c.get("test") == "Bool" and c.get("variable") == "aws:SecureTransport" and c.get("values") == ["false"]
                    for c in conds
                )
                and any(re.fullmatch(rf"\$\{{aws_s3_bucket\.{b}\.arn\}}", r) for r in res)
                and any(re.fullmatch(rf"\$\{{aws_s3_bucket\.{b}\.arn\}}/\*", r) for r in res)
            ):
                tls_deny = True
        check(tls_deny, f"bucket policy {name}: no Deny of s3:* to * on the bucket and its objects when aws:SecureTransport is false")

    aborts = False
    for lc in bucket_resource(module, "aws_s3_bucket_lifecycle_configuration", b):
        for rule in blocks(lc, "rule"):
            filt = blocks(rule, "filter")
            whole_bucket = not filt or filt == [{}] or filt[0].get("prefix") == ""
            ab = first(rule, "abort_incomplete_multipart_upload")
            if rule.get("status") == "Enabled" and whole_bucket and ab and ab.get("days_after_initiation") is not None:
                aborts = True
    check(aborts, "bucket lifecycle: no enabled whole-bucket rule aborting incomplete multipart uploads")
    return b


# ---- IAM ----------------------------------------------------------------------------------------

ALLOWED_MANAGED_POLICIES = {"AmazonSSMManagedInstanceCore"}


def check_iam(root, dirs, module, bucket):
    for path, d in dirs.items():
        for (typ, name), body in d.resources.items():
            if typ in ("aws_iam_role_policy", "aws_iam_policy"):
                doc_name, doc = policy_doc_of(d, body.get("policy"))
                check(doc is not None, f"{typ}.{name}: policy must be an aws_iam_policy_document's json, got {body.get('policy')!r}")
            if typ == "aws_iam_role":
                _, doc = policy_doc_of(d, body.get("assume_role_policy"))
                check(doc is not None, f"aws_iam_role.{name}: assume_role_policy is not an aws_iam_policy_document")
                check("inline_policy" not in body and "managed_policy_arns" not in body, f"aws_iam_role.{name}: inline_policy/managed_policy_arns bypass the checks")
            if typ in ("aws_iam_role_policy_attachment", "aws_iam_policy_attachment"):
                arn = body.get("policy_arn", "")
                check(
                    arn.rsplit("/", 1)[-1] in ALLOWED_MANAGED_POLICIES,
                    f"{typ}.{name}: managed policy {arn!r} is not in the allowed list {sorted(ALLOWED_MANAGED_POLICIES)}",
                )

    bucket_arn = rf"\$\{{aws_s3_bucket\.{bucket}\.arn\}}"
    granted = {}  # action -> set of resource kinds ("bucket" / "prefix")
    for path, d in dirs.items():
        for (typ, name), doc in d.data.items():
            if typ != "aws_iam_policy_document":
                continue
            for st in blocks(doc, "statement"):
                where = f"aws_iam_policy_document.{name} statement {st.get('sid', '?')}"
                if st.get("effect", "Allow") != "Allow":
                    continue
                actions = st.get("actions", [])
                resources = st.get("resources", [])
                check("not_actions" not in st and "not_resources" not in st, f"{where}: not_actions/not_resources in an Allow")
                check("*" not in resources, f"{where}: Allow on resource \"*\"")
                s3 = [a for a in actions if a.lower().startswith("s3:") or a == "*"]
                if not s3:
                    continue
                check(not any("*" in a for a in s3), f"{where}: wildcard S3 actions {s3}")
                check(resources, f"{where}: S3 actions without resources")
                for r in resources:
                    if re.fullmatch(bucket_arn, r):
                        kind = "bucket"
                    elif (m := re.fullmatch(bucket_arn + r"/(.+)/\*", r)) and "*" not in m.group(1):
                        kind = "prefix"
                    else:
                        check(False, f"{where}: S3 resource {r!r} is neither the bucket's ARN nor <bucket ARN>/<prefix>/*")
                        continue
                    for a in s3:
                        granted.setdefault(a, set()).add(kind)
    for action, kind in [
        ("s3:ListBucket", "bucket"),
        ("s3:GetObject", "prefix"),
        ("s3:PutObject", "prefix"),
        ("s3:DeleteObject", "prefix"),
        ("s3:AbortMultipartUpload", "prefix"),
        ("s3:ListMultipartUploadParts", "prefix"),
    ]:
        check(kind in granted.get(action, set()), f"IAM: nodes are not granted {action} on the {kind} ARN")


# ---- security groups ----------------------------------------------------------------------------


def resolve_port(d, v):
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        m = re.fullmatch(r"\$\{local\.([A-Za-z0-9_]+)\}", v)
        if m and isinstance(d.locals.get(m.group(1)), int):
            return d.locals[m.group(1)]
        if v.isdigit():
            return int(v)
    return None


def ingress_rules(d):
    """(where, body, protocol, from, to, cidr_values, has_sg_source) for every ingress rule."""
    out = []
    for (typ, name), body in d.resources.items():
        rules = []
        if typ == "aws_vpc_security_group_ingress_rule":
            rules.append((f"{typ}.{name}", body, body.get("ip_protocol"), [body.get("cidr_ipv4"), body.get("cidr_ipv6")], bool(body.get("referenced_security_group_id") or body.get("prefix_list_id"))))
        elif typ == "aws_security_group_rule" and body.get("type") == "ingress":
            rules.append((f"{typ}.{name}", body, body.get("protocol"), [body.get("cidr_blocks"), body.get("ipv6_cidr_blocks")], bool(body.get("source_security_group_id") or body.get("self"))))
        elif typ == "aws_security_group":
            for i, ing in enumerate(blocks(body, "ingress")):
                rules.append((f"{typ}.{name} ingress[{i}]", ing, ing.get("protocol"), [ing.get("cidr_blocks"), ing.get("ipv6_cidr_blocks")], bool(ing.get("security_groups") or ing.get("self"))))
        for where, b, proto, cidrs, sg_source in rules:
            cidrs = [c for c in cidrs if c is not None]
            out.append((where, b, proto, cidrs, sg_source))
    return out


def cidr_is_safe(d, where, rule, value):
    """A literal CIDR must not be open to the world; a variable's must be refused by validation."""
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, str):
            check(False, f"{where}: cannot read CIDR {v!r}")
            continue
        if "${" not in v:
            check(v not in OPEN_CIDRS, f"{where}: ingress from {v}")
            continue
        refs = var_refs(v)
        if "each.value" in v or "each.key" in v:
            refs |= var_refs(rule.get("for_each", ""))
        if not check(refs, f"{where}: CIDR {v!r} comes from no variable the checker can verify"):
            continue
        for r in refs:
            f, var = d.variables.get(r, (None, None))
            if not check(var is not None, f"{where}: CIDR from unknown variable {r}"):
                continue
            default = var.get("default") or []
            check(not any(c in OPEN_CIDRS for c in default), f"variable {r}: default opens {default}")
            conds = " ".join(str(vb.get("condition", "")) for vb in var.get("validation", []))
            check(
                all(c in conds for c in OPEN_CIDRS),
                f"variable {r} (ingress CIDRs of {where}) has no validation refusing 0.0.0.0/0 and ::/0",
            )


def check_security_groups(root, dirs, module):
    covered = set()
    for path, d in dirs.items():
        for where, body, proto, cidrs, sg_source in ingress_rules(d):
            if str(proto) in ("-1", "all"):
                lo, hi = 0, 65535
            else:
                lo, hi = resolve_port(d, body.get("from_port")), resolve_port(d, body.get("to_port"))
            if not check(lo is not None and hi is not None, f"{where}: cannot tell which ports it opens ({body.get('from_port')!r}..{body.get('to_port')!r})"):
                continue
            ports = {p for p in (*ETCD_PORTS, ADMIN_PORT, KAFKA_PORT, INTERNAL_PORT) if lo <= p <= hi}
            covered |= ports
            if INTERNAL_PORT in ports:
                check(not cidrs and sg_source, f"{where}: the inter-broker port {INTERNAL_PORT} is open to CIDRs {cidrs}; only the nodes may reach it")
            if ports & set(ETCD_PORTS):
                check(not cidrs, f"{where}: etcd port(s) {sorted(ports & set(ETCD_PORTS))} open to CIDRs {cidrs}; only security groups may reach etcd")
                check(sg_source, f"{where}: etcd port without a security-group source")
            for c in cidrs:
                cidr_is_safe(d, where, body, c)
    for p in (*ETCD_PORTS, ADMIN_PORT, KAFKA_PORT, INTERNAL_PORT):
        check(p in covered, f"security groups: no ingress rule for port {p} found (did the rules move somewhere the checker does not look?)")


# ---- cluster mode -------------------------------------------------------------------------------

# variable -> default the README documents.
CLUSTER_DEFAULTS = {
    "metadata_backend": "etcd",
    "default_replication_factor": 3,
    "min_insync_replicas": 2,
    "lease_ttl_seconds": 3,
    "replica_lag_time_max_seconds": 10,
}

# (metadata_backend, node_count, default_replication_factor, min_insync_replicas) -> whether the
# nodes' preconditions accept it.
PRECONDITION_CASES = [
    (("etcd", 3, 3, 2), True),
    (("etcd", 6, 3, 2), True),
    (("etcd", 3, 3, 3), True),
    (("etcd", 2, 2, 2), True),
    (("etcd", 1, 1, 1), True),
    (("etcd", 3, 3, 4), False),  # min.insync above RF: every acks=all produce would fail
    (("etcd", 2, 3, 2), False),  # RF above the node count
    (("etcd", 1, 3, 2), False),
    (("embedded", 1, 3, 2), True),  # replication inputs do not apply (the node runs 1/1)
    (("embedded", 1, 1, 1), True),
    (("embedded", 2, 1, 1), False),  # embedded means one node
    (("embedded", 3, 3, 2), False),
]


def template_args(d, template_name):
    """key -> expression text of the object passed to templatefile(".../<template_name>", {...})."""
    for text in d.files.values():
        i = text.find(f"templates/{template_name}")
        if i < 0:
            continue
        j = text.index("{", i)
        depth, k = 0, j
        while True:
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.+)$", text[j + 1 : k], re.M)}
    return None


def tf_eval(terraform, exprs):
    """Values of HCL expressions (no providers, no variables), through terraform console."""
    expr = "base64encode(jsonencode([" + ", ".join(exprs) + "]))\n"
    with tempfile.TemporaryDirectory() as empty:
        env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1")
        out = subprocess.run([terraform, "console"], input=expr, cwd=empty, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return None, re.sub(r"\x1b\[[0-9;]*m", "", out.stderr + out.stdout).strip()
    return json.loads(base64.b64decode(out.stdout.strip().strip('"'))), None


def substitute(expr, values):
    """expr (an HCL expression without ${}) with every var.X / local.X replaced by values[X]."""
    missing = []

    def repl(m):
        if m.group(0) not in values:
            missing.append(m.group(0))
            return m.group(0)
        return "(" + values[m.group(0)] + ")"

    return re.sub(r"\b(?:var|local)\.[A-Za-z0-9_]+", repl, expr), missing


def unwrap(expr):
    return expr[2:-1] if isinstance(expr, str) and expr.startswith("${") and expr.endswith("}") else expr


def check_cluster(root, dirs, module, terraform):
    # Defaults: cluster mode unless asked otherwise, and the documented replication settings.
    for name, default in CLUSTER_DEFAULTS.items():
        f, body = module.variables.get(name, (None, {}))
        if not check(body, f"module: no variable {name}"):
            continue
        check(body.get("default") == default, f"module: variable {name} defaults to {body.get('default')!r}, not {default!r}")
        if isinstance(default, int):
            check(body.get("type") in ("number", "${number}"), f"module: variable {name} is {body.get('type')!r}, not a number")
            conds = " ".join(str(v.get("condition", "")) for v in body.get("validation", []))
            check(f"floor(var.{name})" in conds and f"var.{name} >=" in conds and f"var.{name} <=" in conds, f"module: variable {name} has no whole-number range validation")
    for d in dirs.values():
        if d is not module and "metadata_backend" in d.variables:
            default = d.variables["metadata_backend"][1].get("default")
            check(default == "etcd", f"{rel(root, d.path)}: metadata_backend defaults to {default!r}, not etcd")

    # One shared prefix, the etcd URL of the members.
    check(module.locals.get("object_prefix") == "${var.bucket_prefix}", f"module: local.object_prefix is {module.locals.get('object_prefix')!r}")
    check(
        re.fullmatch(r"s3://\$\{aws_s3_bucket\.[A-Za-z0-9_]+\.bucket\}/\$\{local\.object_prefix\}", str(module.locals.get("object_store_url"))) is not None,
        f"module: local.object_store_url is {module.locals.get('object_store_url')!r}, not s3://<bucket>/<prefix>",
    )
    check(
        module.locals.get("metadata_url") == 'etcd://${join(",", local.etcd_endpoints)}/${var.name}',
        f"module: local.metadata_url is {module.locals.get('metadata_url')!r}",
    )

    # Nodes are fixed slots: instance + network interface (+ data volume) per slot.
    check(
        not any(t in ("aws_autoscaling_group", "aws_launch_template") for t, _ in module.resources),
        "module: nodes come from an auto-scaling group again (a replacement instance would be a new node id with an empty disk)",
    )
    node = module.resources.get(("aws_instance", "node"))
    if not check(node is not None, "module: no aws_instance.node (one instance per node slot)"):
        return
    check(node.get("for_each") == "${local.node_slots}", f"aws_instance.node: for_each is {node.get('for_each')!r}, not local.node_slots")
    eni = first(node, "network_interface") or {}
    check(eni.get("network_interface_id") == "${aws_network_interface.node[each.key].id}" and eni.get("device_index") == 0, "aws_instance.node: the primary interface is not the slot's own aws_network_interface.node")
    check(module.resources.get(("aws_network_interface", "node"), {}).get("for_each") == "${local.node_slots}", "module: no aws_network_interface.node per slot")
    vol = module.resources.get(("aws_ebs_volume", "node_data"), {})
    check(vol.get("for_each") == '${var.node_data_volume_type == "ebs" ? local.node_slots : {}}', f"module: aws_ebs_volume.node_data is not one volume per slot with EBS: {vol.get('for_each')!r}")
    check(vol.get("encrypted") is True, "aws_ebs_volume.node_data is not encrypted")
    att = module.resources.get(("aws_volume_attachment", "node_data"), {})
    check(
        att.get("for_each") == "${aws_ebs_volume.node_data}" and att.get("instance_id") == "${aws_instance.node[each.key].id}" and att.get("stop_instance_before_detaching") is True,
        "module: aws_volume_attachment.node_data does not attach each slot's volume to its instance after a clean stop",
    )
    for b in blocks(node, "block_device_mappings") + blocks(node, "ebs_block_device"):
        check(False, f"aws_instance.node: a data disk created with the instance would die with it: {b}")
    check("volume_tags" not in node, "aws_instance.node: volume_tags would fight the data volume's own tags")
    lifecycle = first(node, "lifecycle") or {}
    check({"ami", "user_data"} <= set(lifecycle.get("ignore_changes", [])), "aws_instance.node: a new AMI or user data would replace every node in one plan")
    check(
        module.resources.get(("aws_lb_target_group_attachment", "node"), {}).get("for_each") == "${aws_instance.node}",
        "module: the nodes are not registered with the bootstrap load balancer",
    )
    args = template_args(module, "node-user-data.sh.tftpl") or {}
    for key, want in [
        ("node_id", "each.value.index"),
        ("zone", "each.value.zone"),
        ("metadata_backend", "var.metadata_backend"),
        ("metadata_url", "local.metadata_url"),
        ("object_store_url", "local.object_store_url"),
        ("data_volume_id", 'try(aws_ebs_volume.node_data[each.key].id, "")'),
        ("lease_ttl_seconds", "var.lease_ttl_seconds"),
        ("replica_lag_time_max_seconds", "var.replica_lag_time_max_seconds"),
        ("default_replication_factor", "var.default_replication_factor"),
        ("min_insync_replicas", "var.min_insync_replicas"),
        ("enable_security", "var.enable_security"),
        ("internal_port", "local.internal_port"),
        ("ssm_prefix", "local.kafka_ssm_prefix"),
        ("admin_username", "var.admin_username"),
        ("broker_username", "local.broker_username"),
    ]:
        check(args.get(key) == want, f"aws_instance.node: templatefile passes {key} = {args.get(key)!r}, not {want}")

    if not terraform:
        return
    # The slot map: keys node-<i>, node id i, round-robin over the zones, first subnet of a zone.
    slots_expr = unwrap(module.locals.get("node_slots", ""))
    zones = {"local.zones": '["eu-west-1a", "eu-west-1b", "eu-west-1c"]', "local.subnets_by_zone": '{"eu-west-1a" = ["subnet-a2", "subnet-a1"], "eu-west-1b" = ["subnet-b1"], "eu-west-1c" = ["subnet-c1"]}'}
    cases = [4, 1]
    exprs = []
    for n in cases:
        e, missing = substitute(slots_expr, dict(zones, **{"var.node_count": str(n)}))
        check(not missing, f"local.node_slots refers to {missing}, which the checker does not model")
        exprs.append(e)
    got, err = tf_eval(terraform, exprs)
    if check(got is not None, f"local.node_slots does not evaluate: {err}"):
        for n, slots in zip(cases, got):
            want = {
                f"node-{i}": {"index": i, "zone": ["eu-west-1a", "eu-west-1b", "eu-west-1c"][i % 3], "subnet_id": ["subnet-a1", "subnet-b1", "subnet-c1"][i % 3]}
                for i in range(n)
            }
            check(slots == want, f"local.node_slots with node_count = {n} is {slots}, not {want}")
        # Each slot's own user data: 4 nodes with etcd, 1 with embedded metadata.
        check_slot_user_data(module, terraform, args, [(slots, backend) for slots, backend in zip(got, ("etcd", "embedded"))])

    # The preconditions, evaluated: node_count > 1 only with etcd; RF/min.insync sane with etcd.
    conds = [unwrap(p.get("condition", "")) for p in blocks(lifecycle, "precondition")]
    # A literal condition (`true`) constrains nothing: it counts as a precondition on every input.
    conds = [hcl_value(c) if isinstance(c, bool) else str(c) for c in conds]
    settings = [c for c in conds if c in ("true", "false") or re.search(r"\b(metadata_backend|node_count|default_replication_factor|min_insync_replicas)\b", c)]
    if not check(settings, "aws_instance.node: no precondition on metadata_backend / node_count"):
        return
    exprs = []
    for (backend, n, rf, mi), _ in PRECONDITION_CASES:
        values = {"var.metadata_backend": f'"{backend}"', "var.node_count": str(n), "var.default_replication_factor": str(rf), "var.min_insync_replicas": str(mi)}
        parts = []
        for c in settings:
            e, missing = substitute(c, values)
            check(not missing, f"aws_instance.node: precondition {c!r} refers to {missing}, which the checker does not model")
            parts.append(f"({e})")
        exprs.append(" && ".join(parts))
    got, err = tf_eval(terraform, exprs)
    if check(got is not None, f"aws_instance.node: preconditions do not evaluate: {err}"):
        for ((backend, n, rf, mi), want), ok in zip(PRECONDITION_CASES, got):
            check(
                ok is want,
                f"aws_instance.node: preconditions {'refuse' if want else 'accept'} metadata_backend = {backend}, node_count = {n}, default_replication_factor = {rf}, min_insync_replicas = {mi}",
            )


# ---- user-data templates ------------------------------------------------------------------------

NODE_SAMPLE = {
    "name": "tl",
    "region": "eu-west-1",
    "binary_url": "https://example.com/tierlog",
    "binary_sha256": "0" * 64,
    "node_id": 7,
    "zone": "eu-west-1b",
    "data_volume_id": "vol-0fedcba9876543210",
    "metadata_url": "etcd://10.0.1.10:2379,10.0.2.10:2379,10.0.3.10:2379/tl",
    "object_store_url": "s3://tl-bucket/tierlog",
    "kafka_port": KAFKA_PORT,
    "admin_port": ADMIN_PORT,
    "cache_memory_bytes": 268435456,
    "cache_disk_bytes": 21474836480,
    "flush_mode": "interval",
    "default_partitions": 3,
    # Not tierlog's own defaults, so a dropped flag cannot pass by accident.
    "lease_ttl_seconds": 4,
    "replica_lag_time_max_seconds": 17,
    "default_replication_factor": 5,
    "min_insync_replicas": 2,
    "internal_port": INTERNAL_PORT,
    "ssm_prefix": "/tl/kafka",
    # Not the default, so a hard-coded "admin" cannot pass by accident.
    "admin_username": "root-admin",
    "broker_username": "broker",
}
# The exact flags of the node's ExecStart, each once.
NODE_FLAGS = {
    "--data-dir", "--listen", "--advertise", "--node-id", "--metadata", "--object-store",
    "--s3-region", "--http", "--cache-dir", "--cache-memory-bytes", "--cache-disk-bytes",
    "--flush-mode", "--default-partitions", "--lease-ttl", "--replica-lag-time-max",
    "--default-replication-factor", "--min-insync-replicas", "--rack",
}
# With enable_security: --listen/--advertise give way to two SASL_SSL listeners, TLS and SASL
# settings, super users and enforced ACLs.
SECURE_NODE_FLAGS = (NODE_FLAGS - {"--listen", "--advertise"}) | {
    "--listeners", "--advertised-listeners", "--listener-security-protocol-map",
    "--inter-broker-listener-name", "--ssl-cert-file", "--ssl-key-file", "--ssl-ca-file",
    "--sasl-enabled-mechanisms", "--sasl-bootstrap-user", "--sasl-bootstrap-password-file",
    "--inter-broker-sasl-username", "--inter-broker-sasl-password-file",
    "--inter-broker-sasl-mechanism", "--super-users", "--allow-everyone-if-no-acl-found",
}
ETCD_SAMPLE = {
    "member_name": "etcd-0",
    "member_ip": "10.0.1.10",
    "initial_cluster": "etcd-0=https://10.0.1.10:2380,etcd-1=https://10.0.2.10:2380,etcd-2=https://10.0.3.10:2380",
    "cluster_token": "tl-etcd",
    "client_port": 2379,
    "peer_port": 2380,
    "ssm_prefix": "/tl/etcd",
    "region": "eu-west-1",
    "etcd_version": "3.5.17",
    "download_base_url": "https://github.com/etcd-io/etcd/releases/download",
    "data_volume_id": "vol-0123456789abcdef0",
}


def hcl_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("${", "$${") + '"'


def render(terraform, template, values):
    obj = ", ".join(f"{k} = {hcl_value(v)}" for k, v in values.items())
    expr = f'base64encode(templatefile("{template}", {{ {obj} }}))\n'
    with tempfile.TemporaryDirectory() as empty:
        env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1")
        out = subprocess.run([terraform, "console"], input=expr, cwd=empty, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return None, re.sub(r"\x1b\[[0-9;]*m", "", out.stderr + out.stdout).strip()
    b64 = out.stdout.strip().strip('"')
    return base64.b64decode(b64).decode(), None


def template_keys(d, template_name):
    """Keys of the object passed to templatefile(".../<template_name>", {...}) in the module."""
    for text in d.files.values():
        i = text.find(f"templates/{template_name}")
        if i < 0:
            continue
        j = text.index("{", i)
        depth, k = 0, j
        while True:
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        body = text[j + 1 : k]
        return set(re.findall(r"^\s*([A-Za-z0-9_]+)\s*=", body, re.M))
    return None


def bash_syntax_ok(script, what):
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(["bash", "-n", f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    return check(out.returncode == 0, f"{what}: bash -n fails: {out.stderr.strip()}")


def exec_start(script):
    m = re.search(r"^ExecStart=(.*?)(?<!\\)\n", script, re.M | re.S)
    return " ".join(m.group(1).replace("\\\n", " ").split()) if m else ""


def check_templates(root, module, terraform, serve_help):
    tdir = module.path / "templates"
    node_t, etcd_t = tdir / "node-user-data.sh.tftpl", tdir / "etcd-user-data.sh.tftpl"
    for t, sample, switches in [
        (node_t, NODE_SAMPLE, {"data_volume_type", "metadata_backend", "enable_security"}),
        (etcd_t, ETCD_SAMPLE, {"peer_tls"}),
    ]:
        if not check(t.is_file(), f"module: {rel(root, t)} is missing"):
            return
        keys = template_keys(module, t.name)
        check(
            keys == set(sample) | switches,
            f"{t.name}: the module passes {sorted(keys or [])}, the checker's sample has {sorted(set(sample) | switches)}",
        )
    help_flags = None
    if serve_help:
        help_flags = set(re.findall(r"(--[a-z0-9-]+)", Path(serve_help).read_text()))

    for volume, backend, secure in [(v, b, s) for v in ("ebs", "instance-store") for b in ("etcd", "embedded") for s in (True, False)]:
        if True:
            what = f"node user data ({volume}, {backend}, enable_security={secure})"
            script, err = render(terraform, node_t, dict(NODE_SAMPLE, data_volume_type=volume, metadata_backend=backend, enable_security=secure))
            if not check(script is not None, f"{what}: does not render: {err}"):
                continue
            bash_syntax_ok(script, what)
            cmd = exec_start(script)
            check(cmd.startswith("/usr/local/bin/tierlog serve "), f"{what}: ExecStart is {cmd!r}")
            words = cmd.split()
            flag = lambda f: words[words.index(f) + 1] if f in words and words.index(f) + 1 < len(words) else None  # noqa: E731
            if secure:
                check_secure_node(what, script, flag)
            else:
                check(flag("--listen") == f"0.0.0.0:{KAFKA_PORT}", f"{what}: --listen {flag('--listen')}")
                check(flag("--advertise") == f"$private_ip:{KAFKA_PORT}", f"{what}: --advertise {flag('--advertise')}")
                check("aws ssm" not in script and "tierlog user add" not in script, f"{what}: reads secrets without enable_security")
            check(flag("--http") == f"0.0.0.0:{ADMIN_PORT}", f"{what}: --http {flag('--http')}")
            check(flag("--s3-region") == NODE_SAMPLE["region"], f"{what}: --s3-region {flag('--s3-region')}")
            flags = [w for w in words if w.startswith("--")]
            want_flags = SECURE_NODE_FLAGS if secure else NODE_FLAGS
            check(
                sorted(flags) == sorted(want_flags),
                f"{what}: ExecStart flags differ from the promised set: extra {sorted(set(flags) - want_flags)}, missing {sorted(want_flags - set(flags))}, repeated {sorted({f for f in flags if flags.count(f) > 1})}",
            )
            # Node identity: the slot index from Terraform, not derived from the instance.
            check(flag("--node-id") == "$node_id", f"{what}: --node-id {flag('--node-id')}")
            # Rack: the slot's zone, in both modes (harmless with one node, and true).
            check(flag("--rack") == NODE_SAMPLE["zone"], f"{what}: --rack {flag('--rack')}, not the zone {NODE_SAMPLE['zone']}")
            check(
                re.findall(r"^node_id=(.*)$", script, re.M) == [str(NODE_SAMPLE["node_id"])],
                f"{what}: node_id is not assigned exactly once from the template's node_id: {re.findall(r'^node_id=(.*)$', script, re.M)}",
            )
            check(
                "/var/lib/tierlog/node-id" in script and "refusing to start" in script,
                f"{what}: the data volume is not checked against the node id it belongs to",
            )
            # Replication settings: from the inputs with etcd; a one-node embedded cluster runs
            # RF 1 / min.insync 1 (min.insync 2 would refuse every acks=all produce there).
            rf, mi = (NODE_SAMPLE["default_replication_factor"], NODE_SAMPLE["min_insync_replicas"]) if backend == "etcd" else (1, 1)
            check(flag("--default-replication-factor") == str(rf), f"{what}: --default-replication-factor {flag('--default-replication-factor')}, not {rf}")
            check(flag("--min-insync-replicas") == str(mi), f"{what}: --min-insync-replicas {flag('--min-insync-replicas')}, not {mi}")
            check(flag("--lease-ttl") == f"{NODE_SAMPLE['lease_ttl_seconds']}s", f"{what}: --lease-ttl {flag('--lease-ttl')}")
            check(
                flag("--replica-lag-time-max") == f"{NODE_SAMPLE['replica_lag_time_max_seconds']}s",
                f"{what}: --replica-lag-time-max {flag('--replica-lag-time-max')}",
            )
            check(flag("--metadata") == "$metadata" and flag("--object-store") == "$object_store", f"{what}: --metadata/--object-store not from the script's variables")
            metadata = re.findall(r"^metadata=(.*)$", script, re.M)
            object_store = re.findall(r"^object_store=(.*)$", script, re.M)
            if backend == "etcd":
                check(metadata == [f'"{NODE_SAMPLE["metadata_url"]}"'], f"{what}: metadata is {metadata}, not exactly the etcd URL")
                check(object_store == [f'"{NODE_SAMPLE["object_store_url"]}"'], f"{what}: object store is {object_store}, not exactly the shared s3:// prefix")
                check("/nodes/" not in script, f"{what}: a per-node prefix appears in cluster mode")
            else:
                check(metadata == ['"embedded"'], f"{what}: metadata is {metadata}, not embedded")
                check(object_store == [f'"{NODE_SAMPLE["object_store_url"]}/nodes/$node_id"'], f"{what}: object store is {object_store}, not a per-node prefix")
            if volume == "ebs":
                check(NODE_SAMPLE["data_volume_id"] in script, f"{what}: does not wait for the slot's own data volume by id")
            else:
                check(NODE_SAMPLE["data_volume_id"] not in script and "NVMe Instance Storage" in script, f"{what}: does not use the instance store")
            check(f'"{NODE_SAMPLE["binary_url"]}"' in script and NODE_SAMPLE["binary_sha256"] in script and "sha256sum -c" in script, f"{what}: the binary is not downloaded and checked")
            check("systemctl enable --now tierlog.service" in script, f"{what}: the unit is not enabled and started")
            check("X-aws-ec2-metadata-token" in script and "local-ipv4" in script, f"{what}: identity not from IMDSv2")
            check("KillSignal=SIGTERM" in script, f"{what}: the unit does not stop tierlog with SIGTERM")
            if help_flags is not None:
                for w in words:
                    if w.startswith("--"):
                        check(w in help_flags, f"{what}: `tierlog serve` has no flag {w}")
    for tls in (True, False):
        what = f"etcd user data (peer_tls={tls})"
        script, err = render(terraform, etcd_t, dict(ETCD_SAMPLE, peer_tls=tls))
        if not check(script is not None, f"{what}: does not render: {err}"):
            continue
        bash_syntax_ok(script, what)
        scheme = "https" if tls else "http"
        check(f"ETCD_LISTEN_PEER_URLS={scheme}://{ETCD_SAMPLE['member_ip']}:2380" in script, f"{what}: peer URL is not {scheme}")
        check(("ETCD_PEER_CLIENT_CERT_AUTH=true" in script) == tls, f"{what}: peer client-cert auth is {'off' if tls else 'on'}")
        check(f"ETCD_INITIAL_CLUSTER={ETCD_SAMPLE['initial_cluster']}" in script, f"{what}: initial cluster missing")
        check("sha256sum -c" in script, f"{what}: the etcd release is not checked")
        check("systemctl enable --now etcd.service" in script, f"{what}: etcd is not enabled and started")


def check_slot_user_data(module, terraform, args, cases):
    """Render the node template per evaluated slot, with node_id and zone evaluated from the
    module's own templatefile arguments (each.value = the slot): the node runs with --node-id
    <slot index> and --rack <slot zone>."""
    template = module.path / "templates" / "node-user-data.sh.tftpl"
    per_slot = ("node_id", "zone")
    if not check(all(k in args for k in per_slot), f"aws_instance.node: templatefile does not pass {per_slot}"):
        return
    todo, exprs = [], []
    for slots, backend in cases:
        for key, slot in sorted(slots.items()):
            literal = "{" + ", ".join(f"{k} = {hcl_value(v)}" for k, v in slot.items()) + "}"
            for arg in per_slot:
                e = re.sub(r"\beach\.value\b", lambda _: f"({literal})", args[arg])
                e = re.sub(r"\beach\.key\b", lambda _: hcl_value(key), e)
                exprs.append(e)
            todo.append((key, slot, backend))
    got, err = tf_eval(terraform, exprs)
    if not check(got is not None, f"aws_instance.node: templatefile arguments {per_slot} do not evaluate per slot: {err}"):
        return
    for i, (key, slot, backend) in enumerate(todo):
        node_id, zone = got[2 * i], got[2 * i + 1]
        what = f"node user data of slot {key} ({backend})"
        script, err = render(terraform, template, dict(NODE_SAMPLE, data_volume_type="ebs", metadata_backend=backend, enable_security=True, node_id=node_id, zone=zone))
        if not check(script is not None, f"{what}: does not render: {err}"):
            continue
        words = exec_start(script).split()
        rack = words[words.index("--rack") + 1] if "--rack" in words[:-1] else None
        check(rack == slot["zone"], f"{what}: --rack {rack}, not the slot's zone {slot['zone']}")
        ids = re.findall(r"^node_id=(.*)$", script, re.M)
        check(ids == [str(slot["index"])], f"{what}: node_id is {ids}, not the slot index {slot['index']}")


# ---- listener security --------------------------------------------------------------------------


def check_secure_node(what, script, flag):
    """The rendered node user data with enable_security: SASL_SSL listeners, secrets from SSM."""
    s = NODE_SAMPLE
    secrets = "/etc/tierlog/secrets"
    check(flag("--listeners") == f"CLIENT://0.0.0.0:{KAFKA_PORT},INTERNAL://0.0.0.0:{INTERNAL_PORT}", f"{what}: --listeners {flag('--listeners')}")
    check(
        flag("--advertised-listeners") == f"CLIENT://$private_ip:{KAFKA_PORT},INTERNAL://$private_ip:{INTERNAL_PORT}",
        f"{what}: --advertised-listeners {flag('--advertised-listeners')}",
    )
    check(flag("--listener-security-protocol-map") == "CLIENT:SASL_SSL,INTERNAL:SASL_SSL", f"{what}: listener protocols {flag('--listener-security-protocol-map')}")
    check(flag("--inter-broker-listener-name") == "INTERNAL", f"{what}: --inter-broker-listener-name {flag('--inter-broker-listener-name')}")
    for f, file in [("--ssl-cert-file", "node.crt"), ("--ssl-key-file", "node.key"), ("--ssl-ca-file", "ca.crt"),
                    ("--sasl-bootstrap-password-file", "admin-password"), ("--inter-broker-sasl-password-file", "broker-password")]:
        check(flag(f) == f"{secrets}/{file}", f"{what}: {f} {flag(f)}")
    check(flag("--sasl-enabled-mechanisms") == "SCRAM-SHA-512,SCRAM-SHA-256", f"{what}: --sasl-enabled-mechanisms {flag('--sasl-enabled-mechanisms')} (no PLAIN)")
    check(flag("--sasl-bootstrap-user") == s["admin_username"], f"{what}: --sasl-bootstrap-user {flag('--sasl-bootstrap-user')}")
    check(flag("--inter-broker-sasl-username") == s["broker_username"], f"{what}: --inter-broker-sasl-username {flag('--inter-broker-sasl-username')}")
    check(flag("--inter-broker-sasl-mechanism") == "SCRAM-SHA-512", f"{what}: --inter-broker-sasl-mechanism")
    check(
        flag("--super-users") == f'"User:{s["admin_username"]};User:{s["broker_username"]}"',
        f"{what}: --super-users {flag('--super-users')} is not the admin and the inter-broker user (quoted for systemd)",
    )
    check(flag("--allow-everyone-if-no-acl-found") == "false", f"{what}: ACLs are not enforced")
    # Secrets from this deployment's SSM parameters, the node's own certificate, keys umask 077.
    for param in ["ca.crt", "node-$node_id/node.crt", "node-$node_id/node.key", "admin-password", "broker-password"]:
        check(f'param "{s["ssm_prefix"]}/{param}"' in script, f"{what}: does not read {s['ssm_prefix']}/{param} from SSM")
    check("--with-decryption" in script and "umask 077" in script, f"{what}: SecureStrings are not decrypted into private files")
    user_add = re.search(r"tierlog user add (.*?)\n(?!\s)", script.replace("\\\n", " "), re.S)
    ua = " ".join(user_add.group(1).split()) if user_add else ""
    check(
        f"--name {s['broker_username']}" in ua and f"--password-file {secrets}/broker-password" in ua and '--metadata "$metadata"' in ua,
        f"{what}: the inter-broker user is not created from its password file in the node's metadata store: {ua!r}",
    )
    check(script.index("tierlog user add") < script.index("systemctl enable --now tierlog.service"), f"{what}: the inter-broker user is created after the node starts")


def refs_secret(v):
    text = json.dumps(v)
    return any(x in text for x in ("random_password.", "tls_private_key.", "private_key_pem"))


def check_security(root, dirs, module):
    f, var = module.variables.get("enable_security", (None, {}))
    if check(var, "module: no variable enable_security"):
        check(var.get("default") is True, f"module: enable_security defaults to {var.get('default')!r}, not true")
        check(var.get("type") in ("bool", "${bool}"), "module: enable_security is not a bool")
    r = module.resources
    ca = r.get(("tls_self_signed_cert", "kafka_ca"), {})
    check(ca.get("is_ca_certificate") is True, "module: no tls_self_signed_cert.kafka_ca CA")
    req = r.get(("tls_cert_request", "node"), {})
    check(req.get("for_each") == "${local.security_slots}", f"tls_cert_request.node: for_each is {req.get('for_each')!r}, not one per node slot")
    check(req.get("dns_names") == ["${aws_lb.bootstrap.dns_name}"], f"tls_cert_request.node: dns_names {req.get('dns_names')!r} do not name the bootstrap load balancer")
    check(req.get("ip_addresses") == ["${aws_network_interface.node[each.key].private_ip}"], f"tls_cert_request.node: ip_addresses {req.get('ip_addresses')!r} are not the slot's address")
    cert = r.get(("tls_locally_signed_cert", "node"), {})
    check("server_auth" in cert.get("allowed_uses", []) and "client_auth" in cert.get("allowed_uses", []), "tls_locally_signed_cert.node: not usable for serving and dialing peers")
    check(
        module.locals.get("security_slots") == "${var.enable_security ? local.node_slots : {}}",
        f"module: local.security_slots is {module.locals.get('security_slots')!r}",
    )
    for name in ("admin", "broker"):
        pw = r.get(("random_password", name), {})
        check(pw and int(pw.get("length", 0)) >= 24, f"random_password.{name}: missing or shorter than 24")
    # Where secrets go: SecureString parameters only, under /<name>/kafka.
    for (typ, name), body in r.items():
        if typ != "aws_ssm_parameter":
            continue
        if refs_secret(body.get("value")):
            check(body.get("type") == "SecureString", f"aws_ssm_parameter.{name} holds a secret as {body.get('type')!r}, not SecureString")
            check(body.get("key_id") == "${var.kms_key_arn}", f"aws_ssm_parameter.{name}: not under kms_key_arn when one is given")
    for name, want in [("admin_password", "random_password.admin"), ("broker_password", "random_password.broker"), ("node_key", "tls_private_key.node")]:
        body = r.get(("aws_ssm_parameter", name), {})
        check(want in str(body.get("value")) and body.get("type") == "SecureString", f"aws_ssm_parameter.{name} does not store {want} as a SecureString")
        check(str(body.get("name", "")).startswith("${local.kafka_ssm_prefix}/"), f"aws_ssm_parameter.{name}: name {body.get('name')!r} is not under local.kafka_ssm_prefix")
    check(module.locals.get("kafka_ssm_prefix") == "/${var.name}/kafka", f"module: local.kafka_ssm_prefix is {module.locals.get('kafka_ssm_prefix')!r}")
    # Outputs: a password or key only behind sensitive = true, in every directory.
    for path, d in dirs.items():
        for name, body in d.outputs.items():
            secret = refs_secret(body.get("value")) or (d is not module and "admin_password" in str(body.get("value")) and "ssm" not in name)
            if secret:
                check(body.get("sensitive") is True, f"{rel(root, path)}: output {name} carries a secret without sensitive = true")
    out = module.outputs
    check(out.get("admin_password", {}).get("sensitive") is True, "module: no sensitive output admin_password")
    check("tls_self_signed_cert.kafka_ca" in str(out.get("ca_certificate_pem", {}).get("value")), "module: no output ca_certificate_pem")
    check("aws_ssm_parameter.admin_password" in str(out.get("admin_password_ssm_parameter", {}).get("value")), "module: no output admin_password_ssm_parameter")
    # The nodes may read exactly this deployment's secrets.
    doc = module.data.get(("aws_iam_policy_document", "node"), {})
    granted = [st for st in blocks(doc, "statement") if "ssm:GetParameter" in st.get("actions", [])]
    check(
        granted and all(st.get("resources") == ["arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${statement.value}/*"] for st in granted),
        f"IAM: the nodes' ssm:GetParameter is not limited to local.kafka_ssm_prefix: {granted}",
    )
    node = module.resources.get(("aws_instance", "node"), {})
    deps = " ".join(node.get("depends_on", []))
    for p in ("kafka_ca", "node_cert", "node_key", "admin_password", "broker_password"):
        check(f"aws_ssm_parameter.{p}" in deps, f"aws_instance.node does not wait for aws_ssm_parameter.{p}")
    # TLS ends on the nodes: the load balancer passes TCP through.
    lst = module.resources.get(("aws_lb_listener", "kafka"), {})
    check(lst.get("protocol") == "TCP" and lst.get("port") == "${local.kafka_port}", f"aws_lb_listener.kafka: {lst.get('protocol')} on {lst.get('port')}, not TCP passthrough on the Kafka port")
    check(module.locals.get("internal_port") == INTERNAL_PORT, f"module: local.internal_port is {module.locals.get('internal_port')!r}")


# ---- main ---------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path, help="the terraform/ directory")
    ap.add_argument("--terraform", help="terraform binary: render the user-data templates with it")
    ap.add_argument("--serve-help", help="file holding `tierlog serve --help`: check the node's flags against it")
    args = ap.parse_args()
    root = args.root.resolve()

    dirs = load(root)
    if not dirs:
        print(f"no .tf files under {root}", file=sys.stderr)
        return 1
    modules = [d for d in dirs.values() if any(t == "aws_s3_bucket" for t, _ in d.resources)]
    if len(modules) != 1:
        print(f"expected one directory with the aws_s3_bucket, found {[str(d.path) for d in modules]}", file=sys.stderr)
        return 1
    module = modules[0]
    examples = [d for d in dirs.values() if d is not module]
    check(examples, "no example root configuration next to the module")
    for ex in examples:
        check((ex.path / "terraform.tfvars.example").is_file(), f"{rel(root, ex.path)}: no terraform.tfvars.example")

    check_versions(root, dirs)
    check_variables(root, dirs, module)
    bucket = check_bucket(root, module)
    if bucket:
        check_iam(root, dirs, module, bucket)
    check_security_groups(root, dirs, module)
    check_cluster(root, dirs, module, args.terraform)
    check_security(root, dirs, module)
    if args.terraform:
        check_templates(root, module, args.terraform, args.serve_help)

    files = sum(len(d.files) for d in dirs.values())
    if FAILURES:
        print(f"check_terraform: {len(FAILURES)} of {CHECKS} checks FAILED over {files} .tf files:", file=sys.stderr)
        for f in FAILURES:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print(f"check_terraform: {CHECKS} checks passed over {files} .tf files in {len(dirs)} directories")
    return 0


if __name__ == "__main__":
    sys.exit(main())
