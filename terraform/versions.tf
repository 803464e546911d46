# Terraform and provider versions. Upgrade deliberately: run `terraform init
# -upgrade`, read the providers' changelogs, and commit .terraform.lock.hcl.
#
# 1.9 is the oldest Terraform that accepts what this module uses: variable
# validations that refer to other variables (webapp_min_instances). The
# features-to-version table is in tests/test_terraform.py, which keeps this
# line in step with the code and the README.
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
    # Only for google_project_service_identity (service agents), which the GA
    # provider lacks.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.50"
    }
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.99"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region

  default_labels = merge({ app = var.name_prefix }, var.labels)
}

provider "google-beta" {
  project = var.project
  region  = var.region

  default_labels = merge({ app = var.name_prefix }, var.labels)
}

# AWS credentials come from the usual places (AWS_PROFILE, AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY, SSO): whoever runs `terraform apply` needs rights to
# create the S3 bucket and the IAM role predict assumes.
provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge({ app = var.name_prefix }, var.labels)
  }
}
