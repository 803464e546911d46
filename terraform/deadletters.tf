# Dead letters on Google Cloud. Eventarc delivers Cloud Storage events through
# a Pub/Sub push subscription it creates per trigger; by default an event that
# keeps failing is retried for 24 hours and then dropped. Here each of those
# subscriptions gets a dead-letter policy: after
# var.dead_letter_max_delivery_attempts failed deliveries (exponential backoff
# between 10 s and 10 min), the event goes to the dead-letter topic, where the
# `dead-letters` pull subscription keeps it for 7 days:
#   gcloud pubsub subscriptions pull bloodcell-dead-letters --limit 10 --format json
# (README.md, "Failed events"). That matches the Knative dead-letter sink.
#
# google_eventarc_trigger has no dead-letter argument and the subscription is
# Eventarc's, not ours, so the policy is set with `gcloud pubsub subscriptions
# update` once per subscription (again whenever a trigger's subscription
# changes): applying needs the gcloud CLI, as the README's other steps do.

resource "google_pubsub_topic" "dead_letters" {
  #checkov:skip=CKV_GCP_83:Holds bucket events (object names and metadata) that the Google-managed-key buckets already hold; a CMEK would add a KMS key for no new protection
  name                       = "${var.name_prefix}-dead-letters"
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_subscription" "dead_letters" {
  name                       = "${var.name_prefix}-dead-letters"
  topic                      = google_pubsub_topic.dead_letters.id
  message_retention_duration = "604800s"
  retain_acked_messages      = true
  ack_deadline_seconds       = 60

  # Never expire for inactivity: nobody may read it for weeks.
  expiration_policy {
    ttl = ""
  }
}

locals {
  # Eventarc's subscription of each trigger.
  trigger_subscriptions = {
    preprocess = google_eventarc_trigger.preprocess_on_upload.transport[0].pubsub[0].subscription
    predict    = google_eventarc_trigger.predict_on_tensor.transport[0].pubsub[0].subscription
  }
}

# Pub/Sub's agent forwards dead letters: it must publish to the topic and
# acknowledge on the source subscriptions (Pub/Sub's documented requirement).
resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_dead_letters" {
  topic  = google_pubsub_topic.dead_letters.id
  role   = "roles/pubsub.publisher"
  member = google_project_service_identity.pubsub.member
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_trigger_events" {
  for_each = local.trigger_subscriptions

  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = google_project_service_identity.pubsub.member
}

resource "terraform_data" "trigger_dead_letter_policy" {
  for_each = local.trigger_subscriptions

  triggers_replace = [each.value, google_pubsub_topic.dead_letters.id, var.dead_letter_max_delivery_attempts]

  provisioner "local-exec" {
    command = join(" ", [
      "gcloud pubsub subscriptions update ${each.value}",
      "--project=${var.project}",
      "--dead-letter-topic=${google_pubsub_topic.dead_letters.id}",
      "--max-delivery-attempts=${var.dead_letter_max_delivery_attempts}",
      "--min-retry-delay=10s --max-retry-delay=600s",
    ])
  }

  depends_on = [
    google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters,
    google_pubsub_subscription_iam_member.pubsub_agent_acks_trigger_events,
  ]
}
