# Google Cloud APIs the deployment uses. Left enabled on destroy: other things
# in the project may rely on them.
locals {
  services = toset([
    "artifactregistry.googleapis.com", # container images
    "cloudbuild.googleapis.com",       # `gcloud builds submit` (README.md)
    "cloudresourcemanager.googleapis.com",
    "eventarc.googleapis.com",      # triggers
    "iam.googleapis.com",           # service accounts, custom role
    "pubsub.googleapis.com",        # Eventarc's transport for Cloud Storage events
    "run.googleapis.com",           # the three services
    "secretmanager.googleapis.com", # AWS archive credentials, web app secret
    "storage.googleapis.com",       # buckets
  ])
}

resource "google_project_service" "apis" {
  for_each = local.services

  project            = var.project
  service            = each.value
  disable_on_destroy = false
}

data "google_project" "this" {
  project_id = var.project

  depends_on = [google_project_service.apis]
}
