# Knative Serving's ConfigMaps with our keys merged into the release's own.
#
# Replacing a release ConfigMap with one holding only our keys drops the ones
# Serving needs: config-deployment's queue-sidecar-image (the queue-proxy
# image, by digest, written into the release at build time) is required, and
# without it the webhook refuses every revision. So this takes each release
# document, and for the ConfigMaps named in var.overrides sets only the given
# keys in its data, keeping every other key and the release's metadata.
# No providers: tests/test_gke.py runs it with `terraform apply` on the pinned
# release's ConfigMaps.

variable "documents" {
  description = "The release's YAML documents, by any key (one document each)."
  type        = map(string)
}

variable "overrides" {
  description = "ConfigMap name in the knative-serving namespace -> the data keys to set in it."
  type        = map(map(string))
}

locals {
  namespace = "knative-serving"

  # Key of each release document that is a ConfigMap we patch -> its name.
  targets = {
    for key, doc in var.documents : key => yamldecode(doc).metadata.name
    if try(yamldecode(doc).kind, "") == "ConfigMap"
    && try(yamldecode(doc).metadata.namespace, "") == local.namespace
    && contains(keys(var.overrides), try(yamldecode(doc).metadata.name, ""))
  }

  documents = {
    for key, doc in var.documents : key => (
      contains(keys(local.targets), key)
      ? yamlencode(merge(yamldecode(doc), {
        data = merge(try(yamldecode(doc).data, {}), var.overrides[local.targets[key]])
      }))
      : doc
    )
  }
}

output "documents" {
  description = "var.documents, the ConfigMaps in var.overrides patched."
  value       = local.documents

  precondition {
    condition     = length(setsubtract(keys(var.overrides), values(local.targets))) == 0
    error_message = "These ConfigMaps are not in the release's documents, so their settings would be lost: ${join(", ", setsubtract(keys(var.overrides), values(local.targets)))}."
  }
}
