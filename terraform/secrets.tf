# Secrets live in Secret Manager and reach the containers as secret-backed
# environment variables (services.tf), never as plain values in the service
# definition. Their values are also in the Terraform state: keep the state in
# a private, encrypted backend (README.md).

# The AWS key pair of the archive writer (aws_archive.tf), for predict.
resource "google_secret_manager_secret" "archive_access_key_id" {
  secret_id = "${var.name_prefix}-archive-aws-access-key-id"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "archive_access_key_id" {
  secret      = google_secret_manager_secret.archive_access_key_id.id
  secret_data = aws_iam_access_key.archive_writer.id
}

resource "google_secret_manager_secret" "archive_secret_access_key" {
  secret_id = "${var.name_prefix}-archive-aws-secret-access-key"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "archive_secret_access_key" {
  secret      = google_secret_manager_secret.archive_secret_access_key.id
  secret_data = aws_iam_access_key.archive_writer.secret
}

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
