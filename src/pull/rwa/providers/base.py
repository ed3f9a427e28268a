"""The grader Protocol: look a certificate up in the grading company's registry."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from pull.kit.errors import AppError, ServiceUnavailable

CERT_NUMBER = re.compile(r"^[0-9]{5,15}$")
_TRAILING_NUMBER = re.compile(r"([0-9]+(?:\.[0-9])?)\s*$")


@dataclass(frozen=True)
class Certificate:
    """A certificate as the registry knows it."""

    grader: str
    cert_number: str
    grade: str  # the registry's grade label, e.g. "GEM MT 10"
    subject: str
    year: str
    brand: str
    category: str
    population: int | None = None
    population_higher: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def numeric_grade(self) -> str | None:
        return numeric_grade(self.grade)


def numeric_grade(label: str) -> str | None:
    """The number a grade label ends with ("GEM MT 10" -> "10", "NM-MT+ 8.5" -> "8.5")."""
    found = _TRAILING_NUMBER.search(label.strip())
    if found is None:
        return None
    value = found.group(1)
    return value[:-2] if value.endswith(".0") else value


class GraderError(AppError):
    """The registry could not be asked (credentials, rate limit, outage)."""

    status_code = 502
    code = "GRADER_UNAVAILABLE"
    message = "The grading company's registry did not answer"


class GraderRateLimited(ServiceUnavailable):
    code = "GRADER_RATE_LIMITED"
    message = "The grading company's registry is rate limiting us; try again later"


class Grader(Protocol):
    """One grading company's registry (PSA, ...)."""

    name: str

    async def lookup(self, cert_number: str) -> Certificate | None:
        """The certificate, or None when the registry has no such number. Raises GraderError
        (or GraderRateLimited) when the registry cannot be asked."""
        ...
