# Three security groups: the bootstrap load balancer, the ingest nodes, the etcd members.
# Kafka (9092; SASL_SSL with enable_security) is open only to kafka_allowed_cidrs, the
# inter-broker listener (9093) only to the nodes; admin HTTP (9644) only to admin_allowed_cidrs
# and the load balancer's health checks; etcd (2379, 2380) only to the nodes and the members.
# No SSH anywhere: use SSM Session Manager.

resource "aws_security_group" "nlb" {
  name        = "${var.name}-nlb"
  description = "tierlog ${var.name}: bootstrap load balancer"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-nlb" })
}

resource "aws_security_group" "node" {
  name        = "${var.name}-node"
  description = "tierlog ${var.name}: ingest nodes"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-node" })
}

resource "aws_security_group" "etcd" {
  name        = "${var.name}-etcd"
  description = "tierlog ${var.name}: etcd members"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-etcd" })
}

# ---- load balancer ----------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "nlb_kafka" {
  for_each          = toset(var.kafka_allowed_cidrs)
  security_group_id = aws_security_group.nlb.id
  description       = "Kafka bootstrap from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = local.kafka_port
  to_port           = local.kafka_port
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_node_kafka" {
  security_group_id            = aws_security_group.nlb.id
  description                  = "Kafka to the nodes"
  ip_protocol                  = "tcp"
  from_port                    = local.kafka_port
  to_port                      = local.kafka_port
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_node_health" {
  security_group_id            = aws_security_group.nlb.id
  description                  = "Health checks (GET /health) to the nodes"
  ip_protocol                  = "tcp"
  from_port                    = local.admin_port
  to_port                      = local.admin_port
  referenced_security_group_id = aws_security_group.node.id
}

# ---- ingest nodes -----------------------------------------------------------------------------

# Clients bootstrap through the load balancer, then connect to each node's advertised address.
resource "aws_vpc_security_group_ingress_rule" "node_kafka_clients" {
  for_each          = toset(var.kafka_allowed_cidrs)
  security_group_id = aws_security_group.node.id
  description       = "Kafka clients from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = local.kafka_port
  to_port           = local.kafka_port
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "node_kafka_nlb" {
  security_group_id            = aws_security_group.node.id
  description                  = "Kafka through the bootstrap load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.kafka_port
  to_port                      = local.kafka_port
  referenced_security_group_id = aws_security_group.nlb.id
}

# Replication: followers fetch from leaders over the Kafka protocol.
resource "aws_vpc_security_group_ingress_rule" "node_kafka_peers" {
  security_group_id            = aws_security_group.node.id
  description                  = "Node-to-node replication"
  ip_protocol                  = "tcp"
  from_port                    = local.kafka_port
  to_port                      = local.kafka_port
  referenced_security_group_id = aws_security_group.node.id
}

# enable_security: replication runs over the INTERNAL listener (SASL_SSL), reachable from the
# nodes only.
resource "aws_vpc_security_group_ingress_rule" "node_internal_peers" {
  count                        = var.enable_security ? 1 : 0
  security_group_id            = aws_security_group.node.id
  description                  = "Node-to-node replication (INTERNAL listener, SASL_SSL)"
  ip_protocol                  = "tcp"
  from_port                    = local.internal_port
  to_port                      = local.internal_port
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_ingress_rule" "node_admin_nlb" {
  security_group_id            = aws_security_group.node.id
  description                  = "Load balancer health checks"
  ip_protocol                  = "tcp"
  from_port                    = local.admin_port
  to_port                      = local.admin_port
  referenced_security_group_id = aws_security_group.nlb.id
}

resource "aws_vpc_security_group_ingress_rule" "node_admin" {
  for_each          = toset(var.admin_allowed_cidrs)
  security_group_id = aws_security_group.node.id
  description       = "Admin HTTP (/health, /metrics) from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = local.admin_port
  to_port           = local.admin_port
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

# Outbound: S3, etcd, peers, and the release download at boot (through the VPC's NAT or
# endpoints). Left open on purpose: S3's addresses are not a small fixed set.
resource "aws_vpc_security_group_egress_rule" "node_all" {
  security_group_id = aws_security_group.node.id
  description       = "Outbound (S3, etcd, peers, release download)"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# ---- etcd members -----------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "etcd_client_nodes" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd clients: the ingest nodes"
  ip_protocol                  = "tcp"
  from_port                    = local.etcd_client_port
  to_port                      = local.etcd_client_port
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_ingress_rule" "etcd_client_members" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd clients: the members themselves (etcdctl health checks)"
  ip_protocol                  = "tcp"
  from_port                    = local.etcd_client_port
  to_port                      = local.etcd_client_port
  referenced_security_group_id = aws_security_group.etcd.id
}

resource "aws_vpc_security_group_ingress_rule" "etcd_peer" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd peer traffic between members"
  ip_protocol                  = "tcp"
  from_port                    = local.etcd_peer_port
  to_port                      = local.etcd_peer_port
  referenced_security_group_id = aws_security_group.etcd.id
}

resource "aws_vpc_security_group_egress_rule" "etcd_all" {
  security_group_id = aws_security_group.etcd.id
  description       = "Outbound (peers, etcd release download, SSM)"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}
