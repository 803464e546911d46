# Cloud Build's identity for `gcloud builds submit` (README.md, step 2), made
# here rather than relying on the project's default build account, which in new
# projects may be the Compute Engine default account without the roles a build
# needs (or with far more). It may do exactly what cloudbuild.yaml does:
#   read the uploaded source   roles/storage.objectViewer on the staging bucket below
#   push the three images      roles/artifactregistry.writer on our repository only
#   write its build log        roles/logging.logWriter (project; logs have no finer scope)
# Whoever runs the build needs roles/iam.serviceAccountUser on this account
# (project Owners have it).

resource "google_service_account" "cloudbuild" {
  account_id   = "${var.name_prefix}-build"
  display_name = "bloodcell image builds (Cloud Build)"
  depends_on   = [google_project_service.apis]
}

# Where `gcloud builds submit --gcs-source-staging-dir` uploads the source
# tarball. Sources are only needed while a build runs: kept a week.
resource "google_storage_bucket" "build_sources" {
  #checkov:skip=CKV_GCP_62:Build sources are public code kept a week; Cloud Audit Logs cover access
  #checkov:skip=CKV_GCP_78:Each build uploads a new, uniquely named tarball; versions add nothing
  name                        = "${var.project}-${var.name_prefix}-build-sources"
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "cloudbuild_reads_sources" {
  bucket = google_storage_bucket.build_sources.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.cloudbuild.member
}

resource "google_artifact_registry_repository_iam_member" "cloudbuild_pushes_images" {
  project    = google_artifact_registry_repository.images.project
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.cloudbuild.member
}

resource "google_project_iam_member" "cloudbuild_writes_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = google_service_account.cloudbuild.member
}
