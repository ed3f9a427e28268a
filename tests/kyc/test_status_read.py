"""`GET /api/v1/kyc/status` never shows a decision beside the tier from before it: the decision
commits the application's status and the tier together, and the status read takes the
application first. A decision committed between the endpoint's two reads (forced here) shows
either both old or the new tier with the old status, never "approved" with tier none."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.kyc import repository, service
from tests.conftest import UserFactory
from tests.kyc.conftest import KycEnvFactory


async def test_a_decision_between_the_two_reads_never_shows_approved_with_the_old_tier(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = await kyc_env()
    user = await user_factory()
    r = await env.start(user)
    assert r.status_code == 202, r.text
    decided = False

    async def decide() -> None:  # what the workflow's approval commits, in one transaction
        nonlocal decided
        decided = True
        async with sessionmaker() as s, s.begin():
            await service.set_tier(
                session=s, user_id=user.id, tier="standard", actor_id=None, note="test"
            )
            await s.execute(
                text("UPDATE kyc_applications SET status = 'approved' WHERE user_id = :u"),
                {"u": user.id},
            )

    def first_read_then_decide(real: Any) -> Any:
        async def read(*args: Any, **kwargs: Any) -> Any:
            found = await real(*args, **kwargs)
            if not decided:
                await decide()
            return found

        return read

    monkeypatch.setattr(repository, "profile", first_read_then_decide(repository.profile))
    monkeypatch.setattr(
        repository, "latest_application", first_read_then_decide(repository.latest_application)
    )
    body = (await env.http.get("/api/v1/kyc/status", headers=user.headers)).json()
    assert decided
    assert not (body["status"] == "approved" and body["current_tier"] == "none"), body
    monkeypatch.undo()
    body = (await env.http.get("/api/v1/kyc/status", headers=user.headers)).json()
    assert (body["status"], body["current_tier"]) == ("approved", "standard"), body
