# Knative Serving and Eventing, pinned, and the bloodcell manifests, on the
# cluster made by ../cluster: the second root module. Its providers read that
# cluster through data sources, so they are configured from values that exist
# when this module is planned.
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
    # kubectl_manifest applies raw YAML (Knative's release files, custom
    # resources whose CRDs do not exist yet at plan time) and renders the
    # overlay with kustomize; hashicorp/kubernetes's kubernetes_manifest needs
    # every CRD at plan time.
    kubectl = {
      source  = "alekc/kubectl"
      version = "~> 2.1"
    }
    http = {
      source  = "hashicorp/http"
      version = "~> 3.4"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

data "google_client_config" "current" {}

data "google_container_cluster" "this" {
  name     = var.cluster_name
  location = var.cluster_location
}

provider "kubectl" {
  host                   = "https://${data.google_container_cluster.this.endpoint}"
  cluster_ca_certificate = base64decode(data.google_container_cluster.this.master_auth[0].cluster_ca_certificate)
  token                  = data.google_client_config.current.access_token
  load_config_file       = false
  # Custom resources wait for their CRDs and webhooks to come up.
  apply_retry_count = 15
}
