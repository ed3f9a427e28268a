"""Double-entry ledger: accounts, immutable transfers, holds. The only code that moves money."""
