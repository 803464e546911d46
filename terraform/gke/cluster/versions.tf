# The GKE cluster, its node pool and the image repository: the first of two
# root modules. The second (../knative) configures providers from this
# cluster's endpoint, which Terraform cannot do from a resource of the same
# module on a first apply, hence the split.
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region

  default_labels = { app = var.name_prefix }
}
