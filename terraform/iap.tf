# Sign-in for the web app on Cloud Run, through Identity-Aware Proxy (IAP)
# enabled on the service itself (no load balancer). With var.webapp_iap, IAP
# signs every request it lets through with an ES256 JWT in
# x-goog-iap-jwt-assertion; the app (WEB_AUTH=iap) verifies that assertion's
# signature, issuer and audience, and trusts no bare identity header.
#
# The web app service (services.tf) sets, from var.webapp_iap:
#   iap_enabled  = var.webapp_iap   (launch_stage = "BETA" with it)
#   env WEB_AUTH      = "iap"
#   env IAP_AUDIENCE  = local.webapp_iap_audience
#   env IAP_REVIEWERS = local.webapp_iap_reviewers
# Without IAP the app signs people in with built-in accounts (var.webapp_accounts,
# a Secret Manager secret mounted as WEB_ACCOUNTS_FILE) and refuses to start
# without them, since Cloud Run is not loopback.
#
# IAP on Cloud Run needs the project to belong to an organization, and the
# members below to be identities IAP accepts (see README.md, "Sign-in").

variable "webapp_iap" {
  description = "Put Identity-Aware Proxy in front of the web app (Cloud Run's built-in IAP): only var.webapp_iap_members get through, and the app trusts only IAP's signed assertion. Needs the project to be in an organization."
  type        = bool
  default     = false
}

variable "webapp_iap_members" {
  description = "Principals IAP lets through to the web app, as IAM members (e.g. \"group:lab-staff@example.org\", \"user:chloe@example.org\"). Ignored unless webapp_iap is true."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.webapp_iap_members : can(regex("^(user|group|domain|serviceAccount):", m))])
    error_message = "Each member must start with user:, group:, domain: or serviceAccount: (never allUsers)."
  }
}

variable "webapp_iap_reviewers" {
  description = "Emails of IAP-signed-in people who get the app's `reviewer` role (IAP_REVIEWERS); everyone else let through is a plain user."
  type        = list(string)
  default     = []
}

locals {
  # The `aud` claim IAP puts in its assertion for a Cloud Run service with IAP enabled.
  # Built from the service's name, not the service, which itself needs this value.
  webapp_iap_audience  = "/projects/${data.google_project.this.number}/locations/${var.region}/services/${local.webapp_name}"
  webapp_iap_reviewers = join(",", var.webapp_iap_reviewers)
}

resource "google_project_service" "iap" {
  count = var.webapp_iap ? 1 : 0

  project            = var.project
  service            = "iap.googleapis.com"
  disable_on_destroy = false
}

# IAP's service agent, which calls the service once a person is let through:
# ensured (created now, address returned) rather than spelled out, like the
# Pub/Sub and Eventarc agents (apis.tf).
resource "google_project_service_identity" "iap" {
  provider = google-beta
  count    = var.webapp_iap ? 1 : 0

  project    = var.project
  service    = "iap.googleapis.com"
  depends_on = [google_project_service.iap]
}

# IAP, not the people, invokes the service: the web app stays closed to allUsers.
resource "google_cloud_run_v2_service_iam_member" "webapp_iap_invoker" {
  count = var.webapp_iap ? 1 : 0

  name     = google_cloud_run_v2_service.webapp.name
  location = google_cloud_run_v2_service.webapp.location
  role     = "roles/run.invoker"
  member   = google_project_service_identity.iap[0].member

  depends_on = [google_project_service.iap]
}

# Who IAP lets through.
resource "google_iap_web_cloud_run_service_iam_member" "webapp_access" {
  for_each = var.webapp_iap ? toset(var.webapp_iap_members) : toset([])

  project                = var.project
  location               = google_cloud_run_v2_service.webapp.location
  cloud_run_service_name = google_cloud_run_v2_service.webapp.name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value

  depends_on = [google_project_service.iap]
}

output "webapp_iap_audience" {
  description = "The audience the web app checks in IAP's assertion (its IAP_AUDIENCE); null without IAP."
  value       = var.webapp_iap ? local.webapp_iap_audience : null
}
