"""Identity errors. Some must keep the changes made before them (a counted login failure, a
revoked token family, their audit entries): those carry `persist = True`, and the API boundary
commits before answering with them."""

from __future__ import annotations

from pull.kit.errors import AppError, Forbidden, Unauthorized


class InvalidCredentials(Unauthorized):
    code = "INVALID_CREDENTIALS"
    message = "Invalid email or password"
    persist = True


class TotpRequired(Unauthorized):
    code = "TOTP_REQUIRED"
    message = "A two-factor code is required"
    persist = True


class InvalidTotp(Unauthorized):
    code = "INVALID_TOTP"
    message = "Invalid two-factor code"
    persist = True


class TokenReused(Unauthorized):
    code = "TOKEN_REUSED"
    message = "Refresh token already used; the session has been revoked"
    persist = True


class InvalidToken(Unauthorized):
    code = "INVALID_TOKEN"
    message = "Invalid or expired token"


class AccountDisabled(Forbidden):
    code = "ACCOUNT_DISABLED"
    message = "This account is suspended or closed"
    persist = True


class AccountRestricted(Forbidden):
    code = "ACCOUNT_RESTRICTED"
    message = "This account is restricted: it may sign in and read, but not move money or trade"


class InvalidCode(AppError):
    """A wrong phone code; the attempt is counted (details carry `attempts_left`)."""

    status_code = 400
    code = "INVALID_CODE"
    message = "That code is not right"
    persist = True


class CodeExpired(AppError):
    status_code = 400
    code = "CODE_EXPIRED"
    message = "The code has expired or was tried too often; ask for a new one"
    persist = True


class AdminTotpRequired(Forbidden):
    code = "ADMIN_2FA_REQUIRED"
    message = "Administrators must turn on two-factor authentication (/api/auth/2fa/setup)"


class RecentAuthRequired(Forbidden):
    code = "RECENT_AUTH_REQUIRED"
    message = (
        "Confirm your password or a 2FA code first (POST /api/auth/reauthenticate); "
        "it counts for 5 minutes"
    )
    persist = True  # the refusal is audited


class SignedRequestCannotCreateKeys(Forbidden):
    code = "SIGNED_REQUEST_CANNOT_CREATE_KEYS"
    message = (
        "A request signed with an API key cannot create API keys; create them with "
        "POST /api/v1/api-keys from a recently authenticated session"
    )
    persist = True  # the refusal is audited


def must_persist(exc: BaseException) -> bool:
    return isinstance(exc, AppError) and bool(getattr(exc, "persist", False))
