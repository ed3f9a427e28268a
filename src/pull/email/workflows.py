"""EmailSyncWorkflow: one per connected mailbox (id `email-sync-<grant>`).

Backfills the mailbox newest-first in pages of at most 200 (one activity per page, each an
idempotent upsert, so a retried page changes nothing), then stays live: notifications are
applied by the webhook endpoint itself, and the workflow fetches the messages Nylas sent as
`.truncated` (signal `fetch`). It ends when the grant is revoked (signal `revoked`, or Nylas
refusing the grant) or disconnected (the grant row is gone); it checks the grant every
EMAIL_SYNC_CHECK (10 minutes) while idle and continues-as-new after 500 fetches.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pull.email.activities import (
        BackfillInput,
        BackfillResult,
        FetchInput,
        GrantInput,
        email_backfill_page,
        email_fetch_message,
        email_grant_state,
    )

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=20,
)
CHECK_EVERY = timedelta(minutes=10)
FETCHES_PER_RUN = 500
PAGES_PER_RUN = 200


@workflow.defn(name="EmailSyncWorkflow")
class EmailSyncWorkflow:
    def __init__(self) -> None:
        self._pending: list[str] = []
        self._seen: set[str] = set()
        self._revoked = False
        self._state = "backfilling"
        self._stored = 0

    @workflow.signal(name="fetch")
    def fetch(self, arg: dict[str, Any]) -> None:
        message_id = str(arg.get("message_id", ""))
        if message_id and message_id not in self._seen:
            self._seen.add(message_id)
            self._pending.append(message_id)

    @workflow.signal(name="revoked")
    def revoked(self, arg: dict[str, Any]) -> None:
        self._revoked = True

    @workflow.query(name="status")
    def status(self) -> dict[str, Any]:
        return {"state": self._state, "stored": self._stored, "pending": len(self._pending)}

    @workflow.run
    async def run(self, arg: dict[str, Any]) -> dict[str, Any]:
        grant = str(arg["grant"])
        opts: dict[str, Any] = {
            "start_to_close_timeout": timedelta(minutes=5),
            "retry_policy": RETRY,
        }
        if arg.get("phase", "backfill") == "backfill":
            token: str | None = arg.get("page_token")
            pages = 0
            while True:
                res: BackfillResult = await workflow.execute_activity(
                    email_backfill_page, BackfillInput(grant=grant, page_token=token), **opts
                )
                self._stored += res.stored
                if res.state != "active":
                    return self._end(res.state)
                token = res.next_page_token
                pages += 1
                if token is None:
                    break
                if pages >= PAGES_PER_RUN:
                    workflow.continue_as_new({"grant": grant, "page_token": token})
        self._state = "live"
        fetched = 0
        while True:
            await workflow.wait_condition(
                lambda: bool(self._pending) or self._revoked, timeout=CHECK_EVERY
            )
            if self._revoked:
                return self._end("revoked")
            if not self._pending:
                state = await workflow.execute_activity(
                    email_grant_state, GrantInput(grant=grant), **opts
                )
                if state != "active":
                    return self._end(state)
                continue
            message_id = self._pending.pop(0)
            state = await workflow.execute_activity(
                email_fetch_message, FetchInput(grant=grant, message_id=message_id), **opts
            )
            if state != "active":
                return self._end(state)
            fetched += 1
            if fetched >= FETCHES_PER_RUN and not self._pending:
                workflow.continue_as_new({"grant": grant, "phase": "live"})

    def _end(self, state: str) -> dict[str, Any]:
        self._state = "stopped"
        return {"state": state, "stored": self._stored}


WORKFLOWS = [EmailSyncWorkflow]
