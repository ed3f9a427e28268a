"""The real phone verifier (official `twilio` SDK) against a local fake of Twilio Verify v2,
alone and behind the HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from pull import devstack
from pull.app import create_app
from pull.identity.providers import CheckOutcome, verifier_for
from pull.identity.providers.twilio import TwilioVerifier
from pull.kit.errors import AppError
from tests.conftest import AppRunner, Services, UserFactory, make_settings
from tests.funding.conftest import serve
from tests.identity.conftest import client_at
from tests.identity.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, FakeTwilio


@pytest.fixture
async def fake_twilio() -> AsyncIterator[tuple[FakeTwilio, str]]:
    fake = FakeTwilio()
    async with serve(fake.app(), devstack.free_port()) as url:  # type: ignore[arg-type]
        yield fake, url


def _verifier(url: str, token: str = AUTH_TOKEN) -> TwilioVerifier:
    return TwilioVerifier(
        account_sid=ACCOUNT_SID, auth_token=token, service_sid=SERVICE_SID, base_url=url
    )


async def test_sdk_calls_speak_twilios_wire_format(
    fake_twilio: tuple[FakeTwilio, str], session: AsyncSession
) -> None:
    fake, url = fake_twilio
    verifier = _verifier(url)
    sent = await verifier.send_code(session=session, to="+14155550100")
    assert sent.reference.startswith("VE")
    path, form = fake.requests[-1]
    assert path == f"/v2/Services/{SERVICE_SID}/Verifications"
    assert form == {"To": "+14155550100", "Channel": "sms"}

    code = fake.codes["+14155550100"]
    wrong = "000000" if code != "000000" else "111111"
    assert (
        await verifier.check_code(to="+14155550100", reference=sent.reference, code=wrong)
        is CheckOutcome.wrong
    )
    path, form = fake.requests[-1]
    assert path == f"/v2/Services/{SERVICE_SID}/VerificationCheck"
    assert form == {"VerificationSid": sent.reference, "Code": wrong}
    assert (
        await verifier.check_code(to="+14155550100", reference=sent.reference, code=code)
        is CheckOutcome.approved
    )
    # approved: Twilio no longer knows a pending verification (404 20404)
    assert (
        await verifier.check_code(to="+14155550100", reference=sent.reference, code=code)
        is CheckOutcome.expired
    )


async def test_twilio_errors_become_typed_4xx_and_502(
    fake_twilio: tuple[FakeTwilio, str], session: AsyncSession
) -> None:
    fake, url = fake_twilio
    with pytest.raises(AppError) as invalid:
        await _verifier(url).send_code(session=session, to="+1abc")
    assert (invalid.value.status_code, invalid.value.code) == (422, "INVALID_PHONE")

    fake.max_sends = 1
    await _verifier(url).send_code(session=session, to="+14155550101")
    with pytest.raises(AppError) as many:
        await _verifier(url).send_code(session=session, to="+14155550101")
    assert (many.value.status_code, many.value.code) == (429, "TOO_MANY_CODES")
    assert many.value.headers["Retry-After"]

    with pytest.raises(AppError) as auth:
        await _verifier(url, token="wrong").send_code(session=session, to="+14155550102")
    assert (auth.value.status_code, auth.value.code) == (502, "SMS_PROVIDER_ERROR")

    down = _verifier(f"http://127.0.0.1:{devstack.free_port()}")
    with pytest.raises(AppError) as unreachable:
        await down.send_code(session=session, to="+14155550103")
    assert unreachable.value.status_code == 502


async def test_phone_verification_over_http_with_twilio(
    fake_twilio: tuple[FakeTwilio, str], services: Services, user_factory: UserFactory
) -> None:
    fake, url = fake_twilio
    settings = make_settings(
        services,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_VERIFY_SERVICE_SID=SERVICE_SID,
        TWILIO_VERIFY_BASE_URL=url,
    )
    assert isinstance(verifier_for(settings), TwilioVerifier)
    app = create_app(settings)
    user = await user_factory(verified=False)
    async with AppRunner(app), client_at(app) as c:
        r = await c.post(
            "/api/auth/phone/start", headers=user.headers, json={"phone": "+14155550110"}
        )
        assert r.status_code == 202, r.text
        # with a real SMS provider the sandbox message box is closed
        assert (await c.get("/api/v1/sandbox/messages", headers=user.headers)).status_code == 404
        code = fake.codes["+14155550110"]
        wrong = "000000" if code != "000000" else "111111"
        r = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": wrong})
        assert r.status_code == 400 and r.json()["error"]["details"] == {"attempts_left": 4}
        r = await c.post("/api/auth/phone/verify", headers=user.headers, json={"code": code})
        assert r.status_code == 200 and r.json()["phone_verified"] is True

        # a verification Twilio dropped (expired there) is CODE_EXPIRED here
        other = await user_factory(verified=False)
        r = await c.post(
            "/api/auth/phone/start", headers=other.headers, json={"phone": "+14155550111"}
        )
        assert r.status_code == 202
        fake.expire("+14155550111")
        r = await c.post("/api/auth/phone/verify", headers=other.headers, json={"code": "123456"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "CODE_EXPIRED"
