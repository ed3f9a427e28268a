"""The verified-token cache (kit.tokens): a token is verified once, then answered from memory
only while PyJWT itself would still accept it, and only for the secret that verified it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest

from pull.config import Settings
from pull.kit import tokens
from pull.kit.tokens import InvalidToken, decode_access_token, encode_access_token

SECRET_A = "a" * 40
SECRET_B = "b" * 40


def _settings(secret: str) -> Settings:
    return Settings(JWT_SECRET=secret)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    tokens._verified.clear()
    return calls


def test_a_token_is_verified_once_then_served_from_memory(verifications: list[str]) -> None:
    settings = _settings(SECRET_A)
    token, _ = encode_access_token(settings, user_id=str(uuid.uuid4()), session_id="s")
    first = decode_access_token(settings, token)
    assert decode_access_token(settings, token) == first
    assert decode_access_token(settings, token) == first
    assert verifications == [token]


def test_another_secret_does_not_find_the_entry(verifications: list[str]) -> None:
    token, _ = encode_access_token(_settings(SECRET_A), user_id="u", session_id="s")
    decode_access_token(_settings(SECRET_A), token)
    with pytest.raises(InvalidToken):
        decode_access_token(_settings(SECRET_B), token)
    assert len(verifications) == 2


def test_an_entry_ends_with_the_tokens_expiry(verifications: list[str]) -> None:
    settings = _settings(SECRET_A)
    second = int(time.time())
    # accepted (within PyJWT's leeway) until `second + 2`, refused from then on
    exp = second - tokens.LEEWAY + 2
    claims: dict[str, Any] = {"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": "u"}
    claims |= {"sid": "s", "typ": "access", "jti": "j", "iat": second - 60, "exp": exp}
    token = jwt.encode(claims, SECRET_A, algorithm="HS256")
    decode_access_token(settings, token)
    decode_access_token(settings, token)
    assert len(verifications) == 1  # the second answer came from memory
    time.sleep(max(0.0, second + 2.05 - time.time()))
    with pytest.raises(InvalidToken):  # not from memory: verified again, and refused
        decode_access_token(settings, token)
    assert len(verifications) == 2
    assert (SECRET_A, token) not in tokens._verified


def test_refused_tokens_are_not_kept_and_the_cache_is_bounded(
    verifications: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(SECRET_A)
    forged = jwt.encode({"sub": "u"}, SECRET_B, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(InvalidToken):
            decode_access_token(settings, forged)
    assert len(verifications) == 2 and not tokens._verified
    monkeypatch.setattr(tokens, "VERIFIED_MAX", 3)
    issued = [encode_access_token(settings, user_id=f"u{i}", session_id="s")[0] for i in range(5)]
    for token in issued:
        decode_access_token(settings, token)
    assert list(tokens._verified) == [(SECRET_A, t) for t in issued[-3:]]
