"""Typed errors of the rewards module (part of its public contract)."""

from __future__ import annotations

from pull.kit.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable


class InsufficientPoints(BadRequest):
    code = "INSUFFICIENT_POINTS"
    message = "Not enough points"


class OutOfStock(Conflict):
    code = "OUT_OF_STOCK"
    message = "This reward is out of stock"


class RewardNotFound(NotFound):
    code = "REWARD_NOT_FOUND"
    message = "Reward not found"


class RewardInactive(Conflict):
    code = "REWARD_INACTIVE"
    message = "This reward is not available now"


class AlreadyClaimed(Conflict):
    code = "ALREADY_CLAIMED"
    message = "Today's streak is already claimed"


class RedemptionNotFound(NotFound):
    code = "REDEMPTION_NOT_FOUND"
    message = "Redemption not found"


class InvalidRedemption(Unprocessable):
    code = "INVALID_REDEMPTION"
    message = "Invalid redemption"


class RuleNotFound(NotFound):
    code = "RULE_NOT_FOUND"
    message = "Rule not found"


class InvalidRule(Unprocessable):
    code = "INVALID_RULE"
    message = "Invalid rule"


class AdjustmentNotFound(NotFound):
    code = "ADJUSTMENT_NOT_FOUND"
    message = "Adjustment not found"


class FourEyesRequired(Forbidden):
    code = "FOUR_EYES_REQUIRED"
    message = "A second administrator must approve this adjustment"


class InvalidState(Conflict):
    code = "INVALID_STATE"
    message = "Not possible in the current state"


class InvalidTimezone(Unprocessable):
    code = "INVALID_TIMEZONE"
    message = "Unknown time zone"
