output "upload_bucket" {
  description = "Cloud Storage bucket to upload images into (triggers preprocess): gcloud storage cp IMAGE gs://BUCKET/"
  value       = google_storage_bucket.uploads.name
}

output "tensor_bucket" {
  description = "Cloud Storage bucket preprocess writes .npy tensors into (triggers predict)."
  value       = google_storage_bucket.tensors.name
}

output "result_bucket" {
  description = "Cloud Storage bucket holding one result JSON per upload, named <upload name>.json."
  value       = google_storage_bucket.results.name
}

output "model_bucket" {
  description = "Cloud Storage bucket of the model registry (MODEL_BUCKET): `bloodcell calibrate` and `bloodcell model` write it; predict reads its active version."
  value       = google_storage_bucket.models.name
}

output "archive_bucket" {
  description = "S3 bucket (AWS) that receives archive copies under archive_prefix."
  value       = aws_s3_bucket.archive.bucket
}

output "archive_prefix" {
  description = "Key prefix of archive copies inside the S3 archive bucket."
  value       = var.archive_prefix
}

output "image_repository" {
  description = "Artifact Registry path to push images to: <this>/preprocess:<tag>, <this>/predict:<tag>, <this>/webapp:<tag>."
  value       = local.registry
}

output "images" {
  description = "Full image references the Cloud Run services run, by service."
  value       = local.images
}

output "webapp_url" {
  description = "URL of the web app (public only when webapp_public = true)."
  value       = google_cloud_run_v2_service.webapp.uri
}

output "function_services" {
  description = "Names of the private Cloud Run services that Eventarc invokes, by function."
  value = {
    preprocess = google_cloud_run_v2_service.preprocess.name
    predict    = google_cloud_run_v2_service.predict.name
  }
}

output "trigger_service_account" {
  description = "Email of the service account Eventarc uses to invoke the functions."
  value       = google_service_account.trigger.email
}

output "runtime_service_accounts" {
  description = "Email of each Cloud Run service's runtime service account."
  value = {
    preprocess = google_service_account.preprocess.email
    predict    = google_service_account.predict.email
    webapp     = google_service_account.webapp.email
  }
}

output "archive_writer_role_arn" {
  description = "ARN of the AWS IAM role predict assumes (web identity federation, no key) to write archive copies."
  value       = aws_iam_role.archive_writer.arn
}

output "build_service_account" {
  description = "Email of the service account Cloud Build runs the image builds as (gcloud builds submit --service-account)."
  value       = google_service_account.cloudbuild.email
}

output "build_source_bucket" {
  description = "Bucket gcloud builds submit stages the source in (--gcs-source-staging-dir=gs://BUCKET/source)."
  value       = google_storage_bucket.build_sources.name
}

output "dead_letter_subscription" {
  description = "Pull subscription holding events Eventarc could not deliver: gcloud pubsub subscriptions pull NAME."
  value       = google_pubsub_subscription.dead_letters.name
}
