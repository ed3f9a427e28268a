project_id  = "pull-staging"
region      = "us-central1"
environment = "staging"

db_tier                = "db-custom-1-3840"
db_disk_size_gb        = 20
db_max_connections     = 200
db_retained_backups    = 7
db_deletion_protection = false

redis_tier           = "BASIC"
redis_memory_size_gb = 1

# Bootstrap image for the first apply only: the deploy workflows roll real images
# (pushed by commit tag to the immutable Artifact Registry repo) and Terraform ignores them.
api_image         = "us-docker.pkg.dev/cloudrun/container/hello:latest"
worker_image      = "us-docker.pkg.dev/cloudrun/container/hello:latest"
web_image         = "us-docker.pkg.dev/cloudrun/container/hello:latest"
api_cpu           = "1"
api_memory        = "1Gi"
api_min_instances = 0
api_max_instances = 5

# Runbook: staging workers 2Gi, 2 CPU, 1..10 instances.
worker_cpu           = "2"
worker_memory        = "2Gi"
worker_min_instances = 1
worker_max_instances = 10

temporal_address   = "pull-staging.tmprl.cloud:7233"
temporal_namespace = "pull-staging"
cors_origins       = "https://app-staging.pull.com"
email_callback_url = "https://app-staging.pull.com/mail/callback"

backup_retention_days = 30
