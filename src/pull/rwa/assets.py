"""Assets: creation with certificate verification, valuations, reads and search."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from pull.identity import service as identity
from pull.kit.db import utcnow
from pull.kit.errors import Unprocessable
from pull.ledger import service as ledger
from pull.rwa import repository as repo
from pull.rwa.errors import (
    AssetNotFound,
    CertificateNotFound,
    DuplicateCertificate,
    GradeMismatch,
    UnknownGrader,
)
from pull.rwa.models import RwaAsset, RwaOffering, RwaValuation
from pull.rwa.providers import Grader
from pull.rwa.providers.base import numeric_grade
from pull.rwa.repository import assets as asset_repo
from pull.rwa.repository import offerings as offering_repo
from pull.rwa.repository import orders as order_repo
from pull.rwa.schemas import (
    AssetCreate,
    AssetDetail,
    AssetRead,
    CertificateRead,
    OfferingRead,
    ValuationCreate,
    ValuationRead,
)

ISSUED = "rwa.issued"  # system account (per share currency) that issued shares are drawn from


def issued_account(currency: str) -> ledger.AccountRef:
    return ledger.system_account(ISSUED, currency)


def shares_account(user_id: uuid.UUID, currency: str) -> ledger.AccountRef:
    return ledger.user_account(user_id, "shares", currency)


async def shares_outstanding(*, session: AsyncSession, currency: str) -> int:
    return -await ledger.account_balance(session=session, account=issued_account(currency))


def _certificate(asset: RwaAsset) -> CertificateRead:
    c = asset.certificate
    return CertificateRead(
        grader=asset.grader,
        cert_number=asset.cert_number,
        grade=str(c.get("grade", "")),
        subject=str(c.get("subject", "")),
        year=str(c.get("year", "")),
        brand=str(c.get("brand", "")),
        category=str(c.get("category", "")),
        population=c.get("population"),
        population_higher=c.get("population_higher"),
        verified_at=asset.verified_at,
    )


def offering_read(o: RwaOffering) -> OfferingRead:
    return OfferingRead(
        id=o.id,
        asset_id=o.asset_id,
        status=o.status,
        total_shares=o.total_shares,
        price_cents=o.price_cents,
        opens_at=o.opens_at,
        closes_at=o.closes_at,
        min_raise_cents=o.min_raise_cents,
        max_per_investor_bps=o.max_per_investor_bps,
        max_shares_per_investor=investor_cap(o),
        kyc_tier=o.kyc_tier,
        sourcing_fee_bps=o.sourcing_fee_bps,
        shares_subscribed=o.shares_subscribed,
        shares_remaining=o.total_shares - o.shares_subscribed,
        raised_cents=o.shares_subscribed * o.price_cents,
        investors=o.investors,
        close_reason=o.close_reason,
        closed_at=o.closed_at,
        settled_at=o.settled_at,
        created_at=o.created_at,
    )


def investor_cap(o: RwaOffering) -> int:
    """Whole shares one investor may hold of the offering (at least one)."""
    return max(1, o.total_shares * o.max_per_investor_bps // 10_000)


async def asset_reads(
    session: AsyncSession,
    assets: Sequence[RwaAsset],
    *,
    prices: Mapping[uuid.UUID, int] | None = None,
) -> list[AssetRead]:
    ids = [a.id for a in assets]
    values = await asset_repo.latest_valuations(session, ids)
    last = dict(await offering_repo.last_offering_prices(session, ids))
    last.update(await order_repo.last_trade_prices(session, ids))
    last.update(prices or {})
    out = []
    for a in assets:
        out.append(
            AssetRead(
                id=a.id,
                symbol=a.currency,
                title=a.title,
                category=a.category,
                description=a.description,
                grade=a.grade,
                certificate=_certificate(a),
                images=list(a.images or []),
                custodian=a.custodian,
                vault_location=a.vault_location,
                insured_value_cents=a.insured_value_cents,
                state=a.state,
                locked_until=a.locked_until,
                valuation_cents=values.get(a.id),
                last_price_cents=last.get(a.id),
                shares_outstanding=await shares_outstanding(session=session, currency=a.currency),
                created_at=a.created_at,
            )
        )
    return out


def _valuation(v: RwaValuation) -> ValuationRead:
    return ValuationRead(
        id=v.id, kind=v.kind, value_cents=v.value_cents, source=v.source, note=v.note, as_of=v.as_of
    )


async def create_asset(
    *,
    session: AsyncSession,
    graders: Mapping[str, Grader],
    actor_id: uuid.UUID,
    data: AssetCreate,
    now: dt.datetime | None = None,
) -> AssetDetail:
    """Verify the certificate with the grader's registry and store the asset as a draft.

    422 CERTIFICATE_NOT_FOUND / GRADE_MISMATCH, 409 DUPLICATE_CERTIFICATE, 502/503 when the
    registry cannot be asked."""
    grader = graders.get(data.grader)
    if grader is None:
        raise UnknownGrader(details={"grader": data.grader})
    if await asset_repo.asset_by_cert(session, data.grader, data.cert_number) is not None:
        raise DuplicateCertificate(details={"cert_number": data.cert_number})
    if await identity.get_user(session=session, user_id=data.consignor_id) is None:
        raise Unprocessable("The consignor is not a user", code="CONSIGNOR_NOT_FOUND")
    cert = await grader.lookup(data.cert_number)
    if cert is None:
        raise CertificateNotFound(details={"grader": data.grader, "cert_number": data.cert_number})
    if cert.numeric_grade != numeric_grade(data.grade):
        raise GradeMismatch(
            details={"claimed": data.grade, "registry": cert.grade, "cert_number": cert.cert_number}
        )
    now = now or utcnow()
    asset = RwaAsset(
        id=uuid.uuid4(),
        title=data.title,
        category=data.category,
        description=data.description,
        grader=data.grader,
        cert_number=data.cert_number,
        grade=data.grade,
        certificate={
            "grade": cert.grade,
            "subject": cert.subject,
            "year": cert.year,
            "brand": cert.brand,
            "category": cert.category,
            "population": cert.population,
            "population_higher": cert.population_higher,
        },
        verified_at=now,
        images=list(data.images),
        custodian=data.custodian,
        vault_location=data.vault_location,
        insured_value_cents=data.insured_value_cents,
        consignor_id=data.consignor_id,
        state="draft",
        created_by=actor_id,
        created_at=now,
        updated_at=now,
    )
    repo.add(session, asset)
    await session.flush()
    identity.record_audit(
        session,
        action="rwa.asset.create",
        actor_id=actor_id,
        resource=f"rwa_asset:{asset.id}",
        details={"grader": data.grader, "cert_number": data.cert_number, "grade": data.grade},
    )
    return await get_asset(session=session, asset_id=asset.id)


async def add_valuation(
    *,
    session: AsyncSession,
    actor_id: uuid.UUID,
    asset_id: uuid.UUID,
    data: ValuationCreate,
) -> ValuationRead:
    if await asset_repo.get_asset(session, asset_id) is None:
        raise AssetNotFound()
    row = RwaValuation(
        asset_id=asset_id,
        kind=data.kind,
        value_cents=data.value_cents,
        source=data.source,
        note=data.note,
        as_of=data.as_of or utcnow(),
        created_by=actor_id,
    )
    repo.add(session, row)
    await session.flush()
    identity.record_audit(
        session,
        action="rwa.valuation.add",
        actor_id=actor_id,
        resource=f"rwa_asset:{asset_id}",
        details={"kind": data.kind, "value_cents": data.value_cents, "source": data.source},
    )
    return _valuation(row)


async def get_asset(*, session: AsyncSession, asset_id: uuid.UUID) -> AssetDetail:
    asset = await asset_repo.get_asset(session, asset_id)
    if asset is None:
        raise AssetNotFound()
    (read,) = await asset_reads(session, [asset])
    return AssetDetail(
        **read.model_dump(),
        valuations=[_valuation(v) for v in await asset_repo.valuations(session, asset_id)],
        offerings=[offering_read(o) for o in await offering_repo.offerings_of(session, asset_id)],
    )


async def list_assets(
    *,
    session: AsyncSession,
    category: str | None = None,
    states: Sequence[str] | None = None,
    query: str | None = None,
    before: tuple[dt.datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[AssetRead]:
    rows = await asset_repo.list_assets(
        session, category=category, states=states, query=query, before=before, limit=limit
    )
    return await asset_reads(session, rows)
