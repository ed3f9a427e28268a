"""TOTP (RFC 6238, 30 s steps, 6 digits) and recovery codes.

A code is accepted for the previous, current or next step (clock drift), and never for a step
at or before the last one accepted, so an observed code cannot be replayed. Recovery codes are
80 random bits, so storing their SHA-256 is as safe as storing a token's.
"""

from __future__ import annotations

import hmac
import secrets
import time

import pyotp

ISSUER = "PULL"
STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_RECOVERY_GROUPS = 4
_RECOVERY_GROUP_LEN = 4


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_SECONDS)


def matching_step(
    secret: str, code: str, *, after_step: int | None = None, now: float | None = None
) -> int | None:
    """The time step `code` belongs to (within drift, after `after_step`), else None."""
    digits = code.replace(" ", "").strip()
    if len(digits) != 6 or not digits.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    step = current_step(now)
    for candidate in range(step - DRIFT_STEPS, step + DRIFT_STEPS + 1):
        if after_step is not None and candidate <= after_step:
            continue
        expected = totp.at(candidate * STEP_SECONDS)
        if hmac.compare_digest(expected.encode(), digits.encode()):
            return candidate
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like `k7pq-2mxd-9hrt-bw4e`, shown to the user once."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        groups = [
            "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_GROUP_LEN))
            for _ in range(_RECOVERY_GROUPS)
        ]
        codes.append("-".join(groups))
    return codes


def normalize_recovery_code(code: str) -> str | None:
    """Canonical form (lowercase, no separators) of something shaped like a recovery code."""
    compact = code.replace("-", "").replace(" ", "").strip().lower()
    if len(compact) != _RECOVERY_GROUPS * _RECOVERY_GROUP_LEN:
        return None
    if any(c not in _RECOVERY_ALPHABET for c in compact):
        return None
    return compact
