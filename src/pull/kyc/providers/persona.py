"""Persona (withpersona.com) over its REST API with httpx.

An inquiry is created from a template with our application id as `reference-id` and the
applicant's fields prefilled; `resume` returns the session token the client SDK needs.
"""

from __future__ import annotations

from typing import Any

import httpx

from pull.kyc.providers.base import Applicant, Inquiry
from pull.kyc.providers.http import field, request_json

PERSONA_VERSION = "2023-01-05"
VENDOR = "Persona"


class PersonaClient:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        templates: dict[str, str],
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.templates = templates
        self.transport = transport
        self.timeout = timeout

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, timeout=self.timeout)

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Persona-Version": PERSONA_VERSION,
            "Key-Inflection": "kebab",
            "Accept": "application/json",
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def create_inquiry(self, applicant: Applicant, *, tier: str) -> Inquiry:
        template = self.templates.get(tier) or self.templates.get("standard", "")
        fields: dict[str, Any] = {
            "name-first": applicant.first_name,
            "name-last": applicant.last_name,
            "birthdate": applicant.dob,
            "address-street-1": applicant.address.line1,
            "address-street-2": applicant.address.line2 or "",
            "address-city": applicant.address.city,
            "address-subdivision": applicant.address.state,
            "address-postal-code": applicant.address.postal_code,
            "address-country-code": applicant.address.country,
            "phone-number": applicant.phone,
            "email-address": applicant.email,
        }
        if applicant.ssn_last4:
            fields["identification-number-last4"] = applicant.ssn_last4
        payload = {
            "data": {
                "attributes": {
                    "inquiry-template-id": template,
                    "reference-id": applicant.reference_id,
                    "fields": fields,
                }
            }
        }
        async with self._client() as client:
            created = await request_json(
                client,
                "POST",
                f"{self.base_url}/inquiries",
                vendor=VENDOR,
                json=payload,
                headers=self._headers(idempotency_key=f"inquiry-{applicant.reference_id}"),
            )
            inquiry_id = field(created, "data", "id", vendor=VENDOR)
            resumed = await request_json(
                client,
                "POST",
                f"{self.base_url}/inquiries/{inquiry_id}/resume",
                vendor=VENDOR,
                headers=self._headers(),
            )
        token = field(resumed, "meta", "session-token", vendor=VENDOR)
        return Inquiry(id=inquiry_id, session_token=token)
