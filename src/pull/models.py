"""Every table's model, imported so that Alembic sees the whole schema."""

from pull.identity.models import (
    ApiKey,
    AuditLog,
    AuthSession,
    OneTimeToken,
    OutboundEmail,
    RecoveryCode,
    RefreshToken,
    User,
)
from pull.kit.db import Base
from pull.kit.outbox import OutboxEvent
from pull.kyc.models import KycLimitUsage, KycProfile

__all__ = [
    "ApiKey",
    "AuditLog",
    "AuthSession",
    "Base",
    "KycLimitUsage",
    "KycProfile",
    "OneTimeToken",
    "OutboundEmail",
    "OutboxEvent",
    "RecoveryCode",
    "RefreshToken",
    "User",
]
