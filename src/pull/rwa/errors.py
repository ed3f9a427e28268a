"""Typed errors of the RWA module (codes in the error envelope, docs/rwa.md)."""

from __future__ import annotations

from pull.kit.errors import Conflict, Forbidden, NotFound, Unprocessable


class AssetNotFound(NotFound):
    code = "ASSET_NOT_FOUND"
    message = "Asset not found"


class OfferingNotFound(NotFound):
    code = "OFFERING_NOT_FOUND"
    message = "Offering not found"


class CertificateNotFound(Unprocessable):
    code = "CERTIFICATE_NOT_FOUND"
    message = "The grader's registry has no such certificate"


class GradeMismatch(Unprocessable):
    code = "GRADE_MISMATCH"
    message = "The grader's registry records another grade for this certificate"


class UnknownGrader(Unprocessable):
    code = "UNKNOWN_GRADER"
    message = "No registry is configured for this grader"


class DuplicateCertificate(Conflict):
    code = "DUPLICATE_CERTIFICATE"
    message = "An asset with this certificate already exists"


class InvalidState(Conflict):
    code = "INVALID_STATE"
    message = "Not possible in the current state"


class OfferingNotOpen(Conflict):
    code = "OFFERING_NOT_OPEN"
    message = "The offering is not open for subscriptions"


class OfferingSoldOut(Conflict):
    code = "OFFERING_SOLD_OUT"
    message = "Not enough shares left in the offering"


class InvestorCapExceeded(Conflict):
    code = "INVESTOR_CAP_EXCEEDED"
    message = "Over the offering's per-investor cap"


class FourEyesRequired(Forbidden):
    code = "FOUR_EYES_REQUIRED"
    message = "A second administrator must approve this"


class InvalidOffering(Unprocessable):
    code = "INVALID_OFFERING"
    message = "Invalid offering terms"
