"""Sandboxes of Persona, Checkr and Parallel Markets, the default in development and tests.

Like the vendors' own sandboxes they answer at once, finish on their own a few seconds later
(KYC_SANDBOX_DELAY_SECONDS) and deliver the outcome as a webhook signed exactly as the vendor
signs it, to our own endpoint under KYC_WEBHOOK_BASE_URL, so the real verification code runs.
The outcome is chosen by the applicant's last name (docs/sandbox.md):

  Persona           Decline -> inquiry.declined, Review -> inquiry.marked-for-review,
                    Expire -> inquiry.expired, Abandon -> nothing (the user never finishes),
                    anything else -> inquiry.completed then inquiry.approved
  Checkr            Consider -> report.completed "consider", else "clear"
  Parallel Markets  Unaccredited -> "rejected", else "current"
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

import httpx

from pull.kyc.providers import signing
from pull.kyc.providers.base import Applicant, Inquiry

log = logging.getLogger("pull.kyc.sandbox")

# Deliveries in flight (kept referenced so they are not garbage-collected mid-way).
_DELIVERIES: set[asyncio.Task[None]] = set()


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _magic(applicant: Applicant) -> str:
    return applicant.last_name.strip().casefold()


# --- vendor webhook bodies (also used by tests to play the vendor) --------------------------


def persona_event(
    name: str, *, inquiry_id: str, reference_id: str, event_id: str | None = None
) -> dict[str, Any]:
    status = name.removeprefix("inquiry.")
    return {
        "data": {
            "type": "event",
            "id": event_id or f"evt_{secrets.token_hex(12)}",
            "attributes": {
                "name": name,
                "created-at": _now_iso(),
                "payload": {
                    "data": {
                        "type": "inquiry",
                        "id": inquiry_id,
                        "attributes": {"status": status, "reference-id": reference_id},
                    }
                },
            },
        }
    }


def checkr_event(
    report_id: str,
    *,
    status: str,
    event_type: str = "report.completed",
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": event_id or secrets.token_hex(12),
        "object": "event",
        "type": event_type,
        "created_at": _now_iso(),
        "data": {"object": {"id": report_id, "object": "report", "status": status}},
    }


def parallel_event(
    accreditation_id: str, *, status: str, event_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": event_id or f"pm_evt_{secrets.token_hex(12)}",
        "event": "accreditation_status_updated",
        "created_at": _now_iso(),
        "data": {"id": accreditation_id, "type": "accreditation", "status": status},
    }


# --- delivery ---------------------------------------------------------------------------------


class WebhookDelivery:
    """Posts signed webhooks to our own API after a delay, retrying like a vendor does."""

    def __init__(
        self,
        base_url: str,
        delay: float,
        *,
        attempts: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.delay = delay
        self.attempts = attempts
        self.transport = transport

    def schedule(
        self, path: str, bodies: list[tuple[bytes, Callable[[bytes], dict[str, str]]]]
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(path, bodies))
        _DELIVERIES.add(task)
        task.add_done_callback(_DELIVERIES.discard)

    async def _deliver(
        self, path: str, bodies: list[tuple[bytes, Callable[[bytes], dict[str, str]]]]
    ) -> None:
        await asyncio.sleep(self.delay)
        async with httpx.AsyncClient(transport=self.transport, timeout=10) as client:
            for body, sign in bodies:
                for attempt in range(self.attempts):
                    try:
                        # Signed at send time: a retried Persona delivery gets a fresh timestamp.
                        headers = {"Content-Type": "application/json", **sign(body)}
                        r = await client.post(
                            f"{self.base_url}{path}", content=body, headers=headers
                        )
                        if r.status_code < 300:
                            break
                        log.info(
                            "sandbox webhook refused", extra={"path": path, "status": r.status_code}
                        )
                    except httpx.HTTPError as exc:
                        log.info(
                            "sandbox webhook failed",
                            extra={"path": path, "error": type(exc).__name__},
                        )
                    await asyncio.sleep(min(0.5 * 2**attempt, 5.0))


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class PersonaSandbox:
    def __init__(self, delivery: WebhookDelivery, secret: str) -> None:
        self.delivery = delivery
        self.secret = secret

    def _sign(self, body: bytes) -> dict[str, str]:
        return {signing.PERSONA_HEADER: signing.persona_signature(self.secret, body)}

    async def create_inquiry(self, applicant: Applicant, *, tier: str) -> Inquiry:
        inquiry_id = f"inq_sandbox{secrets.token_hex(10)}"
        magic = _magic(applicant)
        ref = applicant.reference_id
        names: list[str]
        if magic == "decline":
            names = ["inquiry.declined"]
        elif magic == "review":
            names = ["inquiry.completed", "inquiry.marked-for-review"]
        elif magic == "expire":
            names = ["inquiry.expired"]
        elif magic == "abandon":
            names = []
        else:
            names = ["inquiry.completed", "inquiry.approved"]
        if names:
            self.delivery.schedule(
                "/webhooks/persona",
                [
                    (_body(persona_event(n, inquiry_id=inquiry_id, reference_id=ref)), self._sign)
                    for n in names
                ],
            )
        return Inquiry(id=inquiry_id, session_token=f"sandbox-session-{secrets.token_urlsafe(16)}")


class CheckrSandbox:
    def __init__(self, delivery: WebhookDelivery, secret: str) -> None:
        self.delivery = delivery
        self.secret = secret

    def _sign(self, body: bytes) -> dict[str, str]:
        return {signing.CHECKR_HEADER: signing.hex_hmac(self.secret, body)}

    async def create_report(self, applicant: Applicant) -> str:
        report_id = f"sandbox{secrets.token_hex(12)}"
        status = "consider" if _magic(applicant) == "consider" else "clear"
        self.delivery.schedule(
            "/webhooks/checkr", [(_body(checkr_event(report_id, status=status)), self._sign)]
        )
        return report_id


class ParallelMarketsSandbox:
    def __init__(self, delivery: WebhookDelivery, secret: str) -> None:
        self.delivery = delivery
        self.secret = secret

    def _sign(self, body: bytes) -> dict[str, str]:
        return {signing.PARALLEL_HEADER: signing.hex_hmac(self.secret, body)}

    async def request_accreditation(self, applicant: Applicant) -> str:
        accreditation_id = f"acc_sandbox{secrets.token_hex(10)}"
        status = "rejected" if _magic(applicant) == "unaccredited" else "current"
        self.delivery.schedule(
            "/webhooks/parallel-markets",
            [(_body(parallel_event(accreditation_id, status=status)), self._sign)],
        )
        return accreditation_id
