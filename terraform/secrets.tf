# Secrets live in Secret Manager and reach the containers as secret-backed
# environment variables (services.tf), never as plain values in the service
# definition. The one left, the web app's storage secret, is also in the
# Terraform state: keep the state in a private, encrypted backend (README.md).
# (The AWS archive needs no secret: predict reaches it by web identity
# federation, aws_archive.tf.)

# Signs the web app's browser storage (STORAGE_SECRET).
resource "random_password" "webapp_storage_secret" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret" "webapp_storage_secret" {
  secret_id = "${var.name_prefix}-webapp-storage-secret"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "webapp_storage_secret" {
  secret      = google_secret_manager_secret.webapp_storage_secret.id
  secret_data = random_password.webapp_storage_secret.result
}
