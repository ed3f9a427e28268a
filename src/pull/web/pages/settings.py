"""Settings: profile, password, two-factor authentication, API keys, sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(include_in_schema=False)


async def _settings(page: Page, **extra: Any) -> Response:
    me, keys, sessions = await page.gather(
        page.call("GET", "/api/auth/me"),
        page.call("GET", "/api/v1/api-keys"),
        page.call("GET", "/api/auth/sessions"),
    )
    page.session.remember(me)
    keys = keys["items"]
    sessions = sessions.get("items", sessions) if isinstance(sessions, dict) else sessions
    return page.render(
        "settings.html", me=me, keys=keys, sessions=sessions, title="Settings", **extra
    )


@router.get("/settings")
async def settings(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    return await _settings(page)


async def _do(page: Page, method: str, path: str, ok: str, **kw: Any) -> Any:
    try:
        result = await page.call(method, path, **kw)
    except ApiError as exc:
        page.session.say(exc.human, "error")
        return None
    page.session.say(ok)
    return result if result is not None else True


@router.post("/settings/profile")
async def profile(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    await _do(
        page,
        "PATCH",
        "/api/auth/me",
        "Profile saved.",
        json={"display_name": form.get("display_name", "").strip() or None},
    )
    return page.redirect("/settings")


@router.post("/settings/password")
async def password(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    body = {
        "current_password": form.get("current_password", ""),
        "new_password": form.get("new_password", ""),
    }
    await _do(page, "POST", "/api/auth/change-password", "Password changed.", json=body)
    return page.redirect("/settings")


@router.post("/settings/reauthenticate")
async def reauthenticate(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    body = {k: form[k] for k in ("password", "totp_code") if form.get(k)}
    await _do(page, "POST", "/api/auth/reauthenticate", "Confirmed. Go ahead.", json=body)
    return page.redirect("/settings")


@router.post("/settings/2fa/setup")
async def totp_setup(request: Request) -> Response:
    """Shows the secret and its otpauth link once; the code from the app turns 2FA on."""
    page = Page(request)
    page.require_login()
    await page.form()
    try:
        setup = await page.call("POST", "/api/auth/2fa/setup")
    except ApiError as exc:
        page.session.say(exc.human, "error")
        return page.redirect("/settings")
    return await _settings(page, setup=setup)


@router.post("/settings/2fa/enable")
async def totp_enable(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    try:
        codes = await page.call(
            "POST", "/api/auth/2fa/enable", json={"code": form.get("code", "").strip()}
        )
    except ApiError as exc:
        page.session.say(exc.human, "error")
        return page.redirect("/settings")
    page.session.say("Two-factor authentication is on. Keep your recovery codes somewhere safe.")
    return await _settings(page, recovery_codes=codes["recovery_codes"])


@router.post("/settings/2fa/disable")
async def totp_disable(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    await _do(
        page,
        "POST",
        "/api/auth/2fa/disable",
        "Two-factor authentication is off.",
        json={"code": form.get("code", "").strip()},
    )
    return page.redirect("/settings")


@router.post("/settings/api-keys")
async def create_key(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    body = {"name": form.get("name", "").strip(), "public_key_pem": form.get("public_key_pem", "")}
    key = await _do(page, "POST", "/api/v1/api-keys", "API key added.", json=body)
    if isinstance(key, dict):
        page.session.say(f"Key id for the KALSHI-ACCESS-KEY header: {key['key_id']}")
    return page.redirect("/settings#api-keys")


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    await _do(page, "DELETE", f"/api/v1/api-keys/{key_id}", "API key revoked.")
    return page.redirect("/settings#api-keys")


@router.post("/settings/sessions/{session_id}/revoke")
async def revoke_session(request: Request, session_id: str) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    await _do(page, "DELETE", f"/api/auth/sessions/{session_id}", "Session signed out.")
    return page.redirect("/settings#sessions")


@router.post("/settings/sessions/logout-all")
async def logout_all(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    await _do(page, "POST", "/api/auth/logout-all", "Signed out everywhere.")
    page.session.sign_out()
    return page.redirect("/login")
