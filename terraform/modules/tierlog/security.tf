# Kafka listener security (enable_security, on by default): a CA and one certificate per node
# slot from the tls provider, two generated passwords, all stored in SSM under /<name>/kafka
# where each node's user data reads them at boot (the keys and passwords as SecureStrings).
#
#   <client port 9092>    CLIENT listener, SASL_SSL: clients, through the bootstrap load
#                         balancer (TCP passthrough, so TLS ends on the node) and then directly
#   <internal port 9093>  INTERNAL listener, SASL_SSL: replication between nodes only
#
# A node certificate names the load balancer's DNS name (what clients bootstrap from) and the
# slot's private address (what the node advertises on both listeners). The private keys and
# passwords are also in the Terraform state: keep it encrypted (see examples/cluster).

locals {
  kafka_ssm_prefix = "/${var.name}/kafka"
  broker_username  = "broker"
  security_slots   = var.enable_security ? local.node_slots : {}
}

resource "tls_private_key" "kafka_ca" {
  count       = var.enable_security ? 1 : 0
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "kafka_ca" {
  count                 = var.enable_security ? 1 : 0
  private_key_pem       = tls_private_key.kafka_ca[0].private_key_pem
  is_ca_certificate     = true
  validity_period_hours = 87600
  allowed_uses          = ["cert_signing", "crl_signing", "digital_signature"]

  subject {
    common_name  = "${var.name} Kafka CA"
    organization = "tierlog"
  }
}

resource "tls_private_key" "node" {
  for_each    = local.security_slots
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "node" {
  for_each        = local.security_slots
  private_key_pem = tls_private_key.node[each.key].private_key_pem
  dns_names       = [aws_lb.bootstrap.dns_name]
  ip_addresses    = [aws_network_interface.node[each.key].private_ip]

  subject {
    common_name  = "${var.name}-${each.key}"
    organization = "tierlog"
  }
}

resource "tls_locally_signed_cert" "node" {
  for_each              = local.security_slots
  cert_request_pem      = tls_cert_request.node[each.key].cert_request_pem
  ca_private_key_pem    = tls_private_key.kafka_ca[0].private_key_pem
  ca_cert_pem           = tls_self_signed_cert.kafka_ca[0].cert_pem
  validity_period_hours = 26280
  early_renewal_hours   = 720
  # Served to clients and peers (server_auth) and presented when dialing peers (client_auth).
  allowed_uses = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]
}

# Letters and digits only: nothing a shell, a properties file or a JAAS line must quote.
resource "random_password" "admin" {
  count   = var.enable_security ? 1 : 0
  length  = 32
  special = false
}

resource "random_password" "broker" {
  count   = var.enable_security ? 1 : 0
  length  = 32
  special = false
}

resource "aws_ssm_parameter" "kafka_ca" {
  count = var.enable_security ? 1 : 0
  name  = "${local.kafka_ssm_prefix}/ca.crt"
  type  = "String"
  value = tls_self_signed_cert.kafka_ca[0].cert_pem
  tags  = local.tags
}

resource "aws_ssm_parameter" "node_cert" {
  for_each = local.security_slots
  name     = "${local.kafka_ssm_prefix}/${each.key}/node.crt"
  type     = "String"
  value    = tls_locally_signed_cert.node[each.key].cert_pem
  tags     = local.tags
}

resource "aws_ssm_parameter" "node_key" {
  for_each = local.security_slots
  name     = "${local.kafka_ssm_prefix}/${each.key}/node.key"
  type     = "SecureString"
  key_id   = var.kms_key_arn
  value    = tls_private_key.node[each.key].private_key_pem_pkcs8
  tags     = local.tags
}

resource "aws_ssm_parameter" "admin_password" {
  count  = var.enable_security ? 1 : 0
  name   = "${local.kafka_ssm_prefix}/admin-password"
  type   = "SecureString"
  key_id = var.kms_key_arn
  value  = random_password.admin[0].result
  tags   = local.tags
}

resource "aws_ssm_parameter" "broker_password" {
  count  = var.enable_security ? 1 : 0
  name   = "${local.kafka_ssm_prefix}/broker-password"
  type   = "SecureString"
  key_id = var.kms_key_arn
  value  = random_password.broker[0].result
  tags   = local.tags
}
