"""Typed errors of the notifications module."""

from __future__ import annotations

from pull.kit.errors import BadRequest, Conflict, NotFound


class NotificationNotFound(NotFound):
    code = "NOTIFICATION_NOT_FOUND"
    message = "Notification not found"


class InvalidTimeZone(BadRequest):
    code = "INVALID_TIME_ZONE"
    message = "Unknown time zone (use an IANA name such as America/New_York)"


class AlertNotFound(NotFound):
    code = "ALERT_NOT_FOUND"
    message = "Price alert not found"


class MarketNotFound(NotFound):
    code = "MARKET_NOT_FOUND"
    message = "Market not found"


class TooManyAlerts(Conflict):
    code = "TOO_MANY_ALERTS"
    message = "Too many active price alerts"


class DeviceNotFound(NotFound):
    code = "DEVICE_NOT_FOUND"
    message = "Device not found"
