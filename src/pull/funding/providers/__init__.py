"""Plaid adapters: the Protocol (base), the real client (plaid), the sandbox (sandbox)."""
