"""What the KYC workflow needs from each vendor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pull.kit.errors import ServiceUnavailable


@dataclass(frozen=True, repr=False)
class Address:
    line1: str
    city: str
    state: str
    postal_code: str
    country: str = "US"
    line2: str | None = None

    def __repr__(self) -> str:
        return "Address(...)"


@dataclass(frozen=True, repr=False)
class Applicant:
    """Decrypted PII, handed to a provider call and never logged or stored in plaintext."""

    def __repr__(self) -> str:  # no PII in tracebacks or debug output
        return f"Applicant(reference_id={self.reference_id!r})"

    reference_id: str  # our application id
    user_id: str
    email: str
    first_name: str
    last_name: str
    dob: str  # YYYY-MM-DD
    address: Address
    phone: str
    ssn_last4: str | None = None
    target_tier: str = "standard"


@dataclass(frozen=True)
class Inquiry:
    id: str
    session_token: str


class ProviderError(ServiceUnavailable):
    """A vendor call failed (network, 5xx, unexpected answer); activities retry it."""

    code = "PROVIDER_ERROR"
    message = "A verification provider is unavailable"


class IdentityVerifier(Protocol):
    """Persona: an inquiry the user completes in the client with its session token."""

    async def create_inquiry(self, applicant: Applicant, *, tier: str) -> Inquiry: ...


class BackgroundChecker(Protocol):
    """Checkr: a candidate and a report; the outcome arrives by webhook."""

    async def create_report(self, applicant: Applicant) -> str: ...


class AccreditationVerifier(Protocol):
    """Parallel Markets: an accreditation request; the outcome arrives by webhook."""

    async def request_accreditation(self, applicant: Applicant) -> str: ...
