# The nodes' own service account, least privilege:
#   roles/container.defaultNodeServiceAccount   logs, metrics and metadata a node reports (Google's minimal node role)
#   roles/artifactregistry.reader               on our repository only: pull the four images
# Workloads never use it (Workload Identity, GKE_METADATA).

resource "google_service_account" "nodes" {
  account_id   = "${var.name_prefix}-gke-nodes"
  display_name = "bloodcell GKE nodes"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "nodes_default_role" {
  project = var.project
  role    = "roles/container.defaultNodeServiceAccount"
  member  = google_service_account.nodes.member
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull_images" {
  project    = google_artifact_registry_repository.images.project
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.nodes.member
}
