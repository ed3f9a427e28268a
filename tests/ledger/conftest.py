"""Ledger test helpers: users made straight in SQL (the ledger only needs the row to exist)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

NewUser = Callable[[], Awaitable[uuid.UUID]]


async def insert_user(session: AsyncSession) -> uuid.UUID:
    user_id = uuid.uuid4()
    await session.execute(
        text(
            "INSERT INTO users (id, email, password_hash, referral_code) "
            "VALUES (:id, :email, 'x', :code)"
        ),
        {"id": user_id, "email": f"{user_id.hex}@example.com", "code": user_id.hex[:8]},
    )
    return user_id


@pytest.fixture
def new_user(sessionmaker: async_sessionmaker[AsyncSession]) -> NewUser:
    async def make() -> uuid.UUID:
        async with sessionmaker() as s, s.begin():
            return await insert_user(s)

    return make
