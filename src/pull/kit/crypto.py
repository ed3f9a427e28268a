"""Field encryption at rest (Fernet, with key rotation) and hashing of secrets we must compare.

FIELD_ENCRYPTION_KEYS is a comma-separated list of Fernet keys: the first encrypts, every
key decrypts, so a new key is added in front and old rows are re-encrypted with `rotate`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class FieldCipher:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("FIELD_ENCRYPTION_KEYS needs at least one Fernet key")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("field cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt under the newest key."""
        return self._fernet.rotate(token.encode()).decode()


def new_fernet_key() -> str:
    return Fernet.generate_key().decode()


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random secret (reset tokens, refresh tokens, ...)."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    """Digest for high-entropy secrets stored for lookup (never for passwords)."""
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
