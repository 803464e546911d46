# Terraform and provider versions. Upgrade deliberately: run `terraform init
# -upgrade`, read the providers' changelogs, and commit .terraform.lock.hcl.
terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
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

# AWS credentials come from the usual places (AWS_PROFILE, AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY, SSO): whoever runs `terraform apply` needs rights to
# create the S3 bucket and the IAM user.
provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge({ app = var.name_prefix }, var.labels)
  }
}
