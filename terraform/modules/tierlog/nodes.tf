# Ingest nodes: one launch template, one auto-scaling group over every private subnet (so over
# at least 3 zones), registered with the bootstrap load balancer.

locals {
  object_store_url = "s3://${aws_s3_bucket.segments.bucket}/${local.object_prefix}"
}

resource "aws_launch_template" "node" {
  name_prefix            = "${var.name}-node-"
  description            = "tierlog ${var.name} ingest node"
  image_id               = local.ami_id
  instance_type          = var.node_instance_type
  vpc_security_group_ids = [aws_security_group.node.id]
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.node.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_type           = "gp3"
      volume_size           = 16
      encrypted             = true
      kms_key_id            = var.kms_key_arn
      delete_on_termination = true
    }
  }

  # The hot tier: a gp3 volume per node (unless the instance's own NVMe disk is used).
  dynamic "block_device_mappings" {
    for_each = var.node_data_volume_type == "ebs" ? [1] : []

    content {
      device_name = "/dev/sdf"

      ebs {
        volume_type           = "gp3"
        volume_size           = var.node_data_volume_size_gb
        iops                  = var.node_data_volume_iops
        throughput            = var.node_data_volume_throughput
        encrypted             = true
        kms_key_id            = var.kms_key_arn
        delete_on_termination = true
      }
    }
  }

  user_data = base64encode(templatefile("${path.module}/templates/node-user-data.sh.tftpl", {
    name               = var.name
    region             = local.region
    binary_url         = var.tierlog_binary_url
    binary_sha256      = var.tierlog_binary_sha256
    data_volume_type   = var.node_data_volume_type
    metadata_backend   = var.metadata_backend
    metadata_url       = local.metadata_url
    object_store_url   = local.object_store_url
    kafka_port         = local.kafka_port
    admin_port         = local.admin_port
    cache_memory_bytes = var.cache_memory_bytes
    cache_disk_bytes   = var.cache_disk_bytes
    flush_mode         = var.flush_mode
    default_partitions = var.default_partitions
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-node", "tierlog:role" = "node" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${var.name}-node" })
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "node" {
  name                = "${var.name}-node"
  vpc_zone_identifier = var.private_subnet_ids
  min_size            = var.node_count
  max_size            = var.node_count
  desired_capacity    = var.node_count
  target_group_arns   = [aws_lb_target_group.kafka.arn]

  # A node that stops answering GET /health through the load balancer is replaced.
  health_check_type         = "ELB"
  health_check_grace_period = 600
  wait_for_capacity_timeout = "15m"

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  # No automatic instance refresh: until replication exists, replacing a node drops its
  # un-tiered tail, so nodes are rolled deliberately (see the README).

  dynamic "tag" {
    for_each = merge(local.tags, { Name = "${var.name}-node" })

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.zones) >= 3
      error_message = "private_subnet_ids must cover at least 3 availability zones; they cover ${length(local.zones)}."
    }
    precondition {
      condition     = var.metadata_backend == "etcd" || var.node_count == 1
      error_message = "metadata_backend = embedded runs independent one-node clusters: set node_count = 1 (or use etcd once cluster mode has landed)."
    }
    precondition {
      condition     = alltrue([for s in data.aws_subnet.private : s.vpc_id == var.vpc_id])
      error_message = "Every subnet in private_subnet_ids must belong to vpc_id."
    }
  }

  # etcd is up (or at least launched) before the first node asks for it.
  depends_on = [aws_instance.etcd, aws_iam_role_policy.node]
}
