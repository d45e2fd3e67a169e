output "bootstrap_address" {
  description = "bootstrap.servers for Kafka clients: the load balancer's DNS name and the Kafka port (SASL_SSL with enable_security: see ca_certificate_pem and admin_password)."
  value       = "${aws_lb.bootstrap.dns_name}:${local.kafka_port}"
}

output "bucket_name" {
  description = "Name of the S3 bucket holding tiered segments."
  value       = aws_s3_bucket.segments.bucket
}

output "bucket_arn" {
  description = "ARN of the S3 bucket holding tiered segments."
  value       = aws_s3_bucket.segments.arn
}

output "object_store_url" {
  description = "The nodes' --object-store URL, shared by every node with metadata_backend = etcd (with embedded, the one node appends /nodes/<node id>)."
  value       = local.object_store_url
}

output "etcd_endpoints" {
  description = "host:port of the 3 etcd members' client endpoints (private addresses)."
  value       = local.etcd_endpoints
}

output "metadata_url" {
  description = "The nodes' --metadata URL when metadata_backend = etcd."
  value       = local.metadata_url
}

output "nodes" {
  description = "The ingest nodes by slot: node id, instance id, and the address it advertises to clients (host:port). Replace one with terraform apply -replace='module.<name>.aws_instance.node[\"<slot>\"]'."
  value = {
    for k, slot in local.node_slots : k => {
      node_id     = slot.index
      instance_id = aws_instance.node[k].id
      address     = "${aws_network_interface.node[k].private_ip}:${local.kafka_port}"
    }
  }
}

output "node_role_arn" {
  description = "ARN of the ingest nodes' IAM role (for extra grants, e.g. a KMS key policy)."
  value       = aws_iam_role.node.arn
}

output "node_security_group_id" {
  description = "Security group of the ingest nodes (reference it to let more clients in)."
  value       = aws_security_group.node.id
}

output "etcd_security_group_id" {
  description = "Security group of the etcd members."
  value       = aws_security_group.etcd.id
}

output "security_enabled" {
  description = "Whether the Kafka listeners require SASL_SSL and enforce ACLs (enable_security)."
  value       = var.enable_security
}

output "ca_certificate_pem" {
  description = "The CA that signed the nodes' certificates: clients trust it (ssl.ca.location / ssl.truststore). Null without enable_security."
  value       = var.enable_security ? tls_self_signed_cert.kafka_ca[0].cert_pem : null
}

output "admin_username" {
  description = "The SCRAM user with every permission (a super user). Null without enable_security."
  value       = var.enable_security ? var.admin_username : null
}

output "admin_password_ssm_parameter" {
  description = "Name of the SSM SecureString holding the administrator's password (aws ssm get-parameter --with-decryption --name ...). Null without enable_security."
  value       = var.enable_security ? aws_ssm_parameter.admin_password[0].name : null
}

output "admin_password" {
  description = "The administrator's generated password (terraform output -raw admin_password). Null without enable_security."
  value       = var.enable_security ? random_password.admin[0].result : null
  sensitive   = true
}
