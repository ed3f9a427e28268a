#!/usr/bin/env bash
# Restore a backup made by backup.sh into a target database.
#
#   restore.sh [--create] [--clean] SOURCE TARGET_DATABASE_URL
#
#   SOURCE               a local .dump file or a gs:// URI (downloaded with gcloud/gsutil)
#   TARGET_DATABASE_URL  postgresql://, postgresql+asyncpg:// or postgres:// URL of the target
#   --create             create the target database first (it must not exist)
#   --clean              allow restoring over a database that already has tables (drops them)
#
# Without --clean the target must be empty: a restore never silently merges into live data.
# Environment: PG_BIN, a directory holding pg_restore/psql/createdb (default: from PATH).
set -euo pipefail

log() { printf '%s restore: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

pg_tool() {
  if [[ -n "${PG_BIN:-}" ]]; then
    [[ -x "${PG_BIN}/$1" ]] || die "PG_BIN=${PG_BIN} has no executable $1"
    printf '%s/%s' "${PG_BIN}" "$1"
  else
    command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH (set PG_BIN)"
    printf '%s' "$1"
  fi
}

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
  printf '%s' "$rest"
}

# Same server and query string, database "postgres".
maintenance_url() {
  local url="$1" query=""
  if [[ "$url" == *\?* ]]; then query="?${url#*\?}"; fi
  local base="${url%%\?*}"
  printf '%s/postgres%s' "${base%/*}" "$query"
}

download() {
  local src="$1" dest="$2"
  if command -v gcloud >/dev/null 2>&1; then
    gcloud storage cp --quiet "$src" "$dest" >&2
  elif command -v gsutil >/dev/null 2>&1; then
    gsutil -q cp "$src" "$dest" >&2
  else
    die "${src} needs gcloud or gsutil, neither is installed"
  fi
}

main() {
  local create=0 clean=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --create) create=1; shift ;;
      --clean) clean=1; shift ;;
      -h|--help) usage ;;
      --) shift; break ;;
      -*) die "unknown option $1" ;;
      *) break ;;
    esac
  done
  [[ $# -eq 2 ]] || usage
  local source="$1" url name psql pg_restore createdb file
  url="$(libpq_url "$2")"
  name="$(db_name "$url")"
  [[ -n "$name" ]] || die "target URL names no database"
  psql="$(pg_tool psql)"
  pg_restore="$(pg_tool pg_restore)"

  WORK_DIR="$(mktemp -d)"
  trap 'rm -rf "$WORK_DIR"' EXIT
  if [[ "$source" == gs://* ]]; then
    file="${WORK_DIR}/$(basename "$source")"
    log "downloading ${source}"
    download "$source" "$file"
    download "${source}.sha256" "${file}.sha256" 2>/dev/null || log "no checksum file next to ${source}"
  else
    [[ -f "$source" ]] || die "backup file ${source} does not exist"
    file="$source"
  fi
  if [[ -f "${file}.sha256" ]]; then
    (cd "$(dirname "$file")" && sha256sum --check --status "$(basename "$file").sha256") \
      || die "checksum mismatch for ${file}"
    log "checksum verified"
  fi
  "$pg_restore" --list "$file" >/dev/null || die "${file} is not a pg_dump custom-format archive"

  if [[ "$create" == 1 ]]; then
    createdb="$(pg_tool createdb)"
    log "creating database ${name}"
    "$createdb" --maintenance-db="$(maintenance_url "$url")" "$name"
  fi

  local tables
  tables="$("$psql" "$url" -v ON_ERROR_STOP=1 -tAc \
    "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")"
  local args=(--no-owner --no-privileges --exit-on-error --single-transaction --dbname="$url")
  if [[ "$tables" != "0" ]]; then
    [[ "$clean" == 1 ]] || die "target database ${name} has ${tables} tables; use --clean to replace them"
    args+=(--clean --if-exists)
  fi
  log "restoring $(basename "$file") into ${name}"
  "$pg_restore" "${args[@]}" "$file"
  log "restore complete"
}

main "$@"
