# Secrets live in Secret Manager and reach the containers as secret-backed
# environment variables or mounted files (services.tf), never as plain values
# in the service definition. The web app's storage secret and its accounts'
# password hashes are also in the Terraform state: keep the state in a
# private, encrypted backend (README.md).
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

# The web app's sign-in accounts: `bloodcell user add` lines (name, roles and
# an argon2 hash; never a password), mounted as the file WEB_ACCOUNTS_FILE
# names (services.tf). Cloud Run is not loopback, so the app refuses to start
# without accounts unless IAP signs people in (var.webapp_iap).
variable "webapp_accounts" {
  description = "The web app's sign-in accounts, one line each from `bloodcell user add NAME [--role reviewer]` (argon2 hashes, no passwords), e.g. export TF_VAR_webapp_accounts=\"$(bloodcell user add admin --role reviewer)\". Required unless webapp_iap is true."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = var.webapp_iap || length(regexall("(?m)^[^#:\\s][^:]*:[a-z,]+:\\$argon2", var.webapp_accounts)) > 0
    error_message = "The web app needs a way to sign people in: set webapp_accounts to lines made by `bloodcell user add`, or webapp_iap = true."
  }
}

resource "google_secret_manager_secret" "webapp_accounts" {
  secret_id = "${var.name_prefix}-webapp-accounts"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "webapp_accounts" {
  secret = google_secret_manager_secret.webapp_accounts.id
  # Secret Manager refuses an empty payload: under IAP the file holds only a comment.
  secret_data = trimspace(var.webapp_accounts) != "" ? var.webapp_accounts : "# no built-in accounts: Identity-Aware Proxy signs people in\n"
}
