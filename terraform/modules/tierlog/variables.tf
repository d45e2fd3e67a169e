# ---- naming, placement ------------------------------------------------------------------------

variable "name" {
  description = "Name of this deployment: prefixes every resource name, the etcd key prefix and (by default) the bucket name. Lower case letters, digits and dashes, 3-20 characters, starting with a letter."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3-20 characters of a-z, 0-9 and '-', start with a letter and not end with '-'."
  }
}

variable "vpc_id" {
  description = "ID of the existing VPC to deploy into (the module creates no VPC, subnets, NAT or routes)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets of the VPC, in at least 3 different availability zones. Ingest nodes spread over all of them; one etcd member goes into each of the first 3 zones (sorted by name). They need outbound access (NAT or VPC endpoints) to S3 and to download the tierlog and etcd releases."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 3 && length(distinct(var.private_subnet_ids)) == length(var.private_subnet_ids)
    error_message = "private_subnet_ids needs at least 3 distinct subnets (in at least 3 availability zones; checked again at plan time)."
  }

  validation {
    condition     = alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "Every entry of private_subnet_ids must look like subnet-0123456789abcdef0."
  }
}

variable "nlb_subnet_ids" {
  description = "Subnets of the bootstrap network load balancer. Empty (the default) means the private subnets. Give public subnets only together with nlb_internal = false."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.nlb_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "Every entry of nlb_subnet_ids must look like subnet-0123456789abcdef0."
  }
}

variable "nlb_internal" {
  description = "Whether the bootstrap load balancer is internal (reachable only inside the VPC and peered networks). Clients connect to every node's private address after bootstrap anyway, so an internet-facing NLB alone does not make the cluster usable from outside."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource the module creates (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.tags : !startswith(lower(k), "aws:") && length(k) <= 128 && length(v) <= 256])
    error_message = "Tag keys must not start with 'aws:', keys are at most 128 and values at most 256 characters."
  }
}

# ---- access -----------------------------------------------------------------------------------

variable "kafka_allowed_cidrs" {
  description = "IPv4/IPv6 CIDRs allowed to reach the Kafka port (9092) on the load balancer and on every node. tierlog has no TLS or SASL yet, so the whole internet is refused."
  type        = list(string)

  validation {
    condition     = length(var.kafka_allowed_cidrs) > 0 && alltrue([for c in var.kafka_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "kafka_allowed_cidrs must be a non-empty list of valid CIDR blocks."
  }

  validation {
    condition     = !contains(var.kafka_allowed_cidrs, "0.0.0.0/0") && !contains(var.kafka_allowed_cidrs, "::/0")
    error_message = "kafka_allowed_cidrs must not contain 0.0.0.0/0 or ::/0: tierlog has no TLS or SASL yet."
  }
}

variable "admin_allowed_cidrs" {
  description = "IPv4/IPv6 CIDRs allowed to reach the admin HTTP port (9644: /health, /metrics) on every node, e.g. the Prometheus subnet. The load balancer's health checks are always allowed. Never the whole internet."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "Every entry of admin_allowed_cidrs must be a valid CIDR block."
  }

  validation {
    condition     = !contains(var.admin_allowed_cidrs, "0.0.0.0/0") && !contains(var.admin_allowed_cidrs, "::/0")
    error_message = "admin_allowed_cidrs must not contain 0.0.0.0/0 or ::/0: the admin port is not for the internet."
  }
}

variable "enable_ssm_session_manager" {
  description = "Attach AmazonSSMManagedInstanceCore to the node and etcd roles so operators get a shell through SSM Session Manager (no SSH port is ever opened)."
  type        = bool
  default     = true
}

# ---- the tierlog binary -----------------------------------------------------------------------

variable "tierlog_binary_url" {
  description = "HTTPS URL of the tierlog release artifact the nodes download at boot: either the bare `tierlog` executable or a .tar.gz containing it, built for `architecture`. Required: no official release exists yet, so build one (`cargo build --release --features etcd --bin tierlog`) and host it, e.g. in a private S3 bucket behind a presigned URL."
  type        = string

  validation {
    condition     = can(regex("^https://[^\\s]+$", var.tierlog_binary_url))
    error_message = "tierlog_binary_url must be an https:// URL."
  }
}

variable "tierlog_binary_sha256" {
  description = "SHA-256 (64 lower-case hex digits) of the file at tierlog_binary_url; boot fails if the download does not match."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.tierlog_binary_sha256))
    error_message = "tierlog_binary_sha256 must be 64 lower-case hex digits (sha256sum output)."
  }
}

variable "architecture" {
  description = "CPU architecture of every instance: x86_64 or arm64. Pick instance types and a tierlog build to match."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "ami_id" {
  description = "AMI for nodes and etcd members. Null (the default) means the latest Amazon Linux 2023 for `architecture`, read from SSM at plan time; pin an ID to stop plans from replacing instances when a new AMI is published. The user data assumes Amazon Linux 2023 (dnf, systemd, curl, the aws CLI, /dev/sdX symlinks for NVMe EBS)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be null or look like ami-0123456789abcdef0."
  }
}

# ---- ingest nodes -----------------------------------------------------------------------------

variable "metadata_backend" {
  description = "Where nodes keep cluster metadata. `etcd` (the default, cluster mode): every node runs with --metadata etcd://<the 3 members>/<name>, all nodes share the one object-store prefix s3://<bucket>/<prefix>, and partitions are replicated. `embedded`: one node keeping its metadata on its own data volume under its own prefix s3://<bucket>/<prefix>/nodes/<node id>; node_count must then be 1."
  type        = string
  default     = "etcd"

  validation {
    condition     = contains(["etcd", "embedded"], var.metadata_backend)
    error_message = "metadata_backend must be etcd or embedded."
  }
}

variable "node_count" {
  description = "Number of ingest nodes, one fixed slot each (node ids 0 to node_count - 1, spread round-robin over the zones). Use 3 or more for a cluster spread over 3 zones; must be 1 with metadata_backend = embedded. Lowering it destroys the highest slots with their disks: their partitions stay under-replicated (no reassignment yet)."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= 1 && var.node_count <= 100 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 1 to 100."
  }
}

variable "node_instance_type" {
  description = "EC2 instance type of the ingest nodes. Pick an *d type (e.g. m7gd, i4i) for node_data_volume_type = instance-store."
  type        = string
  default     = "m7i.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.node_instance_type))
    error_message = "node_instance_type must be an EC2 instance type such as m7i.large."
  }
}

variable "node_data_volume_type" {
  description = "Hot-tier disk of each node. `ebs`: a gp3 volume per node slot that outlives the instance, so a replaced instance keeps the node's log. `instance-store`: the instance's first local NVMe disk (needs an instance type that has one). Its contents are lost on stop or replacement; the node then comes back under the same id with an empty disk and re-replicates everything from the other replicas, which is safe only while they are in sync (replication, metadata_backend = etcd)."
  type        = string
  default     = "ebs"

  validation {
    condition     = contains(["ebs", "instance-store"], var.node_data_volume_type)
    error_message = "node_data_volume_type must be ebs or instance-store."
  }
}

variable "node_data_volume_size_gb" {
  description = "Size in GiB of each node's gp3 hot-tier volume (node_data_volume_type = ebs). Sized for the un-tiered tail plus the read cache's disk tier."
  type        = number
  default     = 200

  validation {
    condition     = var.node_data_volume_size_gb >= 20 && var.node_data_volume_size_gb <= 16384
    error_message = "node_data_volume_size_gb must be between 20 and 16384."
  }
}

variable "node_data_volume_iops" {
  description = "Provisioned IOPS of each node's gp3 hot-tier volume."
  type        = number
  default     = 3000

  validation {
    condition     = var.node_data_volume_iops >= 3000 && var.node_data_volume_iops <= 16000
    error_message = "node_data_volume_iops must be between 3000 and 16000 (gp3)."
  }
}

variable "node_data_volume_throughput" {
  description = "Provisioned throughput in MiB/s of each node's gp3 hot-tier volume."
  type        = number
  default     = 250

  validation {
    condition     = var.node_data_volume_throughput >= 125 && var.node_data_volume_throughput <= 1000
    error_message = "node_data_volume_throughput must be between 125 and 1000 (gp3)."
  }
}

variable "flush_mode" {
  description = "tierlog --flush-mode: `interval` (fsync in the background, Kafka's default stance) or `always` (fsync before acknowledging)."
  type        = string
  default     = "interval"

  validation {
    condition     = contains(["interval", "always"], var.flush_mode)
    error_message = "flush_mode must be interval or always."
  }
}

variable "default_partitions" {
  description = "tierlog --default-partitions: partition count of auto-created topics."
  type        = number
  default     = 3

  validation {
    condition     = var.default_partitions >= 1 && var.default_partitions <= 10000 && floor(var.default_partitions) == var.default_partitions
    error_message = "default_partitions must be a whole number from 1 to 10000."
  }
}

variable "cache_memory_bytes" {
  description = "tierlog --cache-memory-bytes: memory tier of the tiered-read cache."
  type        = number
  default     = 268435456

  validation {
    condition     = var.cache_memory_bytes >= 0 && floor(var.cache_memory_bytes) == var.cache_memory_bytes
    error_message = "cache_memory_bytes must be a whole number >= 0."
  }
}

variable "cache_disk_bytes" {
  description = "tierlog --cache-disk-bytes: disk tier of the tiered-read cache, on the hot-tier volume (0 = memory only). Keep it well below the data volume size."
  type        = number
  default     = 21474836480

  validation {
    condition     = var.cache_disk_bytes >= 0 && floor(var.cache_disk_bytes) == var.cache_disk_bytes
    error_message = "cache_disk_bytes must be a whole number >= 0."
  }
}

# ---- replication (metadata_backend = etcd) ----------------------------------------------------

variable "default_replication_factor" {
  description = "tierlog --default-replication-factor: replicas of each partition of topics created without one (capped by the live nodes at creation). At most node_count (checked at plan time). Embedded mode always runs 1."
  type        = number
  default     = 3

  validation {
    condition     = var.default_replication_factor >= 1 && var.default_replication_factor <= 7 && floor(var.default_replication_factor) == var.default_replication_factor
    error_message = "default_replication_factor must be a whole number from 1 to 7."
  }
}

variable "min_insync_replicas" {
  description = "tierlog --min-insync-replicas: in-sync replicas (leader included) an acks=all produce needs, for topics that do not set min.insync.replicas. 2 with replication factor 3 means an acknowledged write is on two nodes in two zones, and one node may be down (a rolling replacement) without refusing writes. At most default_replication_factor (checked at plan time). Embedded mode always runs 1."
  type        = number
  default     = 2

  validation {
    condition     = var.min_insync_replicas >= 1 && var.min_insync_replicas <= 7 && floor(var.min_insync_replicas) == var.min_insync_replicas
    error_message = "min_insync_replicas must be a whole number from 1 to 7."
  }
}

variable "lease_ttl_seconds" {
  description = "tierlog --lease-ttl, in whole seconds (etcd leases count in seconds): a node that stops renewing its liveness lease for this long loses its leaderships. It bounds the failover time after a crash; lower means faster failover but more spurious failovers on a slow network or a paused process."
  type        = number
  default     = 3

  validation {
    condition     = var.lease_ttl_seconds >= 1 && var.lease_ttl_seconds <= 60 && floor(var.lease_ttl_seconds) == var.lease_ttl_seconds
    error_message = "lease_ttl_seconds must be a whole number from 1 to 60."
  }
}

variable "replica_lag_time_max_seconds" {
  description = "tierlog --replica-lag-time-max, in whole seconds: a follower that has not caught up with its leader for this long leaves the ISR (so it no longer holds back acks=all writes)."
  type        = number
  default     = 10

  validation {
    condition     = var.replica_lag_time_max_seconds >= 1 && var.replica_lag_time_max_seconds <= 600 && floor(var.replica_lag_time_max_seconds) == var.replica_lag_time_max_seconds
    error_message = "replica_lag_time_max_seconds must be a whole number from 1 to 600."
  }
}

# ---- etcd -------------------------------------------------------------------------------------

variable "etcd_instance_type" {
  description = "EC2 instance type of the 3 etcd members (etcd wants steady CPU and low-latency disk; burstable types are not recommended)."
  type        = string
  default     = "m7i.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.etcd_instance_type))
    error_message = "etcd_instance_type must be an EC2 instance type such as m7i.large."
  }
}

variable "etcd_version" {
  description = "etcd release installed on the members, downloaded from etcd_download_base_url and checked against that release's SHA256SUMS."
  type        = string
  default     = "3.5.17"

  validation {
    condition     = can(regex("^3\\.[4-9]\\.[0-9]+$", var.etcd_version))
    error_message = "etcd_version must be a 3.x release such as 3.5.17 (3.4 or newer)."
  }
}

variable "etcd_download_base_url" {
  description = "Base URL of etcd releases; the members fetch <base>/v<version>/etcd-v<version>-linux-<amd64|arm64>.tar.gz and <base>/v<version>/SHA256SUMS. Point it at a mirror for VPCs without internet access."
  type        = string
  default     = "https://github.com/etcd-io/etcd/releases/download"

  validation {
    condition     = can(regex("^https://[^\\s]+[^/]$", var.etcd_download_base_url))
    error_message = "etcd_download_base_url must be an https:// URL without a trailing slash."
  }
}

variable "etcd_data_volume_size_gb" {
  description = "Size in GiB of each etcd member's own gp3 data volume (kept when the member's instance is replaced)."
  type        = number
  default     = 20

  validation {
    condition     = var.etcd_data_volume_size_gb >= 8 && var.etcd_data_volume_size_gb <= 1024
    error_message = "etcd_data_volume_size_gb must be between 8 and 1024."
  }
}

variable "enable_security" {
  description = "Secure the Kafka listeners (on by default): clients connect over SASL_SSL (SCRAM-SHA-512 or SCRAM-SHA-256) with certificates from a CA the tls provider generates, nodes replicate over their own SASL_SSL listener (port 9093, nodes only), and ACLs are enforced (allow.everyone.if.no.acl.found = false; the administrator and the inter-broker user are super users). The CA certificate, node certificates, keys and both generated passwords are SSM parameters under /<name>/kafka (keys and passwords SecureString) and are in the Terraform state: keep the state encrypted. false runs one PLAINTEXT listener that anyone inside kafka_allowed_cidrs can use without authentication."
  type        = bool
  default     = true
}

variable "admin_username" {
  description = "The SCRAM user created at the nodes' first start with a generated password (SSM SecureString /<name>/kafka/admin-password, output admin_password); a super user. Only with enable_security."
  type        = string
  default     = "admin"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,64}$", var.admin_username)) && var.admin_username != "broker"
    error_message = "admin_username must be 1-64 letters, digits, '.', '_' or '-', and not \"broker\" (the inter-broker user)."
  }
}

variable "etcd_peer_tls" {
  description = "Encrypt and mutually authenticate etcd member-to-member traffic (port 2380) with certificates generated by the tls provider (their private keys are stored in SSM SecureString parameters and in the Terraform state: keep the state encrypted). Client traffic (2379) stays plain TCP inside the etcd security group until tierlog's etcd client supports TLS."
  type        = bool
  default     = true
}

# ---- object storage ---------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the S3 bucket for tiered segments. Null (the default) means <name>-<account id>-<region>."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 characters of a-z, 0-9, '.' and '-')."
  }
}

variable "bucket_prefix" {
  description = "Key prefix under which tierlog writes (s3://<bucket>/<prefix>); the nodes' IAM policy covers only this prefix."
  type        = string
  default     = "tierlog"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*$", var.bucket_prefix))
    error_message = "bucket_prefix must be non-empty, without leading or trailing '/' and without empty segments."
  }
}

variable "kms_key_arn" {
  description = "ARN of a customer-managed KMS key for SSE-KMS on the bucket (and the etcd/node data volumes). Null (the default) means SSE-S3 (AES256) on the bucket and the account's default EBS key on volumes."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with every tiered segment in it. False by default: destroying a deployment keeps its data."
  type        = bool
  default     = false
}

variable "bucket_versioning" {
  description = "Enable S3 versioning on the bucket. tierlog never overwrites an object (create-only puts), so versioning only protects against deletes; deleted versions expire after noncurrent_version_expiration_days."
  type        = bool
  default     = false
}

variable "noncurrent_version_expiration_days" {
  description = "With bucket_versioning, days after which versions deleted by topic retention are removed for good."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && var.noncurrent_version_expiration_days <= 3650
    error_message = "noncurrent_version_expiration_days must be between 1 and 3650."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which the bucket lifecycle aborts multipart uploads a crashed node never completed (their parts are billed until then)."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && var.abort_incomplete_multipart_upload_days <= 30
    error_message = "abort_incomplete_multipart_upload_days must be between 1 and 30."
  }
}
