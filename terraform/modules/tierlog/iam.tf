# Instance roles. Every policy here is an aws_iam_policy_document naming only this deployment's
# bucket (objects only under its prefix), its KMS key when there is one, and its own SSM
# parameters. etcd discovery needs no AWS permission: the members sit on fixed network
# interfaces whose addresses are written into each node's configuration.

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# ---- ingest nodes -----------------------------------------------------------------------------

resource "aws_iam_role" "node" {
  name               = "${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = local.tags
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.name}-node"
  role = aws_iam_role.node.name
  tags = local.tags
}

data "aws_iam_policy_document" "node" {
  # Listing, only under the prefix.
  statement {
    sid       = "ListSegmentPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.segments.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.object_prefix, "${local.object_prefix}/*"]
    }
  }

  statement {
    sid       = "ListMultipartUploads"
    effect    = "Allow"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.segments.arn]
  }

  # Segment objects: read, create (single and multipart), delete by retention.
  statement {
    sid    = "SegmentObjects"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.segments.arn}/${local.object_prefix}/*"]
  }

  # enable_security: the CA, this deployment's node certificates and keys and the two
  # passwords, read at boot (parameters under /<name>/kafka only).
  dynamic "statement" {
    for_each = var.enable_security ? [local.kafka_ssm_prefix] : []

    content {
      sid     = "KafkaListenerSecrets"
      effect  = "Allow"
      actions = ["ssm:GetParameter"]
      resources = [
        "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${statement.value}/*",
      ]
    }
  }

  # The SecureStrings above, under the customer-managed key when there is one, through SSM.
  dynamic "statement" {
    for_each = var.enable_security && var.kms_key_arn != null ? [var.kms_key_arn] : []

    content {
      sid       = "KafkaSecretsDecrypt"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${local.region}.amazonaws.com"]
      }
    }
  }

  # SSE-KMS: only with a customer-managed key, and only through S3.
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "SegmentKmsKey"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "node" {
  name   = "${var.name}-node-segments"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_role_policy_attachment" "node_ssm" {
  count      = var.enable_ssm_session_manager ? 1 : 0
  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

# ---- etcd members -----------------------------------------------------------------------------

resource "aws_iam_role" "etcd" {
  name               = "${var.name}-etcd"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = local.tags
}

resource "aws_iam_instance_profile" "etcd" {
  name = "${var.name}-etcd"
  role = aws_iam_role.etcd.name
  tags = local.tags
}

# With peer TLS each member reads the CA and its own certificate and key from SSM at boot.
data "aws_iam_policy_document" "etcd" {
  count = var.etcd_peer_tls ? 1 : 0

  statement {
    sid     = "EtcdPeerCertificates"
    effect  = "Allow"
    actions = ["ssm:GetParameter"]
    resources = [
      "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${var.name}/etcd/*",
    ]
  }

  # The private keys are SecureStrings under the customer-managed key when there is one.
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "EtcdKeyDecrypt"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "etcd" {
  count  = var.etcd_peer_tls ? 1 : 0
  name   = "${var.name}-etcd-certificates"
  role   = aws_iam_role.etcd.id
  policy = data.aws_iam_policy_document.etcd[0].json
}

resource "aws_iam_role_policy_attachment" "etcd_ssm" {
  count      = var.enable_ssm_session_manager ? 1 : 0
  role       = aws_iam_role.etcd.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}
