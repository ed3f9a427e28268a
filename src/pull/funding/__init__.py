"""Bank funding with Plaid: linked bank accounts, deposits and withdrawals as workflows."""
