# Three etcd members, one per availability zone. A member's identity is its network interface
# (a fixed private address, written into every node's --metadata URL and into the initial
# cluster) and its data volume; both outlive the instance, so replacing a member's instance (new
# AMI, new user data, a failed host) brings the same member back with its data.

resource "aws_network_interface" "etcd" {
  for_each        = local.etcd_members
  subnet_id       = each.value.subnet_id
  security_groups = [aws_security_group.etcd.id]
  description     = "tierlog ${var.name} ${each.key}"
  tags            = merge(local.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_ebs_volume" "etcd" {
  for_each          = local.etcd_members
  availability_zone = each.value.zone
  size              = var.etcd_data_volume_size_gb
  type              = "gp3"
  iops              = 3000
  throughput        = 125
  encrypted         = true
  kms_key_id        = var.kms_key_arn
  tags              = merge(local.tags, { Name = "${var.name}-${each.key}-data" })
}

resource "aws_instance" "etcd" {
  for_each             = local.etcd_members
  ami                  = local.ami_id
  instance_type        = var.etcd_instance_type
  iam_instance_profile = aws_iam_instance_profile.etcd.name

  network_interface {
    network_interface_id = aws_network_interface.etcd[each.key].id
    device_index         = 0
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 16
    encrypted   = true
    kms_key_id  = var.kms_key_arn
    # Tags here, not volume_tags: volume_tags would also claim the attached data volume's tags.
    tags = merge(local.tags, { Name = "${var.name}-${each.key}-root" })
  }

  user_data = templatefile("${path.module}/templates/etcd-user-data.sh.tftpl", {
    member_name       = each.key
    member_ip         = aws_network_interface.etcd[each.key].private_ip
    initial_cluster   = local.etcd_initial_cluster
    cluster_token     = "${var.name}-etcd"
    client_port       = local.etcd_client_port
    peer_port         = local.etcd_peer_port
    peer_tls          = var.etcd_peer_tls
    ssm_prefix        = "/${var.name}/etcd"
    region            = local.region
    etcd_version      = var.etcd_version
    download_base_url = var.etcd_download_base_url
    data_volume_id    = aws_ebs_volume.etcd[each.key].id
  })

  tags = merge(local.tags, { Name = "${var.name}-${each.key}", "tierlog:role" = "etcd" })

  lifecycle {
    # Replacing all three members at once would stop etcd: a new AMI or changed settings reach a
    # member only when it is replaced on purpose, one at a time (terraform apply -replace=...).
    ignore_changes = [ami, user_data]

    precondition {
      condition     = length(local.zones) >= 3
      error_message = "private_subnet_ids must cover at least 3 availability zones (etcd needs one member per zone); they cover ${length(local.zones)}."
    }
  }

  # The certificates must be in SSM before the member boots and reads them.
  depends_on = [aws_ssm_parameter.etcd_ca, aws_ssm_parameter.etcd_cert, aws_ssm_parameter.etcd_key]
}

resource "aws_volume_attachment" "etcd" {
  for_each    = local.etcd_members
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.etcd[each.key].id
  instance_id = aws_instance.etcd[each.key].id
  # Stop etcd's instance cleanly before the volume is pulled from under it.
  stop_instance_before_detaching = true
}

# ---- peer TLS (optional) ----------------------------------------------------------------------

resource "tls_private_key" "etcd_ca" {
  count       = var.etcd_peer_tls ? 1 : 0
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "etcd_ca" {
  count                 = var.etcd_peer_tls ? 1 : 0
  private_key_pem       = tls_private_key.etcd_ca[0].private_key_pem
  is_ca_certificate     = true
  validity_period_hours = 87600
  allowed_uses          = ["cert_signing", "crl_signing", "digital_signature"]

  subject {
    common_name  = "${var.name} etcd peer CA"
    organization = "tierlog"
  }
}

resource "tls_private_key" "etcd" {
  for_each    = var.etcd_peer_tls ? local.etcd_members : {}
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "etcd" {
  for_each        = var.etcd_peer_tls ? local.etcd_members : {}
  private_key_pem = tls_private_key.etcd[each.key].private_key_pem
  ip_addresses    = [aws_network_interface.etcd[each.key].private_ip]

  subject {
    common_name  = each.key
    organization = "tierlog"
  }
}

resource "tls_locally_signed_cert" "etcd" {
  for_each              = var.etcd_peer_tls ? local.etcd_members : {}
  cert_request_pem      = tls_cert_request.etcd[each.key].cert_request_pem
  ca_private_key_pem    = tls_private_key.etcd_ca[0].private_key_pem
  ca_cert_pem           = tls_self_signed_cert.etcd_ca[0].cert_pem
  validity_period_hours = 26280
  early_renewal_hours   = 720
  # Peer certificates are used both ways: serving (2380) and dialing other members.
  allowed_uses = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]
}

resource "aws_ssm_parameter" "etcd_ca" {
  count = var.etcd_peer_tls ? 1 : 0
  name  = "/${var.name}/etcd/ca.crt"
  type  = "String"
  value = tls_self_signed_cert.etcd_ca[0].cert_pem
  tags  = local.tags
}

resource "aws_ssm_parameter" "etcd_cert" {
  for_each = var.etcd_peer_tls ? local.etcd_members : {}
  name     = "/${var.name}/etcd/${each.key}/peer.crt"
  type     = "String"
  value    = tls_locally_signed_cert.etcd[each.key].cert_pem
  tags     = local.tags
}

resource "aws_ssm_parameter" "etcd_key" {
  for_each = var.etcd_peer_tls ? local.etcd_members : {}
  name     = "/${var.name}/etcd/${each.key}/peer.key"
  type     = "SecureString"
  key_id   = var.kms_key_arn
  value    = tls_private_key.etcd[each.key].private_key_pem
  tags     = local.tags
}
