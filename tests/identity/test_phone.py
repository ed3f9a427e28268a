"""Phone verification over HTTP with the SMS sandbox, and the sandbox message box."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.app import create_app
from tests.conftest import AppRunner, Services, TestUser, UserFactory, make_settings
from tests.identity.conftest import client_at, sql


async def box(c: httpx.AsyncClient, user: TestUser, **params: str) -> dict[str, object]:
    r = await c.get("/api/v1/sandbox/messages", headers=user.headers, params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def texted_code(c: httpx.AsyncClient, user: TestUser) -> str:
    items = (await box(c, user))["items"]
    assert isinstance(items, list)
    sms = next(m for m in items if m["channel"] == "sms")
    found = re.search(r"\b(\d{6})\b", sms["body"])
    assert found, sms
    return found.group(1)


async def test_a_texted_code_verifies_the_number(app: FastAPI, user_factory: UserFactory) -> None:
    user = await user_factory(verified=False)
    async with client_at(app) as c:
        r = await c.post(
            "/api/auth/phone/start", headers=user.headers, json={"phone": "+1 (415) 555-0100"}
        )
        assert r.status_code == 202, r.text
        assert r.json()["phone"] == "+14155550100" and r.json()["channel"] == "sms"
        me = (await c.get("/api/auth/me", headers=user.headers)).json()
        assert me["phone"] == "+14155550100" and me["phone_verified"] is False

        page = await box(c, user)
        items = page["items"]
        assert isinstance(items, list)
        # newest first: the text, then the verification mail sent at registration
        assert [m["channel"] for m in items] == ["sms", "email"]
        assert items[0]["to"] == "+14155550100" and items[0]["subject"] is None
        assert items[1]["to"] == user.email and "token=" in items[1]["body"]
        code = await texted_code(c, user)

        wrong = "000000" if code != "000000" else "111111"
        r = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": wrong})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "INVALID_CODE"
        assert r.json()["error"]["details"] == {"attempts_left": 4}

        r = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": code})
        assert r.status_code == 200, r.text
        assert r.json()["phone_verified"] is True and r.json()["phone"] == "+14155550100"
        again = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": code})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "PHONE_ALREADY_VERIFIED"

        # a new number un-verifies until it is verified in turn
        r = await c.patch("/api/auth/me", headers=user.headers, json={"phone": "+14155550199"})
        assert r.json()["phone_verified"] is False


async def test_bad_input_gets_a_clear_4xx(app: FastAPI, user_factory: UserFactory) -> None:
    user = await user_factory(verified=False)
    async with client_at(app) as c:
        for phone, status in (
            ("12", 422),
            ("4155550100", 422),
            ("+1555000111", 422),
            ("+999", 422),
            ("+1415555\x000100", 422),
            ("", 422),
        ):
            r = await c.post("/api/auth/phone/start", headers=user.headers, json={"phone": phone})
            assert r.status_code == status, (phone, r.text)
            assert r.json()["error"]["code"] in (
                "INVALID_PHONE",
                "VALIDATION_ERROR",
                "INVALID_TEXT",
            )
        r = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": "12ab56"})
        assert r.status_code == 422
        r = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": "123456"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "NO_PENDING_CODE"
        r = await c.post("/api/auth/phone/start", json={"phone": "+14155550100"})
        assert r.status_code == 401
        # the sandbox's magic numbers behave like Twilio's test numbers
        r = await c.post(
            "/api/auth/phone/start", headers=user.headers, json={"phone": "+15005550009"}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "PHONE_NOT_SMS_CAPABLE"


async def test_five_wrong_tries_kill_the_code(app: FastAPI, user_factory: UserFactory) -> None:
    user = await user_factory(verified=False)
    async with client_at(app) as c:
        r = await c.post(
            "/api/auth/phone/start", headers=user.headers, json={"phone": "+14155550101"}
        )
        assert r.status_code == 202
        code = await texted_code(c, user)
        wrong = "000000" if code != "000000" else "111111"
        left = []
        for _ in range(5):
            r = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": wrong})
            assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_CODE"
            left.append(r.json()["error"]["details"]["attempts_left"])
        assert left == [4, 3, 2, 1, 0]
        r = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": code})
        assert r.status_code == 400 and r.json()["error"]["code"] == "CODE_EXPIRED"
        assert r.json()["error"]["details"] == {"reason": "attempts"}


async def test_codes_expire_after_ten_minutes(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await user_factory(verified=False)
    async with client_at(app) as c:
        r = await c.post(
            "/api/auth/phone/start", headers=user.headers, json={"phone": "+14155550102"}
        )
        started = r.json()
        code = await texted_code(c, user)
        assert started["expires_at"] > started["resend_after"]
        await sql(
            sessionmaker,
            "UPDATE phone_verifications SET created_at = created_at - interval '10 minutes', "
            "expires_at = expires_at - interval '10 minutes'",
        )
        r = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": code})
        assert r.status_code == 400 and r.json()["error"]["code"] == "CODE_EXPIRED"
        assert r.json()["error"]["details"] == {"reason": "expired"}


async def test_resend_limits_per_account_and_per_number(
    app: FastAPI, user_factory: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user, other = await user_factory(verified=False), await user_factory(verified=False)
    body = {"phone": "+14155550103"}

    async def age(seconds: int) -> None:
        await sql(
            sessionmaker,
            "UPDATE phone_verifications SET created_at = created_at - make_interval(secs => :s)",
            s=seconds,
        )

    async with client_at(app) as c:
        assert (
            await c.post("/api/auth/phone/start", headers=user.headers, json=body)
        ).status_code == 202
        r = await c.post("/api/auth/phone/start", headers=user.headers, json=body)
        assert r.status_code == 429 and r.json()["error"]["code"] == "TOO_MANY_CODES"
        assert 1 <= int(r.headers["Retry-After"]) <= 30
        # the number itself is limited too, whoever asks
        r = await c.post("/api/auth/phone/start", headers=other.headers, json=body)
        assert r.status_code == 429
        # after 30 s a resend works, and the new code replaces the old one
        for _ in range(4):
            await age(31)
            r = await c.post("/api/auth/phone/start", headers=user.headers, json=body)
            assert r.status_code == 202, r.text
        await age(31)
        r = await c.post("/api/auth/phone/start", headers=user.headers, json=body)
        assert r.status_code == 429 and "an hour" in r.json()["error"]["message"]
        retry = int(r.headers["Retry-After"])
        assert 3600 - 5 * 31 - 5 <= retry <= 3600 - 5 * 31 + 5
        # ... per account: another number does not help
        r = await c.post(
            "/api/auth/phone/start", headers=user.headers, json={"phone": "+14155550104"}
        )
        assert r.status_code == 429
        # only the latest code works
        code = await texted_code(c, user)
        r = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": code})
        assert r.status_code == 200


async def test_one_account_per_verified_number(app: FastAPI, user_factory: UserFactory) -> None:
    first, second = await user_factory(verified=False), await user_factory(verified=False)
    body = {"phone": "+14155550105"}
    async with client_at(app) as c:
        # both ask before either verifies: the second to verify loses
        assert (
            await c.post("/api/auth/phone/start", headers=first.headers, json=body)
        ).status_code == 202
        first_code = await texted_code(c, first)
        r = await c.post("/api/auth/phone/verify", headers=first.headers, json={"code": first_code})
        assert r.status_code == 200
        r = await c.post("/api/auth/phone/start", headers=second.headers, json=body)
        assert r.status_code == 409 and r.json()["error"]["code"] == "PHONE_TAKEN"
        r = await c.post(
            "/api/auth/phone/start", headers=first.headers, json={"phone": "+1 415 555 0105"}
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "PHONE_ALREADY_VERIFIED"


async def test_message_box_is_the_callers_own_and_pages(
    app: FastAPI, user_factory: UserFactory
) -> None:
    user, stranger = await user_factory(verified=False), await user_factory(verified=False)
    async with client_at(app) as c:
        for _ in range(3):  # three more mails to the user
            await c.post("/api/auth/forgot-password", json={"email": user.email})
        await c.post("/api/auth/phone/start", headers=user.headers, json={"phone": "+14155550106"})
        whole = (await box(c, user, limit="200"))["items"]
        assert isinstance(whole, list)
        assert {m["to"] for m in whole} == {user.email, "+14155550106"}
        stamps = [m["created_at"] for m in whole]
        assert stamps == sorted(stamps, reverse=True)
        walked: list[str] = []
        cursor: str | None = None
        while True:
            params = {"limit": "1"} | ({"cursor": cursor} if cursor else {})
            page = await box(c, user, **params)
            items = page["items"]
            assert isinstance(items, list) and len(items) <= 1
            walked += [m["id"] for m in items]
            cursor = page["cursor"]  # type: ignore[assignment]
            if not cursor:
                break
        assert walked == [m["id"] for m in whole]
        theirs = (await box(c, stranger))["items"]
        assert isinstance(theirs, list)
        assert [m["to"] for m in theirs] == [stranger.email]  # just its own verification mail

        for bad in ("nope", "eyJ0IjoxfQ", "e30"):
            r = await c.get(
                "/api/v1/sandbox/messages", headers=user.headers, params={"cursor": bad}
            )
            assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_CURSOR"
        r = await c.get("/api/v1/sandbox/messages", headers=user.headers, params={"limit": 0})
        assert r.status_code == 422
        assert (await c.get("/api/v1/sandbox/messages")).status_code == 401


async def test_message_box_is_closed_with_real_providers(
    services: Services, user_factory: UserFactory
) -> None:
    user = await user_factory(verified=False)
    for overrides in (
        {"SMTP_HOST": "smtp.example.com"},
        {
            "TWILIO_ACCOUNT_SID": "AC1",
            "TWILIO_AUTH_TOKEN": "t",
            "TWILIO_VERIFY_SERVICE_SID": "VA1",
        },
        {"ENVIRONMENT": "staging"},
    ):
        app = create_app(make_settings(services, **overrides))
        async with AppRunner(app), client_at(app) as c:
            r = await c.get("/api/v1/sandbox/messages", headers=user.headers)
            assert r.status_code == 404, overrides
            assert r.json()["error"]["code"] == "NOT_FOUND"
