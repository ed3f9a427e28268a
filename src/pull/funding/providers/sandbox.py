"""A Plaid sandbox that behaves like Plaid's own (docs/sandbox.md).

Link: `sandbox_public_token(user_good, pass_good)` stands for a Link session, like Plaid's
/sandbox/public_token/create. Transfers: authorization decisions and the event sequence are
chosen by magic amounts; otherwise every transfer goes pending -> posted -> settled on its own
(PLAID_SANDBOX_*_SECONDS) through a Temporal workflow that appends the event and delivers a
TRANSFER_EVENTS_UPDATE webhook to PLAID_WEBHOOK_URL, signed with the sandbox's ES256 key
exactly as Plaid signs (Plaid-Verification JWT); our endpoint then calls
`sync_transfer_events` as it would call /transfer/event/sync. State lives in Redis so the API
and the worker processes see the same sandbox.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from pull.funding.providers import signing
from pull.funding.providers.base import (
    Authorization,
    BankAccountInfo,
    EventPage,
    ExchangedItem,
    LinkToken,
    PlaidError,
    SandboxLink,
    Transfer,
    TransferEvent,
    TransferType,
    cents_to_decimal,
)

USERNAME = "user_good"
PASSWORD = "pass_good"  # noqa: S105 - Plaid's published sandbox credentials
INSTITUTION = "ins_109508"  # Plaid's "First Platypus Bank"

# Magic amounts (cents), for deposits and withdrawals alike.
DECLINED = 999  # $9.99: authorization declined (NSF)
FAILED = 666  # $6.66: pending -> failed
RETURNED_BEFORE_SETTLEMENT = 888  # $8.88: pending -> posted -> returned
RETURNED_AFTER_SETTLEMENT = 777  # $7.77: pending -> posted -> settled -> returned (R01)

P = "plaid:sandbox:"

# Append an event once per (transfer, type): returns its event id (its 1-based list position).
_APPEND = """
local existing = redis.call('GET', KEYS[2])
if existing then return tonumber(existing) end
local id = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], id)
return id
"""

Starter = Callable[[str, dict[str, Any]], Awaitable[None]]


def plan(amount_cents: int) -> list[tuple[str, str | None]]:
    """The events a sandbox transfer goes through after `pending`: (event_type, failure)."""
    if amount_cents == FAILED:
        return [("failed", "R01: Insufficient funds")]
    if amount_cents == RETURNED_BEFORE_SETTLEMENT:
        return [("posted", None), ("returned", "R01: Insufficient funds")]
    if amount_cents == RETURNED_AFTER_SETTLEMENT:
        return [("posted", None), ("settled", None), ("returned", "R01: Insufficient funds")]
    return [("posted", None), ("settled", None)]


class PlaidSandbox:
    name = "plaid-sandbox"
    is_sandbox = True

    def __init__(self, redis: Redis, *, key_seed: str, starter: Starter | None = None) -> None:
        self.redis = redis
        self.key = signing.sandbox_private_key(key_seed)
        self.jwk = signing.public_jwk(self.key)
        self.starter = starter

    async def _get(self, key: str) -> dict[str, Any] | None:
        raw = await self.redis.get(P + key)
        return None if raw is None else dict(json.loads(raw))

    async def _set(self, key: str, value: dict[str, Any], *, ttl: int | None = None) -> None:
        await self.redis.set(P + key, json.dumps(value), ex=ttl)

    # --- Link ---------------------------------------------------------------------------------

    async def create_link_token(self, *, user_id: str, webhook_url: str) -> LinkToken:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=4)
        return LinkToken(f"link-sandbox-{uuid.uuid4()}", expires.isoformat())

    async def sandbox_public_token(
        self, *, username: str, password: str, institution_id: str
    ) -> SandboxLink:
        if username != USERNAME or password != PASSWORD:
            raise PlaidError(
                "the provided credentials were not correct",
                code="INVALID_CREDENTIALS",
                status_code=400,
            )
        item_id = uuid.uuid4().hex
        accounts = [
            {
                "account_id": _account_id(item_id, "checking"),
                "name": "Plaid Checking",
                "mask": "0000",
                "subtype": "checking",
            },
            {
                "account_id": _account_id(item_id, "savings"),
                "name": "Plaid Saving",
                "mask": "1111",
                "subtype": "savings",
            },
        ]
        token = f"public-sandbox-{uuid.uuid4()}"
        await self._set(
            f"public:{token}",
            {"item_id": item_id, "accounts": accounts, "institution": "First Platypus Bank"},
            ttl=1800,
        )
        return SandboxLink(
            public_token=token,
            accounts=[
                BankAccountInfo(
                    a["account_id"], a["name"], a["mask"], a["subtype"], "First Platypus Bank"
                )
                for a in accounts
            ],
            institution_id=institution_id,
            institution_name="First Platypus Bank",
        )

    async def exchange_public_token(self, *, public_token: str) -> ExchangedItem:
        raw = await self.redis.getdel(P + f"public:{public_token}")
        if raw is None:
            raise PlaidError(
                "provided public token is expired or invalid",
                code="INVALID_PUBLIC_TOKEN",
                status_code=400,
            )
        item = json.loads(raw)
        access_token = f"access-sandbox-{uuid.uuid4()}"
        await self._set(f"item:{access_token}", item)
        return ExchangedItem(access_token, item["item_id"])

    async def _item(self, access_token: str) -> dict[str, Any]:
        item = await self._get(f"item:{access_token}")
        if item is None:
            raise PlaidError(
                "provided access token is invalid", code="INVALID_ACCESS_TOKEN", status_code=400
            )
        return item

    async def get_accounts(self, *, access_token: str) -> list[BankAccountInfo]:
        item = await self._item(access_token)
        return [
            BankAccountInfo(
                a["account_id"], a["name"], a["mask"], a["subtype"], item["institution"]
            )
            for a in item["accounts"]
        ]

    async def remove_item(self, *, access_token: str) -> None:
        """Like /item/remove: the access token stops working; removing twice is harmless."""
        await self.redis.delete(P + f"item:{access_token}")

    # --- Transfers ----------------------------------------------------------------------------

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
    ) -> Authorization:
        item = await self._item(access_token)
        if account_id not in {a["account_id"] for a in item["accounts"]}:
            raise PlaidError("account not found", code="INVALID_ACCOUNT_ID", status_code=400)
        existing = await self._get(f"authorization-key:{idempotency_key}")
        if existing is not None:
            return _authorization(existing["authorization"])
        declined = amount_cents == DECLINED
        authorization = {
            "id": str(uuid.uuid4()),
            "decision": "declined" if declined else "approved",
            "rationale_code": "NSF" if declined else None,
            "rationale": "Transaction declined due to insufficient funds" if declined else None,
        }
        record = {
            "authorization": authorization,
            "account_id": account_id,
            "type": type,
            "amount_cents": amount_cents,
            "network": network,
        }
        await self._set(f"authorization:{authorization['id']}", record)
        await self._set(f"authorization-key:{idempotency_key}", record)
        return _authorization(authorization)

    async def create_transfer(
        self,
        *,
        access_token: str,
        account_id: str,
        authorization_id: str,
        amount_cents: int,
        description: str,
        idempotency_key: str,
    ) -> Transfer:
        await self._item(access_token)
        auth = await self._get(f"authorization:{authorization_id}")
        if auth is None or auth["authorization"]["decision"] != "approved":
            raise PlaidError(
                "authorization is invalid or declined",
                code="TRANSFER_AUTHORIZATION_INVALID",
                status_code=400,
            )
        if amount_cents != auth["amount_cents"] or account_id != auth["account_id"]:
            raise PlaidError(
                "does not match the authorization", code="INVALID_FIELD", status_code=400
            )
        existing = await self._get(f"transfer-by-authorization:{authorization_id}")
        if existing is not None:  # one transfer per authorization, as Plaid does
            transfer_id = str(existing["id"])
        else:
            transfer_id = str(uuid.uuid4())
            record = {
                "id": transfer_id,
                "account_id": account_id,
                "type": auth["type"],
                "amount_cents": amount_cents,
                "description": description,
            }
            if await self.redis.set(
                P + f"transfer-by-authorization:{authorization_id}", json.dumps(record), nx=True
            ):
                await self._set(f"transfer:{transfer_id}", record)
            else:
                again = await self._get(f"transfer-by-authorization:{authorization_id}")
                assert again is not None
                transfer_id = str(again["id"])
        if self.starter is not None:
            await self.starter(
                f"plaid-sandbox-{transfer_id}",
                {"transfer_id": transfer_id, "amount_cents": amount_cents},
            )
        return Transfer(transfer_id, "pending")

    async def transfer(self, transfer_id: str) -> dict[str, Any] | None:
        return await self._get(f"transfer:{transfer_id}")

    async def append_event(
        self, *, transfer_id: str, event_type: str, failure_reason: str | None = None
    ) -> int:
        """Record an event (once per transfer and type); its id, like Plaid's, only grows."""
        transfer = await self.transfer(transfer_id)
        if transfer is None:
            raise PlaidError("transfer not found", code="TRANSFER_NOT_FOUND", status_code=400)
        event = {
            "account_id": transfer["account_id"],
            "event_type": event_type,
            "failure_reason": (
                {"ach_return_code": failure_reason.split(":")[0], "description": failure_reason}
                if failure_reason
                else None
            ),
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "transfer_amount": cents_to_decimal(int(transfer["amount_cents"])),
            "transfer_id": transfer_id,
            "transfer_type": transfer["type"],
        }
        result = await self.redis.eval(
            _APPEND, 2, P + "events", P + f"event:{transfer_id}:{event_type}", json.dumps(event)
        )
        return int(result)

    async def sync_transfer_events(self, *, after_id: int, count: int = 25) -> EventPage:
        count = max(1, min(count, 500))
        raw = await self.redis.lrange(P + "events", after_id, after_id + count - 1)
        total = await self.redis.llen(P + "events")
        events = []
        for offset, item in enumerate(raw):
            data = json.loads(item)
            event_id = after_id + offset + 1
            data["event_id"] = event_id
            failure = data.get("failure_reason") or {}
            events.append(
                TransferEvent(
                    event_id=event_id,
                    transfer_id=data["transfer_id"],
                    event_type=data["event_type"],
                    timestamp=data["timestamp"],
                    failure_reason=failure.get("description"),
                    raw=data,
                )
            )
        return EventPage(events, after_id + len(events) < total)

    async def webhook_verification_key(self, *, key_id: str) -> dict[str, Any]:
        if key_id != self.jwk["kid"]:
            raise PlaidError("key not found", code="INVALID_KEY_ID", status_code=400)
        return dict(self.jwk)

    def sign_webhook(self, body: bytes, *, iat: int | None = None) -> str:
        return signing.sign(self.key, body, iat=iat)


def _account_id(item_id: str, kind: str) -> str:
    return hashlib.sha256(f"{item_id}:{kind}".encode()).hexdigest()[:37]


def _authorization(data: dict[str, Any]) -> Authorization:
    return Authorization(
        id=str(data["id"]),
        decision=str(data["decision"]),
        rationale_code=data.get("rationale_code"),
        rationale=data.get("rationale"),
    )
