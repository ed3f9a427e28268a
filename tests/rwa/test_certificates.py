"""Certificate verification: PSA's real client against a local fake in PSA's wire format (alone
and behind the admin API), and the PSA sandbox's magic numbers through the admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from pull import devstack
from pull.rwa.providers.base import GraderError, GraderRateLimited, numeric_grade
from pull.rwa.providers.psa import PsaClient
from tests.funding.conftest import serve
from tests.rwa.conftest import RwaEnvFactory, new_cert
from tests.rwa.fake_psa import TOKEN, FakePsa, psa_cert


@pytest.fixture
async def fake_psa() -> AsyncIterator[tuple[FakePsa, str]]:
    fake = FakePsa()
    async with serve(fake.app(), devstack.free_port()) as url:  # type: ignore[arg-type]
        yield fake, f"{url}/publicapi"


def test_numeric_grades() -> None:
    assert numeric_grade("GEM MT 10") == "10"
    assert numeric_grade("NM-MT+ 8.5") == "8.5"
    assert numeric_grade("10") == "10"
    assert numeric_grade("AUTHENTIC") is None


async def test_psa_client_speaks_psas_wire_format(fake_psa: tuple[FakePsa, str]) -> None:
    fake, url = fake_psa
    fake.certs["12345678"] = psa_cert("12345678", "MINT 9")
    client = PsaClient(token=TOKEN, base_url=url)
    cert = await client.lookup("12345678")
    assert cert is not None
    assert (cert.cert_number, cert.grade, cert.numeric_grade) == ("12345678", "MINT 9", "9")
    assert (cert.subject, cert.year, cert.brand, cert.population) == (
        "MICKEY MANTLE",
        "1952",
        "TOPPS",
        3,
    )
    assert fake.requests[-1] == ("/publicapi/cert/GetByCertNumber/12345678", f"bearer {TOKEN}")
    assert await client.lookup("87654321") is None  # "No data found"
    assert await client.lookup("12ab") is None  # never sent
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, GraderError), (503, GraderError), (429, GraderRateLimited)],
)
async def test_psa_client_errors(
    fake_psa: tuple[FakePsa, str], status: int, error: type[Exception]
) -> None:
    fake, url = fake_psa
    fake.status = status
    with pytest.raises(error):
        await PsaClient(token=TOKEN, base_url=url).lookup("12345678")


async def test_psa_client_with_a_wrong_token(fake_psa: tuple[FakePsa, str]) -> None:
    _, url = fake_psa
    with pytest.raises(GraderError) as info:
        await PsaClient(token="wrong", base_url=url).lookup("12345678")
    assert "token" in info.value.message


async def test_psa_client_when_psa_is_unreachable() -> None:
    client = PsaClient(token=TOKEN, base_url=f"http://127.0.0.1:{devstack.free_port()}", timeout=2)
    with pytest.raises(GraderError):
        await client.lookup("12345678")


async def test_admin_api_verifies_through_the_real_psa_client(
    rwa_env: RwaEnvFactory, fake_psa: tuple[FakePsa, str]
) -> None:
    fake, url = fake_psa
    env = await rwa_env(PSA_API_TOKEN=TOKEN, PSA_BASE_URL=url)
    fake.certs["44556677"] = psa_cert("44556677", "GEM MT 10")
    asset = await env.create_asset(cert_number="44556677", grade="10")
    assert asset["certificate"]["subject"] == "MICKEY MANTLE"
    assert asset["certificate"]["grade"] == "GEM MT 10"
    assert fake.requests[-1][0].endswith("/44556677")
    admin = await env.admin(0)
    body: dict[str, Any] = {
        "title": "x",
        "category": "card",
        "grader": "PSA",
        "grade": "10",
        "custodian": "v",
        "insured_value_cents": 1,
        "consignor_id": asset["_consignor"].id.hex,
    }
    missing = await env.http.post(
        "/api/admin/rwa/assets", json={**body, "cert_number": "11112222"}, headers=admin.headers
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "CERTIFICATE_NOT_FOUND"
    fake.certs["33334444"] = psa_cert("33334444", "NM-MT 8")
    mismatch = await env.http.post(
        "/api/admin/rwa/assets", json={**body, "cert_number": "33334444"}, headers=admin.headers
    )
    assert mismatch.status_code == 422
    err = mismatch.json()["error"]
    assert err["code"] == "GRADE_MISMATCH" and err["details"]["registry"] == "NM-MT 8"
    fake.status = 503
    down = await env.http.post(
        "/api/admin/rwa/assets", json={**body, "cert_number": "55556666"}, headers=admin.headers
    )
    assert down.status_code == 502
    assert down.json()["error"]["code"] == "GRADER_UNAVAILABLE"


async def test_sandbox_magic_certificate_numbers(rwa_env: RwaEnvFactory) -> None:
    env = await rwa_env()
    admin = await env.admin(0)
    consignor = await env.make_user()
    body: dict[str, Any] = {
        "title": "Rolex Daytona 6263",
        "category": "watch",
        "grader": "PSA",
        "custodian": "PULL Vault",
        "insured_value_cents": 50_000_000,
        "consignor_id": str(consignor.id),
    }

    async def create(cert: str, grade: str) -> Any:
        return await env.http.post(
            "/api/admin/rwa/assets",
            json={**body, "cert_number": cert, "grade": grade},
            headers=admin.headers,
        )

    ok = await create("12345679", "9")
    assert ok.status_code == 201, ok.text
    made = ok.json()
    assert made["state"] == "draft" and made["symbol"].startswith("RWA")
    assert made["certificate"]["grade"] == "MINT 9" and made["shares_outstanding"] == 0
    dup = await create("12345679", "9")
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "DUPLICATE_CERTIFICATE"
    assert (await create("40412345", "10")).json()["error"]["code"] == "CERTIFICATE_NOT_FOUND"
    wrong = await create("40912345", "10")
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "GRADE_MISMATCH"
    assert (await create(new_cert(7), "8")).json()["error"]["code"] == "GRADE_MISMATCH"
    down = await create("50312345", "10")
    assert down.status_code == 502 and down.json()["error"]["code"] == "GRADER_UNAVAILABLE"
    limited = await create("42912345", "10")
    assert limited.status_code == 503 and limited.json()["error"]["code"] == "GRADER_RATE_LIMITED"
    # only admins create assets
    investor = await env.investor()
    r = await env.http.post(
        "/api/admin/rwa/assets",
        json={**body, "cert_number": new_cert(), "grade": "10"},
        headers=investor.headers,
    )
    assert r.status_code == 403
