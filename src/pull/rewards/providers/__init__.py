"""Gift-card providers: a Protocol, the Tremendous client and a sandbox."""
