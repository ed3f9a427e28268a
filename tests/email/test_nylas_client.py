"""The real Nylas client (the official `nylas` SDK) against a local fake of Nylas v3."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import pytest

from pull.email.providers.base import GrantRevoked
from pull.email.providers.nylas import NylasProvider
from tests.conftest import free_port
from tests.email.fake_nylas import API_KEY, CLIENT_ID, FakeNylas
from tests.kyc.conftest import serve


@pytest.fixture
async def nylas() -> AsyncIterator[tuple[FakeNylas, NylasProvider]]:
    fake = FakeNylas()
    async with serve(fake.app(), free_port()) as url:
        yield (
            fake,
            NylasProvider(
                api_key=API_KEY,
                api_uri=url,
                client_id=CLIENT_ID,
                callback_uri="https://app.example.com/api/v1/email/callback",
            ),
        )


async def test_hosted_auth_and_code_exchange(nylas: tuple[FakeNylas, NylasProvider]) -> None:
    fake, client = nylas
    url = urlparse(client.auth_url(state="st4te", login_hint="me@example.com"))
    q = parse_qs(url.query)
    assert url.path == "/v3/connect/auth"
    assert q["client_id"] == [CLIENT_ID] and q["response_type"] == ["code"]
    assert q["state"] == ["st4te"] and q["login_hint"] == ["me@example.com"]
    assert q["redirect_uri"] == ["https://app.example.com/api/v1/email/callback"]
    fake.codes["code-1"] = "grant-1"
    grant = await client.exchange_code(code="code-1")
    assert grant.grant_id == "grant-1" and grant.email == "me@example.com"
    sent = fake.requests[-1][2] or {}
    assert sent["client_secret"] == API_KEY and sent["grant_type"] == "authorization_code"
    with pytest.raises(GrantRevoked):  # a code is single use
        await client.exchange_code(code="code-1")


async def test_pages_find_update_send_destroy(nylas: tuple[FakeNylas, NylasProvider]) -> None:
    fake, client = nylas
    fake.add_grant("g1", 450)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = await client.list_messages(grant_id="g1", limit=200, page_token=token)
        seen.extend(m["id"] for m in page.messages)
        pages += 1
        token = page.next_cursor
        if token is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 450
    assert all(r[2] and r[2]["limit"] == "200" for r in fake.requests if r[0] == "GET")
    first = await client.get_message(grant_id="g1", message_id="m0001")
    assert first["from"] == [{"name": "Sender", "email": "sender@example.com"}]
    assert first["body"] == "<p>body 1</p>"
    updated = await client.update_message(
        grant_id="g1", message_id="m0001", unread=False, folders=["ARCHIVE"]
    )
    assert updated["unread"] is False and updated["folders"] == ["ARCHIVE"]
    assert fake.requests[-1] == (
        "PUT",
        "/v3/grants/g1/messages/m0001",
        {"unread": False, "folders": ["ARCHIVE"]},
    )
    sent = await client.send_message(
        grant_id="g1",
        to=[{"name": "Sender", "email": "sender@example.com"}],
        subject="Re: Subject 1",
        body="Sounds good.",
        reply_to_message_id="m0001",
    )
    assert sent["folders"] == ["SENT"]
    assert fake.requests[-1][2] == {
        "to": [{"name": "Sender", "email": "sender@example.com"}],
        "subject": "Re: Subject 1",
        "body": "Sounds good.",
        "reply_to_message_id": "m0001",
    }
    await client.destroy_grant(grant_id="g1")
    with pytest.raises(GrantRevoked):  # a deleted (revoked) grant answers 404
        await client.list_messages(grant_id="g1", limit=50, page_token=None)
