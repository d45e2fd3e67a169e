data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

data "aws_subnet" "private" {
  for_each = toset(var.private_subnet_ids)
  id       = each.value
}

data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == null ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
}

locals {
  kafka_port       = 9092
  internal_port    = 9093
  admin_port       = 9644
  etcd_client_port = 2379
  etcd_peer_port   = 2380

  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  ami_id = var.ami_id != null ? var.ami_id : data.aws_ssm_parameter.al2023[0].insecure_value

  tags = merge(var.tags, { "tierlog:deployment" = var.name })

  # Availability zone => subnet ids in it, over the private subnets.
  subnets_by_zone = { for s in data.aws_subnet.private : s.availability_zone => s.id... }
  zones           = sort(keys(local.subnets_by_zone))
  # One etcd member in each of the first three zones (first subnet of the zone, by id).
  etcd_members = {
    for i in range(3) : "etcd-${i}" => {
      index     = i
      zone      = local.zones[i]
      subnet_id = sort(local.subnets_by_zone[local.zones[i]])[0]
    } if i < length(local.zones)
  }

  bucket_name   = var.bucket_name != null ? var.bucket_name : "${var.name}-${local.account_id}-${local.region}"
  object_prefix = var.bucket_prefix

  etcd_scheme    = var.etcd_peer_tls ? "https" : "http"
  etcd_endpoints = [for k in sort(keys(local.etcd_members)) : "${aws_network_interface.etcd[k].private_ip}:${local.etcd_client_port}"]
  etcd_initial_cluster = join(",", [
    for k in sort(keys(local.etcd_members)) : "${k}=${local.etcd_scheme}://${aws_network_interface.etcd[k].private_ip}:${local.etcd_peer_port}"
  ])
  # tierlog's metadata URL: etcd://host:port,host:port,host:port/<name> (keys under /<name>).
  metadata_url = "etcd://${join(",", local.etcd_endpoints)}/${var.name}"
}
