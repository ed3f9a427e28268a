"""Grader registries: PSA's real client when PSA_API_TOKEN is set, else the sandbox (never in a
deployed environment, where an unset token makes verification fail with GRADER_NOT_CONFIGURED)."""

from __future__ import annotations

from pull.config import Settings
from pull.rwa.providers.base import Certificate, Grader, GraderError, GraderRateLimited
from pull.rwa.providers.psa import PsaClient
from pull.rwa.providers.sandbox import PsaSandbox

__all__ = ["Certificate", "Grader", "GraderError", "GraderRateLimited", "graders_for"]


class _Unconfigured:
    name = "PSA"

    async def lookup(self, cert_number: str) -> Certificate | None:
        raise GraderError(
            "PSA_API_TOKEN is not set", code="GRADER_NOT_CONFIGURED", details={"grader": "PSA"}
        )


def graders_for(settings: Settings) -> dict[str, Grader]:
    """The registries by grader name."""
    psa: Grader
    if settings.psa_api_token:
        psa = PsaClient(token=settings.psa_api_token, base_url=settings.psa_base_url)
    elif settings.is_deployed:
        psa = _Unconfigured()
    else:
        psa = PsaSandbox()
    return {"PSA": psa}
