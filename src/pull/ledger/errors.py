"""Typed errors of the ledger (part of its public contract)."""

from __future__ import annotations

from pull.kit.errors import Conflict, NotFound, Unprocessable


class InsufficientFunds(Conflict):
    code = "INSUFFICIENT_FUNDS"
    message = "Insufficient funds"


class IdempotencyConflict(Unprocessable):
    code = "IDEMPOTENCY_CONFLICT"
    message = "This idempotency key was already used with different content"


class InvalidTransfer(Unprocessable):
    code = "INVALID_TRANSFER"
    message = "Invalid transfer"


class TransferNotFound(NotFound):
    code = "TRANSFER_NOT_FOUND"
    message = "Transfer not found"


class TransferNotPending(Conflict):
    code = "TRANSFER_NOT_PENDING"
    message = "The transfer is not an open pending transfer"
