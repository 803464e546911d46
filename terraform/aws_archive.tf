# The archive on AWS: every classified image and its result JSON, under
# var.archive_prefix, kept for retraining. Written only by predict, through an
# IAM role whose single permission is s3:PutObject on that prefix. There is no
# AWS key: predict's Google service account proves who it is with a
# Google-signed ID token, which AWS STS exchanges for short-lived credentials
# of that role (web identity federation, below).

locals {
  archive_bucket_name = var.archive_bucket_name != "" ? var.archive_bucket_name : "${var.name_prefix}-archive-${var.project}"
}

resource "aws_s3_bucket" "archive" {
  #checkov:skip=CKV_AWS_18:Use the account CloudTrail (S3 data events) for an access trail; a server-access-log bucket would itself need this exemption
  #checkov:skip=CKV_AWS_144:Archive copies are reproducible training data; cross-region replication is not worth doubling storage
  #checkov:skip=CKV2_AWS_62:Nothing consumes archive events; notifications would have no subscriber
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES-256) keeps the writer's policy to s3:PutObject alone; SSE-KMS would also need kms:GenerateDataKey
  bucket        = local.archive_bucket_name
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_public_access_block" "archive" {
  bucket = aws_s3_bucket.archive.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: the bucket owner owns every object, whoever wrote it.
resource "aws_s3_bucket_ownership_controls" "archive" {
  bucket = aws_s3_bucket.archive.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "archive" {
  bucket = aws_s3_bucket.archive.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id

  rule {
    id     = "archive-tiering"
    status = "Enabled"

    filter {
      prefix = var.archive_prefix
    }

    transition {
      days          = var.archive_infrequent_access_days
      storage_class = "STANDARD_IA"
    }

    noncurrent_version_expiration {
      noncurrent_days = var.archive_noncurrent_expiration_days
    }
  }

  # Retention (var.archive_retention_days): archive copies expire that many
  # days after they were written (then noncurrent, gone
  # archive_noncurrent_expiration_days later).
  dynamic "rule" {
    for_each = var.archive_retention_days > 0 ? [var.archive_retention_days] : []
    content {
      id     = "archive-retention"
      status = "Enabled"

      filter {
        prefix = var.archive_prefix
      }

      expiration {
        days = rule.value
      }
    }
  }

  # Whole bucket: clean up uploads that never completed.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.archive]
}

# Refuse plain-HTTP requests.
data "aws_iam_policy_document" "archive_tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.archive.arn,
      "${aws_s3_bucket.archive.arn}/*",
    ]

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
}

resource "aws_s3_bucket_policy" "archive" {
  bucket = aws_s3_bucket.archive.id
  policy = data.aws_iam_policy_document.archive_tls_only.json

  depends_on = [aws_s3_bucket_public_access_block.archive]
}

# ---- the archive writer: web identity federation from Google ----

locals {
  # The `aud` predict asks the metadata server to put in its ID token.
  archive_token_audience = "sts.amazonaws.com/${var.name_prefix}-archive-writer"
}

# Who may assume the role: tokens signed by accounts.google.com for predict's
# service account, minted for our audience. AWS maps Google's claims to these
# condition keys: for a service account's ID token (which carries azp, the
# account's numeric unique id), accounts.google.com:aud is the azp and
# accounts.google.com:oaud the token's own aud; :sub is the unique id too.
data "aws_iam_policy_document" "archive_writer_trust" {
  statement {
    sid     = "PredictServiceAccountOnly"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = ["accounts.google.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:aud"
      values   = [google_service_account.predict.unique_id]
    }

    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:oaud"
      values   = [local.archive_token_audience]
    }

    condition {
      test     = "StringEquals"
      variable = "accounts.google.com:sub"
      values   = [google_service_account.predict.unique_id]
    }
  }
}

resource "aws_iam_role" "archive_writer" {
  name                 = "${var.name_prefix}-archive-writer"
  description          = "Assumed by the bloodcell predict service account (Google) to put archive copies"
  assume_role_policy   = data.aws_iam_policy_document.archive_writer_trust.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "archive_put_only" {
  statement {
    sid       = "PutArchiveCopiesOnly"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.archive.arn}/${var.archive_prefix}*"]
  }
}

resource "aws_iam_role_policy" "archive_put_only" {
  name   = "${var.name_prefix}-archive-put-only"
  role   = aws_iam_role.archive_writer.id
  policy = data.aws_iam_policy_document.archive_put_only.json
}
