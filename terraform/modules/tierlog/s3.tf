# The bucket of tiered segments. tierlog writes each object once (create-only puts), records it
# in the segment manifest, and deletes it when topic retention says so: the bucket has no
# expiration rule of its own, because deleting an object the manifest still lists would turn a
# consumer's read into a storage error.

resource "aws_s3_bucket" "segments" {
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = merge(local.tags, { Name = local.bucket_name })
}

resource "aws_s3_bucket_ownership_controls" "segments" {
  bucket = aws_s3_bucket.segments.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "segments" {
  bucket                  = aws_s3_bucket.segments.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "segments" {
  bucket = aws_s3_bucket.segments.id

  rule {
    apply_server_side_encryption_by_default {
      # SSE-S3 by default; SSE-KMS with the given customer-managed key when kms_key_arn is set.
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # S3 Bucket Keys cut KMS requests (and cost) for SSE-KMS; ignored for SSE-S3.
    bucket_key_enabled = var.kms_key_arn != null
  }
}

# Optional: removing this resource later (bucket_versioning = false) suspends versioning.
resource "aws_s3_bucket_versioning" "segments" {
  count  = var.bucket_versioning ? 1 : 0
  bucket = aws_s3_bucket.segments.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "segments" {
  bucket = aws_s3_bucket.segments.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    # The whole bucket.
    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  dynamic "rule" {
    for_each = var.bucket_versioning ? [1] : []

    content {
      id     = "expire-noncurrent-versions"
      status = "Enabled"

      filter {}

      noncurrent_version_expiration {
        noncurrent_days = var.noncurrent_version_expiration_days
      }
    }
  }

  # Versioning must be configured before lifecycle rules about versions.
  depends_on = [aws_s3_bucket_versioning.segments]
}

# TLS only: any request over plain HTTP (or TLS older than 1.2) is denied, whoever makes it.
data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.segments.arn, "${aws_s3_bucket.segments.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOldTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.segments.arn, "${aws_s3_bucket.segments.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "segments" {
  bucket = aws_s3_bucket.segments.id
  policy = data.aws_iam_policy_document.bucket.json

  # A bucket policy is refused while public access settings are being applied.
  depends_on = [aws_s3_bucket_public_access_block.segments]
}
