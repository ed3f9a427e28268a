"""Identity routes: thin, they parse, authorize, call the service and shape the response."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import account, api_keys, auth, messages, phone, service, two_factor
from pull.identity.deps import CurrentUser, identity_env, request_meta
from pull.identity.errors import must_persist
from pull.identity.schemas import (
    ApiKeyCreate,
    ApiKeyList,
    ApiKeyRead,
    AuthResponse,
    ChangePasswordRequest,
    CheckResponse,
    EmailRequest,
    LoginRequest,
    PhoneStartRequest,
    PhoneStartResponse,
    PhoneVerifyRequest,
    ReauthenticateRequest,
    RecoveryCodesResponse,
    RefreshRequest,
    RegisterRequest,
    RequestMeta,
    ResetPasswordRequest,
    SandboxMessagePage,
    SessionRead,
    StatusResponse,
    TokenPair,
    TokenRequest,
    TotpCodeRequest,
    TotpSetupResponse,
    UserRead,
    UserUpdate,
)
from pull.kit.db import SessionDep, commit
from pull.kit.errors import NotFound
from pull.kit.ratelimit import OnRedisDown, RateClass, RateLimiter, auth_routes, general

Env = Annotated[service.IdentityEnv, Depends(identity_env)]
Meta = Annotated[RequestMeta, Depends(request_meta)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    429: {"description": "Rate limited"},
}

router = APIRouter(prefix="/api/auth", tags=["auth"], responses=_ERRORS)
strict = [Depends(auth_routes)]
relaxed = [Depends(general)]


@asynccontextmanager
async def _keep_on_error(session: AsyncSession) -> AsyncIterator[None]:
    """Commit what the service recorded before an error that must persist (see errors.py)."""
    try:
        yield
    except Exception as exc:
        if must_persist(exc):
            await commit(session)
        raise


async def _limit_account(request: Request, email: str) -> None:
    """Per-account auth limit on top of the per-IP one, so many IPs cannot hammer one account."""
    limiter: RateLimiter = request.app.state.rate_limiter
    if limiter.enabled:
        key = f"acct:{service.normalize_email(email)}"
        await limiter.hit(RateClass.auth, key, on_redis_down=OnRedisDown.local)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    dependencies=strict,
    summary="Create an account; answers with the user and a token pair",
    responses={409: {"description": "EMAIL_TAKEN"}, 422: {"description": "WEAK_PASSWORD"}},
)
async def register(
    data: RegisterRequest, session: SessionDep, env: Env, meta: Meta
) -> AuthResponse:
    return await auth.register(session=session, data=data, env=env, meta=meta)


@router.post(
    "/login",
    dependencies=strict,
    summary="Exchange email and password (and a 2FA code when enabled) for tokens",
    responses={403: {"description": "Account suspended or closed"}},
)
async def login(
    data: LoginRequest, request: Request, session: SessionDep, env: Env, meta: Meta
) -> AuthResponse:
    await _limit_account(request, data.email)
    async with _keep_on_error(session):
        return await auth.login(
            session=session,
            env=env,
            email=data.email,
            password=data.password,
            totp_code=data.totp_code,
            meta=meta,
        )


@router.post(
    "/refresh",
    dependencies=relaxed,
    summary="Rotate a refresh token; a reused one revokes its session (TOKEN_REUSED)",
)
async def refresh(data: RefreshRequest, session: SessionDep, env: Env, meta: Meta) -> TokenPair:
    async with _keep_on_error(session):
        return await auth.refresh(
            session=session, env=env, refresh_token=data.refresh_token, meta=meta
        )


@router.post("/logout", dependencies=relaxed, summary="End this session at once")
async def logout(user: CurrentUser, session: SessionDep, meta: Meta) -> StatusResponse:
    if user.session_id is not None:
        await auth.logout(session=session, user_id=user.id, session_id=user.session_id, meta=meta)
    return StatusResponse(message="Logged out")


@router.post(
    "/logout-all",
    dependencies=relaxed,
    summary="Log out everywhere: every session (this one too) and every API key are revoked",
)
async def logout_all(user: CurrentUser, session: SessionDep, meta: Meta) -> StatusResponse:
    await auth.logout_all(session=session, user_id=user.id, meta=meta)
    return StatusResponse(message="Logged out everywhere; API keys were revoked")


@router.post(
    "/reauthenticate",
    dependencies=strict,
    summary="Confirm the password or a 2FA code; sensitive actions need it within 5 minutes",
    responses={401: {"description": "INVALID_CREDENTIALS"}},
)
async def reauthenticate(
    data: ReauthenticateRequest,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    env: Env,
    meta: Meta,
) -> StatusResponse:
    await _limit_user(request, user.id)
    async with _keep_on_error(session):
        await auth.reauthenticate(
            session=session,
            env=env,
            caller=user,
            password=data.password,
            totp_code=data.totp_code,
            meta=meta,
        )
    return StatusResponse(message="Confirmed for the next 5 minutes")


@router.post("/check", dependencies=relaxed, summary="Is this access token valid?")
async def check(user: CurrentUser) -> CheckResponse:
    return CheckResponse(user_id=user.id)


@router.get("/me", dependencies=relaxed, summary="The caller's account")
async def me(user: CurrentUser, session: SessionDep) -> UserRead:
    found = await service.get_user(session=session, user_id=user.id)
    if found is None:
        raise NotFound("User not found", code="USER_NOT_FOUND")
    return found


@router.patch("/me", dependencies=relaxed, summary="Change display name or phone")
async def update_me(user: CurrentUser, data: UserUpdate, session: SessionDep) -> UserRead:
    return await account.update_me(session=session, user_id=user.id, data=data)


@router.post(
    "/change-password",
    dependencies=strict,
    summary="Change the password; every other session and every API key are revoked",
)
async def change_password(
    data: ChangePasswordRequest, user: CurrentUser, session: SessionDep, env: Env, meta: Meta
) -> StatusResponse:
    async with _keep_on_error(session):
        await account.change_password(
            session=session,
            env=env,
            user_id=user.id,
            session_id=user.session_id,
            current_password=data.current_password,
            new_password=data.new_password,
            meta=meta,
        )
    return StatusResponse(
        message="Password changed; other sessions were signed out and API keys revoked"
    )


@router.get("/sessions", dependencies=relaxed, summary="The caller's live sessions")
async def sessions(user: CurrentUser, session: SessionDep) -> list[SessionRead]:
    return await account.list_sessions(
        session=session, user_id=user.id, current_session_id=user.session_id
    )


@router.delete(
    "/sessions/{session_id}",
    dependencies=relaxed,
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of the caller's sessions",
)
async def revoke_session(
    session_id: uuid.UUID, user: CurrentUser, session: SessionDep, meta: Meta
) -> Response:
    await account.revoke_own_session(
        session=session, user_id=user.id, session_id=session_id, meta=meta
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/verify-email", dependencies=strict, summary="Confirm the email address")
async def verify_email(data: TokenRequest, session: SessionDep, meta: Meta) -> UserRead:
    return await account.verify_email(session=session, token=data.token, meta=meta)


_SENT = "If the address belongs to an account that needs it, an email is on its way"


@router.post(
    "/resend-verification",
    dependencies=strict,
    summary="Send the verification email again (at most once a minute)",
)
async def resend_verification(
    data: EmailRequest, session: SessionDep, env: Env, meta: Meta
) -> StatusResponse:
    await account.resend_verification(session=session, env=env, email=data.email, meta=meta)
    return StatusResponse(message=_SENT)


@router.post("/forgot-password", dependencies=strict, summary="Email a password-reset link")
async def forgot_password(
    data: EmailRequest, session: SessionDep, env: Env, meta: Meta
) -> StatusResponse:
    await account.forgot_password(session=session, env=env, email=data.email, meta=meta)
    return StatusResponse(message=_SENT)


@router.post(
    "/reset-password",
    dependencies=strict,
    summary="Set a new password with an emailed token; every session and API key is revoked",
)
async def reset_password(
    data: ResetPasswordRequest, session: SessionDep, env: Env, meta: Meta
) -> StatusResponse:
    await account.reset_password(
        session=session, env=env, token=data.token, password=data.password, meta=meta
    )
    return StatusResponse(message="Password reset; sign in with the new password")


# --- two-factor authentication ------------------------------------------------------------


async def _limit_user(request: Request, user_id: uuid.UUID) -> None:
    """Six-digit codes are guessable: per-account limit on top of the per-IP one."""
    limiter: RateLimiter = request.app.state.rate_limiter
    if limiter.enabled:
        await limiter.hit(RateClass.auth, f"2fa:{user_id}", on_redis_down=OnRedisDown.local)


@router.post(
    "/2fa/setup",
    dependencies=strict,
    summary="Start 2FA enrolment: a TOTP secret as an otpauth:// URI",
)
async def totp_setup(
    user: CurrentUser, session: SessionDep, env: Env, meta: Meta
) -> TotpSetupResponse:
    return await two_factor.totp_setup(session=session, env=env, user_id=user.id, meta=meta)


@router.post(
    "/2fa/enable",
    dependencies=strict,
    summary="Confirm enrolment with a code; answers with ten recovery codes, shown once",
)
async def totp_enable(
    data: TotpCodeRequest,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    env: Env,
    meta: Meta,
) -> RecoveryCodesResponse:
    await _limit_user(request, user.id)
    return await two_factor.totp_enable(
        session=session, env=env, user_id=user.id, code=data.code, meta=meta
    )


@router.post(
    "/2fa/disable",
    dependencies=strict,
    summary="Turn 2FA off with a current code or a recovery code",
)
async def totp_disable(
    data: TotpCodeRequest,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    env: Env,
    meta: Meta,
) -> StatusResponse:
    await _limit_user(request, user.id)
    await two_factor.totp_disable(
        session=session, env=env, user_id=user.id, code=data.code, meta=meta
    )
    return StatusResponse(message="Two-factor authentication is off")


@router.post(
    "/2fa/recovery-codes",
    dependencies=strict,
    summary="Replace the recovery codes (needs a current 2FA code)",
)
async def recovery_codes(
    data: TotpCodeRequest,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    env: Env,
    meta: Meta,
) -> RecoveryCodesResponse:
    await _limit_user(request, user.id)
    return await two_factor.regenerate_recovery_codes(
        session=session, env=env, user_id=user.id, code=data.code, meta=meta
    )


# --- phone verification (docs/identity.md) -------------------------------------------------


@router.post(
    "/phone/start",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=strict,
    summary="Store a phone number (unverified) and text it a 6-digit code",
    responses={
        409: {"description": "PHONE_TAKEN, PHONE_ALREADY_VERIFIED"},
        422: {"description": "INVALID_PHONE"},
        429: {"description": "TOO_MANY_CODES (Retry-After)"},
    },
)
async def phone_start(
    data: PhoneStartRequest, user: CurrentUser, session: SessionDep, env: Env, meta: Meta
) -> PhoneStartResponse:
    return await phone.start_phone_verification(
        session=session, env=env, user_id=user.id, phone=data.phone, meta=meta
    )


@router.post(
    "/phone/verify",
    dependencies=strict,
    summary="Confirm the phone number with the texted code",
    responses={
        400: {"description": "INVALID_CODE (attempts_left), CODE_EXPIRED, NO_PENDING_CODE"},
        409: {"description": "PHONE_TAKEN, PHONE_ALREADY_VERIFIED"},
    },
)
async def phone_verify(
    data: PhoneVerifyRequest,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    env: Env,
    meta: Meta,
) -> UserRead:
    await _limit_user(request, user.id)
    async with _keep_on_error(session):
        return await phone.verify_phone(
            session=session, env=env, user_id=user.id, code=data.code, meta=meta
        )


# --- the sandbox message box (development and test only) ------------------------------------

sandbox_router = APIRouter(
    prefix="/api/v1/sandbox", tags=["sandbox"], responses=_ERRORS, dependencies=relaxed
)


@sandbox_router.get(
    "/messages",
    summary="Development only: the mail and texts PULL sent to the caller, newest first",
    responses={404: {"description": "Deployed, or a real mail or SMS provider is configured"}},
)
async def sandbox_messages(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int | None, Query(ge=1, le=200)] = None,
) -> SandboxMessagePage:
    return await messages.sandbox_messages(
        session=session,
        settings=request.app.state.settings,
        user_id=user.id,
        cursor=cursor,
        limit=limit,
    )


# --- API keys for the trading API ------------------------------------------------------------

api_keys_router = APIRouter(
    prefix="/api/v1/api-keys", tags=["api keys"], responses=_ERRORS, dependencies=relaxed
)


@api_keys_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register an RSA public key (2048 bits or more) for signed trading-API requests; "
    "needs the password or a 2FA code proven in this session within 5 minutes",
    responses={
        403: {"description": "RECENT_AUTH_REQUIRED"},
        422: {"description": "INVALID_PUBLIC_KEY"},
    },
)
async def create_api_key(
    data: ApiKeyCreate, user: CurrentUser, session: SessionDep, meta: Meta
) -> ApiKeyRead:
    async with _keep_on_error(session):
        return await api_keys.create_api_key(session=session, caller=user, data=data, meta=meta)


@api_keys_router.get(
    "", summary="The caller's API keys with their last use (revoked ones with include_revoked)"
)
async def list_api_keys(
    user: CurrentUser, session: SessionDep, include_revoked: bool = False
) -> ApiKeyList:
    return ApiKeyList(
        items=await api_keys.list_api_keys(
            session=session, user_id=user.id, include_revoked=include_revoked
        )
    )


@api_keys_router.delete(
    "/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key"
)
async def revoke_api_key(
    key_id: uuid.UUID, user: CurrentUser, session: SessionDep, meta: Meta
) -> Response:
    await api_keys.revoke_api_key(session=session, user_id=user.id, key_id=key_id, meta=meta)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def routers() -> list[APIRouter]:
    return [router, api_keys_router, sandbox_router]
