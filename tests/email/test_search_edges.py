"""Search edge cases through the HTTP API: stop-word-only and odd queries are answered (a
zero query embedding, an empty tsquery), never 5xx, and only the caller's mail is returned."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.config import Settings
from pull.email import ingest
from pull.email.models import EmailGrant
from pull.kit.crypto import FieldCipher, sha256_hex
from tests.conftest import UserFactory


async def test_odd_queries_and_scoping(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    owner, other = await user_factory(), await user_factory()
    cipher = FieldCipher(settings.field_encryption_keys)
    async with sessionmaker() as s, s.begin():
        grant = EmailGrant(
            id=uuid.uuid4(),
            user_id=owner.id,
            provider="sandbox",
            grant_enc=cipher.encrypt("g"),
            grant_hash=sha256_hex(f"g-{uuid.uuid4()}"),
            email_enc=cipher.encrypt("o@example.com"),
        )
        s.add(grant)
        await s.flush()
        obj = {
            "id": "m1",
            "thread_id": "t1",
            "subject": "Margin call on your account",
            "from": [{"name": "PULL Alerts", "email": "alerts@pull.app"}],
            "date": 1_795_000_000,
            "folders": ["INBOX"],
            "body": "<p>Deposit $500 by Friday to avoid liquidation.</p>",
        }
        await ingest.store_message(s, grant=grant, obj=obj, cipher=cipher)
    for q in ["the", "!!!", "和平", "a" * 500, "margin -call", '"margin call"', "or and not"]:
        r = await client.get("/api/v1/email/search", params={"q": q}, headers=owner.headers)
        assert r.status_code == 200, (q, r.text)
    hit = await client.get("/api/v1/email/search", params={"q": "margin"}, headers=owner.headers)
    assert [h["message"]["subject"] for h in hit.json()["items"]] == ["Margin call on your account"]
    none = await client.get("/api/v1/email/search", params={"q": "margin"}, headers=other.headers)
    assert none.json()["items"] == []
    blank = await client.get("/api/v1/email/search", params={"q": "   "}, headers=owner.headers)
    assert blank.status_code == 400 and blank.json()["error"]["code"] == "INVALID_QUERY"
    bad = await client.get(
        "/api/v1/email/search", params={"q": "x", "limit": 0}, headers=owner.headers
    )
    assert bad.status_code == 400
