# The three Cloud Run (v2) services. Each runs as its own service account
# (iam.tf). The functions are private: reachable only from inside Google Cloud
# (Eventarc counts as internal) and invokable only by the trigger service
# account (triggers.tf). The web app is public only if var.webapp_public.
# The images must exist before the first full apply: see README.md.

locals {
  common_env = {
    BLOODCELL_STORAGE    = "gcs"
    GOOGLE_CLOUD_PROJECT = var.project
    UPLOAD_BUCKET        = google_storage_bucket.uploads.name
    TENSOR_BUCKET        = google_storage_bucket.tensors.name
    RESULT_BUCKET        = google_storage_bucket.results.name
    MODEL_BUCKET         = google_storage_bucket.models.name
    LOG_LEVEL            = "INFO"
  }

  # The web app's name, known before the service exists: IAP's audience (iap.tf) is built from it.
  webapp_name = "${var.name_prefix}-webapp"
  # Where the accounts secret (secrets.tf) is mounted, and the file in it.
  webapp_accounts_dir  = "/secrets/webapp-accounts"
  webapp_accounts_file = "accounts"

  # Sign-in (src/bloodcell/web/auth.py): built-in accounts from the mounted
  # file, or, with var.webapp_iap, IAP's signed assertion for our audience.
  webapp_env = {
    RESULT_TIMEOUT_SECONDS = "120"
    WEB_AUTH               = var.webapp_iap ? "iap" : "accounts"
    WEB_ACCOUNTS_FILE      = "${local.webapp_accounts_dir}/${local.webapp_accounts_file}"
    IAP_AUDIENCE           = var.webapp_iap ? local.webapp_iap_audience : ""
    IAP_REVIEWERS          = local.webapp_iap_reviewers
    # Only Google's front end reaches the container: believe its
    # X-Forwarded-Proto (https), so cookies are Secure. (With "*" uvicorn takes
    # the leftmost X-Forwarded-For, which a client may set: the per-name
    # sign-in limit holds regardless; the per-address one is best effort here.)
    WEB_TRUSTED_PROXIES = "*"
  }
}

resource "google_cloud_run_v2_service" "preprocess" {
  name                = "${var.name_prefix}-preprocess"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.preprocess.email
    timeout                          = "120s"
    max_instance_request_concurrency = 4

    scaling {
      min_instance_count = 0
      max_instance_count = var.function_max_instances
    }

    containers {
      image = local.images.preprocess

      ports {
        container_port = 8080
      }

      # Traffic only once the server listens (predict loads its model first).
      startup_probe {
        tcp_socket {
          port = 8080
        }
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 60
      }

      # functions-framework has no health route (every path is the function):
      # a listening port is what can be checked without sending an event.
      liveness_probe {
        tcp_socket {
          port = 8080
        }
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.common_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service" "predict" {
  name                = "${var.name_prefix}-predict"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection

  template {
    service_account = google_service_account.predict.email
    timeout         = "120s"
    # One LiteRT interpreter per instance; inference is CPU-bound.
    max_instance_request_concurrency = 2

    scaling {
      min_instance_count = 0
      max_instance_count = var.function_max_instances
    }

    containers {
      image = local.images.predict

      ports {
        container_port = 8080
      }

      # Traffic only once the server listens (predict loads its model first).
      startup_probe {
        tcp_socket {
          port = 8080
        }
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 60
      }

      # functions-framework has no health route (every path is the function):
      # a listening port is what can be checked without sending an event.
      liveness_probe {
        tcp_socket {
          port = 8080
        }
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(local.common_env, {
          MODEL_DIR          = "/app/functions/predict/model"
          MODEL_THREADS      = "1"
          ARCHIVE_STORAGE    = "s3"
          ARCHIVE_BUCKET     = aws_s3_bucket.archive.bucket
          ARCHIVE_PREFIX     = var.archive_prefix
          AWS_DEFAULT_REGION = var.aws_region
          # No AWS key anywhere: predict exchanges its service account's
          # Google-signed ID token for short-lived credentials of this role
          # (AssumeRoleWithWebIdentity; aws_archive.tf), refreshed by botocore.
          ARCHIVE_AWS_ROLE_ARN          = aws_iam_role.archive_writer.arn
          ARCHIVE_AWS_ID_TOKEN_AUDIENCE = local.archive_token_audience
        })
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service" "webapp" {
  # iap_enabled exists only in the beta provider at the pinned version (6.50).
  provider = google-beta

  name                = local.webapp_name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection
  # Cloud Run's built-in Identity-Aware Proxy (iap.tf); the app then checks its assertion.
  iap_enabled  = var.webapp_iap
  launch_stage = var.webapp_iap ? "BETA" : null

  template {
    service_account = google_service_account.webapp.email
    # NiceGUI pages hold a websocket open: allow long requests, and keep each
    # browser on the instance that holds its page state.
    timeout                          = "3600s"
    session_affinity                 = true
    max_instance_request_concurrency = 50

    scaling {
      min_instance_count = var.webapp_min_instances
      max_instance_count = var.webapp_max_instances
    }

    containers {
      image = local.images.webapp

      ports {
        container_port = 8080
      }

      # Traffic only once the server listens (predict loads its model first).
      startup_probe {
        tcp_socket {
          port = 8080
        }
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 60
      }

      # /healthz is outside the sign-in: "/" answers a redirect to it (accounts) or
      # 401 (IAP: probes carry no assertion), and a failing liveness probe restarts the
      # instance every 90 s. A hung event loop stops answering /healthz too.
      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "768Mi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(local.common_env, local.webapp_env)
        content {
          name  = env.key
          value = env.value
        }
      }

      env {
        name = "STORAGE_SECRET"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.webapp_storage_secret.secret_id
            version = "latest"
          }
        }
      }

      volume_mounts {
        name       = "accounts"
        mount_path = local.webapp_accounts_dir
      }
    }

    volumes {
      name = "accounts"
      secret {
        secret = google_secret_manager_secret.webapp_accounts.secret_id
        items {
          version = "latest"
          path    = local.webapp_accounts_file
        }
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_version.webapp_storage_secret,
    google_secret_manager_secret_iam_member.webapp_reads_storage_secret,
    google_secret_manager_secret_version.webapp_accounts,
    google_secret_manager_secret_iam_member.webapp_reads_accounts,
  ]
}

# Opt-in public access to the web app only (never to the functions).
resource "google_cloud_run_v2_service_iam_member" "webapp_public" {
  # allUsers here, and nowhere else: the web app is meant for people.
  count = var.webapp_public ? 1 : 0

  name     = google_cloud_run_v2_service.webapp.name
  location = google_cloud_run_v2_service.webapp.location
  role     = "roles/run.invoker"
  member   = "allUsers"
}
