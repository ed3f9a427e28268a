"""Typed errors of the analytics module (rendered in the standard error envelope)."""

from __future__ import annotations

from pull.kit.errors import ServiceUnavailable


class AnalyticsUnavailable(ServiceUnavailable):
    code = "ANALYTICS_UNAVAILABLE"
    message = "The analytics store is not available"
