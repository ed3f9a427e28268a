"""Every table's model, imported so that Alembic sees the whole schema."""

from pull.exchange.models import (
    Candle,
    Event,
    Fill,
    Market,
    Order,
    Position,
    Series,
    Settlement,
    Trade,
)
from pull.funding.models import (
    BankAccount,
    Deposit,
    FundingStatusChange,
    PlaidCursor,
    PlaidTransferEvent,
    Withdrawal,
)
from pull.identity.models import (
    ApiKey,
    AuditLog,
    AuthSession,
    OneTimeToken,
    OutboundEmail,
    OutboundSms,
    PhoneVerification,
    RecoveryCode,
    RefreshToken,
    User,
)
from pull.kit.db import Base
from pull.kit.idempotency import IdempotencyRecord
from pull.kit.outbox import OutboxEvent
from pull.kyc.models import KycApplication, KycLimitUsage, KycProfile, KycWebhookEvent
from pull.ledger.models import LedgerAccount, LedgerEntry, LedgerTransfer

__all__ = [
    "ApiKey",
    "AuditLog",
    "AuthSession",
    "BankAccount",
    "Base",
    "Candle",
    "Deposit",
    "Event",
    "Fill",
    "FundingStatusChange",
    "IdempotencyRecord",
    "KycApplication",
    "KycLimitUsage",
    "KycProfile",
    "KycWebhookEvent",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransfer",
    "Market",
    "OneTimeToken",
    "Order",
    "OutboundEmail",
    "OutboundSms",
    "OutboxEvent",
    "PhoneVerification",
    "PlaidCursor",
    "PlaidTransferEvent",
    "Position",
    "RecoveryCode",
    "RefreshToken",
    "Series",
    "Settlement",
    "Trade",
    "User",
    "Withdrawal",
]
