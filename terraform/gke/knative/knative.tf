# Knative from its release files at var.knative_version, exactly what the
# minikube steps in knative/README.md apply by hand:
#   Serving (CRDs, core), Kourier as its networking layer, sslip.io default domain,
#   Eventing (CRDs, core), the in-memory channel and the multi-tenant channel broker.
# Three of Serving's ConfigMaps get keys of ours, merged into the release's own
# (./serving-config; replacing a ConfigMap whole would drop keys Serving
# requires, such as config-deployment's queue-sidecar-image): Kourier as the
# ingress, emptyDir volumes allowed (the pods' read-only root filesystems need
# a writable /tmp), and no tag-to-digest resolution for our Artifact Registry
# (the controller has no Google identity to read it; tags there are immutable
# instead).

locals {
  serving  = "https://github.com/knative/serving/releases/download/${var.knative_version}"
  eventing = "https://github.com/knative/eventing/releases/download/${var.knative_version}"
  kourier  = "https://github.com/knative/net-kourier/releases/download/${var.knative_version}"

  # Applied in two waves: every CRD first, then what uses them.
  crd_files = {
    serving-crds  = "${local.serving}/serving-crds.yaml"
    eventing-crds = "${local.eventing}/eventing-crds.yaml"
  }
  core_files = {
    serving-core           = "${local.serving}/serving-core.yaml"
    kourier                = "${local.kourier}/kourier.yaml"
    eventing-core          = "${local.eventing}/eventing-core.yaml"
    in-memory-channel      = "${local.eventing}/in-memory-channel.yaml"
    mt-channel-broker      = "${local.eventing}/mt-channel-broker.yaml"
    serving-default-domain = "${local.serving}/serving-default-domain.yaml"
  }

  registry_host = split("/", var.image_repository)[0]

  # Only these keys are set; every other key of the release's ConfigMaps stays.
  serving_config = {
    config-network = { "ingress-class" = "kourier.ingress.networking.knative.dev" }
    config-features = {
      "kubernetes.podspec-volumes-emptydir" = "enabled"
    }
    config-deployment = {
      "registries-skipping-tag-resolving" = "kind.local,ko.local,dev.local,${local.registry_host}"
    }
  }
}

data "http" "release" {
  for_each = merge(local.crd_files, local.core_files)

  url = each.value

  lifecycle {
    postcondition {
      condition     = self.status_code == 200
      error_message = "Could not download ${each.value}: is ${var.knative_version} a Knative release?"
    }
  }
}

data "kubectl_file_documents" "release" {
  for_each = data.http.release

  content = each.value.response_body
}

locals {
  crd_documents = merge([
    for name in keys(local.crd_files) : {
      for i, doc in data.kubectl_file_documents.release[name].documents : "${name}/${i}" => doc
    }
  ]...)
  release_core_documents = merge([
    for name in keys(local.core_files) : {
      for i, doc in data.kubectl_file_documents.release[name].documents : "${name}/${i}" => doc
    }
  ]...)
}

module "serving_config" {
  source = "./serving-config"

  documents = local.release_core_documents
  overrides = local.serving_config
}

resource "kubectl_manifest" "knative_crds" {
  for_each = local.crd_documents

  yaml_body         = each.value
  server_side_apply = true
}

resource "kubectl_manifest" "knative_core" {
  for_each = module.serving_config.documents

  yaml_body         = each.value
  server_side_apply = true

  depends_on = [kubectl_manifest.knative_crds]
}
