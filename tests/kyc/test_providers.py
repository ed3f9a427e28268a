"""The real vendor clients against local fakes speaking the vendors' JSON, the sandboxes'
signed deliveries, the provider choice, and sanctions screening."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pull import devstack
from pull.config import Environment, Settings
from pull.kyc.providers import NotConfigured, for_settings, signing
from pull.kyc.providers.base import Address, Applicant, ProviderError
from pull.kyc.providers.checkr import CheckrClient
from pull.kyc.providers.parallel_markets import ParallelMarketsClient
from pull.kyc.providers.persona import PersonaClient
from pull.kyc.providers.sandbox import (
    CheckrSandbox,
    ParallelMarketsSandbox,
    PersonaSandbox,
    WebhookDelivery,
)
from pull.kyc.sanctions import SanctionsList
from tests.kyc.conftest import serve

APPLICANT = Applicant(
    reference_id="3f1c7a52-8d0e-4c1b-9a55-0c2f4b9e7d11",
    user_id="u-1",
    email="ada@example.com",
    first_name="Ada",
    last_name="Lovelace",
    dob="1985-12-10",
    address=Address(line1="12 Engine Way", city="Springfield", state="IL", postal_code="62701"),
    phone="+15550001111",
    ssn_last4="4321",
    target_tier="enhanced",
)


class FakeVendor:
    """One fake server for the three vendors; records what it was sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str], Any]] = []
        self.fail = False

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        self.calls.append((request.method, request.url.path, dict(request.headers), body))
        return body

    async def inquiries(self, request: Request) -> Response:
        await self._record(request)
        if self.fail:
            return JSONResponse({"errors": [{"title": "boom"}]}, status_code=503)
        return JSONResponse(
            {
                "data": {
                    "type": "inquiry",
                    "id": "inq_fake123",
                    "attributes": {"status": "created", "reference-id": APPLICANT.reference_id},
                }
            },
            status_code=201,
        )

    async def resume(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse(
            {
                "data": {"type": "inquiry", "id": request.path_params["id"]},
                "meta": {"session-token": "sess_fake_token"},
            }
        )

    async def candidates(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"id": "cand_fake", "object": "candidate"}, status_code=201)

    async def reports(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse(
            {"id": "rep_fake", "object": "report", "status": "pending"}, status_code=201
        )

    async def accreditations(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"id": "acc_fake", "status": "pending"}, status_code=201)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/persona/inquiries", self.inquiries, methods=["POST"]),
                Route("/persona/inquiries/{id}/resume", self.resume, methods=["POST"]),
                Route("/checkr/candidates", self.candidates, methods=["POST"]),
                Route("/checkr/reports", self.reports, methods=["POST"]),
                Route("/pm/accreditations", self.accreditations, methods=["POST"]),
            ]
        )


@pytest.fixture
async def vendor() -> Any:
    fake = FakeVendor()
    async with serve(fake.app(), devstack.free_port()) as url:
        yield fake, url


async def test_persona_client_creates_an_inquiry_and_resumes_it(vendor: Any) -> None:
    fake, url = vendor
    client = PersonaClient(
        api_key="persona_test_key",
        base_url=f"{url}/persona",
        templates={"standard": "itmpl_std", "enhanced": "itmpl_enh"},
    )
    inquiry = await client.create_inquiry(APPLICANT, tier="enhanced")
    assert (inquiry.id, inquiry.session_token) == ("inq_fake123", "sess_fake_token")
    (method, path, headers, body), (_, resume_path, _, _) = fake.calls
    assert (method, path) == ("POST", "/persona/inquiries")
    assert resume_path == "/persona/inquiries/inq_fake123/resume"
    assert headers["authorization"] == "Bearer persona_test_key"
    assert headers["persona-version"] == "2023-01-05"
    assert headers["key-inflection"] == "kebab"
    assert headers["idempotency-key"] == f"inquiry-{APPLICANT.reference_id}"
    attrs = body["data"]["attributes"]
    assert attrs["inquiry-template-id"] == "itmpl_enh"
    assert attrs["reference-id"] == APPLICANT.reference_id
    assert attrs["fields"]["name-last"] == "Lovelace"
    assert attrs["fields"]["birthdate"] == "1985-12-10"
    assert attrs["fields"]["address-postal-code"] == "62701"
    assert attrs["fields"]["identification-number-last4"] == "4321"


async def test_persona_client_failure_is_a_provider_error(vendor: Any) -> None:
    fake, url = vendor
    fake.fail = True
    client = PersonaClient(api_key="k", base_url=f"{url}/persona", templates={})
    with pytest.raises(ProviderError) as info:
        await client.create_inquiry(APPLICANT, tier="standard")
    assert info.value.status_code == 503
    unreachable = PersonaClient(
        api_key="k", base_url=f"http://127.0.0.1:{devstack.free_port()}", templates={}
    )
    with pytest.raises(ProviderError):
        await unreachable.create_inquiry(APPLICANT, tier="standard")


async def test_checkr_client_orders_a_report_for_a_candidate(vendor: Any) -> None:
    fake, url = vendor
    client = CheckrClient(api_key="checkr_key", base_url=f"{url}/checkr", package="pkg_basic")
    assert await client.create_report(APPLICANT) == "rep_fake"
    (_, p1, h1, candidate), (_, p2, _, report) = fake.calls
    assert (p1, p2) == ("/checkr/candidates", "/checkr/reports")
    assert h1["authorization"] == "Basic " + base64.b64encode(b"checkr_key:").decode()
    assert candidate["custom_id"] == APPLICANT.reference_id
    assert candidate["zipcode"] == "62701"
    assert report == {"candidate_id": "cand_fake", "package": "pkg_basic"}


async def test_parallel_markets_client_requests_an_accreditation(vendor: Any) -> None:
    fake, url = vendor
    client = ParallelMarketsClient(api_key="pm_token", base_url=f"{url}/pm")
    assert await client.request_accreditation(APPLICANT) == "acc_fake"
    ((_, path, headers, body),) = fake.calls
    assert path == "/pm/accreditations"
    assert headers["authorization"] == "Bearer pm_token"
    assert body["external_id"] == APPLICANT.reference_id
    assert body["type"] == "individual"


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []

    async def hook(self, request: Request) -> Response:
        self.received.append((request.url.path, dict(request.headers), await request.body()))
        return JSONResponse({"received": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/webhooks/{vendor}", self.hook, methods=["POST"])])


async def test_sandboxes_deliver_webhooks_signed_like_the_vendors() -> None:
    import asyncio

    receiver = Receiver()
    async with serve(receiver.app(), devstack.free_port()) as url:
        delivery = WebhookDelivery(url, 0.05)
        persona = PersonaSandbox(delivery, "ps")
        checkr = CheckrSandbox(delivery, "cs")
        pm = ParallelMarketsSandbox(delivery, "pms")
        inquiry = await persona.create_inquiry(APPLICANT, tier="standard")
        report = await checkr.create_report(APPLICANT)
        accreditation = await pm.request_accreditation(APPLICANT)
        for _ in range(100):
            if len(receiver.received) >= 4:
                break
            await asyncio.sleep(0.05)
    by_path: dict[str, list[tuple[dict[str, str], bytes]]] = {}
    for path, headers, body in receiver.received:
        by_path.setdefault(path, []).append((headers, body))
    names = []
    for headers, body in by_path["/webhooks/persona"]:
        signing.verify_persona("ps", headers["persona-signature"], body, tolerance=300)
        doc = json.loads(body)
        names.append(doc["data"]["attributes"]["name"])
        assert doc["data"]["attributes"]["payload"]["data"]["id"] == inquiry.id
    assert names == ["inquiry.completed", "inquiry.approved"]
    ((headers, body),) = by_path["/webhooks/checkr"]
    signing.verify_hex("cs", headers["x-checkr-signature"], body)
    assert json.loads(body)["data"]["object"] == {
        "id": report,
        "object": "report",
        "status": "clear",
    }
    ((headers, body),) = by_path["/webhooks/parallel-markets"]
    signing.verify_hex("pms", headers["x-parallel-signature"], body)
    assert json.loads(body)["data"]["id"] == accreditation
    assert json.loads(body)["data"]["status"] == "current"


def test_persona_signature_checks() -> None:
    body = b'{"a":1}'
    header = signing.persona_signature("s", body, 1_700_000_000)
    signing.verify_persona("s", header, body, tolerance=300, now=1_700_000_299)
    # Several v1 values while a secret rotates: any one may match.
    rotated = header + ",v1=" + "0" * 64
    signing.verify_persona("s", rotated, body, tolerance=300, now=1_700_000_000)
    for bad_header, now in [
        (header, 1_700_000_301),  # stale
        (header, 1_699_999_699),  # from the future
        (signing.persona_signature("other", body, 1_700_000_000), 1_700_000_000),
        ("v1=abc", 1_700_000_000),
        ("", 1_700_000_000),
    ]:
        with pytest.raises(signing.InvalidSignature):
            signing.verify_persona("s", bad_header, body, tolerance=300, now=now)
    with pytest.raises(signing.InvalidSignature):
        signing.verify_persona("s", header, b'{"a":2}', tolerance=300, now=1_700_000_000)


def test_real_clients_when_keys_are_set_sandboxes_otherwise(settings: Settings) -> None:
    sandboxed = for_settings(settings)
    assert isinstance(sandboxed.identity, PersonaSandbox)
    assert isinstance(sandboxed.background, CheckrSandbox)
    assert isinstance(sandboxed.accreditation, ParallelMarketsSandbox)
    real = for_settings(
        settings.model_copy(
            update={
                "persona_api_key": "p",
                "checkr_api_key": "c",
                "parallel_markets_api_key": "m",
            }
        )
    )
    assert isinstance(real.identity, PersonaClient)
    assert isinstance(real.background, CheckrClient)
    assert isinstance(real.accreditation, ParallelMarketsClient)


async def test_deployed_environments_never_use_a_sandbox(settings: Settings) -> None:
    production = for_settings(settings.model_copy(update={"environment": Environment.production}))
    with pytest.raises(NotConfigured):
        await production.identity.create_inquiry(APPLICANT, tier="standard")


def test_sanctions_screening_of_the_shipped_list() -> None:
    sdn = SanctionsList.load()
    assert len(sdn.entries) == 3  # the entity row is not screened against people
    hit = sdn.screen(first_name="Testy", last_name="Sanctioned", dob=dt.date(1970, 1, 1))
    assert (hit.outcome, hit.matches) == ("hit", ("900001",))
    assert (
        sdn.screen(first_name="testy", last_name="SANCTIONED", dob=dt.date(1980, 5, 5)).outcome
        == "review"
    )
    # Only the year is listed: the same year is a hit.
    assert (
        sdn.screen(first_name="Ivan", last_name="Embargoed", dob=dt.date(1965, 7, 1)).outcome
        == "hit"
    )
    assert (
        sdn.screen(first_name="Maria", last_name="Blocklisted", dob=dt.date(1990, 1, 1)).outcome
        == "review"
    )
    assert (
        sdn.screen(first_name="Ada", last_name="Lovelace", dob=dt.date(1985, 12, 10)).outcome
        == "clear"
    )
    # A partial name is not a match.
    assert (
        sdn.screen(first_name="Testy", last_name="Person", dob=dt.date(1970, 1, 1)).outcome
        == "clear"
    )


def test_sanctions_list_from_an_sdn_file(tmp_path: Path) -> None:
    sdn_file = tmp_path / "sdn.csv"
    sdn_file.write_text(
        '1001,"ÉXAMPLE-PÉREZ, José","individual","SDGT",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,'
        '"DOB 02 Mar 1960; alt. DOB 03 Mar 1961."\n'
        '1002,"ACME VESSEL",-0- ,"CUBA",-0- ,-0- ,"Cargo",-0- ,-0- ,"Cuba",-0- ,-0- \n',
        encoding="utf-8",
    )
    sdn = SanctionsList.load(sdn_file)
    assert len(sdn.entries) == 1
    alt = sdn.screen(first_name="Jose", last_name="Example-Perez", dob=dt.date(1961, 3, 3))
    assert alt.outcome == "hit"
