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
