# Private nodes have no public IP; Cloud NAT gives them outbound access to
# pull the images that live outside Artifact Registry (Knative's at
# gcr.io/knative-releases, RustFS's on Docker Hub). Nothing can connect in.
resource "google_compute_router" "nat" {
  name    = "${var.name_prefix}-gke-nat"
  region  = var.region
  network = "default"

  depends_on = [google_project_service.apis]
}

resource "google_compute_router_nat" "nat" {
  name                               = "${var.name_prefix}-gke-nat"
  router                             = google_compute_router.nat.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}
