#!/usr/bin/env bash
# Logical backup of the PULL database: pg_dump -Fc, checked with pg_restore --list, then copied
# to BACKUP_BUCKET when it is set (kept locally otherwise). Complements Cloud SQL's automated
# backups and point-in-time recovery (docs/runbook.md "Backups").
#
# Environment:
#   DATABASE_URL   required; postgresql://, postgresql+asyncpg:// (the app's form) or postgres://
#   BACKUP_DIR     where the dump is written (default: ./backups)
#   BACKUP_BUCKET  gs://bucket[/prefix] to upload to (gcloud storage cp, else gsutil cp)
#   BACKUP_PREFIX  file name prefix (default: pull)
#   PG_BIN         directory holding pg_dump/pg_restore (default: from PATH)
#   KEEP_LOCAL     1 to keep the local file after a successful upload (default 0)
#
# Prints the backup's location (local path or gs:// URI) as the last line of stdout.
set -euo pipefail

log() { printf '%s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pg_tool() {
  if [[ -n "${PG_BIN:-}" ]]; then
    [[ -x "${PG_BIN}/$1" ]] || die "PG_BIN=${PG_BIN} has no executable $1"
    printf '%s/%s' "${PG_BIN}" "$1"
  else
    command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH (set PG_BIN)"
    printf '%s' "$1"
  fi
}

# postgresql+asyncpg://u:p@h:5432/db?ssl=require -> postgresql://u:p@h:5432/db?sslmode=require
libpq_url() {
  local url="$1"
  url="$(printf '%s' "$url" | sed -E 's#^postgres(ql)?(\+[a-z0-9_]+)?://#postgresql://#')"
  url="$(printf '%s' "$url" | sed -E 's#([?&])ssl=#\1sslmode=#')"
  printf '%s' "$url"
}

db_name() {
  local rest="${1#*://}"
  rest="${rest#*/}"
  rest="${rest%%\?*}"
  printf '%s' "${rest:-postgres}"
}

upload() {
  local file="$1" dest="$2"
  if command -v gcloud >/dev/null 2>&1; then
    gcloud storage cp --quiet "$file" "$dest" >&2
  elif command -v gsutil >/dev/null 2>&1; then
    gsutil -q cp "$file" "$dest" >&2
  else
    die "BACKUP_BUCKET is set but neither gcloud nor gsutil is installed"
  fi
}

main() {
  [[ -n "${DATABASE_URL:-}" ]] || die "DATABASE_URL is not set"
  local url dir prefix name stamp file pg_dump pg_restore
  url="$(libpq_url "$DATABASE_URL")"
  dir="${BACKUP_DIR:-./backups}"
  prefix="${BACKUP_PREFIX:-pull}"
  name="$(db_name "$url")"
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  pg_dump="$(pg_tool pg_dump)"
  pg_restore="$(pg_tool pg_restore)"

  mkdir -p "$dir"
  file="${dir%/}/${prefix}-${name}-${stamp}.dump"
  umask 077

  log "dumping database ${name} to ${file}"
  "$pg_dump" --format=custom --compress=6 --no-password --file="${file}.partial" "$url"
  "$pg_restore" --list "${file}.partial" >/dev/null || die "dump ${file}.partial is not readable"
  mv "${file}.partial" "$file"
  (cd "$(dirname "$file")" && sha256sum "$(basename "$file")" >"$(basename "$file").sha256")
  log "dump complete: $(wc -c <"$file") bytes"

  if [[ -n "${BACKUP_BUCKET:-}" ]]; then
    local bucket="${BACKUP_BUCKET%/}"
    [[ "$bucket" == gs://* ]] || bucket="gs://${bucket}"
    local dest
    dest="${bucket}/$(basename "$file")"
    log "uploading to ${dest}"
    upload "$file" "$dest"
    upload "${file}.sha256" "${dest}.sha256"
    if [[ "${KEEP_LOCAL:-0}" != "1" ]]; then
      rm -f "$file" "${file}.sha256"
    fi
    printf '%s\n' "$dest"
  else
    log "BACKUP_BUCKET not set: keeping the backup locally"
    printf '%s\n' "$file"
  fi
}

main "$@"
