variable "project" {
  description = "Google Cloud project ID of the cluster (the same as ../cluster's)."
  type        = string
}

variable "region" {
  description = "Google Cloud region of the cluster's image repository."
  type        = string
  default     = "europe-west1"
}

variable "cluster_name" {
  description = "Name of the GKE cluster (../cluster output cluster_name)."
  type        = string
  default     = "bloodcell-gke"
}

variable "cluster_location" {
  description = "Zone of the GKE cluster (../cluster output cluster_location)."
  type        = string
  default     = "europe-west1-b"
}

variable "image_repository" {
  description = "Artifact Registry path holding the four images (../cluster output image_repository), e.g. europe-west1-docker.pkg.dev/PROJECT/bloodcell-gke."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+-docker\\.pkg\\.dev/[a-z][a-z0-9-]+/[a-z0-9-]+$", var.image_repository))
    error_message = "image_repository must be an Artifact Registry Docker repository path: REGION-docker.pkg.dev/PROJECT/REPOSITORY."
  }
}

variable "image_tag" {
  description = "Tag of the four images in image_repository."
  type        = string
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a version tag (not latest)."
  }
}

variable "knative_version" {
  description = "Knative release installed (Serving, Eventing, Kourier), as its tag. The manifests are validated against this version's CRDs."
  type        = string
  default     = "knative-v1.18.0"

  validation {
    condition     = can(regex("^knative-v1\\.[0-9]+\\.[0-9]+$", var.knative_version))
    error_message = "knative_version must be a release tag such as knative-v1.18.0."
  }
}
