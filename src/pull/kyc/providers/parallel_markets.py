"""Parallel Markets (accredited-investor verification) over its REST API with httpx.

We ask for an accreditation of an individual identified by our application id
(`external_id`); the investor completes it on Parallel's side and the result arrives by
webhook (`accreditation_status_updated`).
"""

from __future__ import annotations

import httpx

from pull.kyc.providers.base import Applicant
from pull.kyc.providers.http import field, request_json

VENDOR = "Parallel Markets"


class ParallelMarketsClient:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.timeout = timeout

    async def request_accreditation(self, applicant: Applicant) -> str:
        body = {
            "external_id": applicant.reference_id,
            "type": "individual",
            "email": applicant.email,
            "first_name": applicant.first_name,
            "last_name": applicant.last_name,
        }
        async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout) as client:
            created = await request_json(
                client,
                "POST",
                f"{self.base_url}/accreditations",
                vendor=VENDOR,
                json=body,
                headers={"Authorization": f"Bearer {self.api_key}"},
            )
        return field(created, "id", vendor=VENDOR)
