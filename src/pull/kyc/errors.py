"""The KYC module's typed errors (403s carry the details clients need to explain them)."""

from __future__ import annotations

from typing import Any

from pull.kit.errors import Conflict, Forbidden


class KycRequired(Forbidden):
    code = "KYC_REQUIRED"
    message = "Identity verification is required for this action"

    def __init__(self, required_tier: str, message: str | None = None) -> None:
        super().__init__(message, details={"required_tier": required_tier})


class LimitExceeded(Forbidden):
    code = "LIMIT_EXCEEDED"
    message = "This amount is over your verification tier's limit"

    def __init__(
        self,
        *,
        limit: int,
        used: int,
        remaining: int,
        resets_at: str | None,
        action: str,
        window: str,
    ) -> None:
        details: dict[str, Any] = {
            "limit": limit,
            "used": used,
            "remaining": remaining,
            "resets_at": resets_at,
            "action": action,
            "window": window,
        }
        super().__init__(details=details)


class ReferenceConflict(Conflict):
    code = "LIMIT_REFERENCE_CONFLICT"
    message = "This reference was already used for another user or action"
