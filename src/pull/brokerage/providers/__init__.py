"""Broker adapters: the Protocol (base), Alpaca through alpaca-py (alpaca), the sandbox
(sandbox), Alpaca's wire shapes (wire) and the sandbox served in them (alpaca_routes)."""
