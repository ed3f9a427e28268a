"""Funding routes: bank links, deposits, withdrawals, admin approval, and the Plaid webhook."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse

from pull.funding import deposits, recovery, service, webhook, withdrawals
from pull.funding.providers.base import PlaidProvider
from pull.funding.providers.factory import make_provider
from pull.funding.providers.signing import HEADER
from pull.funding.schemas import (
    BankAccountCreate,
    BankAccountList,
    BankAccountRead,
    DepositCreate,
    DepositPage,
    DepositRead,
    LinkAccount,
    LinkInstitution,
    LinkTokenRead,
    RejectRequest,
    RestrictionRead,
    RestrictRequest,
    SandboxPublicTokenCreate,
    SandboxPublicTokenRead,
    WebhookAck,
    WithdrawalCreate,
    WithdrawalPage,
    WithdrawalRead,
)
from pull.identity.deps import ActiveUser, AdminUser, CurrentUser, request_meta
from pull.identity.schemas import RequestMeta
from pull.kit.crypto import FieldCipher
from pull.kit.db import SessionDep
from pull.kit.errors import NotFound
from pull.kit.idempotency import IdempotencyKeyHeader, run_idempotent
from pull.kit.pagination import (
    clamp_limit,
    created_before,
    created_next,
)
from pull.kit.ratelimit import general, payment_routes, webhook_routes

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    429: {"description": "Rate limited"},
}
_MONEY: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    400: {"description": "IDEMPOTENCY_KEY_REQUIRED or INVALID_IDEMPOTENCY_KEY"},
    403: {"description": "ACCOUNT_RESTRICTED, KYC_REQUIRED or LIMIT_EXCEEDED"},
    404: {"description": "BANK_ACCOUNT_NOT_FOUND"},
    409: {"description": "INSUFFICIENT_FUNDS, BANK_ACCOUNT_UNLINKED or IDEMPOTENCY_KEY_REUSED"},
    422: {"description": "Invalid amount"},
}

router = APIRouter(prefix="/api/v1/funding", tags=["funding"], responses=_ERRORS)
admin_router = APIRouter(prefix="/api/admin/withdrawals", tags=["admin"], responses=_ERRORS)
users_admin_router = APIRouter(prefix="/api/admin/users", tags=["admin"], responses=_ERRORS)
webhook_router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], dependencies=[Depends(webhook_routes)]
)
relaxed = [Depends(general)]
money = [Depends(payment_routes)]


def provider(request: Request) -> PlaidProvider:
    return make_provider(request.app.state.settings, request.app.state.redis)


def cipher(request: Request) -> FieldCipher:
    found: FieldCipher | None = getattr(request.app.state, "field_cipher", None)
    if found is None:
        found = FieldCipher(request.app.state.settings.field_encryption_keys)
        request.app.state.field_cipher = found
    return found


Provider = Annotated[PlaidProvider, Depends(provider)]
Cipher = Annotated[FieldCipher, Depends(cipher)]


# --- bank accounts ------------------------------------------------------------------------------


@router.post(
    "/link-token",
    response_model=LinkTokenRead,
    dependencies=relaxed,
    summary="A Plaid Link token for the caller",
)
async def link_token(user: ActiveUser, plaid: Provider, request: Request) -> LinkTokenRead:
    token = await plaid.create_link_token(
        user_id=str(user.id), webhook_url=request.app.state.settings.plaid_webhook_url
    )
    return LinkTokenRead(link_token=token.link_token, expiration=token.expiration)


@router.post(
    "/sandbox/public-token",
    response_model=SandboxPublicTokenRead,
    dependencies=relaxed,
    summary="Sandbox only: the public token a Plaid Link session would return",
    responses={
        404: {"description": "Not in sandbox mode"},
        400: {"description": "INVALID_CREDENTIALS"},
    },
)
async def sandbox_public_token(
    body: SandboxPublicTokenCreate, user: ActiveUser, plaid: Provider
) -> SandboxPublicTokenRead:
    if not plaid.is_sandbox and getattr(plaid, "environment", "") != "sandbox":
        raise NotFound()
    link = await plaid.sandbox_public_token(
        username=body.username, password=body.password, institution_id=body.institution_id
    )
    return SandboxPublicTokenRead(
        public_token=link.public_token,
        accounts=[
            LinkAccount(account_id=a.account_id, name=a.name, mask=a.mask, subtype=a.subtype)
            for a in link.accounts
        ],
        institution=LinkInstitution(institution_id=link.institution_id, name=link.institution_name),
    )


@router.post(
    "/bank-accounts",
    response_model=BankAccountRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=relaxed,
    summary="Link a bank account: exchange the Link public token (access token kept encrypted)",
    responses={
        400: {"description": "INVALID_PUBLIC_TOKEN"},
        422: {"description": "UNKNOWN_ACCOUNT"},
    },
)
async def link_bank_account(
    body: BankAccountCreate, user: ActiveUser, session: SessionDep, plaid: Provider, fernet: Cipher
) -> BankAccountRead:
    return await service.link_bank_account(
        session=session,
        provider=plaid,
        cipher=fernet,
        user_id=user.id,
        public_token=body.public_token,
        account_id=body.account_id,
    )


@router.get("/bank-accounts", response_model=BankAccountList, dependencies=relaxed)
async def list_bank_accounts(user: CurrentUser, session: SessionDep) -> BankAccountList:
    return BankAccountList(items=await service.list_bank_accounts(session=session, user_id=user.id))


@router.delete(
    "/bank-accounts/{bank_account_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=relaxed,
    responses={404: {"description": "BANK_ACCOUNT_NOT_FOUND"}},
)
async def remove_bank_account(
    bank_account_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    plaid: Provider,
    fernet: Cipher,
) -> Response:
    await service.remove_bank_account(
        session=session,
        provider=plaid,
        cipher=fernet,
        user_id=user.id,
        bank_account_id=bank_account_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- deposits -----------------------------------------------------------------------------------


@router.post(
    "/deposits",
    response_model=DepositRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=money,
    summary="Deposit from a linked bank (Idempotency-Key required); runs DepositWorkflow",
    responses=_MONEY,
)
async def create_deposit(
    body: DepositCreate,
    user: CurrentUser,
    session: SessionDep,
    key: IdempotencyKeyHeader,
    request: Request,
) -> JSONResponse:
    # An account restricted for a negative balance may deposit: that is how it repays.
    await recovery.require_may_deposit(session=session, user_id=user.id, status=user.status)
    result = await run_idempotent(
        session,
        owner=str(user.id),
        scope="POST /api/v1/funding/deposits",
        key=key,
        request=body.model_dump(mode="json"),
        status_code=201,
        handler=lambda: deposits.create_deposit(
            session=session,
            settings=request.app.state.settings,
            user_id=user.id,
            bank_account_id=body.bank_account_id,
            amount=body.amount,
        ),
    )
    return result.response()


@router.get(
    "/deposits",
    response_model=DepositPage,
    dependencies=relaxed,
    summary="The caller's deposits, newest first, with their status history",
)
async def list_deposits(
    user: CurrentUser,
    session: SessionDep,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query()] = None,
) -> DepositPage:
    size = clamp_limit(limit)
    items = await service.list_deposits(
        session=session, user_id=user.id, before=created_before(cursor), limit=size + 1
    )
    return DepositPage(items=items[:size], cursor=created_next(items, size))


@router.get(
    "/deposits/{deposit_id}",
    response_model=DepositRead,
    dependencies=relaxed,
    responses={404: {"description": "DEPOSIT_NOT_FOUND"}},
)
async def get_deposit(deposit_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> DepositRead:
    return await service.get_deposit(session=session, deposit_id=deposit_id, user_id=user.id)


# --- withdrawals --------------------------------------------------------------------------------


@router.post(
    "/withdrawals",
    response_model=WithdrawalRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=money,
    summary="Withdraw to a linked bank (Idempotency-Key required); holds the gross amount",
    responses=_MONEY,
)
async def create_withdrawal(
    body: WithdrawalCreate,
    user: ActiveUser,
    session: SessionDep,
    key: IdempotencyKeyHeader,
    request: Request,
) -> JSONResponse:
    result = await run_idempotent(
        session,
        owner=str(user.id),
        scope="POST /api/v1/funding/withdrawals",
        key=key,
        request=body.model_dump(mode="json"),
        status_code=201,
        handler=lambda: withdrawals.create_withdrawal(
            session=session,
            settings=request.app.state.settings,
            user_id=user.id,
            bank_account_id=body.bank_account_id,
            amount=body.amount,
            speed=body.speed,
        ),
    )
    return result.response()


@router.get(
    "/withdrawals",
    response_model=WithdrawalPage,
    dependencies=relaxed,
    summary="The caller's withdrawals, newest first, with their status history",
)
async def list_withdrawals(
    user: CurrentUser,
    session: SessionDep,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query()] = None,
) -> WithdrawalPage:
    size = clamp_limit(limit)
    items = await service.list_withdrawals(
        session=session, user_id=user.id, before=created_before(cursor), limit=size + 1
    )
    return WithdrawalPage(items=items[:size], cursor=created_next(items, size))


@router.get(
    "/withdrawals/{withdrawal_id}",
    response_model=WithdrawalRead,
    dependencies=relaxed,
    responses={404: {"description": "WITHDRAWAL_NOT_FOUND"}},
)
async def get_withdrawal(
    withdrawal_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> WithdrawalRead:
    return await service.get_withdrawal(
        session=session, withdrawal_id=withdrawal_id, user_id=user.id
    )


# --- admin --------------------------------------------------------------------------------------


@admin_router.get("", response_model=WithdrawalPage, summary="Withdrawals awaiting approval")
async def awaiting_approval(admin: AdminUser, session: SessionDep) -> WithdrawalPage:
    return WithdrawalPage(items=await service.withdrawals_awaiting_approval(session=session))


@admin_router.post(
    "/{withdrawal_id}/approve",
    response_model=WithdrawalRead,
    responses={404: {"description": "WITHDRAWAL_NOT_FOUND"}, 409: {"description": "INVALID_STATE"}},
)
async def approve(
    withdrawal_id: uuid.UUID, admin: AdminUser, session: SessionDep
) -> WithdrawalRead:
    return await withdrawals.decide_withdrawal(
        session=session, withdrawal_id=withdrawal_id, admin_id=admin.id, approve=True
    )


@admin_router.post(
    "/{withdrawal_id}/reject",
    response_model=WithdrawalRead,
    responses={404: {"description": "WITHDRAWAL_NOT_FOUND"}, 409: {"description": "INVALID_STATE"}},
)
async def reject(
    withdrawal_id: uuid.UUID, body: RejectRequest, admin: AdminUser, session: SessionDep
) -> WithdrawalRead:
    return await withdrawals.decide_withdrawal(
        session=session,
        withdrawal_id=withdrawal_id,
        admin_id=admin.id,
        approve=False,
        reason=body.reason,
    )


# --- webhook ------------------------------------------------------------------------------------


@webhook_router.post(
    "/plaid",
    response_model=WebhookAck,
    summary="Plaid webhooks (Plaid-Verification ES256 JWT); transfer events are pulled and "
    "deduplicated by event id",
    responses={401: {"description": "INVALID_WEBHOOK_SIGNATURE"}},
)
async def plaid_webhook(request: Request, session: SessionDep, plaid: Provider) -> WebhookAck:
    body = await request.body()
    result = await webhook.handle_plaid_webhook(
        session=session,
        provider=plaid,
        settings=request.app.state.settings,
        body=body,
        verification=request.headers.get(HEADER),
    )
    return WebhookAck(received=result.received)


_RESTRICT: dict[int | str, dict[str, Any]] = {
    404: {"description": "USER_NOT_FOUND"},
    409: {"description": "INVALID_STATE"},
    422: {"description": "A reason is required"},
}


@users_admin_router.post(
    "/{user_id}/restrict",
    response_model=RestrictionRead,
    summary="Restrict an account (no money movement or trading), with a reason; audited",
    responses=_RESTRICT,
)
async def restrict_user(
    user_id: uuid.UUID,
    body: RestrictRequest,
    admin: AdminUser,
    session: SessionDep,
    meta: Annotated[RequestMeta, Depends(request_meta)],
) -> RestrictionRead:
    return await recovery.set_restricted(
        session=session,
        user_id=user_id,
        restricted=True,
        reason=body.reason,
        actor_id=admin.id,
        meta=meta,
    )


@users_admin_router.post(
    "/{user_id}/unrestrict",
    response_model=RestrictionRead,
    summary="Make a restricted account active again, with a reason; audited",
    responses=_RESTRICT,
)
async def unrestrict_user(
    user_id: uuid.UUID,
    body: RestrictRequest,
    admin: AdminUser,
    session: SessionDep,
    meta: Annotated[RequestMeta, Depends(request_meta)],
) -> RestrictionRead:
    return await recovery.set_restricted(
        session=session,
        user_id=user_id,
        restricted=False,
        reason=body.reason,
        actor_id=admin.id,
        meta=meta,
    )


def routers() -> list[APIRouter]:
    return [router, admin_router, users_admin_router, webhook_router]
