"""KYC: verification tiers, the limit checks every money movement goes through, the verification
workflow, provider adapters and their webhooks. Other modules use `service` and `schemas` only."""
