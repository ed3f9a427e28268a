"""All SQL of the email module. Every read of messages names the owner (`user_id`)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pull.email.models import EmailGrant, EmailMessage, EmailWebhookEvent, Vector
from pull.email.textmodel import EMBEDDING_DIM

RRF_K = 60  # reciprocal rank fusion constant (Cormack et al., 2009)


async def grant_of_user(session: AsyncSession, user_id: uuid.UUID) -> EmailGrant | None:
    row: EmailGrant | None = await session.scalar(
        select(EmailGrant).where(EmailGrant.user_id == user_id)
    )
    return row


async def grant_by_id(session: AsyncSession, grant_ref: uuid.UUID) -> EmailGrant | None:
    return await session.get(EmailGrant, grant_ref)


async def grant_by_hash(session: AsyncSession, grant_hash: str) -> EmailGrant | None:
    row: EmailGrant | None = await session.scalar(
        select(EmailGrant).where(EmailGrant.grant_hash == grant_hash)
    )
    return row


async def add_grant(session: AsyncSession, grant: EmailGrant) -> None:
    session.add(grant)
    await session.flush()


async def delete_grant(session: AsyncSession, grant_ref: uuid.UUID) -> int:
    """Deletes the grant and (ON DELETE CASCADE) every message of it; returns messages gone."""
    count = await session.scalar(
        select(func.count()).select_from(EmailMessage).where(EmailMessage.grant_ref == grant_ref)
    )
    await session.execute(delete(EmailGrant).where(EmailGrant.id == grant_ref))
    return int(count or 0)


async def set_grant(session: AsyncSession, grant_ref: uuid.UUID, **values: Any) -> None:
    await session.execute(update(EmailGrant).where(EmailGrant.id == grant_ref).values(**values))


async def add_backfilled(session: AsyncSession, grant_ref: uuid.UUID, n: int) -> None:
    await session.execute(
        update(EmailGrant)
        .where(EmailGrant.id == grant_ref)
        .values(backfilled=EmailGrant.backfilled + n)
    )


def _vector(literal: str) -> sa.Cast[Any]:
    return sa.cast(sa.bindparam(None, literal, type_=sa.String), Vector(EMBEDDING_DIM))


async def upsert_message(
    session: AsyncSession, values: dict[str, Any], *, search_text: str, embedding: str
) -> uuid.UUID:
    """Insert or refresh one message (keyed by grant and Nylas id): a redelivered or
    backfilled-twice message changes nothing but its flags and content."""
    row = {
        **values,
        "search": func.strip(
            func.to_tsvector(sa.literal_column("'english'::regconfig"), search_text)
        ),
        "embedding": _vector(embedding),
    }
    stmt = insert(EmailMessage).values(id=uuid.uuid4(), **row)
    changed: dict[str, Any] = {
        k: stmt.excluded[k] for k in row if k not in ("grant_ref", "user_id", "nylas_id")
    }
    changed["updated_at"] = func.now()
    upsert = stmt.on_conflict_do_update(
        index_elements=[EmailMessage.grant_ref, EmailMessage.nylas_id], set_=changed
    ).returning(EmailMessage.id)
    message_id: uuid.UUID = (await session.execute(upsert)).scalar_one()
    return message_id


async def update_flags(
    session: AsyncSession, grant_ref: uuid.UUID, nylas_id: str, values: dict[str, Any]
) -> bool:
    result = await session.execute(
        update(EmailMessage)
        .where(EmailMessage.grant_ref == grant_ref, EmailMessage.nylas_id == nylas_id)
        .values(**values, updated_at=func.now())
    )
    return bool(getattr(result, "rowcount", 0))


async def message_by_nylas_id(
    session: AsyncSession, grant_ref: uuid.UUID, nylas_id: str
) -> EmailMessage | None:
    row: EmailMessage | None = await session.scalar(
        select(EmailMessage).where(
            EmailMessage.grant_ref == grant_ref, EmailMessage.nylas_id == nylas_id
        )
    )
    return row


async def message_of_user(
    session: AsyncSession, user_id: uuid.UUID, message_id: uuid.UUID
) -> EmailMessage | None:
    row: EmailMessage | None = await session.scalar(
        select(EmailMessage).where(EmailMessage.id == message_id, EmailMessage.user_id == user_id)
    )
    return row


async def list_messages(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    category: str | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[EmailMessage]:
    q = select(EmailMessage).where(EmailMessage.user_id == user_id)
    if category is not None:
        q = q.where(EmailMessage.category == category)
    if before is not None:
        q = q.where(sa.tuple_(EmailMessage.received_at, EmailMessage.id) < sa.tuple_(*before))
    q = q.order_by(EmailMessage.received_at.desc(), EmailMessage.id.desc()).limit(limit)
    return list((await session.scalars(q)).all())


async def thread(
    session: AsyncSession, *, user_id: uuid.UUID, thread_id: str
) -> list[EmailMessage]:
    q = (
        select(EmailMessage)
        .where(EmailMessage.user_id == user_id, EmailMessage.thread_id == thread_id)
        .order_by(EmailMessage.received_at, EmailMessage.id)
        .limit(500)
    )
    return list((await session.scalars(q)).all())


async def record_webhook(session: AsyncSession, *, event_id: str, type: str) -> bool:
    """True the first time an envelope id is seen."""
    stmt = (
        insert(EmailWebhookEvent)
        .values(event_id=event_id, type=type)
        .on_conflict_do_nothing(index_elements=[EmailWebhookEvent.event_id])
        .returning(EmailWebhookEvent.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


_SEARCH = sa.text(  # constants only are interpolated
    f"""
WITH sem AS (
    SELECT id, row_number() OVER (ORDER BY dist) AS r
    FROM (
        SELECT id, embedding <=> CAST(:vec AS vector({EMBEDDING_DIM})) AS dist
        FROM email_messages
        WHERE user_id = :user_id
        ORDER BY embedding <=> CAST(:vec AS vector({EMBEDDING_DIM}))
        LIMIT :k
    ) s
), kw AS (
    SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r
    FROM (
        SELECT id, ts_rank(search, q) AS rank
        FROM email_messages, websearch_to_tsquery('english', :text) AS q
        WHERE user_id = :user_id AND search @@ q
        ORDER BY rank DESC
        LIMIT :k
    ) k
)
SELECT id,
       COALESCE(1.0 / ({RRF_K} + sem.r), 0) + COALESCE(1.0 / ({RRF_K} + kw.r), 0) AS score,
       sem.r AS semantic_rank, kw.r AS keyword_rank
FROM sem FULL OUTER JOIN kw USING (id)
ORDER BY score DESC, id
LIMIT :limit
"""  # noqa: S608
)


async def search(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    vector: str,
    text: str,
    limit: int,
    k: int = 50,
) -> list[tuple[EmailMessage, float, int | None, int | None]]:
    """Hybrid search: HNSW nearest neighbours and full-text matches, fused by reciprocal rank.
    The iterative index scan keeps the caller's filter from emptying the neighbour list."""
    await session.execute(sa.text("SET LOCAL hnsw.iterative_scan = 'relaxed_order'"))
    await session.execute(sa.text("SET LOCAL hnsw.ef_search = 100"))
    rows = (
        await session.execute(
            _SEARCH, {"vec": vector, "user_id": user_id, "text": text, "k": k, "limit": limit}
        )
    ).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    found = {
        m.id: m
        for m in (
            await session.scalars(
                select(EmailMessage).where(
                    EmailMessage.id.in_(ids), EmailMessage.user_id == user_id
                )
            )
        ).all()
    }
    return [
        (found[r.id], float(r.score), r.semantic_rank, r.keyword_rank)
        for r in rows
        if r.id in found
    ]


async def count_messages(session: AsyncSession, grant_ref: uuid.UUID) -> int:
    n = await session.scalar(
        select(func.count()).select_from(EmailMessage).where(EmailMessage.grant_ref == grant_ref)
    )
    return int(n or 0)
