"""Four eyes on withdrawals: an administrator never decides their own (issue 12 item 9)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from tests.conftest import UserFactory
from tests.funding.conftest import FundingEnvFactory


async def test_an_admin_cannot_approve_their_own_withdrawal(
    funding_env: FundingEnvFactory,
    user_factory: UserFactory,
    kyc_tier: Callable[[UUID, str], Awaitable[None]],
) -> None:
    env = await funding_env(WITHDRAWAL_APPROVAL_THRESHOLD_CENTS=5_000)
    admin = await user_factory(admin=True)
    other = await user_factory(admin=True)
    await kyc_tier(admin.id, "basic")
    bank = await env.link_bank(admin)
    async with env.worker():
        deposit = await env.deposit(admin, bank, 30_000)
        await env.wait_status(admin, "deposits", deposit["id"], "settled")
        mine = (await env.withdraw(admin, bank, 10_000)).json()
        assert mine["status"] == "pending_approval"
        for action, body in (("approve", None), ("reject", {"reason": "never mind"})):
            r = await env.http.post(
                f"/api/admin/withdrawals/{mine['id']}/{action}", json=body, headers=admin.headers
            )
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "SELF_APPROVAL"
        assert (await env.get(admin, "withdrawals", mine["id"]))["status"] == "pending_approval"
        r = await env.http.post(
            f"/api/admin/withdrawals/{mine['id']}/approve", headers=other.headers
        )
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text
        await env.wait_status(admin, "withdrawals", mine["id"], "completed")
    await env.assert_books()
