"""The real Plaid client: Plaid's official `plaid-python` SDK.

The SDK is synchronous (urllib3), so each call runs in a worker thread. Requests are built with
the SDK's request models (they carry the endpoint, the client id and secret headers and the
field validation); responses are read as JSON (`_preload_content=False`) into our plain types,
so a field Plaid adds later never breaks deserialization. The SDK module is large and is
imported on first use only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from pull.funding.providers.base import (
    Authorization,
    BankAccountInfo,
    EventPage,
    ExchangedItem,
    LinkToken,
    PlaidError,
    SandboxLink,
    Transfer,
    TransferEvent,
    TransferType,
    cents_to_decimal,
)
from pull.funding.providers.keycache import WebhookKeyCache

log = logging.getLogger("pull.funding.plaid")

# Plaid's answers for an access token whose item no longer exists: already removed.
GONE = frozenset({"ITEM_NOT_FOUND", "INVALID_ACCESS_TOKEN"})

HOSTS = {
    "sandbox": "https://sandbox.plaid.com",
    "production": "https://production.plaid.com",
}


class PlaidClient:
    name = "plaid"
    is_sandbox = False

    def __init__(
        self, *, client_id: str, secret: str, environment: str = "sandbox", base_url: str = ""
    ) -> None:
        import plaid
        from plaid.api import plaid_api

        host = base_url or HOSTS.get(environment)
        if not host:
            raise ValueError(f"unknown PLAID_ENV {environment!r}")
        configuration = plaid.Configuration(
            host=host,
            api_key={"clientId": client_id, "secret": secret, "plaidVersion": "2020-09-14"},
        )
        self.environment = environment
        self._api = plaid_api.PlaidApi(plaid.ApiClient(configuration))
        self.key_cache = WebhookKeyCache()

    async def _call(self, method: str, request: Any) -> dict[str, Any]:
        import plaid

        def run() -> dict[str, Any]:
            response = getattr(self._api, method)(request, _preload_content=False)
            data: dict[str, Any] = json.loads(response.data)
            return data

        try:
            return await asyncio.to_thread(run)
        except plaid.ApiException as exc:
            details: dict[str, Any] = {}
            try:
                details = json.loads(exc.body or b"{}")
            except ValueError:
                pass
            log.warning(
                "plaid call failed",
                extra={"method": method, "status": exc.status, "code": details.get("error_code")},
            )
            raise PlaidError(
                f"{details.get('error_message') or 'Plaid request failed'} "
                f"({details.get('error_code') or exc.status})",
                details={
                    "error_type": details.get("error_type"),
                    "error_code": details.get("error_code"),
                    "request_id": details.get("request_id"),
                },
                status_code=400 if exc.status == 400 else 502,
            ) from None
        except Exception as exc:  # network errors, timeouts
            raise PlaidError(f"Plaid unreachable: {type(exc).__name__}") from exc

    async def create_link_token(self, *, user_id: str, webhook_url: str) -> LinkToken:
        from plaid.model.country_code import CountryCode
        from plaid.model.link_token_create_request import LinkTokenCreateRequest
        from plaid.model.link_token_create_request_user import LinkTokenCreateRequestUser
        from plaid.model.products import Products

        request = LinkTokenCreateRequest(
            client_name="PULL",
            language="en",
            country_codes=[CountryCode("US")],
            user=LinkTokenCreateRequestUser(client_user_id=user_id),
            products=[Products("transfer")],
            webhook=webhook_url,
        )
        data = await self._call("link_token_create", request)
        return LinkToken(data["link_token"], str(data.get("expiration", "")))

    async def sandbox_public_token(
        self, *, username: str, password: str, institution_id: str
    ) -> SandboxLink:
        """Link's result without Link: /sandbox/public_token/create, then the accounts as Link's
        metadata lists them (/item/public_token/exchange, /accounts/get), and a fresh public
        token for the same item (/item/public_token/create) for the client to exchange."""
        from plaid.model.item_public_token_create_request import ItemPublicTokenCreateRequest
        from plaid.model.products import Products
        from plaid.model.sandbox_public_token_create_request import (
            SandboxPublicTokenCreateRequest,
        )
        from plaid.model.sandbox_public_token_create_request_options import (
            SandboxPublicTokenCreateRequestOptions,
        )

        if self.environment != "sandbox":
            raise PlaidError("Only in Plaid's sandbox", status_code=404, code="NOT_FOUND")
        request = SandboxPublicTokenCreateRequest(
            institution_id=institution_id,
            initial_products=[Products("transfer")],
            options=SandboxPublicTokenCreateRequestOptions(
                override_username=username, override_password=password
            ),
        )
        data = await self._call("sandbox_public_token_create", request)
        item = await self.exchange_public_token(public_token=str(data["public_token"]))
        accounts = await self.get_accounts(access_token=item.access_token)
        fresh = await self._call(
            "item_create_public_token",
            ItemPublicTokenCreateRequest(access_token=item.access_token),
        )
        return SandboxLink(
            public_token=str(fresh["public_token"]),
            accounts=accounts,
            institution_id=institution_id,
            institution_name=accounts[0].institution_name if accounts else None,
        )

    async def exchange_public_token(self, *, public_token: str) -> ExchangedItem:
        from plaid.model.item_public_token_exchange_request import (
            ItemPublicTokenExchangeRequest,
        )

        data = await self._call(
            "item_public_token_exchange", ItemPublicTokenExchangeRequest(public_token=public_token)
        )
        return ExchangedItem(data["access_token"], data["item_id"])

    async def get_accounts(self, *, access_token: str) -> list[BankAccountInfo]:
        from plaid.model.accounts_get_request import AccountsGetRequest

        data = await self._call("accounts_get", AccountsGetRequest(access_token=access_token))
        institution = (data.get("item") or {}).get("institution_name")
        return [
            BankAccountInfo(
                account_id=a["account_id"],
                name=a.get("official_name") or a.get("name") or "Bank account",
                mask=a.get("mask"),
                subtype=a.get("subtype"),
                institution_name=institution,
            )
            for a in data.get("accounts", [])
        ]

    async def remove_item(self, *, access_token: str) -> None:
        from plaid.model.item_remove_request import ItemRemoveRequest

        try:
            await self._call("item_remove", ItemRemoveRequest(access_token=access_token))
        except PlaidError as exc:
            if (exc.details or {}).get("error_code") not in GONE:
                raise

    async def authorize_transfer(
        self,
        *,
        access_token: str,
        account_id: str,
        type: TransferType,
        amount_cents: int,
        network: str,
        legal_name: str,
        idempotency_key: str,
    ) -> Authorization:
        from plaid.model.ach_class import ACHClass
        from plaid.model.transfer_authorization_create_request import (
            TransferAuthorizationCreateRequest,
        )
        from plaid.model.transfer_authorization_idempotency_key import (
            TransferAuthorizationIdempotencyKey,
        )
        from plaid.model.transfer_authorization_user_in_request import (
            TransferAuthorizationUserInRequest,
        )
        from plaid.model.transfer_network import TransferNetwork
        from plaid.model.transfer_type import TransferType as PlaidTransferType

        kwargs: dict[str, Any] = {}
        if network != "rtp":
            kwargs["ach_class"] = ACHClass("web" if type == "debit" else "ppd")
        request = TransferAuthorizationCreateRequest(
            access_token=access_token,
            account_id=account_id,
            type=PlaidTransferType(type),
            network=TransferNetwork(network),
            amount=cents_to_decimal(amount_cents),
            user=TransferAuthorizationUserInRequest(legal_name=legal_name),
            idempotency_key=TransferAuthorizationIdempotencyKey(idempotency_key[:50]),
            **kwargs,
        )
        data = (await self._call("transfer_authorization_create", request))["authorization"]
        rationale = data.get("decision_rationale") or {}
        return Authorization(
            id=data["id"],
            decision=data["decision"],
            rationale_code=rationale.get("code"),
            rationale=rationale.get("description"),
        )

    async def create_transfer(
        self,
        *,
        access_token: str,
        account_id: str,
        authorization_id: str,
        amount_cents: int,
        description: str,
        idempotency_key: str,
    ) -> Transfer:
        from plaid.model.transfer_create_request import TransferCreateRequest

        request = TransferCreateRequest(
            access_token=access_token,
            account_id=account_id,
            authorization_id=authorization_id,
            amount=cents_to_decimal(amount_cents),
            description=description[:15],
        )
        del idempotency_key  # Plaid dedupes on the authorization (one transfer per authorization)
        data = (await self._call("transfer_create", request))["transfer"]
        return Transfer(id=data["id"], status=data["status"])

    async def sync_transfer_events(self, *, after_id: int, count: int = 25) -> EventPage:
        from plaid.model.transfer_event_sync_request import TransferEventSyncRequest

        data = await self._call(
            "transfer_event_sync", TransferEventSyncRequest(after_id=after_id, count=count)
        )
        events = [
            TransferEvent(
                event_id=int(e["event_id"]),
                transfer_id=e["transfer_id"],
                event_type=e["event_type"],
                timestamp=str(e.get("timestamp", "")),
                failure_reason=_failure(e.get("failure_reason")),
                raw=e,
            )
            for e in data.get("transfer_events", [])
        ]
        return EventPage(events, bool(data.get("has_more", False)))

    async def webhook_verification_key(self, *, key_id: str) -> dict[str, Any]:
        from plaid.model.webhook_verification_key_get_request import (
            WebhookVerificationKeyGetRequest,
        )

        async def fetch(kid: str) -> dict[str, Any]:
            data = await self._call(
                "webhook_verification_key_get", WebhookVerificationKeyGetRequest(key_id=kid)
            )
            key: dict[str, Any] = data["key"]
            return key

        return await self.key_cache.get(key_id, fetch)


def _failure(value: Any) -> str | None:
    if not value:
        return None
    if isinstance(value, dict):
        parts = [
            value.get("failure_code") or value.get("ach_return_code"),
            value.get("description"),
        ]
        return ": ".join(str(p) for p in parts if p) or None
    return str(value)
