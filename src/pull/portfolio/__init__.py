"""Portfolio: one view of everything a customer owns, its P&L, history and statements."""
