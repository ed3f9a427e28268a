"""The browser session: the API's token pair in an encrypted HttpOnly cookie, plus CSRF.

Stateless on the web side (any replica can serve any request): the cookie carries the access
and refresh tokens encrypted with WEB_SESSION_SECRET (Fernet: AES-CBC + HMAC, timestamped), so
neither page scripts nor anyone reading the cookie can use them. Forms carry a CSRF token that
must equal the one inside the cookie; SameSite=Lax keeps cross-site POSTs from sending it.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

COOKIE = "pull_session"


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    access: str | None = None
    refresh: str | None = None
    user: dict[str, Any] = field(default_factory=dict)
    flash: list[tuple[str, str]] = field(default_factory=list)
    dirty: bool = False
    cleared: bool = False

    @property
    def signed_in(self) -> bool:
        return self.access is not None

    @property
    def is_admin(self) -> bool:
        return self.user.get("role") == "admin"

    def sign_in(self, tokens: dict[str, Any], user: dict[str, Any] | None = None) -> None:
        self.access = tokens["access_token"]
        self.refresh = tokens.get("refresh_token", self.refresh)
        if user is not None:
            self.remember(user)
        self.csrf = secrets.token_urlsafe(24)  # a new session gets a new CSRF token
        self.dirty = True

    def remember(self, user: dict[str, Any]) -> None:
        keep = ("id", "email", "role", "email_verified", "phone_verified", "totp_enabled")
        self.user = {k: user.get(k) for k in keep}
        self.dirty = True

    def sign_out(self) -> None:
        self.access = self.refresh = None
        self.user = {}
        self.csrf = secrets.token_urlsafe(24)
        self.dirty = True

    def say(self, text: str, kind: str = "ok") -> None:
        self.flash.append((kind, text))
        self.dirty = True

    def take_flash(self) -> list[tuple[str, str]]:
        out, self.flash = self.flash, []
        if out:
            self.dirty = True
        return out

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf)


class SessionCodec:
    def __init__(self, key: bytes, max_age: int) -> None:
        self.fernet = Fernet(key)
        self.max_age = max_age

    def load(self, raw: str | None) -> Session:
        if not raw:
            return Session(dirty=True)
        try:
            data = json.loads(self.fernet.decrypt(raw.encode(), ttl=self.max_age))
        except (InvalidToken, ValueError):
            return Session(dirty=True)
        return Session(
            csrf=data.get("c") or secrets.token_urlsafe(24),
            access=data.get("a"),
            refresh=data.get("r"),
            user=data.get("u") or {},
            flash=[(str(k), str(t)) for k, t in data.get("f", [])],
        )

    def dump(self, s: Session) -> str:
        body = {"c": s.csrf, "a": s.access, "r": s.refresh, "u": s.user, "f": s.flash}
        return self.fernet.encrypt(json.dumps(body, separators=(",", ":")).encode()).decode()
