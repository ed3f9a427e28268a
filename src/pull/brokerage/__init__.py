"""Brokerage: stocks and crypto through an embedded broker (Alpaca's Broker API model).

PULL holds the customer relationship and the cash ledger; the broker executes and custodies.
See docs/brokerage.md.
"""
