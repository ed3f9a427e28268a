"""Database engine, sessions and the declarative base.

The request (or activity) boundary commits; services only flush.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """At most `pool_size + max_overflow` connections, opened when needed and then kept.

    Not SQLAlchemy's overflow: it closes a connection above `pool_size` as soon as it is
    returned, so a process whose load often passes `pool_size` requests in flight (50 web users,
    a page's reads in parallel) opened and closed PostgreSQL connections all the time, 5-13 a
    second (bench/web.py, stop 29): each a new backend, a TLS attempt, the codec set-up and every
    statement prepared again, 20-100 ms during which the loop also ran the other requests late.
    The ceiling is the same; `pool_recycle` still renews each connection after 30 minutes."""
    return create_async_engine(
        url,
        pool_size=pool_size + max_overflow,
        max_overflow=0,
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "pull"}, "timeout": 5},
    )


def make_sessionmaker(
    engine: AsyncEngine, *, redis: object | None = None
) -> async_sessionmaker[AsyncSession]:
    """`redis`, when given, is in every session's `info` (before-commit hooks use it)."""
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, info={"redis": redis}
    )


# Steps that must run after the last flush and before COMMIT (the identity module's auth cache
# marks changed users in Redis here, see pull.identity.auth_cache). Registered at import.
BeforeCommit = Callable[[AsyncSession], Awaitable[None]]
_BEFORE_COMMIT: list[BeforeCommit] = []


def register_before_commit(hook: BeforeCommit) -> None:
    if hook not in _BEFORE_COMMIT:
        _BEFORE_COMMIT.append(hook)


# Steps right after COMMIT (best effort, must not raise: the live feeds publish what the
# transaction committed, see pull.exchange.book_events). Registered at import.
_AFTER_COMMIT: list[BeforeCommit] = []


def register_after_commit(hook: BeforeCommit) -> None:
    if hook not in _AFTER_COMMIT:
        _AFTER_COMMIT.append(hook)


async def commit(session: AsyncSession) -> None:
    """Flush, run the before-commit hooks, commit, run the after-commit hooks: the one way a
    unit of work ends well."""
    if _BEFORE_COMMIT:
        await session.flush()
        for hook in _BEFORE_COMMIT:
            await hook(session)
    await session.commit()
    for after in _AFTER_COMMIT:
        await after(session)


@asynccontextmanager
async def session_scope(
    maker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A unit of work for code outside a request (activities, CLI): commit or roll back."""
    async with maker() as session:
        try:
            yield session
            await commit(session)
        except BaseException:
            await session.rollback()
            raise


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Per-request session: committed when the endpoint returns, rolled back on any error."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        try:
            yield session
            if session.in_transaction():
                await commit(session)
        except BaseException:
            await session.rollback()
            raise


# "function" scope: commit before the response is sent, so a failed commit is never a 200.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
