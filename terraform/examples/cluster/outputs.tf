output "bootstrap_address" {
  description = "bootstrap.servers for Kafka clients inside the VPC."
  value       = module.tierlog.bootstrap_address
}

output "bucket_name" {
  description = "S3 bucket of tiered segments."
  value       = module.tierlog.bucket_name
}

output "etcd_endpoints" {
  description = "Client endpoints of the etcd members."
  value       = module.tierlog.etcd_endpoints
}

output "metadata_url" {
  description = "The nodes' --metadata URL."
  value       = module.tierlog.metadata_url
}

output "nodes" {
  description = "Node id, instance id and advertised address of each node slot."
  value       = module.tierlog.nodes
}

output "ca_certificate_pem" {
  description = "CA certificate clients trust (ssl.ca.location, or ssl.truststore.type=PEM)."
  value       = module.tierlog.ca_certificate_pem
}

output "admin_username" {
  description = "SCRAM user with every permission."
  value       = module.tierlog.admin_username
}

output "admin_password" {
  description = "The administrator's password: terraform output -raw admin_password."
  value       = module.tierlog.admin_password
  sensitive   = true
}

output "admin_password_ssm_parameter" {
  description = "SSM SecureString holding the administrator's password."
  value       = module.tierlog.admin_password_ssm_parameter
}
