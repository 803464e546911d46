output "cluster_name" {
  description = "Name of the GKE cluster (gcloud container clusters get-credentials NAME --zone ZONE)."
  value       = google_container_cluster.this.name
}

output "cluster_location" {
  description = "Zone of the GKE cluster."
  value       = google_container_cluster.this.location
}

output "image_repository" {
  description = "Artifact Registry path to push the four images to: <this>/<image>:<tag>."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
}

output "node_service_account" {
  description = "Email of the nodes' service account."
  value       = google_service_account.nodes.email
}
