variable "project_id" {
  description = "GCP project that hosts this environment."
  type        = string
}

variable "region" {
  description = "GCP region (the runbook deploys to us-central1)."
  type        = string
  default     = "us-central1"
}

variable "environment" {
  description = "staging or production."
  type        = string

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

# --- Network -------------------------------------------------------------------------------

variable "subnet_cidr" {
  description = "Primary range of the PULL subnetwork."
  type        = string
  default     = "10.10.0.0/20"
}

variable "private_services_address" {
  description = "Start of the range peered to Google services (Cloud SQL, Memorystore). Kubernetes network policies allow 10.20.0.0/16."
  type        = string
  default     = "10.20.0.0"
}

variable "private_services_prefix_length" {
  description = "Prefix length of the private services range."
  type        = number
  default     = 16
}

variable "vpc_connector_cidr" {
  description = "/28 range for the Serverless VPC Access connector used by Cloud Run."
  type        = string
  default     = "10.8.0.0/28"
}

variable "vpc_connector_min_instances" {
  description = "Minimum Serverless VPC Access connector instances."
  type        = number
  default     = 2
}

variable "vpc_connector_max_instances" {
  description = "Maximum Serverless VPC Access connector instances."
  type        = number
  default     = 10
}

# --- PostgreSQL ----------------------------------------------------------------------------

variable "db_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-2-7680"
}

variable "db_disk_size_gb" {
  description = "Initial disk size; disk_autoresize grows it."
  type        = number
  default     = 50
}

variable "db_max_connections" {
  description = "PostgreSQL max_connections; the connection alert fires at 80% / 95% of the pools."
  type        = number
  default     = 400
}

variable "db_retained_backups" {
  description = "Number of daily automated backups kept."
  type        = number
  default     = 30
}

variable "db_deletion_protection" {
  description = "Refuse to destroy the database instance."
  type        = bool
  default     = true
}

# --- Redis ---------------------------------------------------------------------------------

variable "redis_tier" {
  description = "Memorystore tier: BASIC or STANDARD_HA."
  type        = string
  default     = "STANDARD_HA"
}

variable "redis_memory_size_gb" {
  description = "Memorystore capacity in GiB."
  type        = number
  default     = 5
}

# --- Cloud Run -----------------------------------------------------------------------------

variable "api_image" {
  description = "Initial API image; later revisions are deployed by .github/workflows/deploy-api.yml."
  type        = string
}

variable "worker_image" {
  description = "Initial worker image; later revisions are deployed by .github/workflows/deploy-workers.yml."
  type        = string
}

variable "api_cpu" {
  description = "vCPU per API instance."
  type        = string
  default     = "2"
}

variable "api_memory" {
  description = "Memory per API instance."
  type        = string
  default     = "1Gi"
}

variable "api_min_instances" {
  description = "Minimum API instances."
  type        = number
  default     = 1
}

variable "api_max_instances" {
  description = "Maximum API instances."
  type        = number
  default     = 20
}

variable "worker_cpu" {
  description = "vCPU per worker instance (runbook: 2 staging, 4 production)."
  type        = string
  default     = "2"
}

variable "worker_memory" {
  description = "Memory per worker instance (runbook: 2Gi staging, 4Gi production)."
  type        = string
  default     = "2Gi"
}

variable "worker_min_instances" {
  description = "Minimum worker instances (runbook: 1 staging, 2 production)."
  type        = number
  default     = 1
}

variable "worker_max_instances" {
  description = "Maximum worker instances (runbook: 10 staging, 50 production)."
  type        = number
  default     = 10
}

variable "temporal_address" {
  description = "Temporal frontend host:port (Temporal Cloud or self-hosted)."
  type        = string
}

variable "temporal_namespace" {
  description = "Temporal namespace (pull-staging or pull-production)."
  type        = string
}

variable "cors_origins" {
  description = "Comma-separated origins allowed by the API."
  type        = string
}

variable "email_callback_url" {
  description = "Nylas hosted-auth redirect URI (the web app's /mail/callback), as registered with Nylas."
  type        = string
}

variable "api_public" {
  description = "Let unauthenticated callers invoke the API service (it is the public API)."
  type        = bool
  default     = true
}

# --- Backups and keys ----------------------------------------------------------------------

variable "backup_retention_days" {
  description = "Days a logical backup (deploy/backup/backup.sh) is kept in the bucket."
  type        = number
  default     = 90
}

variable "kms_rotation_period" {
  description = "Rotation period of the KMS crypto key (90 days)."
  type        = string
  default     = "7776000s"
}

variable "gke_namespace" {
  description = "Kubernetes namespace whose service accounts get Workload Identity (Kubernetes alternative)."
  type        = string
  default     = "pull"
}

variable "enable_workload_identity_bindings" {
  description = "Bind the Kubernetes service accounts (requires a GKE cluster with Workload Identity in this project)."
  type        = bool
  default     = false
}

variable "web_image" {
  description = "Initial web app image; later revisions are rolled by the deploy workflow."
  type        = string
}

variable "web_cpu" {
  description = "CPU limit of a web app instance."
  type        = string
  default     = "1"
}

variable "web_memory" {
  description = "Memory limit of a web app instance."
  type        = string
  default     = "512Mi"
}

variable "web_min_instances" {
  description = "Web app instances kept warm."
  type        = number
  default     = 1
}

variable "web_max_instances" {
  description = "Upper bound of web app instances."
  type        = number
  default     = 10
}
