output "knative_version" {
  description = "Knative release installed."
  value       = var.knative_version
}

output "webapp_url_command" {
  description = "Command printing the web app's URL once Kourier's load balancer has an address."
  value       = "kubectl get ksvc webapp -n bloodcell -o jsonpath='{.status.url}'"
}

output "app_objects" {
  description = "The bloodcell objects applied (kind/namespace/name)."
  value       = sort(keys(local.app_documents))
}
