terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # Keep the state remote and encrypted: it holds the etcd peer private keys. For example:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "tierlog/prod.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}
