"""Plaid's webhook verification keys, cached per process (Plaid asks receivers to cache them).

A key Plaid returns is kept for `ttl` seconds, or until its `expired_at` when that comes first;
an expired key stays cached as expired (verification refuses it without asking Plaid again).
A `kid` Plaid does not know (a 400 from /webhook_verification_key/get) is cached negatively for
`negative_ttl` seconds, so a flood of webhooks naming made-up keys costs one Plaid call per
distinct kid at most, not one per request. Other failures (Plaid unreachable, 5xx) are not
cached. At most `max_entries` kids are kept, least recently used first out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pull.funding.providers.base import PlaidError

Fetch = Callable[[str], Awaitable[dict[str, Any]]]


class UnknownKey(PlaidError):
    status_code = 400
    code = "INVALID_WEBHOOK_VERIFICATION_KEY_ID"
    message = "Plaid does not know this webhook verification key (cached)"


@dataclass(frozen=True)
class _Entry:
    jwk: dict[str, Any] | None  # None: Plaid said the kid does not exist
    until: float


class WebhookKeyCache:
    def __init__(
        self,
        *,
        ttl: float = 3600.0,
        negative_ttl: float = 300.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.fetches = 0  # calls to Plaid, for metrics and tests

    async def get(self, kid: str, fetch: Fetch) -> dict[str, Any]:
        now = self._clock()
        entry = self._entries.get(kid)
        if entry is not None and entry.until > now:
            self._entries.move_to_end(kid)
            if entry.jwk is None:
                raise UnknownKey()
            return dict(entry.jwk)
        self.fetches += 1
        try:
            jwk = await fetch(kid)
        except PlaidError as exc:
            if exc.status_code == 400:  # Plaid answered: no such key
                self._put(kid, _Entry(None, now + self.negative_ttl))
            raise
        until = now + self.ttl
        expired_at = jwk.get("expired_at")
        if isinstance(expired_at, int | float) and now < expired_at < until:
            until = float(expired_at)  # look again when it expires
        self._put(kid, _Entry(dict(jwk), until))
        return dict(jwk)

    def _put(self, kid: str, entry: _Entry) -> None:
        self._entries[kid] = entry
        self._entries.move_to_end(kid)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
