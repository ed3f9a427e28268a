# PULL infrastructure on GCP: the runbook's resources, one environment per state.
#   google_sql_database_instance.main   Cloud SQL PostgreSQL 16 (regional HA)
#   google_redis_instance.main          Memorystore Redis
#   google_cloud_run_v2_service.api     `pull api`
#   google_cloud_run_v2_service.worker  `pull worker`
#   google_cloud_run_v2_service.web     `pull web` (the web app, a client of the API)
#   google_kms_key_ring.main            encryption keys
#   google_storage_bucket.backups       logical backups (deploy/backup/backup.sh)
#   google_vpc_access_connector.main    Cloud Run -> private network

locals {
  name_prefix = "pull-${var.environment}"
  # Cloud Run service names used by the runbook and the deploy workflows.
  service_suffix      = var.environment == "production" ? "" : "-${var.environment}"
  api_service_name    = "pull-api${local.service_suffix}"
  worker_service_name = "pull-temporal-worker${local.service_suffix}"
  web_service_name    = "pull-web${local.service_suffix}"

  # Secret Manager secret ids are pull-<env>-<name>; the key is the environment variable.
  secrets = {
    JWT_SECRET                        = "jwt-secret"
    DATABASE_URL                      = "database-url"
    REDIS_URL                         = "redis-url"
    INTERNAL_API_KEY                  = "internal-api-key"
    FIELD_ENCRYPTION_KEYS             = "field-encryption-keys"
    PLAID_CLIENT_ID                   = "plaid-client-id"
    PLAID_SECRET                      = "plaid-secret"
    SENTRY_DSN                        = "sentry-dsn"
    PERSONA_WEBHOOK_SECRET            = "persona-webhook-secret"
    CHECKR_WEBHOOK_SECRET             = "checkr-webhook-secret"
    PARALLEL_MARKETS_WEBHOOK_SECRET   = "parallel-markets-webhook-secret"
    TWILIO_ACCOUNT_SID                = "twilio-account-sid"
    TWILIO_AUTH_TOKEN                 = "twilio-auth-token"
    TWILIO_VERIFY_SERVICE_SID         = "twilio-verify-service-sid"
    MATRIX_HOMESERVER_URL             = "matrix-homeserver-url"
    MATRIX_REGISTRATION_SHARED_SECRET = "matrix-registration-shared-secret"
    METRICS_TOKEN                     = "metrics-token"
    # Email (docs/email.md): Nylas v3 and, optionally, Anthropic reply drafts (empty: sandbox)
    NYLAS_API_KEY        = "nylas-api-key"
    NYLAS_CLIENT_ID      = "nylas-client-id"
    NYLAS_WEBHOOK_SECRET = "nylas-webhook-secret"
    ANTHROPIC_API_KEY    = "anthropic-api-key"
  }

  labels = {
    app         = "pull"
    environment = var.environment
    managed-by  = "terraform"
  }

  services = [
    "compute.googleapis.com",
    "sqladmin.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "cloudkms.googleapis.com",
    "secretmanager.googleapis.com",
    "vpcaccess.googleapis.com",
    "servicenetworking.googleapis.com",
    "iam.googleapis.com",
    "artifactregistry.googleapis.com",
  ]
}

resource "google_project_service" "enabled" {
  for_each = toset(local.services)

  service            = each.value
  disable_on_destroy = false
}

# --- Network ---------------------------------------------------------------------------------

resource "google_compute_network" "main" {
  name                    = "${local.name_prefix}-vpc"
  auto_create_subnetworks = false

  depends_on = [google_project_service.enabled]
}

resource "google_compute_subnetwork" "main" {
  name                     = "${local.name_prefix}-subnet"
  ip_cidr_range            = var.subnet_cidr
  region                   = var.region
  network                  = google_compute_network.main.id
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Nothing in this VPC accepts traffic from outside; Cloud Run reaches the private services through
# the VPC access connector and Cloud SQL/Memorystore sit in the peered range.
resource "google_compute_firewall" "deny_all_ingress" {
  name      = "${local.name_prefix}-deny-all-ingress"
  network   = google_compute_network.main.name
  direction = "INGRESS"
  priority  = 65534

  deny {
    protocol = "all"
  }

  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "allow_internal" {
  name      = "${local.name_prefix}-allow-internal"
  network   = google_compute_network.main.name
  direction = "INGRESS"
  priority  = 1000

  allow {
    protocol = "tcp"
    ports    = ["5432", "6378", "6379", "7233"]
  }

  source_ranges = [var.subnet_cidr, var.vpc_connector_cidr]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_global_address" "private_services" {
  name          = "${local.name_prefix}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  address       = var.private_services_address
  prefix_length = var.private_services_prefix_length
  network       = google_compute_network.main.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.main.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}

resource "google_vpc_access_connector" "main" {
  name          = "${local.name_prefix}-conn"
  region        = var.region
  network       = google_compute_network.main.name
  ip_cidr_range = var.vpc_connector_cidr
  min_instances = var.vpc_connector_min_instances
  max_instances = var.vpc_connector_max_instances

  depends_on = [google_project_service.enabled]
}

# --- Container images ------------------------------------------------------------------------
# Deploys reference images by commit tag; immutable tags mean a tag always names one digest.

resource "google_artifact_registry_repository" "images" {
  repository_id = "pull"
  location      = var.region
  format        = "DOCKER"
  description   = "PULL API and worker images"
  labels        = local.labels

  kms_key_name = google_kms_crypto_key.main.id

  docker_config {
    immutable_tags = true
  }

  depends_on = [google_kms_crypto_key_iam_member.artifact_registry]
}

data "google_project" "this" {
  project_id = var.project_id
}

# The Artifact Registry service agent encrypts image layers with the key.
resource "google_kms_crypto_key_iam_member" "artifact_registry" {
  crypto_key_id = google_kms_crypto_key.main.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
}

# --- KMS -------------------------------------------------------------------------------------

resource "google_kms_key_ring" "main" {
  name     = "${local.name_prefix}-keyring"
  location = var.region

  depends_on = [google_project_service.enabled]
}

resource "google_kms_crypto_key" "main" {
  name            = "${local.name_prefix}-key"
  key_ring        = google_kms_key_ring.main.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.kms_rotation_period

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = "SOFTWARE"
  }

  lifecycle {
    prevent_destroy = true
  }
}

data "google_storage_project_service_account" "gcs" {}

# The Cloud Storage service agent encrypts backup objects with the key.
resource "google_kms_crypto_key_iam_member" "gcs_backups" {
  crypto_key_id = google_kms_crypto_key.main.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# --- PostgreSQL (Cloud SQL) -----------------------------------------------------------------

resource "google_sql_database_instance" "main" {
  name                = "${local.name_prefix}-postgres"
  database_version    = "POSTGRES_16"
  region              = var.region
  deletion_protection = var.db_deletion_protection

  settings {
    tier              = var.db_tier
    edition           = "ENTERPRISE"
    availability_type = "REGIONAL"
    disk_type         = "PD_SSD"
    disk_size         = var.db_disk_size_gb
    disk_autoresize   = true
    user_labels       = local.labels

    backup_configuration {
      enabled                        = true
      start_time                     = "03:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = var.db_retained_backups
        retention_unit   = "COUNT"
      }
    }

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.main.id
      enable_private_path_for_google_cloud_services = true
      ssl_mode                                      = "ENCRYPTED_ONLY"
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = true
      record_client_address   = false
    }

    database_flags {
      name  = "max_connections"
      value = tostring(var.db_max_connections)
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "pull" {
  name     = "pull"
  instance = google_sql_database_instance.main.name
}

resource "random_password" "db" {
  length  = 40
  special = false
}

resource "google_sql_user" "pull" {
  name     = "pull"
  instance = google_sql_database_instance.main.name
  password = random_password.db.result
}

# --- Redis (Memorystore) --------------------------------------------------------------------

resource "google_redis_instance" "main" {
  name               = "${local.name_prefix}-redis"
  region             = var.region
  tier               = var.redis_tier
  memory_size_gb     = var.redis_memory_size_gb
  redis_version      = "REDIS_7_2"
  authorized_network = google_compute_network.main.id
  connect_mode       = "PRIVATE_SERVICE_ACCESS"
  auth_enabled       = true
  # TLS in transit: clients use rediss:// with the server CA (server_ca_certs output).
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  labels                  = local.labels

  # Runbook: RDB snapshots every 12 hours.
  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = "TWELVE_HOURS"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 4
        minutes = 0
        seconds = 0
        nanos   = 0
      }
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

# --- Secrets ---------------------------------------------------------------------------------

resource "google_secret_manager_secret" "app" {
  for_each = local.secrets

  secret_id = "${local.name_prefix}-${each.value}"
  labels    = merge(local.labels, { env_var = lower(each.key) })

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# The two secrets derived from infrastructure get their value here; the others are added by an
# operator: echo -n "$VALUE" | gcloud secrets versions add pull-<env>-<name> --data-file=-
resource "google_secret_manager_secret_version" "database_url" {
  secret      = google_secret_manager_secret.app["DATABASE_URL"].id
  secret_data = "postgresql+asyncpg://${google_sql_user.pull.name}:${random_password.db.result}@${google_sql_database_instance.main.private_ip_address}:5432/${google_sql_database.pull.name}?ssl=require"
}

resource "google_secret_manager_secret_version" "redis_url" {
  secret      = google_secret_manager_secret.app["REDIS_URL"].id
  secret_data = "rediss://:${google_redis_instance.main.auth_string}@${google_redis_instance.main.host}:${google_redis_instance.main.port}/0"
}

# --- Service accounts and IAM ---------------------------------------------------------------

resource "google_service_account" "api" {
  account_id   = "${local.name_prefix}-api"
  display_name = "PULL ${var.environment} API"
}

resource "google_service_account" "worker" {
  account_id   = "${local.name_prefix}-worker"
  display_name = "PULL ${var.environment} Temporal worker"
}

# The web process holds no application secret but its own cookie key: it reaches only the API.
resource "google_service_account" "web" {
  account_id   = "${local.name_prefix}-web"
  display_name = "PULL ${var.environment} web app"
}

resource "google_service_account" "secrets" {
  account_id   = "${local.name_prefix}-secrets"
  display_name = "PULL ${var.environment} External Secrets Operator"
}

resource "google_service_account" "backup" {
  account_id   = "${local.name_prefix}-backup"
  display_name = "PULL ${var.environment} database backups"
}

resource "google_project_iam_member" "api_sql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${google_service_account.api.email}"
}

resource "google_project_iam_member" "worker_sql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_project_iam_member" "backup_sql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${google_service_account.backup.email}"
}

locals {
  secret_readers = {
    api     = google_service_account.api.email
    worker  = google_service_account.worker.email
    secrets = google_service_account.secrets.email
  }
  secret_access = {
    for pair in setproduct(keys(local.secret_readers), keys(local.secrets)) :
    "${pair[0]}/${pair[1]}" => { reader = pair[0], secret = pair[1] }
  }
}

resource "google_secret_manager_secret_iam_member" "access" {
  for_each = local.secret_access

  secret_id = google_secret_manager_secret.app[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.secret_readers[each.value.reader]}"
}

resource "google_storage_bucket_iam_member" "backup_writer" {
  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.backup.email}"
}

# Kubernetes alternative: Workload Identity for the service accounts in
# deploy/kubernetes/service-accounts.yaml.
locals {
  workload_identity = var.enable_workload_identity_bindings ? {
    "pull-api-sa"     = google_service_account.api.name
    "pull-migrate-sa" = google_service_account.api.name
    "pull-worker-sa"  = google_service_account.worker.name
    "pull-secrets-sa" = google_service_account.secrets.name
  } : {}
}

resource "google_service_account_iam_member" "workload_identity" {
  for_each = local.workload_identity

  service_account_id = each.value
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.gke_namespace}/${each.key}]"
}

# Who read or wrote which backup object: Cloud Audit Logs data-access logs for Cloud Storage.
resource "google_project_iam_audit_config" "storage" {
  project = var.project_id
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}

# --- Backups bucket ----------------------------------------------------------------------------

resource "google_storage_bucket" "backups" {
  name                        = "${var.project_id}-${local.name_prefix}-backups"
  location                    = "US"
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.main.id
  }

  lifecycle_rule {
    condition {
      age = var.backup_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_backups]
}

# --- Cloud Run ---------------------------------------------------------------------------------
# Images are rolled by the deploy workflows (gcloud run deploy); Terraform owns everything else.

resource "google_cloud_run_v2_service" "api" {
  name                = local.api_service_name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.environment == "production"
  labels              = local.labels

  template {
    service_account                  = google_service_account.api.email
    timeout                          = "60s"
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = var.api_min_instances
      max_instance_count = var.api_max_instances
    }

    vpc_access {
      connector = google_vpc_access_connector.main.id
      egress    = "PRIVATE_RANGES_ONLY"
    }

    containers {
      image = var.api_image

      ports {
        container_port = 3001
      }

      resources {
        limits = {
          cpu    = var.api_cpu
          memory = var.api_memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      env {
        name  = "ENVIRONMENT"
        value = var.environment
      }
      env {
        name  = "TEMPORAL_ADDRESS"
        value = var.temporal_address
      }
      env {
        name  = "TEMPORAL_NAMESPACE"
        value = var.temporal_namespace
      }
      env {
        name  = "CORS_ORIGINS"
        value = var.cors_origins
      }
      env {
        name  = "EMAIL_CALLBACK_URL"
        value = var.email_callback_url
      }
      env {
        name  = "TRUST_PROXY"
        value = "true"
      }
      env {
        name  = "OTEL_SERVICE_NAME"
        value = "pull-api"
      }

      dynamic "env" {
        for_each = local.secrets
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.app[env.key].secret_id
              version = "latest"
            }
          }
        }
      }

      startup_probe {
        period_seconds    = 2
        failure_threshold = 30
        http_get {
          path = "/health/live"
          port = 3001
        }
      }

      liveness_probe {
        period_seconds = 10
        http_get {
          path = "/health/live"
          port = 3001
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
    ]
  }

  depends_on = [google_secret_manager_secret_iam_member.access]
}

resource "google_cloud_run_v2_service_iam_member" "api_public" {
  count = var.api_public ? 1 : 0

  name     = google_cloud_run_v2_service.api.name
  location = google_cloud_run_v2_service.api.location
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_service" "worker" {
  name                = local.worker_service_name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.environment == "production"
  labels              = local.labels

  template {
    service_account = google_service_account.worker.email
    timeout         = "3600s"

    scaling {
      min_instance_count = var.worker_min_instances
      max_instance_count = var.worker_max_instances
    }

    vpc_access {
      connector = google_vpc_access_connector.main.id
      egress    = "PRIVATE_RANGES_ONLY"
    }

    containers {
      image = var.worker_image

      # The worker's Prometheus endpoint is the port Cloud Run probes.
      ports {
        container_port = 9090
      }

      resources {
        limits = {
          cpu    = var.worker_cpu
          memory = var.worker_memory
        }
        # Temporal workers poll: CPU must stay allocated between requests.
        cpu_idle = false
      }

      env {
        name  = "ENVIRONMENT"
        value = var.environment
      }
      env {
        name  = "METRICS_PORT"
        value = "9090"
      }
      env {
        name  = "TEMPORAL_ADDRESS"
        value = var.temporal_address
      }
      env {
        name  = "TEMPORAL_NAMESPACE"
        value = var.temporal_namespace
      }
      env {
        name  = "TEMPORAL_TASK_QUEUE"
        value = "pull-main-queue"
      }
      env {
        name  = "OTEL_SERVICE_NAME"
        value = "pull-temporal-worker"
      }

      dynamic "env" {
        for_each = local.secrets
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.app[env.key].secret_id
              version = "latest"
            }
          }
        }
      }

      startup_probe {
        period_seconds    = 2
        failure_threshold = 60
        http_get {
          path = "/metrics"
          port = 9090
        }
      }

      liveness_probe {
        period_seconds = 15
        http_get {
          path = "/metrics"
          port = 9090
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
    ]
  }

  depends_on = [google_secret_manager_secret_iam_member.access]
}

# --- Web app ---------------------------------------------------------------------------------
# `pull web` (port 3000) is only a client of the public API: it gets the API's URL and the key
# that encrypts its session cookie, nothing else (no database, Redis or VPC access).

resource "google_secret_manager_secret" "web_session" {
  secret_id = "${local.name_prefix}-web-session-secret"
  labels    = merge(local.labels, { env_var = "web_session_secret" })

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "random_password" "web_session" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret_version" "web_session" {
  secret      = google_secret_manager_secret.web_session.id
  secret_data = random_password.web_session.result
}

resource "google_secret_manager_secret_iam_member" "web_session" {
  for_each = {
    web     = google_service_account.web.email
    secrets = google_service_account.secrets.email
  }

  secret_id = google_secret_manager_secret.web_session.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value}"
}

resource "google_cloud_run_v2_service" "web" {
  name                = local.web_service_name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.environment == "production"
  labels              = local.labels

  template {
    service_account                  = google_service_account.web.email
    timeout                          = "3600s" # /stream relays the API's Server-Sent Events
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = var.web_min_instances
      max_instance_count = var.web_max_instances
    }

    containers {
      image = var.web_image

      ports {
        container_port = 3000
      }

      resources {
        limits = {
          cpu    = var.web_cpu
          memory = var.web_memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      env {
        name  = "ENVIRONMENT"
        value = var.environment
      }
      env {
        name  = "WEB_API_URL"
        value = google_cloud_run_v2_service.api.uri
      }
      env {
        name  = "TRUST_PROXY"
        value = "true"
      }
      env {
        name = "WEB_SESSION_SECRET"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.web_session.secret_id
            version = "latest"
          }
        }
      }

      startup_probe {
        period_seconds    = 2
        failure_threshold = 30
        http_get {
          path = "/health/live"
          port = 3000
        }
      }

      liveness_probe {
        period_seconds = 10
        http_get {
          path = "/health/live"
          port = 3000
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
    ]
  }

  depends_on = [google_secret_manager_secret_iam_member.web_session]
}

resource "google_cloud_run_v2_service_iam_member" "web_public" {
  name     = google_cloud_run_v2_service.web.name
  location = google_cloud_run_v2_service.web.location
  role     = "roles/run.invoker"
  member   = "allUsers"
}
