"""DepositWorkflow (id deposit-<id>) and WithdrawalWorkflow (id withdrawal-<id>), started through
the outbox when the request commits and driven by Plaid transfer events (signals from the
webhook). Signals are deduplicated by Plaid's event id; the activities decide what an event
changes, so a duplicated, late or out-of-order event changes nothing twice. Also the sandbox's
own PlaidSandboxTransferWorkflow, which plays Plaid moving a transfer along."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pull.funding.activities import (
        SandboxEmitInput,
        StartFailedInput,
        SubjectRef,
        TransferEventInput,
        apply_deposit_event,
        apply_withdrawal_event,
        fail_deposit_start,
        fail_withdrawal_start,
        sandbox_emit,
        start_deposit,
        start_withdrawal,
    )
    from pull.funding.providers.sandbox import plan

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
TIMEOUT = timedelta(seconds=30)


def _reason(exc: ActivityError) -> str:
    cause = exc.cause
    return str(cause.message if cause is not None and hasattr(cause, "message") else exc)[:500]


class _Inbox:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.seen: set[int] = set()

    def add(self, event: dict[str, Any]) -> None:
        event_id = int(event["event_id"])
        if event_id in self.seen:
            return  # a duplicated delivery
        self.seen.add(event_id)
        self.events.append(event)

    async def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        try:
            await workflow.wait_condition(
                lambda: bool(self.events),
                timeout=None if timeout is None else timedelta(seconds=timeout),
            )
        except TimeoutError:
            return None
        return self.events.pop(0)


@workflow.defn(name="DepositWorkflow")
class DepositWorkflow:
    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.status = "created"

    @workflow.signal(name="transfer_event")
    def transfer_event(self, event: dict[str, Any]) -> None:
        self.inbox.add(event)

    @workflow.query(name="status")
    def current(self) -> str:
        return self.status

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> str:
        deposit_id = str(arg["deposit_id"])
        window = float(arg.get("return_window_seconds", 0))
        try:
            self.status = await workflow.execute_activity(
                start_deposit,
                SubjectRef(deposit_id),
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )
        except ActivityError as exc:  # Plaid refused (retryable failures are retried forever)
            self.status = await workflow.execute_activity(
                fail_deposit_start,
                StartFailedInput(deposit_id, _reason(exc)),
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )
        while self.status not in ("failed", "returned"):
            # Once settled, keep listening for an ACH return during the return window.
            event = await self.inbox.next(window if self.status == "settled" else None)
            if event is None:
                break
            self.status = await workflow.execute_activity(
                apply_deposit_event,
                TransferEventInput(
                    deposit_id, str(event["event_type"]), event.get("failure_reason")
                ),
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )
        return self.status


@workflow.defn(name="WithdrawalWorkflow")
class WithdrawalWorkflow:
    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.decisions = 0
        self.status = "created"

    @workflow.signal(name="transfer_event")
    def transfer_event(self, event: dict[str, Any]) -> None:
        self.inbox.add(event)

    @workflow.signal(name="decision")
    def decision(self, _: dict[str, Any]) -> None:
        self.decisions += 1

    @workflow.query(name="status")
    def current(self) -> str:
        return self.status

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> str:
        withdrawal_id = str(arg["withdrawal_id"])
        window = float(arg.get("return_window_seconds", 0))
        handled = 0
        while True:
            # Starts the transfer once approved; answers the status otherwise.
            try:
                self.status = await workflow.execute_activity(
                    start_withdrawal,
                    SubjectRef(withdrawal_id),
                    start_to_close_timeout=TIMEOUT,
                    retry_policy=RETRY,
                )
            except ActivityError as exc:  # Plaid refused: release the hold
                self.status = await workflow.execute_activity(
                    fail_withdrawal_start,
                    StartFailedInput(withdrawal_id, _reason(exc)),
                    start_to_close_timeout=TIMEOUT,
                    retry_policy=RETRY,
                )
            if self.status != "pending_approval":
                break
            await workflow.wait_condition(lambda: self.decisions > handled)  # noqa: B023
            handled = self.decisions
        while self.status not in ("failed", "returned", "rejected"):
            event = await self.inbox.next(window if self.status == "completed" else None)
            if event is None:
                break
            self.status = await workflow.execute_activity(
                apply_withdrawal_event,
                TransferEventInput(
                    withdrawal_id, str(event["event_type"]), event.get("failure_reason")
                ),
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )
        return self.status


@workflow.defn(name="PlaidSandboxTransferWorkflow")
class PlaidSandboxTransferWorkflow:
    """The sandbox playing Plaid: pending now, then the magic amount's sequence of events."""

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> None:
        transfer_id = str(arg["transfer_id"])
        delays = {
            "posted": float(arg.get("post_seconds", 2)),
            "failed": float(arg.get("post_seconds", 2)),
            "settled": float(arg.get("settle_seconds", 3)),
            "returned": float(arg.get("return_seconds", 3)),
        }
        await self._emit(transfer_id, "pending", None)
        for event_type, failure in plan(int(arg["amount_cents"])):
            await workflow.sleep(timedelta(seconds=delays[event_type]))
            await self._emit(transfer_id, event_type, failure)

    async def _emit(self, transfer_id: str, event_type: str, failure: str | None) -> None:
        await workflow.execute_activity(
            sandbox_emit,
            SandboxEmitInput(transfer_id, event_type, failure),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )


WORKFLOWS: list[type] = [DepositWorkflow, WithdrawalWorkflow, PlaidSandboxTransferWorkflow]
