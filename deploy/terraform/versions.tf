terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.10"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State lives in a pre-created, versioned bucket; pass it at init time:
  #   terraform init -backend-config="bucket=<project>-pull-tfstate" -backend-config="prefix=<env>"
  # (deploy/ops.mk tf-init does this).
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}
