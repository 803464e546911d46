# Eventarc: Cloud Storage "object finalized" events, filtered by bucket, to the
# function that expects them:
#   uploads --> preprocess        tensors --> predict
# Direct Cloud Storage triggers must be in the bucket's location, so the
# trigger location is taken from the bucket itself.

locals {
  gcs_finalized = "google.cloud.storage.object.v1.finalized"
}

# The identity Eventarc uses to call the functions: it may receive events and
# invoke exactly these two services, nothing else.
resource "google_service_account" "trigger" {
  account_id   = "${var.name_prefix}-trigger"
  display_name = "bloodcell Eventarc trigger identity"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "trigger_event_receiver" {
  project = var.project
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.trigger.member
}

resource "google_cloud_run_v2_service_iam_member" "trigger_invokes_preprocess" {
  name     = google_cloud_run_v2_service.preprocess.name
  location = google_cloud_run_v2_service.preprocess.location
  role     = "roles/run.invoker"
  member   = google_service_account.trigger.member
}

resource "google_cloud_run_v2_service_iam_member" "trigger_invokes_predict" {
  name     = google_cloud_run_v2_service.predict.name
  location = google_cloud_run_v2_service.predict.location
  role     = "roles/run.invoker"
  member   = google_service_account.trigger.member
}

# Cloud Storage publishes its events to Pub/Sub through its service agent,
# which needs roles/pubsub.publisher (Eventarc's documented requirement).
data "google_storage_project_service_account" "gcs" {
  project    = var.project
  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "gcs_agent_publishes" {
  project = var.project
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# The Pub/Sub service agent mints the OIDC tokens Eventarc's push
# subscriptions present to Cloud Run as the trigger account (needed in projects
# created before 8 April 2021, harmless in newer ones); granted on the trigger
# account only, to the agent google_project_service_identity ensured (apis.tf).
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_project_service_identity.pubsub.member
}

resource "google_eventarc_trigger" "preprocess_on_upload" {
  name            = "${var.name_prefix}-preprocess-on-upload"
  location        = lower(google_storage_bucket.uploads.location)
  service_account = google_service_account.trigger.email

  matching_criteria {
    attribute = "type"
    value     = local.gcs_finalized
  }

  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.uploads.name
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.preprocess.name
      region  = google_cloud_run_v2_service.preprocess.location
    }
  }

  depends_on = [
    google_project_iam_member.gcs_agent_publishes,
    google_project_iam_member.eventarc_agent,
    google_project_iam_member.trigger_event_receiver,
    google_service_account_iam_member.pubsub_agent_token_creator,
    google_cloud_run_v2_service_iam_member.trigger_invokes_preprocess,
  ]
}

resource "google_eventarc_trigger" "predict_on_tensor" {
  name            = "${var.name_prefix}-predict-on-tensor"
  location        = lower(google_storage_bucket.tensors.location)
  service_account = google_service_account.trigger.email

  matching_criteria {
    attribute = "type"
    value     = local.gcs_finalized
  }

  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.tensors.name
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.predict.name
      region  = google_cloud_run_v2_service.predict.location
    }
  }

  depends_on = [
    google_project_iam_member.gcs_agent_publishes,
    google_project_iam_member.eventarc_agent,
    google_project_iam_member.trigger_event_receiver,
    google_service_account_iam_member.pubsub_agent_token_creator,
    google_cloud_run_v2_service_iam_member.trigger_invokes_predict,
  ]
}
