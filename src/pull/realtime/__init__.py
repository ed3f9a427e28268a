"""Live feeds: Kalshi's WebSocket API v2 (`/trade-api/ws/v2`) and the app's stream
(`/api/v1/stream`), both fed by the Redis streams of `pull.kit.streams`."""
