terraform {
  # Optional object attributes, `nullable`, `precondition` and `terraform_data` are all in 1.5.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
    # Generates the etcd peer CA and member certificates when `etcd_peer_tls` is on, and the
    # Kafka listeners' CA and node certificates when `enable_security` is on.
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
    # The administrator's and the inter-broker user's passwords (`enable_security`).
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}
