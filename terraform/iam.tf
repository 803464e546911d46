# One runtime service account per Cloud Run service, with bucket-level (never
# project-level) grants for exactly what its code does:
#
#   service     uploads            tensors            results
#   preprocess  read               write+overwrite    read+write+overwrite (rejections; idempotency checks)
#   predict     read (archive)     read               read+write+overwrite (results; idempotency checks)
#   webapp      create+read        read (progress)    read
#
# Writing an object whose name exists (a re-upload's tensor, a pending result
# turned final) needs storage.objects.delete as well as create, which
# roles/storage.objectCreator lacks; the custom role below adds just that, and
# is granted only on the buckets that need it.

resource "google_service_account" "preprocess" {
  account_id   = "${var.name_prefix}-preprocess"
  display_name = "bloodcell preprocess (Cloud Run runtime)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "predict" {
  account_id   = "${var.name_prefix}-predict"
  display_name = "bloodcell predict (Cloud Run runtime)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "webapp" {
  account_id   = "${var.name_prefix}-webapp"
  display_name = "bloodcell web app (Cloud Run runtime)"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_custom_role" "object_writer" {
  role_id     = "${replace(var.name_prefix, "-", "_")}_object_writer"
  title       = "bloodcell object writer"
  description = "Read, create and replace objects; granted on single buckets only."
  permissions = [
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
  ]
  depends_on = [google_project_service.apis]
}

# ---- preprocess ----

resource "google_storage_bucket_iam_member" "preprocess_reads_uploads" {
  bucket = google_storage_bucket.uploads.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.preprocess.member
}

resource "google_storage_bucket_iam_member" "preprocess_writes_tensors" {
  bucket = google_storage_bucket.tensors.name
  role   = google_project_iam_custom_role.object_writer.id
  member = google_service_account.preprocess.member
}

resource "google_storage_bucket_iam_member" "preprocess_writes_results" {
  bucket = google_storage_bucket.results.name
  role   = google_project_iam_custom_role.object_writer.id
  member = google_service_account.preprocess.member
}

# ---- predict ----

resource "google_storage_bucket_iam_member" "predict_reads_tensors" {
  bucket = google_storage_bucket.tensors.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.predict.member
}

# The archive copy includes the original image.
resource "google_storage_bucket_iam_member" "predict_reads_uploads" {
  bucket = google_storage_bucket.uploads.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.predict.member
}

resource "google_storage_bucket_iam_member" "predict_writes_results" {
  bucket = google_storage_bucket.results.name
  role   = google_project_iam_custom_role.object_writer.id
  member = google_service_account.predict.member
}

# The model registry: the active pointer and the calibration it names.
resource "google_storage_bucket_iam_member" "predict_reads_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.predict.member
}

# ---- webapp ----

# New uploads only (written with an if-absent precondition, never replaced).
resource "google_storage_bucket_iam_member" "webapp_creates_uploads" {
  bucket = google_storage_bucket.uploads.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.webapp.member
}

# Thumbnails of uploaded images.
resource "google_storage_bucket_iam_member" "webapp_reads_uploads" {
  bucket = google_storage_bucket.uploads.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.webapp.member
}

# A tensor's presence shows a file as "preprocessed" while it waits for predict.
resource "google_storage_bucket_iam_member" "webapp_reads_tensors" {
  bucket = google_storage_bucket.tensors.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.webapp.member
}

resource "google_storage_bucket_iam_member" "webapp_reads_results" {
  bucket = google_storage_bucket.results.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.webapp.member
}

# The calibration page lists versions, evaluations and the audit trail (the
# custom writer role has no list permission) ...
resource "google_storage_bucket_iam_member" "webapp_reads_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.webapp.member
}

# ... and activates or rolls back, which rewrite the pointer and append to the audit trail.
resource "google_storage_bucket_iam_member" "webapp_writes_models" {
  bucket = google_storage_bucket.models.name
  role   = google_project_iam_custom_role.object_writer.id
  member = google_service_account.webapp.member
}

# ---- secrets (secrets.tf): readable only by the service that mounts it ----

resource "google_secret_manager_secret_iam_member" "webapp_reads_storage_secret" {
  secret_id = google_secret_manager_secret.webapp_storage_secret.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.webapp.member
}

resource "google_secret_manager_secret_iam_member" "webapp_reads_accounts" {
  secret_id = google_secret_manager_secret.webapp_accounts.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.webapp.member
}
