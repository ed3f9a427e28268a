"""Demo RWA data for `pull dev`: two assets trading (held by the exchange's demo market makers,
with a few resting orders) and one open offering. Idempotent: an asset whose certificate is
already there is left alone. Runs after the exchange seeder (it uses its makers' cash)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pull.config import Settings
from pull.identity import service as identity
from pull.rwa import service
from pull.rwa.providers.sandbox import PsaSandbox
from pull.rwa.repository import assets as asset_repo
from pull.rwa.schemas import AssetCreate, OfferingCreate

CURATORS = (
    ("rwa-curator@pull.dev", "PullCurator-2024", "RWA Curator"),
    ("rwa-reviewer@pull.dev", "PullReviewer-2024", "RWA Reviewer"),
)
CONSIGNOR = ("consignor@pull.dev", "PullConsignor-2024", "Demo Consignor")
MAKERS = ("mm1@pull.dev", "mm2@pull.dev")

# cert (sandbox: last digit is the grade), title, category, shares, price, split, trading?
ASSETS = (
    ("10000040", "1999 Pokemon Base Set Charizard Holo #4", "card", 1000, 1000, (600, 400), True),
    ("10000059", "1952 Topps Mickey Mantle #311", "card", 500, 2000, (250, 250), True),
    ("10000070", "1986 Fleer Michael Jordan #57", "card", 2000, 500, (0, 0), False),
)


async def _user(
    session: AsyncSession, settings: Settings, email: str, pw: str, name: str, role: str
) -> uuid.UUID:
    existing = await identity.get_user_by_email(session=session, email=email)
    if existing is not None:
        return existing.id
    user = await identity.create_user(
        session=session,
        env=identity.IdentityEnv.from_settings(settings),
        email=email,
        password=pw,
        display_name=name,
        role=role,
    )
    await identity.mark_email_verified(session=session, user_id=user.id)
    return user.id


async def seed_rwa(session: AsyncSession, settings: Settings) -> None:
    makers = [await identity.get_user_by_email(session=session, email=e) for e in MAKERS]
    if any(m is None for m in makers):
        return  # the exchange seeder did not run
    holders = [m.id for m in makers if m is not None]
    curator, reviewer = [await _user(session, settings, *c, role="admin") for c in CURATORS]
    consignor = await _user(session, settings, *CONSIGNOR, role="user")
    now = dt.datetime.now(dt.UTC)
    for cert, title, category, shares, price, split, trading in ASSETS:
        if await asset_repo.asset_by_cert(session, "PSA", cert) is not None:
            continue
        asset = await service.create_asset(
            session=session,
            graders={"PSA": PsaSandbox()},
            actor_id=curator,
            data=AssetCreate(
                title=title,
                category=category,
                description="Demo asset (PSA sandbox certificate)",
                cert_number=cert,
                grade=cert[-1] if cert[-1] != "0" else "10",
                custodian="PULL Vault (Delaware)",
                insured_value_cents=shares * price * 2,
                consignor_id=consignor,
            ),
        )
        offering = await service.create_offering(
            session=session,
            actor_id=curator,
            asset_id=asset.id,
            data=OfferingCreate(
                total_shares=shares,
                price_cents=price,
                opens_at=now,
                closes_at=now + dt.timedelta(days=30 if not trading else 1),
                min_raise_cents=shares * price // 2,
                max_per_investor_bps=10_000 if trading else 1999,
            ),
        )
        await service.open_offering(session=session, actor_id=reviewer, offering_id=offering.id)
        if not trading:
            continue
        for holder, n in zip(holders, split, strict=True):
            await service.subscribe(
                session=session, user_id=holder, offering_id=offering.id, shares=n, now=now
            )
        # the OfferingWorkflow's steps, run now instead of at the close and after the lock-up
        await service.close_offering(session=session, offering_id=offering.id)
        await service.settle_subscriptions(session=session, offering_id=offering.id, limit=100)
        await service.finalize_offering(session=session, offering_id=offering.id, lockup_seconds=0)
        await service.start_trading(session=session, asset_id=asset.id)
        for holder, side, ticks in (
            (holders[0], "sell", (110, 115)),
            (holders[1], "buy", (95, 90)),
        ):
            for pct in ticks:
                await service.place_order(
                    session=session,
                    user_id=holder,
                    asset_id=asset.id,
                    side=side,
                    price_cents=price * pct // 100,
                    quantity=10,
                )
