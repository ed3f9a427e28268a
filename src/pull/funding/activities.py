"""Activities of the funding workflows and of the Plaid sandbox. One dataclass input each; each
runs in its own transaction and is idempotent (ledger keys, status checks, Plaid keys)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from pull.funding import deposits, service, withdrawals
from pull.funding.providers import signing
from pull.funding.providers.base import PlaidError, PlaidProvider
from pull.funding.providers.factory import make_provider
from pull.funding.providers.sandbox import PlaidSandbox
from pull.kit.crypto import FieldCipher
from pull.kit.db import session_scope
from pull.kit.runtime import worker_runtime

_clients: dict[str, Client] = {}


async def _temporal() -> Client:
    settings = worker_runtime().settings
    key = f"{settings.temporal_address}/{settings.temporal_namespace}"
    if key not in _clients:
        _clients[key] = await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace
        )
    return _clients[key]


async def _start_sandbox_transfer(workflow_id: str, arg: dict[str, Any]) -> None:
    settings = worker_runtime().settings
    client = await _temporal()
    arg = {
        **arg,
        "post_seconds": settings.plaid_sandbox_post_seconds,
        "settle_seconds": settings.plaid_sandbox_settle_seconds,
        "return_seconds": settings.plaid_sandbox_return_seconds,
    }
    try:
        await client.start_workflow(
            "PlaidSandboxTransferWorkflow",
            arg,
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass


def _provider() -> PlaidProvider:
    runtime = worker_runtime()
    return make_provider(runtime.settings, runtime.redis, starter=_start_sandbox_transfer)


def _cipher() -> FieldCipher:
    return FieldCipher(worker_runtime().settings.field_encryption_keys)


def _final(exc: PlaidError) -> ApplicationError:
    return ApplicationError(f"{exc.code}: {exc.message}", type=exc.code, non_retryable=True)


@dataclass(frozen=True)
class SubjectRef:
    subject_id: str


@dataclass(frozen=True)
class TransferEventInput:
    subject_id: str
    event_type: str
    failure_reason: str | None = None


@activity.defn(name="funding_start_deposit")
async def start_deposit(inp: SubjectRef) -> str:
    try:
        async with session_scope(worker_runtime().sessionmaker) as session:
            return await deposits.start_deposit(
                session=session,
                provider=_provider(),
                cipher=_cipher(),
                deposit_id=uuid.UUID(inp.subject_id),
            )
    except PlaidError as exc:
        if service.plaid_error_is_final(exc):
            raise _final(exc) from exc
        raise


@activity.defn(name="funding_apply_deposit_event")
async def apply_deposit_event(inp: TransferEventInput) -> str:
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await deposits.apply_deposit_event(
            session=session,
            deposit_id=uuid.UUID(inp.subject_id),
            event_type=inp.event_type,
            failure_reason=inp.failure_reason,
        )


@activity.defn(name="funding_start_withdrawal")
async def start_withdrawal(inp: SubjectRef) -> str:
    try:
        async with session_scope(worker_runtime().sessionmaker) as session:
            return await withdrawals.start_withdrawal(
                session=session,
                provider=_provider(),
                cipher=_cipher(),
                withdrawal_id=uuid.UUID(inp.subject_id),
            )
    except PlaidError as exc:
        if service.plaid_error_is_final(exc):
            raise _final(exc) from exc
        raise


@activity.defn(name="funding_apply_withdrawal_event")
async def apply_withdrawal_event(inp: TransferEventInput) -> str:
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await withdrawals.apply_withdrawal_event(
            session=session,
            withdrawal_id=uuid.UUID(inp.subject_id),
            event_type=inp.event_type,
            failure_reason=inp.failure_reason,
        )


@dataclass(frozen=True)
class StartFailedInput:
    subject_id: str
    reason: str


@activity.defn(name="funding_fail_deposit_start")
async def fail_deposit_start(inp: StartFailedInput) -> str:
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await deposits.fail_deposit_start(
            session=session, deposit_id=uuid.UUID(inp.subject_id), reason=inp.reason
        )


@activity.defn(name="funding_fail_withdrawal_start")
async def fail_withdrawal_start(inp: StartFailedInput) -> str:
    async with session_scope(worker_runtime().sessionmaker) as session:
        return await withdrawals.fail_withdrawal_start(
            session=session, withdrawal_id=uuid.UUID(inp.subject_id), reason=inp.reason
        )


@dataclass(frozen=True)
class SandboxEmitInput:
    transfer_id: str
    event_type: str
    failure_reason: str | None = None


@activity.defn(name="plaid_sandbox_emit")
async def sandbox_emit(inp: SandboxEmitInput) -> int:
    """The sandbox's side: record the transfer event, then deliver a signed webhook."""
    runtime = worker_runtime()
    sandbox = PlaidSandbox(runtime.redis, key_seed=runtime.settings.plaid_sandbox_key_seed)
    event_id = await sandbox.append_event(
        transfer_id=inp.transfer_id, event_type=inp.event_type, failure_reason=inp.failure_reason
    )
    await deliver_webhook(sandbox, runtime.settings.plaid_webhook_url)
    return event_id


async def deliver_webhook(sandbox: PlaidSandbox, url: str) -> None:
    body = signing.webhook_body("sandbox")
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                signing.HEADER: sandbox.sign_webhook(body),
            },
        )
    if response.status_code >= 300:
        raise RuntimeError(f"webhook delivery got {response.status_code}")


ACTIVITIES: list[Callable[..., Any]] = [
    start_deposit,
    apply_deposit_event,
    start_withdrawal,
    apply_withdrawal_event,
    fail_deposit_start,
    fail_withdrawal_start,
    sandbox_emit,
]
