"""Negative balances: what a user owes the house after an ACH return took back money they had
already spent, how held order collateral is freed before a loss is booked, and how later
credits repay it (docs/money.md, "Negative balances"). Never commits.

What a user owes is the negative balance of their own recovery account
`negative_balance_recovery:<user id>` (a system account: the house's receivable). Every
function here runs under the user's funding lock (`repo.lock_user_funds`).
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.exchange import service as exchange
from pull.funding import repository as repo
from pull.funding.errors import InvalidState
from pull.funding.schemas import RestrictionRead
from pull.identity import service as identity
from pull.identity.errors import AccountRestricted
from pull.identity.schemas import RequestMeta
from pull.kit.errors import AppError, NotFound
from pull.ledger import service as ledger
from pull.ledger.service import Leg, system_account, user_account

log = logging.getLogger("pull.funding.recovery")

# The reason a negative balance restricts an account with; only a restriction with this reason
# is lifted automatically once the debt is repaid (an operator's restriction stays).
REASON_PREFIX = "negative balance"


def recovery_account(user_id: uuid.UUID) -> ledger.AccountRef:
    return system_account(f"negative_balance_recovery:{user_id}")


async def owed(*, session: AsyncSession, user_id: uuid.UUID) -> int:
    """Cents the user owes the house (0 if nothing)."""
    return max(0, -await ledger.account_balance(session=session, account=recovery_account(user_id)))


async def users_owing(*, session: AsyncSession, user_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Those of `user_ids` who owe the house something (one query)."""
    names = {recovery_account(u).kind: u for u in user_ids}
    balances = await ledger.system_balances(session=session, names=list(names))
    return [names[k] for k, v in balances.items() if v < 0]


async def require_may_deposit(*, session: AsyncSession, user_id: uuid.UUID, status: str) -> None:
    """Deposits need an active account, or a restricted one that owes the house (403
    ACCOUNT_RESTRICTED otherwise)."""
    if status == "active":
        return
    if status == "restricted" and await owed(session=session, user_id=user_id) > 0:
        return
    raise AccountRestricted()


async def free_collateral(*, session: AsyncSession, user_id: uuid.UUID, wanted: int) -> int:
    """Before a loss is booked: if the user's available cash is short of `wanted`, cancel their
    resting buy orders (market by market, in ticker order) so that the cash they hold as
    collateral counts. Returns how many orders were canceled. The caller has done no ledger
    transfer yet in this transaction (lock order: market rows before ledger accounts)."""
    available = await ledger.account_available(
        session=session, account=user_account(user_id, "cash")
    )
    if available >= wanted:
        return 0
    resting = []
    cursor = None
    while True:
        page = await exchange.list_orders(
            session=session, user_id=user_id, status="resting", cursor=cursor, limit=200
        )
        resting += [o for o in page.items if o.action == "buy"]
        cursor = page.cursor
        if not cursor:
            break
    canceled = 0
    for order in sorted(resting, key=lambda o: (o.ticker, str(o.order_id))):
        if available >= wanted:
            break
        try:
            async with session.begin_nested():
                await exchange.cancel_order(
                    session=session,
                    user_id=user_id,
                    order_id=order.order_id,
                    reason="negative_balance",
                )
        except AppError as exc:  # e.g. no longer resting: its collateral is already free
            log.info("order not canceled", extra={"order": str(order.order_id), "code": exc.code})
            continue
        canceled += 1
        available = await ledger.account_available(
            session=session, account=user_account(user_id, "cash")
        )
    return canceled


async def recover(*, session: AsyncSession, user_id: uuid.UUID, trigger: str) -> int:
    """Repay what the user owes from what they can withdraw now (cash available minus
    unsettled instant credit), oldest debt first (one account: the order is the ledger's), and
    lift a negative-balance restriction once nothing is owed. Returns the cents repaid."""
    await repo.lock_user_funds(session, user_id)
    debt = await owed(session=session, user_id=user_id)
    if debt <= 0:
        return 0
    balance = await ledger.get_balance(session=session, user_id=user_id)
    take = min(debt, balance.withdrawable)
    if take > 0:
        await ledger.transfer(
            session=session,
            idempotency_key=f"recovery:{user_id}:{uuid.uuid4()}",
            kind="negative_balance_recovered",
            legs=[Leg(user_account(user_id, "cash"), -take), Leg(recovery_account(user_id), take)],
            reference=f"recovery:{user_id}",
            metadata={"trigger": trigger, "owed_before": debt},
        )
    if take == debt:
        await identity.lift_restriction(
            session=session,
            user_id=user_id,
            reason_prefix=REASON_PREFIX,
            reason=f"negative balance repaid ({trigger})",
        )
    return take


def restriction_reason(what: str, shortfall: int) -> str:
    return f"{REASON_PREFIX}: {what}: {shortfall} cents owed (negative_balance_recovery)"


# --- operators: restrict / unrestrict (pull users restrict|unrestrict, /api/admin/users) -------


async def set_restricted(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    restricted: bool,
    reason: str,
    actor_id: uuid.UUID | None,
    meta: RequestMeta | None = None,
) -> RestrictionRead:
    """Restrict an active account, or make a restricted one active again; audited
    (`user.status`, with the operator and the reason). Unrestricting does not forgive a debt:
    later credits still repay it. Any other status (suspended, closed) is 409 INVALID_STATE."""
    await repo.lock_user_funds(session, user_id)
    user = await identity.get_user(session=session, user_id=user_id)
    if user is None:
        raise NotFound("User not found", code="USER_NOT_FOUND")
    current, wanted = ("active", "restricted") if restricted else ("restricted", "active")
    if user.status != current:
        raise InvalidState(
            f"Only an {current} account can be made {wanted}", details={"status": user.status}
        )
    await identity.set_status(
        session=session,
        user_id=user_id,
        status=wanted,
        reason=reason,
        actor_id=actor_id,
        meta=meta,
    )
    return RestrictionRead(
        user_id=user_id,
        status=wanted,
        reason=reason,
        owed=await owed(session=session, user_id=user_id),
    )
