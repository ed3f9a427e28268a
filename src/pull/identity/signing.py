"""Kalshi-style request signing for the trading API.

A client signs `timestamp + METHOD + path` (path without the query string; timestamp in unix
milliseconds) with its RSA private key, RSA-PSS with MGF1-SHA256, SHA-256 and a salt as long
as the digest, and sends the base64 signature in KALSHI-ACCESS-SIGNATURE next to
KALSHI-ACCESS-KEY (the key id) and KALSHI-ACCESS-TIMESTAMP. This is what Kalshi's own SDK
does, so its clients work against PULL unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from functools import lru_cache

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pull.kit.errors import Unauthorized, Unprocessable

MIN_KEY_BITS = 2048
MAX_SKEW_MS = 60_000
HEADER_KEY = "KALSHI-ACCESS-KEY"
HEADER_TIMESTAMP = "KALSHI-ACCESS-TIMESTAMP"
HEADER_SIGNATURE = "KALSHI-ACCESS-SIGNATURE"


class BadSignature(Unauthorized):
    code = "INVALID_SIGNATURE"
    message = "Request signature is not valid"


class StaleTimestamp(Unauthorized):
    code = "STALE_TIMESTAMP"
    message = "KALSHI-ACCESS-TIMESTAMP is more than 60 seconds from the server's clock"


def load_rsa_public_key(pem: str) -> rsa.RSAPublicKey:
    """Parse a PEM public key; only RSA of 2048 bits or more is accepted (422 otherwise)."""
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise Unprocessable(
            "public_key_pem is not a PEM-encoded public key", code="INVALID_PUBLIC_KEY"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise Unprocessable("Only RSA keys are accepted", code="INVALID_PUBLIC_KEY")
    if key.key_size < MIN_KEY_BITS:
        raise Unprocessable(
            f"RSA keys need at least {MIN_KEY_BITS} bits", code="INVALID_PUBLIC_KEY"
        )
    return key


def public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def fingerprint(key: rsa.RSAPublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


@lru_cache(maxsize=4096)
def _cached_key(pem: str) -> rsa.RSAPublicKey:
    """Parsing costs more than verifying; stored keys never change, so cache by PEM."""
    return load_rsa_public_key(pem)


def check_timestamp(timestamp: str, *, now_ms: int | None = None) -> None:
    if not timestamp.isdigit():
        raise BadSignature("KALSHI-ACCESS-TIMESTAMP must be unix milliseconds")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now - int(timestamp)) > MAX_SKEW_MS:
        raise StaleTimestamp()


def verify(pem: str, signature_b64: str, message: str) -> None:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("KALSHI-ACCESS-SIGNATURE is not base64") from None
    try:
        _cached_key(pem).verify(
            signature,
            message.encode(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
            hashes.SHA256(),
        )
    except InvalidSignature:
        raise BadSignature() from None


def sign(private_key: rsa.RSAPrivateKey, timestamp: str, method: str, path: str) -> str:
    """The client side (used by our tests, bench and docs): exactly what Kalshi's SDK sends."""
    message = (timestamp + method.upper() + path.split("?", 1)[0]).encode()
    signature = private_key.sign(
        message,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    return base64.b64encode(signature).decode()
