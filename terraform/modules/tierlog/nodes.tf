# Ingest nodes: one fixed slot per node ("node-0" … "node-<node_count - 1>"), spread round-robin
# over the availability zones. Like an etcd member, a slot's identity outlives its instance:
# the slot index is the node id, its network interface fixes the private address the node
# advertises, and (node_data_volume_type = ebs) its own gp3 volume holds the node's log. A
# replaced instance (new AMI, new user data, a failed host) therefore comes back as the SAME
# node, with its disk, and rejoins as a follower that catches up from where it stopped. A new
# instance id with an empty disk would be a new node, and the partitions of the old id would
# stay under-replicated: tierlog does not reassign replicas yet.
#
# Each node runs with --rack <its slot's zone>, so the replicas of a new partition land in
# distinct zones first (once every node runs with a rack).

locals {
  # With etcd every node reads and writes the one shared prefix (the leader of a partition
  # uploads, any node reads); embedded mode appends /nodes/<node id> in the user data.
  object_store_url = "s3://${aws_s3_bucket.segments.bucket}/${local.object_prefix}"

  node_slots = {
    for i in range(var.node_count) : "node-${i}" => {
      index     = i
      zone      = local.zones[i % length(local.zones)]
      subnet_id = sort(local.subnets_by_zone[local.zones[i % length(local.zones)]])[0]
    }
  }
}

resource "aws_network_interface" "node" {
  for_each        = local.node_slots
  subnet_id       = each.value.subnet_id
  security_groups = [aws_security_group.node.id]
  description     = "tierlog ${var.name} ${each.key} (node id ${each.value.index})"
  tags            = merge(local.tags, { Name = "${var.name}-${each.key}" })
}

# The hot tier: a gp3 volume per slot that outlives the instance (unless the instance's own NVMe
# disk is used, which is lost with the instance).
resource "aws_ebs_volume" "node_data" {
  for_each          = var.node_data_volume_type == "ebs" ? local.node_slots : {}
  availability_zone = each.value.zone
  size              = var.node_data_volume_size_gb
  type              = "gp3"
  iops              = var.node_data_volume_iops
  throughput        = var.node_data_volume_throughput
  encrypted         = true
  kms_key_id        = var.kms_key_arn
  tags              = merge(local.tags, { Name = "${var.name}-${each.key}-data" })
}

resource "aws_instance" "node" {
  for_each             = local.node_slots
  ami                  = local.ami_id
  instance_type        = var.node_instance_type
  iam_instance_profile = aws_iam_instance_profile.node.name
  monitoring           = true

  network_interface {
    network_interface_id = aws_network_interface.node[each.key].id
    device_index         = 0
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  # A failed host is recovered by EC2 onto new hardware with the same instance, interface and
  # volumes (EBS-backed types; instance-store types cannot be recovered this way).
  maintenance_options {
    auto_recovery = "default"
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 16
    encrypted   = true
    kms_key_id  = var.kms_key_arn
    tags        = merge(local.tags, { Name = "${var.name}-${each.key}-root" })
  }

  user_data = templatefile("${path.module}/templates/node-user-data.sh.tftpl", {
    name                         = var.name
    region                       = local.region
    binary_url                   = var.tierlog_binary_url
    binary_sha256                = var.tierlog_binary_sha256
    node_id                      = each.value.index
    zone                         = each.value.zone
    data_volume_type             = var.node_data_volume_type
    data_volume_id               = try(aws_ebs_volume.node_data[each.key].id, "")
    metadata_backend             = var.metadata_backend
    metadata_url                 = local.metadata_url
    object_store_url             = local.object_store_url
    kafka_port                   = local.kafka_port
    admin_port                   = local.admin_port
    cache_memory_bytes           = var.cache_memory_bytes
    cache_disk_bytes             = var.cache_disk_bytes
    flush_mode                   = var.flush_mode
    default_partitions           = var.default_partitions
    lease_ttl_seconds            = var.lease_ttl_seconds
    replica_lag_time_max_seconds = var.replica_lag_time_max_seconds
    default_replication_factor   = var.default_replication_factor
    min_insync_replicas          = var.min_insync_replicas
    enable_security              = var.enable_security
    internal_port                = local.internal_port
    ssm_prefix                   = local.kafka_ssm_prefix
    admin_username               = var.admin_username
    broker_username              = local.broker_username
  })

  tags = merge(local.tags, { Name = "${var.name}-${each.key}", "tierlog:role" = "node", "tierlog:node-id" = tostring(each.value.index) })

  lifecycle {
    # Replacing every node at once would take every replica of every partition down: a new AMI
    # or changed settings reach a node only when it is replaced on purpose, one at a time
    # (terraform apply -replace=..., see the README).
    ignore_changes = [ami, user_data]

    precondition {
      condition     = length(local.zones) >= 3
      error_message = "private_subnet_ids must cover at least 3 availability zones; they cover ${length(local.zones)}."
    }
    precondition {
      condition     = var.metadata_backend == "etcd" || var.node_count == 1
      error_message = "metadata_backend = embedded runs independent one-node clusters: set node_count = 1, or use metadata_backend = etcd for a cluster."
    }
    precondition {
      condition     = var.metadata_backend == "embedded" || var.default_replication_factor <= var.node_count
      error_message = "default_replication_factor (${var.default_replication_factor}) must not exceed node_count (${var.node_count})."
    }
    precondition {
      condition     = var.metadata_backend == "embedded" || var.min_insync_replicas <= var.default_replication_factor
      error_message = "min_insync_replicas (${var.min_insync_replicas}) must not exceed default_replication_factor (${var.default_replication_factor}): every acks=all produce would fail."
    }
    precondition {
      condition     = alltrue([for s in data.aws_subnet.private : s.vpc_id == var.vpc_id])
      error_message = "Every subnet in private_subnet_ids must belong to vpc_id."
    }
  }

  # etcd is up (or at least launched) before the first node asks for it.
  # The certificates and passwords are in SSM before a node boots and reads them.
  depends_on = [
    aws_instance.etcd,
    aws_iam_role_policy.node,
    aws_ssm_parameter.kafka_ca,
    aws_ssm_parameter.node_cert,
    aws_ssm_parameter.node_key,
    aws_ssm_parameter.admin_password,
    aws_ssm_parameter.broker_password,
  ]
}

resource "aws_volume_attachment" "node_data" {
  for_each    = aws_ebs_volume.node_data
  device_name = "/dev/sdf"
  volume_id   = each.value.id
  instance_id = aws_instance.node[each.key].id
  # Stop the instance before the volume is pulled from under it: systemd sends tierlog SIGTERM,
  # which hands its leaderships over at once and flushes.
  stop_instance_before_detaching = true
}

resource "aws_lb_target_group_attachment" "node" {
  for_each         = aws_instance.node
  target_group_arn = aws_lb_target_group.kafka.arn
  target_id        = each.value.id
  port             = local.kafka_port
}
