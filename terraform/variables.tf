variable "project" {
  description = "Google Cloud project ID that hosts the buckets, Cloud Run services and Eventarc triggers."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Google Cloud region for the buckets, the Cloud Run services, Artifact Registry and the Eventarc triggers (a single region, e.g. europe-west1, so triggers live where their buckets are)."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a single Google Cloud region such as europe-west1 or us-central1 (not a multi-region)."
  }
}

variable "name_prefix" {
  description = "Prefix for resource names (service accounts, services, repository, secrets) and the `app` label."
  type        = string
  default     = "bloodcell"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 lowercase letters, digits or hyphens, starting with a letter (service account IDs are limited to 30 characters)."
  }
}

variable "labels" {
  description = "Extra labels (Google Cloud) and tags (AWS) put on every resource."
  type        = map(string)
  default     = {}
}

variable "image_tag" {
  description = "Tag of the preprocess, predict and webapp images in the Artifact Registry repository (see README.md for building and pushing them)."
  type        = string
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid container image tag."
  }
}

variable "webapp_public" {
  description = "Whether anyone on the internet may open the web app (grants roles/run.invoker to allUsers on the webapp service only). When false, callers need roles/run.invoker, e.g. through `gcloud run services proxy`."
  type        = bool
  default     = false
}

variable "webapp_min_instances" {
  description = "Instances of the web app kept warm. NiceGUI keeps page state in the serving process, so 1 avoids losing open pages to scale-to-zero (at the cost of an always-on instance)."
  type        = number
  default     = 1

  validation {
    condition     = var.webapp_min_instances >= 0 && var.webapp_min_instances <= var.webapp_max_instances
    error_message = "webapp_min_instances must be between 0 and webapp_max_instances."
  }
}

variable "webapp_max_instances" {
  description = "Most web app instances. Session affinity keeps each browser on one instance, so more than one is possible but 1 is the simplest."
  type        = number
  default     = 1

  validation {
    condition     = var.webapp_max_instances >= 1 && var.webapp_max_instances <= 100
    error_message = "webapp_max_instances must be between 1 and 100."
  }
}

variable "function_max_instances" {
  description = "Most instances of each function service (preprocess, predict); both scale to zero when idle."
  type        = number
  default     = 10

  validation {
    condition     = var.function_max_instances >= 1 && var.function_max_instances <= 1000
    error_message = "function_max_instances must be between 1 and 1000."
  }
}

variable "tensor_retention_days" {
  description = "Days after which intermediate .npy tensors are deleted from the tensor bucket (results and uploads are kept)."
  type        = number
  default     = 1

  validation {
    condition     = var.tensor_retention_days >= 1 && floor(var.tensor_retention_days) == var.tensor_retention_days
    error_message = "tensor_retention_days must be a whole number of days, at least 1."
  }
}

# Retention: how long a lab keeps what it stores. 0 keeps objects until someone
# deletes them (the default: the lab's own policy decides). With a number,
# a lifecycle rule deletes each object that many days after it was written
# (storage.tf, aws_archive.tf); in the versioned buckets the deleted object
# becomes a noncurrent version, gone noncurrent_version_retention_days later.
variable "upload_retention_days" {
  description = "Days an uploaded image is kept in the upload bucket before a lifecycle rule deletes it; 0 keeps uploads until deleted by hand."
  type        = number
  default     = 0

  validation {
    condition     = var.upload_retention_days >= 0 && floor(var.upload_retention_days) == var.upload_retention_days
    error_message = "upload_retention_days must be a whole number of days, 0 (keep) or more."
  }
}

variable "result_retention_days" {
  description = "Days a result JSON is kept in the result bucket before a lifecycle rule deletes it; 0 keeps results until deleted by hand."
  type        = number
  default     = 0

  validation {
    condition     = var.result_retention_days >= 0 && floor(var.result_retention_days) == var.result_retention_days
    error_message = "result_retention_days must be a whole number of days, 0 (keep) or more."
  }
}

variable "archive_retention_days" {
  description = "Days an archive copy (image and JSON under archive_prefix) is kept in S3 before a lifecycle rule expires it; 0 keeps the archive until deleted by hand. More than archive_infrequent_access_days, or the transition never happens."
  type        = number
  default     = 0

  validation {
    condition     = var.archive_retention_days == 0 || (floor(var.archive_retention_days) == var.archive_retention_days && var.archive_retention_days > var.archive_infrequent_access_days)
    error_message = "archive_retention_days must be 0 (keep) or a whole number of days greater than archive_infrequent_access_days."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten (noncurrent) version of an upload or result object is kept before deletion."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete non-empty buckets (Google Cloud and S3). Keep false outside throwaway projects."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Protect the Cloud Run services against deletion by Terraform; set to false (and apply) before `terraform destroy`."
  type        = bool
  default     = false
}

variable "aws_region" {
  description = "AWS region of the S3 archive bucket."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region such as eu-west-1."
  }
}

variable "archive_bucket_name" {
  description = "Name of the S3 archive bucket (globally unique). Empty means \"<name_prefix>-archive-<project>\"."
  type        = string
  default     = ""

  validation {
    condition     = var.archive_bucket_name == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.archive_bucket_name))
    error_message = "archive_bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, dots or hyphens)."
  }
}

variable "archive_prefix" {
  description = "Key prefix of archive copies inside the S3 bucket (ARCHIVE_PREFIX); the archive writer may put objects under this prefix only."
  type        = string
  default     = "archive/"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*/$", var.archive_prefix))
    error_message = "archive_prefix must be a non-empty key prefix of letters, digits, '_', '.', '-' ending in '/', e.g. archive/."
  }
}

variable "archive_infrequent_access_days" {
  description = "Days after which archive copies move to S3 Standard-IA."
  type        = number
  default     = 30

  validation {
    condition     = var.archive_infrequent_access_days >= 30
    error_message = "S3 requires at least 30 days before a transition to STANDARD_IA."
  }
}

variable "archive_noncurrent_expiration_days" {
  description = "Days an overwritten (noncurrent) archive object version is kept before S3 deletes it."
  type        = number
  default     = 90

  validation {
    condition     = var.archive_noncurrent_expiration_days >= 1
    error_message = "archive_noncurrent_expiration_days must be at least 1."
  }
}

variable "dead_letter_max_delivery_attempts" {
  description = "Failed deliveries of one event (per Eventarc trigger) before it goes to the dead-letter topic instead of being retried again (Pub/Sub allows 5 to 100)."
  type        = number
  default     = 10

  validation {
    condition     = var.dead_letter_max_delivery_attempts >= 5 && var.dead_letter_max_delivery_attempts <= 100
    error_message = "dead_letter_max_delivery_attempts must be between 5 and 100."
  }
}
