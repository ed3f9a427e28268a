"""Password hashing (argon2id) and the password policy.

Hashing runs in a worker thread: argon2 is deliberately slow and would otherwise stall the
event loop (argon2-cffi releases the GIL, so threads hash in parallel).
"""

from __future__ import annotations

import asyncio
import secrets
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from pull.config import Settings
from pull.kit.errors import Unprocessable

MIN_LENGTH = 8
MAX_LENGTH = 128


class Passwords:
    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=Type.ID,
        )
        # Verified against when the email is unknown, so that case costs the same time.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def from_settings(cls, settings: Settings) -> Passwords:
        return cls(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when it matches; a missing hash is checked against the dummy (same cost)."""
        target = stored_hash or self._dummy
        try:
            ok = await asyncio.to_thread(self._hasher.verify, target, password)
        except (VerificationError, InvalidHashError):
            return False
        return bool(ok) and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    """zxcvbn's 30,000 most common passwords (lowercase)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def password_problems(password: str, *, email: str | None = None) -> list[str]:
    """Why a password is too weak; empty when it is acceptable."""
    problems: list[str] = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        problems.append(f"must be {MIN_LENGTH} to {MAX_LENGTH} characters")
    if not any(c.islower() for c in password):
        problems.append("must contain a lowercase letter")
    if not any(c.isupper() for c in password):
        problems.append("must contain an uppercase letter")
    if not any(c.isdigit() for c in password):
        problems.append("must contain a digit")
    lowered = password.lower()
    if lowered in _common_passwords():
        problems.append("is too common")
    elif email and lowered == email.split("@", 1)[0]:
        problems.append("must not be your email address")
    return problems


def check_password_policy(password: str, *, email: str | None = None) -> None:
    problems = password_problems(password, email=email)
    if problems:
        raise Unprocessable(
            "Password is too weak: " + "; ".join(problems),
            code="WEAK_PASSWORD",
            details={"problems": problems},
        )
