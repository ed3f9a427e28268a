"""Analytics: every outbox event and client product event in ClickHouse, exactly once by
event id and free of PII, and the admin dashboards computed there (docs/analytics.md)."""
