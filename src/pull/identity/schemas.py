"""Request and response shapes of the identity module (also its public data types)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["user", "admin"]
Status = Literal["active", "restricted", "suspended", "closed"]


@dataclass(frozen=True)
class AuthUser:
    """The authenticated caller. `session_id` is None for signed API-key requests."""

    id: uuid.UUID
    email: str
    role: str
    status: str
    session_id: uuid.UUID | None
    # Two-factor authentication is on (admin routes require it).
    totp_enabled: bool = False
    # Last proof of the password or a 2FA code in this session (None for signed requests).
    authenticated_at: dt.datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class RequestMeta:
    """Who is asking, for the audit log and new sessions."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str | None
    role: Role
    status: Status
    referral_code: str
    referred_by_id: uuid.UUID | None = None
    email_verified: bool
    phone: str | None
    phone_verified: bool
    totp_enabled: bool
    created_at: dt.datetime


class RegisterRequest(BaseModel):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    # Length and composition are checked by the service (422 WEAK_PASSWORD), not here.
    password: str = Field(max_length=1024)
    display_name: str | None = Field(None, max_length=100)
    referral_code: str | None = Field(None, max_length=32)


class LoginRequest(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    totp_code: str | None = Field(
        None, max_length=64, description="TOTP code, or a recovery code, when 2FA is on"
    )


class RefreshRequest(BaseModel):
    refresh_token: str = Field(max_length=512)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name
    expires_in: int = Field(description="Seconds until the access token expires")


class AuthResponse(TokenPair):
    user: UserRead


class CheckResponse(BaseModel):
    authenticated: Literal[True] = True
    user_id: uuid.UUID


class StatusResponse(BaseModel):
    status: Literal["ok"] = "ok"
    message: str | None = None


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, max_length=100)
    phone: str | None = Field(
        None,
        pattern=r"^\+[1-9][0-9]{6,14}$",
        description="E.164; changing it clears phone verification",
    )


class ChangePasswordRequest(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class EmailRequest(BaseModel):
    email: str = Field(max_length=320)


class TokenRequest(BaseModel):
    token: str = Field(max_length=512)


class ResetPasswordRequest(BaseModel):
    token: str = Field(max_length=512)
    password: str = Field(max_length=1024)


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: dt.datetime
    last_used_at: dt.datetime
    expires_at: dt.datetime
    user_agent: str | None
    ip: str | None
    current: bool = False


class TotpSetupResponse(BaseModel):
    otpauth_uri: str
    secret: str = Field(description="Base32 secret, for apps that cannot scan the URI")


class TotpCodeRequest(BaseModel):
    code: str = Field(max_length=64)


class RecoveryCodesResponse(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works once")


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    public_key_pem: str = Field(max_length=10_000, description="RSA public key, 2048 bits or more")


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key_id: uuid.UUID
    name: str
    fingerprint: str = Field(description="SHA-256 of the DER-encoded public key, hex")
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None = None
    revoked_reason: str | None = Field(
        None, description="user, password_change, password_reset or logout_all"
    )


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]


class PhoneStartRequest(BaseModel):
    phone: str = Field(
        min_length=1,
        max_length=32,
        examples=["+14155550100"],
        description="E.164 (a leading + and the country code); spaces, dots and dashes are ignored",
    )


class PhoneStartResponse(BaseModel):
    phone: str = Field(description="The number as stored, normalized to E.164")
    channel: Literal["sms"] = "sms"
    expires_at: dt.datetime = Field(description="The code works until then")
    resend_after: dt.datetime = Field(description="No new code before then")


class PhoneVerifyRequest(BaseModel):
    code: str = Field(pattern=r"^[0-9]{4,10}$", examples=["123456"])


class SandboxMessage(BaseModel):
    id: str = Field(description="`email-<n>` or `sms-<n>`")
    channel: Literal["email", "sms"]
    to: str
    subject: str | None
    body: str
    created_at: dt.datetime


class SandboxMessagePage(BaseModel):
    items: list[SandboxMessage]
    cursor: str | None = Field(None, description="Pass as `cursor` to get the next (older) page")


class ReauthenticateRequest(BaseModel):
    """Either the password or a current 2FA code (or a recovery code) proves it is the owner."""

    password: str | None = Field(None, max_length=128)
    totp_code: str | None = Field(None, max_length=64)
