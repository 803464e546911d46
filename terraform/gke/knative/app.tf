# The bloodcell manifests (knative/, through ./overlay), with image names
# pointed at var.image_repository:var.image_tag. Decision for GKE: the
# in-cluster store (RustFS), not Cloud Storage + Eventarc: the cluster then
# runs exactly what minikube runs and what CI validates, with no Google
# identities to wire into pods. Cloud Storage + Eventarc is the Cloud Run
# deployment (../../); README.md compares the two.
#
# Run knative/secrets/generate.sh before the first apply: the overlay's base
# generates its Secrets from those git-ignored files.

locals {
  # The overlay names this repository; it is replaced with the real one.
  placeholder_repository = "europe-west1-docker.pkg.dev/registry-placeholder/bloodcell-gke"
}

data "kubectl_kustomize_documents" "app" {
  target = "${path.module}/overlay"
}

locals {
  app_documents = {
    for doc in data.kubectl_kustomize_documents.app.documents :
    "${yamldecode(doc).kind}/${try(yamldecode(doc).metadata.namespace, "")}/${yamldecode(doc).metadata.name}" =>
    replace(doc, "/${replace(local.placeholder_repository, ".", "\\.")}/([a-z]+):[A-Za-z0-9_.-]+/", "${var.image_repository}/$1:${var.image_tag}")
  }
}

resource "kubectl_manifest" "app" {
  for_each = local.app_documents

  yaml_body         = each.value
  server_side_apply = true

  depends_on = [kubectl_manifest.knative_core]
}
