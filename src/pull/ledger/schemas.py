"""Public data types of the ledger (service contract) and its API shapes."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

Currency = Literal["USD", "PTS"]
CURRENCIES: frozenset[str] = frozenset({"USD", "PTS"})
# Shares of one real-world asset are a currency of their own ("RWA" + the asset's number), so
# ownership is double-entry like cash (docs/rwa.md). Users hold them in a `shares` account.
SHARE_CURRENCY = re.compile(r"^RWA[0-9]{1,12}$")


def is_share_currency(currency: str) -> bool:
    return SHARE_CURRENCY.match(currency) is not None


# Kinds of a user's accounts. `instant_credit` is a memo account: it counts the part of the
# cash balance credited ahead of a deposit's settlement (spendable, not withdrawable) and is
# not part of the user's money (see docs/money.md).
USER_KINDS: frozenset[str] = frozenset(
    {"cash", "held", "pending_deposits", "points", "instant_credit", "shares"}
)
# Well-known system accounts (any name matching SYSTEM_NAME is allowed, e.g. per market).
SYSTEM_ACCOUNTS: frozenset[str] = frozenset(
    {
        "bank_clearing",
        "fee_revenue",
        "market_escrow",
        "rewards_pool",
        "negative_balance_recovery",
        "instant_credit_issued",
    }
)
SYSTEM_NAME = re.compile(r"^[a-z][a-z0-9_.:\-]{0,99}$")


@dataclass(frozen=True, slots=True)
class AccountRef:
    """An account by its business key: (owner user or None for system, currency, kind/name)."""

    owner_id: uuid.UUID | None
    kind: str
    currency: str = "USD"

    def __post_init__(self) -> None:
        if self.currency not in CURRENCIES and not is_share_currency(self.currency):
            raise ValueError(f"unknown currency {self.currency!r}")
        if self.owner_id is None:
            if not SYSTEM_NAME.match(self.kind):
                raise ValueError(f"invalid system account name {self.kind!r}")
        else:
            if self.kind not in USER_KINDS:
                raise ValueError(f"unknown user account kind {self.kind!r}")
            if (self.kind == "points") != (self.currency == "PTS"):
                raise ValueError("user points accounts are in PTS, every other kind in USD")
            if (self.kind == "shares") != is_share_currency(self.currency):
                raise ValueError("user shares accounts are in a share currency (RWA<n>)")

    @property
    def is_system(self) -> bool:
        return self.owner_id is None

    def label(self) -> str:
        owner = "system" if self.owner_id is None else str(self.owner_id)
        return f"{owner}:{self.kind}:{self.currency}"


def user_account(user_id: uuid.UUID, kind: str, currency: str = "USD") -> AccountRef:
    return AccountRef(owner_id=user_id, kind=kind, currency=currency)


def system_account(name: str, currency: str = "USD") -> AccountRef:
    return AccountRef(owner_id=None, kind=name, currency=currency)


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a transfer: a signed amount in minor units (credit positive)."""

    account: AccountRef
    amount: int

    def __post_init__(self) -> None:
        if type(self.amount) is not int:  # bool and float are refused: money is int
            raise TypeError("leg amounts are integers (minor units)")


TransferStatus = Literal["posted", "pending", "voided"]


@dataclass(frozen=True, slots=True)
class TransferRead:
    id: int
    idempotency_key: str
    kind: str
    status: str
    pending: bool
    legs: tuple[Leg, ...]
    reference: str | None = None
    metadata: dict[str, Any] | None = None
    pending_id: int | None = None
    created_at: dt.datetime | None = None
    replayed: bool = False

    def amount_for(self, account: AccountRef) -> int:
        return sum(leg.amount for leg in self.legs if leg.account == account)


@dataclass(frozen=True, slots=True)
class Balance:
    """A user's USD position in cents; see docs/money.md for the definitions."""

    available: int
    held: int
    pending_deposits: int
    withdrawable: int
    total: int


class BalanceRead(BaseModel):
    available: int = Field(description="Cash that can be spent now: cash minus open holds")
    held: int = Field(description="Reserved by open orders and pending withdrawals")
    pending_deposits: int = Field(description="Deposits initiated but not yet credited")
    withdrawable: int = Field(description="Available minus instant credit not yet settled")
    total: int = Field(description="available + held + pending_deposits")
    currency: Literal["USD"] = "USD"


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    currency: str
    balance: int
    pending_debits: int
    pending_credits: int
    accounts: int

    @property
    def balanced(self) -> bool:
        return self.balance == 0 and self.pending_debits == self.pending_credits


@dataclass(frozen=True, slots=True)
class AccountMismatch:
    account_id: int
    account: str
    balance: int
    entries_sum: int
    pending_debits: int
    pending_debits_from_entries: int
    pending_credits: int
    pending_credits_from_entries: int


@dataclass(frozen=True, slots=True)
class TrialBalance:
    currencies: list[CurrencyTotal]
    mismatches: list[AccountMismatch] = field(default_factory=list)
    unbalanced_transfers: list[int] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return (
            all(c.balanced for c in self.currencies)
            and not self.mismatches
            and not self.unbalanced_transfers
        )


class CurrencyTotalRead(BaseModel):
    currency: str
    balance: int = Field(description="Sum of every account's posted balance: must be 0")
    pending_debits: int
    pending_credits: int
    accounts: int
    balanced: bool


class AccountMismatchRead(BaseModel):
    account_id: int
    account: str
    balance: int
    entries_sum: int
    pending_debits: int
    pending_debits_from_entries: int
    pending_credits: int
    pending_credits_from_entries: int


class TrialBalanceRead(BaseModel):
    balanced: bool
    currencies: list[CurrencyTotalRead]
    mismatches: list[AccountMismatchRead]
    unbalanced_transfers: list[int]


# --- the invariant report (docs/money.md, "Invariant report") -------------------------------

# System account classes that must never go negative: the account's kind, or its prefix before
# ":" (`market_escrow:<ticker>`, `fee_revenue:<ticker>`). Every user account must never go
# negative either (class `user`). Other system accounts may (bank_clearing mirrors the bank,
# negative_balance_recovery and instant_credit_issued carry what the house is owed).
NEVER_NEGATIVE_SYSTEM: frozenset[str] = frozenset(
    {"market_escrow", "fee_revenue", "rwa.escrow", "rwa.sale"}
)
# rwa.issued (per share currency) is minus the shares outstanding of an asset (docs/rwa.md).
MAY_GO_NEGATIVE_SYSTEM: frozenset[str] = frozenset(
    {
        "bank_clearing",
        "negative_balance_recovery",
        "instant_credit_issued",
        "rewards_pool",
        "rwa.issued",
    }
)


def account_class(owner_id: uuid.UUID | None, kind: str) -> str:
    """`user`, a known system class, or `other` for any other system account."""
    if owner_id is not None:
        return "user"
    base = kind.split(":", 1)[0]
    if base in NEVER_NEGATIVE_SYSTEM or base in MAY_GO_NEGATIVE_SYSTEM:
        return base
    return "other"


class NegativeAccountRead(BaseModel):
    account: str = Field(description="owner:kind:currency (system accounts summed over shards)")
    balance: int = Field(description="Posted balance")
    available: int = Field(description="Posted balance minus pending debits: below zero here")


class AccountClassRead(BaseModel):
    account_class: str
    members: str = Field(description="Which accounts belong to the class")
    never_negative: bool = Field(description="Whether an account of the class may go negative")
    accounts: int = Field(description="How many accounts the class has")
    negative_count: int = Field(description="How many of them are negative now")
    negative: list[NegativeAccountRead] = Field(description="The negative ones (at most 100)")


class LedgerInvariantsRead(BaseModel):
    ok: bool = Field(description="No account of a never-negative class is negative")
    classes: list[AccountClassRead]


@dataclass(frozen=True, slots=True)
class Transaction:
    """One entry on one of a user's accounts, with its transfer."""

    entry_id: int
    transfer_id: int
    kind: str
    account: str
    currency: str
    amount: int
    balance_after: int
    status: str
    pending: bool
    reference: str | None
    created_at: dt.datetime


class TransactionRead(BaseModel):
    id: int = Field(description="Entry id")
    transfer_id: int
    kind: str = Field(description="What moved the money: deposit, withdrawal, fee, trade, ...")
    account: str = Field(description="cash, held, pending_deposits or points")
    currency: str
    amount: int = Field(description="Signed minor units: positive credits the account")
    balance_after: int = Field(description="The account's posted balance after this entry")
    status: str = Field(description="posted, pending (a hold) or voided")
    pending: bool
    reference: str | None
    created_at: dt.datetime


class TransactionPage(BaseModel):
    items: list[TransactionRead]
    cursor: str | None = None
