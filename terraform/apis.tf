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

# Service agents, ensured before anything grants to them or relies on them.
# A project gets its Pub/Sub and Eventarc agents only some time after the API
# is enabled; google_project_service_identity creates them now and returns
# their addresses, so nothing below depends on a hard-coded email or on a
# second apply. The Cloud Storage agent comes from
# data.google_storage_project_service_account (triggers.tf), which does the same.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project    = var.project
  service    = "pubsub.googleapis.com"
  depends_on = [google_project_service.apis]
}

resource "google_project_service_identity" "eventarc" {
  provider = google-beta

  project    = var.project
  service    = "eventarc.googleapis.com"
  depends_on = [google_project_service.apis]
}

# Eventarc's agent needs its own role to create the triggers' Pub/Sub
# subscriptions; granted explicitly because a freshly created agent may not
# have it yet.
resource "google_project_iam_member" "eventarc_agent" {
  #checkov:skip=CKV_GCP_49:Google's own service agent role for the Eventarc agent, the grant Eventarc documents; no user or workload account gets it
  project = var.project
  role    = "roles/eventarc.serviceAgent"
  member  = google_project_service_identity.eventarc.member
}
