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
        OfferingRef,
        SettleInput,
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

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> str:
        offering_id = str(arg["offering_id"])
        closes_at = dt.datetime.fromisoformat(str(arg["closes_at"]))
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
