"""Identity and access: accounts, sessions, tokens, 2FA, API keys, audit."""
