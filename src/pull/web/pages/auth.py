"""Sign up, sign in (with the authenticator code when 2FA is on), sign out, email links."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page, safe_next

router = APIRouter(include_in_schema=False)


@router.get("/signup")
async def signup_form(request: Request, ref: str = "") -> Response:
    return Page(request).render("auth/signup.html", form={"referral_code": ref})


@router.post("/signup")
async def signup(request: Request) -> Response:
    page = Page(request)
    form = await page.form()
    body = {"email": form.get("email", "").strip(), "password": form.get("password", "")}
    if form.get("display_name"):
        body["display_name"] = form["display_name"].strip()
    if form.get("referral_code"):
        body["referral_code"] = form["referral_code"].strip()
    try:
        auth = await page.anon("POST", "/api/auth/register", json=body)
    except ApiError as exc:
        form.pop("password", None)
        return page.render("auth/signup.html", status_code=400, error=exc.human, form=form)
    page.session.sign_in(auth, auth["user"])
    page.session.say("Welcome to PULL. Check your email for the verification link.")
    return page.redirect("/account")


@router.get("/login")
async def login_form(request: Request, next: str = "") -> Response:
    return Page(request).render("auth/login.html", next=safe_next(next), form={})


@router.post("/login")
async def login(request: Request) -> Response:
    page = Page(request)
    form = await page.form()
    body = {"email": form.get("email", "").strip(), "password": form.get("password", "")}
    if form.get("totp_code"):
        body["totp_code"] = form["totp_code"].strip()
    next_url = safe_next(form.get("next"))
    try:
        auth = await page.anon("POST", "/api/auth/login", json=body)
    except ApiError as exc:
        needs_code = exc.code in ("TOTP_REQUIRED", "INVALID_TOTP")
        return page.render(
            "auth/login.html",
            status_code=400,
            error=exc.human,
            next=next_url,
            form={"email": body["email"]},
            needs_code=needs_code,
            # the password goes back only into the hidden field of the code step
            password=body["password"] if needs_code else "",
        )
    page.session.sign_in(auth, auth["user"])
    return page.redirect(next_url)


@router.post("/logout")
async def logout(request: Request) -> Response:
    page = Page(request)
    await page.form()
    if page.session.signed_in:
        try:
            await page.call("POST", "/api/auth/logout")
        except ApiError:
            pass  # the local session ends regardless
    page.session.sign_out()
    page.session.say("You are signed out.")
    return page.redirect("/login")


@router.get("/verify-email")
async def verify_email_link(request: Request, token: str = "") -> Response:
    """The link in the verification mail lands here; a button posts it (mail scanners that
    follow links must not verify an address by accident)."""
    return Page(request).render("auth/verify_email.html", token=token)


@router.post("/verify-email")
async def verify_email(request: Request) -> Response:
    page = Page(request)
    form = await page.form()
    try:
        user = await page.anon("POST", "/api/auth/verify-email", json={"token": form["token"]})
    except ApiError as exc:
        return page.render("auth/verify_email.html", status_code=400, error=exc.human, token="")
    if page.session.signed_in and page.session.user.get("id") == user["id"]:
        page.session.remember(user)
    page.session.say("Your email address is verified.")
    return page.redirect("/account" if page.session.signed_in else "/login")


@router.get("/forgot-password")
async def forgot_form(request: Request) -> Response:
    return Page(request).render("auth/forgot.html")


@router.post("/forgot-password")
async def forgot(request: Request) -> Response:
    page = Page(request)
    form = await page.form()
    try:
        await page.anon("POST", "/api/auth/forgot-password", json={"email": form.get("email")})
    except ApiError as exc:
        return page.render("auth/forgot.html", status_code=400, error=exc.human)
    page.session.say("If that address has an account, a reset link is on its way.")
    return page.redirect("/login")


@router.get("/reset-password")
async def reset_form(request: Request, token: str = "") -> Response:
    return Page(request).render("auth/reset.html", token=token)


@router.post("/reset-password")
async def reset(request: Request) -> Response:
    page = Page(request)
    form = await page.form()
    body = {"token": form.get("token", ""), "password": form.get("password", "")}
    try:
        await page.anon("POST", "/api/auth/reset-password", json=body)
    except ApiError as exc:
        return page.render("auth/reset.html", status_code=400, error=exc.human, token=body["token"])
    page.session.say("Your password is changed. Sign in with the new one.")
    return page.redirect("/login")
