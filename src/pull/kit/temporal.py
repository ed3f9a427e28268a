"""A lazily connected Temporal client, so the API starts (and reports not-ready) without it."""

from __future__ import annotations

import asyncio

from temporalio.client import Client


class TemporalConnector:
    def __init__(self, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                self._client = await Client.connect(self.address, namespace=self.namespace)
            return self._client
