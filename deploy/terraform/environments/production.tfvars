project_id  = "pull-production"
region      = "us-central1"
environment = "production"

db_tier                = "db-custom-4-15360"
db_disk_size_gb        = 100
db_max_connections     = 400
db_retained_backups    = 30
db_deletion_protection = true

redis_tier           = "STANDARD_HA"
redis_memory_size_gb = 5

# Bootstrap image for the first apply only: the deploy workflows roll real images
# (pushed by commit tag to the immutable Artifact Registry repo) and Terraform ignores them.
api_image         = "us-docker.pkg.dev/cloudrun/container/hello:latest"
worker_image      = "us-docker.pkg.dev/cloudrun/container/hello:latest"
web_image         = "us-docker.pkg.dev/cloudrun/container/hello:latest"
api_cpu           = "2"
api_memory        = "2Gi"
api_min_instances = 2
api_max_instances = 50

# Runbook: production workers 4Gi, 4 CPU, 2..50 instances.
worker_cpu           = "4"
worker_memory        = "4Gi"
worker_min_instances = 2
worker_max_instances = 50

temporal_address   = "pull-production.tmprl.cloud:7233"
temporal_namespace = "pull-production"
cors_origins       = "https://app.pull.com"
email_callback_url = "https://app.pull.com/mail/callback"

backup_retention_days = 90

enable_workload_identity_bindings = true
