"""Prometheus metrics of the email module (exported by both the API and the worker, since
both import this module): webhook outcomes and stored messages by source."""

from __future__ import annotations

from prometheus_client import Counter

WEBHOOKS = Counter(
    "email_webhooks_received",
    "Nylas notifications received, by outcome (applied, duplicate, ignored, rejected)",
    ["outcome"],
)
MESSAGES = Counter(
    "email_messages_synced",
    "Messages stored or refreshed, by source (backfill, webhook, fetch, sent)",
    ["source"],
)
for _outcome in ("applied", "duplicate", "ignored", "rejected"):
    WEBHOOKS.labels(_outcome)
for _source in ("backfill", "webhook", "fetch", "sent"):
    MESSAGES.labels(_source)
