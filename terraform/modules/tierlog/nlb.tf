# The bootstrap load balancer: clients give it as bootstrap.servers, receive every node's own
# advertised address in the Metadata response, and then talk to the nodes directly.

resource "aws_lb" "bootstrap" {
  name                             = "${var.name}-bootstrap"
  load_balancer_type               = "network"
  internal                         = var.nlb_internal
  subnets                          = length(var.nlb_subnet_ids) > 0 ? var.nlb_subnet_ids : var.private_subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  tags                             = merge(local.tags, { Name = "${var.name}-bootstrap" })
}

resource "aws_lb_target_group" "kafka" {
  name                 = "${var.name}-kafka"
  port                 = local.kafka_port
  protocol             = "TCP"
  target_type          = "instance"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    protocol            = "HTTP"
    port                = tostring(local.admin_port)
    path                = "/health"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 3
    unhealthy_threshold = 3
  }

  tags = local.tags
}

resource "aws_lb_listener" "kafka" {
  load_balancer_arn = aws_lb.bootstrap.arn
  port              = local.kafka_port
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.kafka.arn
  }

  tags = local.tags
}
