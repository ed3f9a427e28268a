"""Checkr over its REST API with httpx: a candidate, then a report for the package.

Checkr authenticates with the API key as the basic-auth user name (empty password).
"""

from __future__ import annotations

import httpx

from pull.kyc.providers.base import Applicant
from pull.kyc.providers.http import field, request_json

VENDOR = "Checkr"


class CheckrClient:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        package: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.package = package
        self.transport = transport
        self.timeout = timeout

    async def create_report(self, applicant: Applicant) -> str:
        auth = (self.api_key, "")
        candidate = {
            "first_name": applicant.first_name,
            "last_name": applicant.last_name,
            "no_middle_name": True,
            "email": applicant.email,
            "phone": applicant.phone,
            "dob": applicant.dob,
            "zipcode": applicant.address.postal_code,
            "custom_id": applicant.reference_id,
        }
        async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout) as client:
            created = await request_json(
                client,
                "POST",
                f"{self.base_url}/candidates",
                vendor=VENDOR,
                json=candidate,
                auth=auth,
            )
            candidate_id = field(created, "id", vendor=VENDOR)
            report = await request_json(
                client,
                "POST",
                f"{self.base_url}/reports",
                vendor=VENDOR,
                json={"candidate_id": candidate_id, "package": self.package},
                auth=auth,
            )
        return field(report, "id", vendor=VENDOR)
