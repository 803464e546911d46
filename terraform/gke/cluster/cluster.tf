# A GKE Standard cluster (Knative installs its own controllers and webhooks,
# which Autopilot restricts) with:
#   Workload Identity   pods get Google identities per Kubernetes service account, never the node's
#   Dataplane V2        eBPF datapath that enforces the NetworkPolicies in knative/
#   private nodes       no public IPs on nodes; the API server only for master_authorized_cidrs
#   Shielded nodes      secure boot and integrity monitoring, GKE metadata server

resource "google_project_service" "apis" {
  for_each = toset(["compute.googleapis.com", "container.googleapis.com", "artifactregistry.googleapis.com", "iam.googleapis.com"])

  project            = var.project
  service            = each.value
  disable_on_destroy = false
}

locals {
  # The control plane's range (private clusters): the source of its calls to webhooks on the nodes.
  master_cidr = "172.16.0.32/28"
  # The nodes' network tag, which the firewall rule below targets.
  node_tag = "${var.name_prefix}-gke-node"
}

resource "google_container_cluster" "this" {
  #checkov:skip=CKV_GCP_66:Binary Authorization needs signed-image attestations this project does not produce yet; images are pinned by tag from our own repository
  #checkov:skip=CKV_GCP_12:Dataplane V2 (datapath_provider ADVANCED_DATAPATH) enforces NetworkPolicy itself; the legacy network_policy (Calico) block must stay off with it
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Workspace domain; access is granted with IAM roles on the project
  name     = "${var.name_prefix}-gke"
  location = var.zone

  # The default pool is replaced by the one below, with its own service account.
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = var.deletion_protection

  networking_mode   = "VPC_NATIVE"
  datapath_provider = "ADVANCED_DATAPATH"
  ip_allocation_policy {}

  workload_identity_config {
    workload_pool = "${var.project}.svc.id.goog"
  }

  release_channel {
    channel = "REGULAR"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = local.master_cidr
  }

  master_authorized_networks_config {
    gcp_public_cidrs_access_enabled = false
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_cidrs
      content {
        cidr_block   = cidr_blocks.value
        display_name = "operator"
      }
    }
  }

  enable_shielded_nodes       = true
  enable_intranode_visibility = true
  enable_legacy_abac          = false

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  resource_labels = { app = var.name_prefix }

  # The default pool's nodes exist for seconds; give them the hardened
  # settings anyway.
  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_container_node_pool" "default" {
  name     = "${var.name_prefix}-pool"
  cluster  = google_container_cluster.this.id
  location = var.zone

  autoscaling {
    min_node_count = 1
    max_node_count = var.max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type = var.machine_type
    image_type   = "COS_CONTAINERD"
    disk_size_gb = 50
    # Its own account, with only what a node needs (iam.tf); the scope is
    # the broad one Google recommends, IAM is what limits it.
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    metadata = {
      disable-legacy-endpoints = "true"
    }

    labels = { app = var.name_prefix }
    tags   = [local.node_tag]
  }
}

# A private cluster's control plane reaches the nodes only on 443 and 10250
# (GKE's own rule). Knative Serving's and Eventing's admission webhooks listen
# on 8443; Eventing's has failurePolicy Fail, so without this rule the API
# server refuses every Broker, Trigger and SinkBinding (and Serving's config
# and Services). From the control plane's range only, to our nodes only.
resource "google_compute_firewall" "master_to_webhooks" {
  name        = "${var.name_prefix}-gke-master-webhooks"
  network     = "default"
  direction   = "INGRESS"
  description = "GKE control plane to Knative admission webhooks (8443) on the nodes"

  source_ranges = [local.master_cidr]
  target_tags   = [local.node_tag]

  allow {
    protocol = "tcp"
    ports    = ["8443"]
  }

  depends_on = [google_project_service.apis]
}

# The four images (preprocess, predict, webapp, eventsource), tags immutable
# so a tag names one image for good (Knative does not resolve digests here,
# ../knative).
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images hold public code and no data; Google-managed encryption is sufficient
  location      = var.region
  repository_id = "${var.name_prefix}-gke"
  description   = "bloodcell images for the GKE deployment"
  format        = "DOCKER"

  docker_config {
    immutable_tags = true
  }

  depends_on = [google_project_service.apis]
}
