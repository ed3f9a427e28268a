"""The ledger's own checks: the trial balance and the per-class invariant report that
`pull ledger check`, the admin endpoint and the `ledger_negative_accounts` gauge show.
Read-only; called through `pull.ledger.service`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pull.ledger import repository as repo
from pull.ledger.schemas import (
    MAY_GO_NEGATIVE_SYSTEM,
    NEVER_NEGATIVE_SYSTEM,
    AccountClassRead,
    AccountMismatch,
    AccountRef,
    CurrencyTotal,
    LedgerInvariantsRead,
    NegativeAccountRead,
    TrialBalance,
    account_class,
    system_account,
)


async def trial_balance(*, session: AsyncSession) -> TrialBalance:
    totals = [CurrencyTotal(*row) for row in await repo.currency_totals(session)]
    mismatches = [
        AccountMismatch(
            account_id=r[0],
            account=AccountRef(owner_id=r[1], kind=r[2], currency=r[3]).label()
            + (f"#{r[4]}" if r[1] is None else ""),
            balance=r[5],
            entries_sum=r[6],
            pending_debits=r[7],
            pending_debits_from_entries=r[8],
            pending_credits=r[9],
            pending_credits_from_entries=r[10],
        )
        for r in list(await repo.account_mismatches(session))
    ]
    return TrialBalance(
        currencies=totals,
        mismatches=mismatches,
        unbalanced_transfers=await repo.unbalanced_transfers(session),
    )


_MEMBERS = {
    "user": "every user account (cash, held, pending_deposits, points, instant_credit, shares)",
    "market_escrow": "market_escrow, market_escrow:<ticker>",
    "fee_revenue": "fee_revenue, fee_revenue:<ticker>",
    "rwa.escrow": "rwa.escrow:<offering>: subscription money until the consignor is paid",
    "rwa.sale": "rwa.sale:<buyout>: a settled buyout's price until it is distributed",
    "other": "any other system account",
}


async def invariant_report(*, session: AsyncSession) -> LedgerInvariantsRead:
    """Per account class, whether its accounts may go negative, how many there are and which
    are negative now (system accounts summed over their shards). `ok` when no account of a
    never-negative class is. Read-only; `pull ledger check` and the admin endpoint print it,
    the worker exports it as the `ledger_negative_accounts` gauge."""
    users, negative_users, rows = await repo.negative_user_accounts(session)
    classes: dict[str, AccountClassRead] = {
        "user": AccountClassRead(
            account_class="user",
            members=_MEMBERS["user"],
            never_negative=True,
            accounts=users,
            negative_count=negative_users,
            negative=[
                NegativeAccountRead(
                    account=AccountRef(owner_id=o, kind=k, currency=c).label(),
                    balance=b,
                    available=a,
                )
                for o, k, c, b, a in rows
            ],
        )
    }
    for name in sorted(NEVER_NEGATIVE_SYSTEM) + sorted(MAY_GO_NEGATIVE_SYSTEM) + ["other"]:
        classes[name] = AccountClassRead(
            account_class=name,
            members=_MEMBERS.get(name, name),
            never_negative=name in NEVER_NEGATIVE_SYSTEM,
            accounts=0,
            negative_count=0,
            negative=[],
        )
    for kind, currency, balance, available in await repo.system_account_totals(session):
        entry = classes[account_class(None, kind)]
        entry.accounts += 1
        if available < 0:
            entry.negative_count += 1
            if len(entry.negative) < 100:
                entry.negative.append(
                    NegativeAccountRead(
                        account=system_account(kind, currency).label(),
                        balance=balance,
                        available=available,
                    )
                )
    out = list(classes.values())
    return LedgerInvariantsRead(
        ok=not any(c.never_negative and c.negative_count for c in out), classes=out
    )
