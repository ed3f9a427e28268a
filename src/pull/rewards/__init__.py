"""Rewards: points on the ledger, lots, rules, tiers, streaks, referrals, redemption."""
