"""OfferingWorkflow (id `rwa-offering-<offering>`): started when an offering opens.

It waits for the close time (or a `cancel` signal), decides the offering (funded when the raise
reaches its minimum, all or nothing), resolves every subscription in batches (funded: hold
posted and shares issued; otherwise: hold voided), pays the consignor less the sourcing fee,
then waits out the lock-up and opens the asset to trading. Every step is an idempotent
activity, so a worker killed at any point resumes without paying or issuing twice.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pull.rwa.activities import (
        AssetRef,
        BuyoutRef,
        DistributeInput,
        NoticeInput,
        OfferingRef,
        SettleInput,
        announce_offering,
        close_offering,
        decide_buyout,
        distribute,
        finalize_distribution,
        finalize_offering,
        settle_subscriptions,
        start_trading,
    )

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
TIMEOUT = timedelta(seconds=60)


@workflow.defn(name="OfferingWorkflow")
class OfferingWorkflow:
    def __init__(self) -> None:
        self.canceled = False
        self.status = "open"
        self.resolved = 0

    @workflow.signal(name="cancel")
    def cancel(self, _: dict[str, Any]) -> None:
        self.canceled = True

    @workflow.query(name="status")
    def current(self) -> dict[str, Any]:
        return {"status": self.status, "resolved": self.resolved}

    async def _wait_until(self, at: dt.datetime) -> None:
        """Sleep until `at`, or until the offering is canceled."""
        wait = (at - workflow.now()).total_seconds()
        if wait > 0 and not self.canceled:
            try:
                await workflow.wait_condition(
                    lambda: self.canceled, timeout=timedelta(seconds=wait)
                )
            except TimeoutError:
                pass

    async def _announce(self, offering_id: str, kind: str) -> None:
        if not self.canceled:
            await workflow.execute_activity(
                announce_offering,
                NoticeInput(offering_id, kind),
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )

    async def _notices(self, arg: dict[str, Any], closes_at: dt.datetime) -> None:
        """The notifications' "opened" at `opens_at` and "closing soon" `closing_soon_seconds`
        before the close, unless the offering opened inside that window (the opening notice
        says when it closes; docs/messaging.md)."""
        offering_id = str(arg["offering_id"])
        opens_at = dt.datetime.fromisoformat(str(arg.get("opens_at") or workflow.now()))
        await self._wait_until(opens_at)
        await self._announce(offering_id, "opened")
        soon = int(arg.get("closing_soon_seconds") or 0)
        notice_at = closes_at - timedelta(seconds=soon)
        if soon > 0 and notice_at > workflow.now():
            await self._wait_until(notice_at)
            await self._announce(offering_id, "closing_soon")

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> str:
        offering_id = str(arg["offering_id"])
        closes_at = dt.datetime.fromisoformat(str(arg["closes_at"]))
        # Offerings opened before the notices existed replay without them.
        if workflow.patched("offering-notices"):
            await self._notices(arg, closes_at)
        wait = (closes_at - workflow.now()).total_seconds()
        if wait > 0:
            try:
                await workflow.wait_condition(
                    lambda: self.canceled, timeout=timedelta(seconds=wait)
                )
            except TimeoutError:
                pass
        self.status = await workflow.execute_activity(
            close_offering,
            OfferingRef(offering_id),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        while True:
            done = await workflow.execute_activity(
                settle_subscriptions,
                SettleInput(offering_id),
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )
            self.resolved += done
            if done == 0:
                break
        final = await workflow.execute_activity(
            finalize_offering,
            OfferingRef(offering_id),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        if final.state != "locked":
            return self.status
        self.status = "locked"
        if final.lockup_seconds > 0:
            await workflow.sleep(timedelta(seconds=final.lockup_seconds))
        self.status = await workflow.execute_activity(
            start_trading,
            AssetRef(final.asset_id),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        return self.status


@workflow.defn(name="BuyoutWorkflow")
class BuyoutWorkflow:
    """id `rwa-buyout-<buyout>`: the vote's timer, the decision, then (once the sale settles,
    signal `settled`) the pro-rata distribution in batches and the asset's exit."""

    def __init__(self) -> None:
        self.settled = False
        self.status = "voting"
        self.paid = 0

    @workflow.signal(name="settled")
    def on_settled(self, _: dict[str, Any]) -> None:
        self.settled = True

    @workflow.query(name="status")
    def current(self) -> dict[str, Any]:
        return {"status": self.status, "paid": self.paid}

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> str:
        buyout_id = str(arg["buyout_id"])
        closes_at = dt.datetime.fromisoformat(str(arg["closes_at"]))
        wait = (closes_at - workflow.now()).total_seconds()
        if wait > 0:
            await workflow.sleep(timedelta(seconds=wait))
        self.status = await workflow.execute_activity(
            decide_buyout, BuyoutRef(buyout_id), start_to_close_timeout=TIMEOUT, retry_policy=RETRY
        )
        if self.status != "passed":
            return self.status
        await workflow.wait_condition(lambda: self.settled)
        self.status = "settled"
        while True:
            done = await workflow.execute_activity(
                distribute,
                DistributeInput(buyout_id),
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )
            self.paid += done
            if done == 0:
                break
        self.status = await workflow.execute_activity(
            finalize_distribution,
            BuyoutRef(buyout_id),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        return self.status


WORKFLOWS: list[type] = [OfferingWorkflow, BuyoutWorkflow]
