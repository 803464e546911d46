# Artifact Registry repository for the preprocess, predict and webapp images:
#   <region>-docker.pkg.dev/<project>/<name_prefix>/<image>:<tag>
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images hold public code and no data; Google-managed encryption is sufficient
  location      = var.region
  repository_id = var.name_prefix
  description   = "bloodcell container images (preprocess, predict, webapp)"
  format        = "DOCKER"

  # Keep the ten most recent versions of each image; delete untagged leftovers.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "604800s"
    }
  }

  depends_on = [google_project_service.apis]
}

locals {
  registry = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
  images = {
    preprocess = "${local.registry}/preprocess:${var.image_tag}"
    predict    = "${local.registry}/predict:${var.image_tag}"
    webapp     = "${local.registry}/webapp:${var.image_tag}"
  }
}
