"""Public shapes of the KYC module (tiers, limits, status), for other modules and the API."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    """The one tier vocabulary, lowest first."""

    none = "none"
    basic = "basic"
    standard = "standard"
    enhanced = "enhanced"
    accredited = "accredited"

    @property
    def rank(self) -> int:
        return TIER_ORDER.index(self)


TIER_ORDER: tuple[Tier, ...] = (
    Tier.none,
    Tier.basic,
    Tier.standard,
    Tier.enhanced,
    Tier.accredited,
)
