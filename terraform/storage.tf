# The pipeline's three Cloud Storage buckets, in one region (var.region) so the
# Eventarc triggers can live in the same region as their buckets.
#   uploads --(Eventarc)--> preprocess --> tensors --(Eventarc)--> predict --> results
# All three: uniform bucket-level access (IAM only, no object ACLs) and public
# access prevention enforced, so no object can ever be made public.

locals {
  bucket_location = upper(var.region)
  bucket_names = {
    uploads = "${var.project}-${var.name_prefix}-uploads"
    tensors = "${var.project}-${var.name_prefix}-tensors"
    results = "${var.project}-${var.name_prefix}-results"
    models  = "${var.project}-${var.name_prefix}-models"
  }
}

resource "google_storage_bucket" "uploads" {
  #checkov:skip=CKV_GCP_62:Use Cloud Audit Logs (Data Access, storage) for an access trail; a usage-log bucket would itself need this exemption
  name                        = local.bucket_names.uploads
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  # Re-uploading a name keeps the previous image for a while.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Retention (var.upload_retention_days): the object itself, that many days after it was written.
  dynamic "lifecycle_rule" {
    for_each = var.upload_retention_days > 0 ? [var.upload_retention_days] : []
    content {
      condition {
        age = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "tensors" {
  #checkov:skip=CKV_GCP_62:Use Cloud Audit Logs (Data Access, storage) for an access trail; a usage-log bucket would itself need this exemption
  #checkov:skip=CKV_GCP_78:Tensors are intermediate, rebuilt from uploads and deleted after a day; old versions have no value
  name                        = local.bucket_names.tensors
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  # Tensors are only predict's input: expire them once classified.
  lifecycle_rule {
    condition {
      age = var.tensor_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "results" {
  #checkov:skip=CKV_GCP_62:Use Cloud Audit Logs (Data Access, storage) for an access trail; a usage-log bucket would itself need this exemption
  name                        = local.bucket_names.results
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  # A result rewritten (pending archive -> stored) keeps its earlier version briefly.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Retention (var.result_retention_days): the object itself, that many days after it was written.
  dynamic "lifecycle_rule" {
    for_each = var.result_retention_days > 0 ? [var.result_retention_days] : []
    content {
      condition {
        age = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# The model registry (docs/calibration.md): the lab's calibrations, the pointer
# to the active one and the audit trail. Predict reads it on every event, so a
# calibration or a rollback is an object write, never an image rebuild. Nothing
# here ages out: the audit trail and every version a result names are kept.
resource "google_storage_bucket" "models" {
  #checkov:skip=CKV_GCP_62:Use Cloud Audit Logs (Data Access, storage) for an access trail; a usage-log bucket would itself need this exemption
  name                        = local.bucket_names.models
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  # The pointer (active.json) is rewritten on every activation: each earlier
  # pointer stays as a noncurrent version, a second record beside the audit trail.
  versioning {
    enabled = true
  }

  depends_on = [google_project_service.apis]
}
