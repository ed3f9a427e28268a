"""Typed errors of the funding module."""

from __future__ import annotations

from pull.kit.errors import Conflict, NotFound, Unprocessable


class BankAccountNotFound(NotFound):
    code = "BANK_ACCOUNT_NOT_FOUND"
    message = "Bank account not found"


class DepositNotFound(NotFound):
    code = "DEPOSIT_NOT_FOUND"
    message = "Deposit not found"


class WithdrawalNotFound(NotFound):
    code = "WITHDRAWAL_NOT_FOUND"
    message = "Withdrawal not found"


class InvalidAmount(Unprocessable):
    code = "INVALID_AMOUNT"
    message = "Invalid amount"


class UnknownPlaidAccount(Unprocessable):
    code = "UNKNOWN_ACCOUNT"
    message = "The linked item has no such account"


class InvalidState(Conflict):
    code = "INVALID_STATE"
    message = "Not possible in the current state"


class BankAccountUnlinked(Conflict):
    code = "BANK_ACCOUNT_UNLINKED"
    message = "The bank account has been unlinked"
