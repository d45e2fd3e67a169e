# A tierlog cluster in an existing VPC: copy terraform.tfvars.example to terraform.tfvars, fill
# it in, then `terraform init && terraform apply`.

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      "app"        = "tierlog"
      "managed-by" = "terraform"
    }
  }
}

module "tierlog" {
  source = "../../modules/tierlog"

  name               = var.name
  vpc_id             = var.vpc_id
  private_subnet_ids = var.private_subnet_ids

  kafka_allowed_cidrs = var.kafka_allowed_cidrs
  admin_allowed_cidrs = var.admin_allowed_cidrs

  tierlog_binary_url    = var.tierlog_binary_url
  tierlog_binary_sha256 = var.tierlog_binary_sha256

  metadata_backend   = var.metadata_backend
  node_count         = var.node_count
  node_instance_type = var.node_instance_type
  etcd_instance_type = var.etcd_instance_type

  tags = var.tags
}
