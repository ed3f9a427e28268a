"""KycWorkflow: one per user (id `kyc-<user>`), for the user's whole verification life.

It runs each attempt (signal `attempt`, sent with the start through the outbox): create the
Persona inquiry and wait for its webhook, screen sanctions, order a Checkr report (enhanced and
up) and a Parallel Markets accreditation (accredited), then decide. Every wait for a vendor
sends reminders after KYC_REMINDER_1/2_SECONDS and expires the attempt after
KYC_STEP_TIMEOUT_SECONDS. A manual review waits for `review_decided` (the admin endpoint applies
the decision itself). Between attempts it sleeps until the approval is due for its reminder or
expiry, and drops the tier when it lapses. Each attempt ends with continue-as-new, so the
history stays short. Webhook signals are deduplicated by event id (delivery is at least once).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pull.kyc.activities import (
        ApplicationInput,
        DecideInput,
        RefResult,
        ReminderInput,
        ScreeningResult,
        StepInput,
        UserInput,
        kyc_begin,
        kyc_check_expiry,
        kyc_create_inquiry,
        kyc_decide,
        kyc_expiry_state,
        kyc_remind,
        kyc_screen_sanctions,
        kyc_set_step,
        kyc_start_accreditation,
        kyc_start_background_check,
    )
    from pull.kyc.attempts import AttemptPlan, ExpiryState

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=10,
)
KEEP = 200  # how many event ids / attempt ids survive continue-as-new


class _Closed(Exception):
    """The attempt was cancelled (or otherwise closed) while it ran."""


@workflow.defn(name="KycWorkflow")
class KycWorkflow:
    def __init__(self) -> None:
        self._user_id = ""
        self._pending: list[str] = []
        self._known: list[str] = []
        self._seen_events: list[str] = []
        self._outcomes: dict[str, str] = {}
        self._cancelled: list[str] = []
        self._reviews: dict[str, str] = {}
        self._current: str | None = None
        self._phase = "idle"
        self._timeout = timedelta(seconds=30)

    # --- signals and query ----------------------------------------------------------------------

    @workflow.signal(name="attempt")
    def attempt(self, arg: dict[str, Any]) -> None:
        app_id = str(arg["application_id"])
        if app_id not in self._known:
            self._known.append(app_id)
            self._pending.append(app_id)

    @workflow.signal(name="provider_event")
    def provider_event(self, arg: dict[str, Any]) -> None:
        event_id = str(arg["event_id"])
        if event_id in self._seen_events:
            return  # a duplicated delivery
        self._seen_events.append(event_id)
        key = f"{arg['provider']}:{arg['subject_id']}"
        self._outcomes.setdefault(key, str(arg["status"]))  # the first final outcome counts

    @workflow.signal(name="cancel")
    def cancel(self, arg: dict[str, Any]) -> None:
        app_id = str(arg["application_id"])
        if app_id not in self._cancelled:
            self._cancelled.append(app_id)

    @workflow.signal(name="review_decided")
    def review_decided(self, arg: dict[str, Any]) -> None:
        self._reviews[str(arg["application_id"])] = str(arg.get("decision", ""))

    @workflow.query(name="state")
    def state(self) -> dict[str, Any]:
        return {
            "user_id": self._user_id,
            "phase": self._phase,
            "current": self._current,
            "pending": list(self._pending),
            "events_seen": len(self._seen_events),
        }

    # --- run ------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> None:
        self._user_id = str(arg["user_id"])
        timing: dict[str, int] = dict(arg.get("timing") or {})
        self._timeout = timedelta(seconds=int(timing.get("activity_timeout", 30)))
        self._restore(arg.get("state") or {})
        while True:
            if self._pending:
                app_id = self._pending.pop(0)
                await self._attempt(app_id, timing)
                self._current = None
                self._phase = "idle"
                workflow.continue_as_new(
                    {"user_id": self._user_id, "timing": timing, "state": self._snapshot()}
                )
            await self._idle(timing)

    def _snapshot(self) -> dict[str, Any]:
        return {
            "pending": self._pending,
            "known": self._known[-KEEP:],
            "seen_events": self._seen_events[-KEEP:],
            "outcomes": dict(list(self._outcomes.items())[-KEEP:]),
            "cancelled": self._cancelled[-KEEP:],
            "reviews": dict(list(self._reviews.items())[-KEEP:]),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        for app_id in state.get("pending", []):
            if app_id not in self._pending:
                self._pending.append(app_id)
        self._known = list(dict.fromkeys([*state.get("known", []), *self._known]))
        self._seen_events = list(dict.fromkeys([*state.get("seen_events", []), *self._seen_events]))
        self._outcomes = {**state.get("outcomes", {}), **self._outcomes}
        self._cancelled = list(dict.fromkeys([*state.get("cancelled", []), *self._cancelled]))
        self._reviews = {**state.get("reviews", {}), **self._reviews}

    async def _act(self, fn: Any, arg: Any, result_type: type | None = None) -> Any:
        return await workflow.execute_activity(
            fn,
            arg,
            start_to_close_timeout=self._timeout,
            retry_policy=RETRY,
            result_type=result_type,
        )

    # --- one attempt ----------------------------------------------------------------------------

    async def _attempt(self, app_id: str, timing: dict[str, int]) -> None:
        self._current = app_id
        self._phase = "running"
        plan: AttemptPlan = await self._act(kyc_begin, ApplicationInput(app_id), AttemptPlan)
        if not plan.open:
            return
        try:
            outcome, reason = await self._run_steps(plan, timing)
        except _Closed:
            return
        except ActivityError:
            # A vendor stayed unavailable through every retry: a person takes it from here.
            outcome, reason = "manual_review", "a verification provider was unavailable"
        status = await self._act(kyc_decide, DecideInput(app_id, outcome, reason), str)
        if status == "manual_review":
            self._phase = "manual_review"
            await workflow.wait_condition(
                lambda: app_id in self._reviews or app_id in self._cancelled
            )

    async def _run_steps(self, plan: AttemptPlan, timing: dict[str, int]) -> tuple[str, str | None]:
        app_id = plan.application_id
        review: list[str] = []
        for step in plan.steps:
            if step == "contact":
                continue  # checked when the attempt was started
            if app_id in self._cancelled:
                raise _Closed
            self._phase = step
            if step == "sanctions":
                await self._act(kyc_set_step, StepInput(app_id, step, "running"), bool)
                screening: ScreeningResult = await self._act(
                    kyc_screen_sanctions, ApplicationInput(app_id), ScreeningResult
                )
                result = {"clear": "passed", "review": "review", "hit": "failed"}.get(
                    screening.outcome, "closed"
                )
            else:
                create, provider = {
                    "identity": (kyc_create_inquiry, "persona"),
                    "background": (kyc_start_background_check, "checkr"),
                    "accreditation": (kyc_start_accreditation, "parallel_markets"),
                }[step]
                ref: RefResult = await self._act(create, ApplicationInput(app_id), RefResult)
                if ref.ref is None:
                    raise _Closed
                result = await self._await_vendor(app_id, f"{provider}:{ref.ref}", timing)
            if result == "closed":
                raise _Closed
            step_status = "failed" if result == "expired" else result
            if not await self._act(kyc_set_step, StepInput(app_id, step, step_status), bool):
                raise _Closed
            if result == "failed":
                return "declined", f"{step} check failed"
            if result == "expired":
                return "expired", f"{step} was not completed in time"
            if result == "review":
                review.append(step)
        if review:
            return "manual_review", "needs review: " + ", ".join(review)
        return "approved", None

    async def _await_vendor(self, app_id: str, key: str, timing: dict[str, int]) -> str:
        """The vendor's final outcome, with reminders; `expired` after the step timeout."""
        started = workflow.now()

        def done() -> bool:
            return key in self._outcomes or app_id in self._cancelled

        schedule = (
            (timing.get("reminder_1", 86_400), 1),
            (timing.get("reminder_2", 259_200), 2),
            (timing.get("step_timeout", 604_800), 0),
        )
        for seconds, reminder in schedule:
            remaining = started + timedelta(seconds=seconds) - workflow.now()
            try:
                if remaining > timedelta(0):
                    await workflow.wait_condition(done, timeout=remaining)
                elif not done():
                    raise TimeoutError
            except TimeoutError:
                if reminder:
                    await self._act(kyc_remind, ReminderInput(app_id, reminder), bool)
                    continue
                return "expired"
            break
        if app_id in self._cancelled:
            return "closed"
        return self._outcomes[key]

    # --- between attempts: approval expiry --------------------------------------------------

    async def _idle(self, timing: dict[str, int]) -> None:
        self._phase = "idle"
        state: ExpiryState = await self._act(
            kyc_expiry_state, UserInput(self._user_id), ExpiryState
        )
        if state.expires_at is None:
            await workflow.wait_condition(lambda: bool(self._pending))
            return
        expires = datetime.fromisoformat(state.expires_at)
        remind_at = expires - timedelta(seconds=timing.get("expiry_reminder", 30 * 86_400))
        due = expires if state.reminded else remind_at
        wait = due - workflow.now()
        if wait > timedelta(0):
            try:
                await workflow.wait_condition(lambda: bool(self._pending), timeout=wait)
                return  # a new attempt came first
            except TimeoutError:
                pass
        await self._act(kyc_check_expiry, UserInput(self._user_id), ExpiryState)
