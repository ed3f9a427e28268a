"""Idempotency keys for money-moving POSTs (Stripe's semantics), backed by a table.

    key: IdempotencyKeyHeader                       # 400 IDEMPOTENCY_KEY_REQUIRED when missing
    result = await run_idempotent(
        session, owner=str(user.id), scope="POST /api/v1/funding/deposits", key=key,
        request=body.model_dump(mode="json"), status_code=201, handler=lambda: make_it(...))
    return result.response()

The first request with a key inserts the key's row and runs the handler in the caller's
transaction; the response is stored in that row, so it commits (or rolls back) with the change
itself. A retry with the same key and the same request body gets the stored response (header
`Idempotent-Replayed: true`); the same key with another body is 409 IDEMPOTENCY_KEY_REUSED. A
concurrent duplicate waits on the key's unique index until the first commits, then replays.
A request that failed (an error response) stored nothing: it can be retried with its key.

Every key of every surface (funding's Idempotency-Key, the exchange's client_order_id and its
Idempotency-Key) is 1 to 64 characters of `A-Za-z0-9_-:+=/.` (`KEY_PATTERN`); anything else is
400 INVALID_IDEMPOTENCY_KEY (or, inside a JSON body, the body's validation error).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import BigInteger, DateTime, Integer, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from pull.kit.db import Base, utcnow
from pull.kit.errors import BadRequest, Conflict

MAX_KEY_LENGTH = 64
KEY_PATTERN = r"^[A-Za-z0-9_\-:+=/.]{1,64}$"
_KEY = re.compile(KEY_PATTERN)


class IdempotencyRecord(Base):
    """One Idempotency-Key of one caller for one endpoint, with the response it produced."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("owner", "scope", "key", name="uq_idempotency_keys_owner_scope_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, index=True
    )


class IdempotencyKeyRequired(BadRequest):
    code = "IDEMPOTENCY_KEY_REQUIRED"
    message = "This request needs an Idempotency-Key header"


class IdempotencyKeyReused(Conflict):
    code = "IDEMPOTENCY_KEY_REUSED"
    message = "This idempotency key was already used with a different request"


class InvalidIdempotencyKey(BadRequest):
    code = "INVALID_IDEMPOTENCY_KEY"
    message = f"An idempotency key is 1 to {MAX_KEY_LENGTH} characters of A-Za-z0-9_-:+=/."


def check_key(raw: str) -> str:
    """The key itself, or 400 INVALID_IDEMPOTENCY_KEY."""
    key = raw.strip()
    if not _KEY.fullmatch(key):
        raise InvalidIdempotencyKey(details={"max_length": MAX_KEY_LENGTH})
    return key


async def idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="A unique key per intended operation (e.g. a UUID); retries reuse it",
        ),
    ] = None,
) -> str:
    if not (idempotency_key or "").strip():
        raise IdempotencyKeyRequired()
    assert idempotency_key is not None
    return check_key(idempotency_key)


async def optional_idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Optional: a unique key per intended operation; retries reuse it",
        ),
    ] = None,
) -> str | None:
    return None if idempotency_key is None else check_key(idempotency_key)


@dataclass(frozen=True)
class IdempotentResult:
    status_code: int
    body: Any
    replayed: bool

    def response(self) -> JSONResponse:
        headers = {"Idempotent-Replayed": "true"} if self.replayed else None
        return JSONResponse(self.body, status_code=self.status_code, headers=headers)


def request_hash(request: Any) -> str:
    raw = json.dumps(jsonable_encoder(request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


_CLAIM = text(
    "INSERT INTO idempotency_keys (owner, scope, key, request_hash) "
    "VALUES (:owner, :scope, :key, :hash) "
    "ON CONFLICT (owner, scope, key) DO NOTHING RETURNING id"
)
_EXISTING = text(
    "SELECT request_hash, status_code, response FROM idempotency_keys "
    "WHERE owner = :owner AND scope = :scope AND key = :key"
)
_STORE = text(
    "UPDATE idempotency_keys SET status_code = :status, response = CAST(:body AS jsonb) "
    "WHERE id = :id"
)


async def run_idempotent(
    session: AsyncSession,
    *,
    owner: str,
    scope: str,
    key: str,
    request: Any,
    status_code: int,
    handler: Callable[[], Awaitable[Any]],
    finish: Callable[[], Awaitable[None]] | None = None,
) -> IdempotentResult:
    """Run `handler` once per (owner, scope, key); see the module docstring.

    `finish`, if given, runs after the response is stored: the contended last step of a
    handler (a conditional UPDATE of a hot row), so the row lock it takes is held only until
    the commit. If it raises, the whole transaction, stored response included, rolls back."""
    digest = request_hash(request)
    params = {"owner": owner, "scope": scope, "key": key, "hash": digest}
    claimed = (await session.execute(_CLAIM, params)).scalar_one_or_none()
    if claimed is None:
        row = (await session.execute(_EXISTING, params)).one()
        if row[0] != digest:
            raise IdempotencyKeyReused(details={"idempotency_key": key})
        if row[1] is None:  # cannot happen: the first request stores its response in its txn
            raise IdempotencyKeyReused("The first request with this key is still in progress")
        return IdempotentResult(int(row[1]), row[2], replayed=True)
    body = jsonable_encoder(await handler())
    await session.execute(_STORE, {"status": status_code, "body": json.dumps(body), "id": claimed})
    if finish is not None:
        await finish()
    return IdempotentResult(status_code, body, replayed=False)


_CLAIM_MANY = text(
    "INSERT INTO idempotency_keys (owner, scope, key, request_hash) "
    "SELECT * FROM unnest(CAST(:owners AS text[]), CAST(:scopes AS text[]), "
    "CAST(:keys AS text[]), CAST(:hashes AS text[])) "
    "ON CONFLICT (owner, scope, key) DO NOTHING RETURNING id, owner, scope, key"
)
_STORE_MANY = text(
    "UPDATE idempotency_keys i SET status_code = x.s, response = CAST(x.b AS jsonb) "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:codes AS int[]), CAST(:bodies AS text[])) "
    "AS x(id, s, b) WHERE i.id = x.id"
)


async def claim_many(
    session: AsyncSession, claims: Sequence[tuple[str, str, str, Any]]
) -> list[int | None]:
    """The first step of `run_idempotent` for several (owner, scope, key, request) at once,
    in one statement, for a caller that runs their handlers in one transaction (group
    commit): the claimed row's id per item, None where the key exists already (answer that
    one through `run_idempotent`, which replays or refuses it). Give each key once."""
    if not claims:
        return []
    rows = await session.execute(
        _CLAIM_MANY,
        {
            "owners": [c[0] for c in claims],
            "scopes": [c[1] for c in claims],
            "keys": [c[2] for c in claims],
            "hashes": [request_hash(c[3]) for c in claims],
        },
    )
    found = {(r[1], r[2], r[3]): int(r[0]) for r in rows.all()}
    return [found.get((c[0], c[1], c[2])) for c in claims]


async def store_many(session: AsyncSession, stored: Sequence[tuple[int, int, Any]]) -> list[Any]:
    """The last step of `run_idempotent` for keys of `claim_many`: (row id, status code,
    response) each, in one statement; the JSON-encoded responses, in order."""
    bodies = [jsonable_encoder(s[2]) for s in stored]
    if stored:
        await session.execute(
            _STORE_MANY,
            {
                "ids": [s[0] for s in stored],
                "codes": [s[1] for s in stored],
                "bodies": [json.dumps(b) for b in bodies],
            },
        )
    return bodies


IdempotencyKeyHeader = Annotated[str, Depends(idempotency_key)]
OptionalIdempotencyKeyHeader = Annotated[str | None, Depends(optional_idempotency_key)]
