"""PSA's public API (https://api.psacard.com/publicapi), over httpx.

`GET /cert/GetByCertNumber/{certNumber}` with `Authorization: bearer <token>` answers
`{"PSACert": {"CertNumber", "Year", "Brand", "Category", "CardNumber", "Subject", "Variety",
"CardGrade", "GradeDescription", "TotalPopulation", "PopulationHigher", ...}}`. A number PSA does
not know comes back as 200 with `{"IsValidRequest": true, "ServerMessage": "No data found"}`; a
malformed one as `{"IsValidRequest": false, "ServerMessage": "Invalid certificate number"}`.
401/403: the token is wrong; 429: the daily quota is spent; 5xx: an outage.
"""

from __future__ import annotations

from typing import Any

import httpx

from pull.rwa.providers.base import CERT_NUMBER, Certificate, GraderError, GraderRateLimited

DEFAULT_BASE_URL = "https://api.psacard.com/publicapi"


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _str(value: Any) -> str:
    return "" if value is None else str(value).strip()


class PsaClient:
    name = "PSA"

    def __init__(
        self,
        *,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token = token
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._timeout = timeout
        self._transport = transport

    async def lookup(self, cert_number: str) -> Certificate | None:
        if not CERT_NUMBER.match(cert_number):
            return None  # PSA would answer "Invalid certificate number"; never sent
        url = f"{self._base_url}/cert/GetByCertNumber/{cert_number}"
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, transport=self._transport
            ) as client:
                response = await client.get(
                    url,
                    headers={
                        "Authorization": f"bearer {self._token}",
                        "Accept": "application/json",
                    },
                )
        except httpx.HTTPError as exc:
            raise GraderError(details={"grader": self.name, "error": type(exc).__name__}) from exc
        if response.status_code == 429:
            raise GraderRateLimited(details={"grader": self.name})
        if response.status_code in (401, 403):
            raise GraderError(
                "PSA refused our API token", details={"grader": self.name, "status": 401}
            )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise GraderError(details={"grader": self.name, "status": response.status_code})
        try:
            body = response.json()
        except ValueError as exc:
            raise GraderError("PSA answered something that is not JSON") from exc
        if not isinstance(body, dict):
            raise GraderError("PSA answered an unexpected shape")
        cert = body.get("PSACert")
        if not isinstance(cert, dict) or not cert.get("CertNumber"):
            return None  # {"IsValidRequest": ..., "ServerMessage": "No data found"}
        return Certificate(
            grader=self.name,
            cert_number=_str(cert.get("CertNumber")),
            grade=_str(cert.get("CardGrade") or cert.get("GradeDescription")),
            subject=_str(cert.get("Subject")),
            year=_str(cert.get("Year")),
            brand=_str(cert.get("Brand")),
            category=_str(cert.get("Category")),
            population=_int(cert.get("TotalPopulation")),
            population_higher=_int(cert.get("PopulationHigher")),
            raw=cert,
        )
