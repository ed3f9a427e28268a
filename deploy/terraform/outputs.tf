output "sql_instance_name" {
  description = "Cloud SQL instance name."
  value       = google_sql_database_instance.main.name
}

output "sql_connection_name" {
  description = "project:region:instance, for the Cloud SQL Auth Proxy."
  value       = google_sql_database_instance.main.connection_name
}

output "sql_private_ip" {
  description = "Private address of the PostgreSQL instance."
  value       = google_sql_database_instance.main.private_ip_address
}

output "redis_host" {
  description = "Memorystore host."
  value       = google_redis_instance.main.host
}

output "redis_port" {
  description = "Memorystore port."
  value       = google_redis_instance.main.port
}

output "redis_server_ca_certs" {
  description = "CA certificates for rediss:// connections."
  value       = google_redis_instance.main.server_ca_certs
  sensitive   = true
}

output "api_url" {
  description = "Cloud Run URL of the API."
  value       = google_cloud_run_v2_service.api.uri
}

output "api_service_name" {
  description = "Cloud Run service name of the API."
  value       = google_cloud_run_v2_service.api.name
}

output "worker_service_name" {
  description = "Cloud Run service name of the worker."
  value       = google_cloud_run_v2_service.worker.name
}

output "backups_bucket" {
  description = "Bucket for deploy/backup/backup.sh (BACKUP_BUCKET=gs://<this>)."
  value       = google_storage_bucket.backups.name
}

output "kms_crypto_key_id" {
  description = "KMS key that encrypts the backups bucket."
  value       = google_kms_crypto_key.main.id
}

output "vpc_connector_id" {
  description = "Serverless VPC Access connector used by Cloud Run."
  value       = google_vpc_access_connector.main.id
}

output "secret_ids" {
  description = "Secret Manager secret id per environment variable."
  value       = { for k, s in google_secret_manager_secret.app : k => s.secret_id }
}

output "service_accounts" {
  description = "GCP service account emails."
  value = {
    api     = google_service_account.api.email
    worker  = google_service_account.worker.email
    secrets = google_service_account.secrets.email
    backup  = google_service_account.backup.email
  }
}

output "image_repository" {
  description = "Artifact Registry path the deploy workflows push images to."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "web_url" {
  description = "Cloud Run URL of the web app."
  value       = google_cloud_run_v2_service.web.uri
}
