variable "region" {
  description = "AWS region to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "name" {
  description = "Name of the deployment (see the module's variable of the same name)."
  type        = string
  default     = "tierlog"
}

variable "vpc_id" {
  description = "Existing VPC to deploy into."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets of that VPC in at least 3 availability zones, with outbound access to S3 and the release downloads."
  type        = list(string)
}

variable "kafka_allowed_cidrs" {
  description = "CIDRs of the Kafka clients (port 9092)."
  type        = list(string)
}

variable "admin_allowed_cidrs" {
  description = "CIDRs allowed to scrape /metrics and read /health on port 9644."
  type        = list(string)
  default     = []
}

variable "tierlog_binary_url" {
  description = "HTTPS URL of the tierlog build the nodes install (no official release exists yet)."
  type        = string
}

variable "tierlog_binary_sha256" {
  description = "SHA-256 of the file at tierlog_binary_url."
  type        = string
}

variable "metadata_backend" {
  description = "etcd (cluster mode: replicated, one shared object-store prefix) or embedded (a single node; node_count must be 1)."
  type        = string
  default     = "etcd"
}

variable "node_count" {
  description = "Number of ingest nodes."
  type        = number
  default     = 3
}

variable "node_instance_type" {
  description = "Instance type of the ingest nodes."
  type        = string
  default     = "m7i.large"
}

variable "etcd_instance_type" {
  description = "Instance type of the etcd members."
  type        = string
  default     = "m7i.large"
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}
