"""Four eyes on KYC: an administrator never decides their own verification (issue 12 item 9)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.kyc.schemas import Tier
from tests.conftest import UserFactory
from tests.kyc.conftest import KycEnvFactory
from tests.kyc.test_workflow import _tier


async def test_an_admin_cannot_approve_or_reject_their_own_review(
    kyc_env: KycEnvFactory,
    user_factory: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = await kyc_env()
    admin = await user_factory(admin=True)
    other = await user_factory(admin=True)
    assert (await env.start(admin, last_name="Review")).status_code == 202
    async with env.worker():
        await env.wait_status(admin, "manual_review")
        for action, body in (
            ("approve", {"tier": "accredited", "note": "trust me"}),
            ("reject", {"reason": "changed my mind"}),
        ):
            r = await env.http.post(
                f"/api/admin/kyc/{admin.id}/{action}", json=body, headers=admin.headers
            )
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "SELF_APPROVAL"
        assert (await env.status(admin))["status"] == "manual_review"
        assert await _tier(sessionmaker, admin.id) is Tier.none
        # Another administrator may.
        r = await env.http.post(
            f"/api/admin/kyc/{admin.id}/approve",
            json={"tier": "standard", "note": "checked by a second admin"},
            headers=other.headers,
        )
        assert r.status_code == 200, r.text
    assert await _tier(sessionmaker, admin.id) is Tier.standard
