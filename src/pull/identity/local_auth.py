"""The authentication check's first level: answers kept in the API process's own memory, so a
signed-in request pays no Redis round trip while nothing about its user changed.

The second level is auth_cache (Redis, validated by the user's generation), the third
PostgreSQL. A local entry is only ever made from an answer that auth_cache validated (a Redis
entry of the current generation, or a database read stamped with the generation read before
it while no change was in flight), and it dies on any of:

- a message on the `auth:changed` channel naming its user. auth_cache publishes one in the same
  Redis transaction (MULTI) that moves the user's generation, before the change commits (the
  in-flight step), after it commits, and from the outbox relay's bump. An answer being made
  when a message arrives is not kept (the user's local version moved: `token` / `put`);
- the subscription not being known alive (pull.kit.invalidation: messages are applied in the
  I/O callback, a PING every 0.5 s, a 1.5 s lease): a subscription that errors, closes or goes
  silent drops every local entry and the process answers from auth_cache (then PostgreSQL)
  until it has resubscribed;
- LOCAL_TTL seconds, and the session's own expiry (auth_cache.user_from).

So a revocation is never missed: its message is published before its commit, and on a dead or
silent subscription the local level is off within the lease; in that partial outage (the
channel down while the process still answers requests) the window is the 1.5 s lease, shorter
than auth_cache's own ENTRY_TTL window for a committing process that cannot reach Redis.

One instance per app (app.state.auth_local) on the app's `Invalidations`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pull.kit.invalidation import Invalidations

CHANNEL = "auth:changed"
LOCAL_TTL = 10.0
MAX_ENTRIES = 100_000


class LocalAuthCache:
    def __init__(self, invalidations: Invalidations) -> None:
        self._inv = invalidations
        self._entries: dict[str, tuple[uuid.UUID, dict[str, Any], float]] = {}
        self._by_user: dict[uuid.UUID, set[str]] = {}
        self._versions: dict[uuid.UUID, int] = {}
        invalidations.handle(CHANNEL, self._message)
        invalidations.on_dead(self._clear)

    def live(self) -> bool:
        return self._inv.live()

    def get(self, key: str) -> dict[str, Any] | None:
        """The local answer for `key` while the subscription is known alive."""
        if not self._inv.live():
            return None
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[2] <= time.monotonic():
            self._drop_key(key)
            return None
        return hit[1]

    def token(self, user_id: uuid.UUID) -> tuple[int, int] | None:
        """Taken before the answer is looked up elsewhere; `put` keeps the answer only if no
        message about the user (and no resubscription) came in between."""
        if not self._inv.live():
            return None
        return (self._inv.epoch, self._versions.get(user_id, 0))

    def put(
        self, key: str, user_id: uuid.UUID, value: dict[str, Any], token: tuple[int, int] | None
    ) -> None:
        if token is None or not self._inv.live():
            return
        if token != (self._inv.epoch, self._versions.get(user_id, 0)):
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._clear()
        self._entries[key] = (user_id, value, time.monotonic() + LOCAL_TTL)
        self._by_user.setdefault(user_id, set()).add(key)

    def changed(self, user_id: uuid.UUID) -> None:
        self._versions[user_id] = self._versions.get(user_id, 0) + 1
        for key in self._by_user.pop(user_id, set()):
            self._entries.pop(key, None)
        if len(self._versions) > MAX_ENTRIES:
            # versions only need to differ from a token taken before; a new epoch does that
            self._versions.clear()
            self._inv.dead()

    def _drop_key(self, key: str) -> None:
        hit = self._entries.pop(key, None)
        if hit is not None:
            keys = self._by_user.get(hit[0])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    self._by_user.pop(hit[0], None)

    def _clear(self) -> None:
        self._entries.clear()
        self._by_user.clear()

    def _message(self, data: bytes) -> None:
        try:
            user_id = uuid.UUID(data.decode())
        except ValueError:
            self._clear()  # not ours to read: trust nothing cached
            self._versions.clear()
            self._inv.dead()
            return
        self.changed(user_id)
