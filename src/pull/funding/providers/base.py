"""What funding needs from Plaid, as a Protocol with plain data types.

Amounts cross this boundary as integer cents; only the adapters speak Plaid's decimal strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pull.kit.errors import AppError

TransferType = Literal["debit", "credit"]  # debit: pull from the user's bank (a deposit)
EventType = Literal["pending", "cancelled", "failed", "posted", "settled", "returned"]


class PlaidError(AppError):
    """Plaid refused or could not be reached; `code` is Plaid's error_code when it gave one."""

    status_code = 502
    code = "PLAID_ERROR"
    message = "The bank connection provider failed"


@dataclass(frozen=True)
class LinkToken:
    link_token: str
    expiration: str


@dataclass(frozen=True)
class ExchangedItem:
    access_token: str
    item_id: str


@dataclass(frozen=True)
class BankAccountInfo:
    account_id: str
    name: str
    mask: str | None
    subtype: str | None
    institution_name: str | None = None


@dataclass(frozen=True)
class SandboxLink:
    """What a finished Link session hands the client: the public token and, as Link's
    `onSuccess` metadata, the item's accounts and institution."""

    public_token: str
    accounts: list[BankAccountInfo]
    institution_id: str
    institution_name: str | None


@dataclass(frozen=True)
class Authorization:
    id: str
    decision: str  # approved | declined | user_action_required
    rationale_code: str | None = None
    rationale: str | None = None


@dataclass(frozen=True)
class Transfer:
    id: str
    status: str


@dataclass(frozen=True)
class TransferEvent:
    event_id: int
    transfer_id: str
    event_type: str
    timestamp: str
    failure_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventPage:
    events: list[TransferEvent]
    has_more: bool


class PlaidProvider(Protocol):
    name: str
    is_sandbox: bool

    async def create_link_token(self, *, user_id: str, webhook_url: str) -> LinkToken: ...

    async def sandbox_public_token(
        self, *, username: str, password: str, institution_id: str
    ) -> SandboxLink: ...

    async def exchange_public_token(self, *, public_token: str) -> ExchangedItem: ...

    async def get_accounts(self, *, access_token: str) -> list[BankAccountInfo]: ...

    async def remove_item(self, *, access_token: str) -> None:
        """Plaid's /item/remove: the access token stops working. An item Plaid no longer knows
        (already removed) counts as removed."""
        ...

    async def authorize_transfer(
        self,
        *,
        access_token: str,
        account_id: str,
        type: TransferType,
        amount_cents: int,
        network: str,
        legal_name: str,
        idempotency_key: str,
    ) -> Authorization: ...

    async def create_transfer(
        self,
        *,
        access_token: str,
        account_id: str,
        authorization_id: str,
        amount_cents: int,
        description: str,
        idempotency_key: str,
    ) -> Transfer: ...

    async def sync_transfer_events(self, *, after_id: int, count: int = 25) -> EventPage: ...

    async def webhook_verification_key(self, *, key_id: str) -> dict[str, Any]: ...


def cents_to_decimal(cents: int) -> str:
    """Plaid's amount string ("12.34") from integer cents, without floats."""
    if cents < 0:
        raise ValueError("amounts are positive")
    return f"{cents // 100}.{cents % 100:02d}"


def decimal_to_cents(value: str) -> int:
    """Integer cents from Plaid's decimal string; more than 2 decimals is refused."""
    whole, _, frac = value.strip().partition(".")
    if len(frac) > 2 or not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"not a cents amount: {value!r}")
    return int(whole) * 100 + int((frac + "00")[:2])
