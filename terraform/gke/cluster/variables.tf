variable "project" {
  description = "Google Cloud project ID that hosts the cluster and the image repository."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Google Cloud region of the image repository (and of the cluster's zone)."
  type        = string
  default     = "europe-west1"
}

variable "zone" {
  description = "Zone of the (zonal) cluster: one control plane and one node pool there keeps a small lab's cost down."
  type        = string
  default     = "europe-west1-b"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]-[a-z]$", var.zone)) && startswith(var.zone, "${var.region}-")
    error_message = "zone must be a Google Cloud zone of var.region, such as europe-west1-b (the NAT and the repository are regional)."
  }
}

variable "name_prefix" {
  description = "Prefix for the cluster, node pool, service account and repository names."
  type        = string
  default     = "bloodcell"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "machine_type" {
  description = "Machine type of the nodes. Knative, Kourier, the store and the pipeline fit on one e2-standard-4."
  type        = string
  default     = "e2-standard-4"
}

variable "max_nodes" {
  description = "Most nodes the node pool autoscales to (it keeps at least one)."
  type        = number
  default     = 3

  validation {
    condition     = var.max_nodes >= 1 && var.max_nodes <= 20
    error_message = "max_nodes must be between 1 and 20."
  }
}

variable "master_authorized_cidrs" {
  description = "CIDR blocks allowed to reach the cluster's API server (your office or VPN), e.g. [\"203.0.113.0/24\"]. Empty: only Google's own ranges and the VPC."
  type        = list(string)
  default     = []
}

variable "deletion_protection" {
  description = "Protect the cluster against `terraform destroy`; set to false (and apply) before destroying."
  type        = bool
  default     = true
}
