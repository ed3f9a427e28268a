"""Route dispatch whose cost does not grow with the number of routes.

FastAPI's router (0.165) tries every route registered before the one that matches, each a
regex behind several function calls, and an included router's routes twice (once to match,
once to handle): `GET /api/v1/rewards/balance` paid about 0.2 ms of CPU in matching alone,
and a Trade API request, reached only through the router's fallback, walked everything twice
(docs/performance.md, "Foundation: HTTP").

`index_routes(router)` puts an index in front of the same router: a route can only match a
path that starts with its template's literal prefix (the part before the first `{`), so each
route is filed under that prefix (static templates under their whole path) and a request
tries only the routes filed under its own path's prefixes, **in registration order**. The
first full match is therefore the one FastAPI's own walk would find, and it is handled by the
same code (`route.handle`, FastAPI's scope bookkeeping). Anything else (a method mismatch, a
trailing-slash redirect, a fallback such as the Trade API's, frontend routes) is left to the
router's own `app`, so its answers stay FastAPI's. `tests/kit/test_routing.py` checks that
the index picks FastAPI's route for every route of the app.

The same index serves each included router's own match (`_IncludedRouter._match`), which
FastAPI runs twice per request. Routes added after the first request at the top level are
picked up (the index is rebuilt when the router's route list changes); routes added to a
router after it was included and after the first request are not: PULL builds its routes
once, in `create_app`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute, APIRouter
from starlette import routing
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

# How many leading path segments a route is filed under at most ("/api/v1/rewards").
DEPTH = 3

_IncludedRouter: Any = getattr(fastapi_routing, "_IncludedRouter", None)
_EffectiveRouteContext: Any = getattr(fastapi_routing, "_EffectiveRouteContext", None)
_fa: Any = fastapi_routing  # FastAPI's private scope helpers, used exactly as its router does


def _literal(template: str) -> str:
    cut = template.find("{")
    return template if cut < 0 else template[:cut]


def _bucket(literal: str) -> str:
    """The prefix of `literal` made of its first `DEPTH` segments that a `/` closes."""
    end, depth = 0, 0
    while depth < DEPTH:
        slash = literal.find("/", end + 1)
        if slash < 0:
            break
        end, depth = slash, depth + 1
    return literal[:end]


def _keys(path: str) -> list[str]:
    """Every bucket a route matching `path` can be filed under (`_bucket` of a prefix)."""
    keys, end = [""], 0
    for _ in range(DEPTH):
        slash = path.find("/", end + 1)
        if slash < 0:
            break
        end = slash
        keys.append(path[:end])
    return keys


def _leaf_template(route: Any) -> str | None:
    """The path template a route (or an included router's effective route) matches against,
    or None when its matching is not a plain template (mounts, hosts, frontend groups)."""
    if _EffectiveRouteContext is not None and isinstance(route, _EffectiveRouteContext):
        inner = route.starlette_route
        if inner is None:
            return route.path_format if isinstance(route.original_route, APIRoute) else None
        route = inner
    if isinstance(route, routing.Route | routing.WebSocketRoute):
        template: str = route.path_format
        return template
    return None


def _templates(route: Any) -> list[str] | None:
    if _IncludedRouter is not None and isinstance(route, _IncludedRouter):
        found: list[str] = []
        for leaf in route.effective_route_contexts():
            template = _leaf_template(leaf)
            if template is None:
                return None
            found.append(template)
        return found
    template = _leaf_template(route)
    return None if template is None else [template]


class RouteIndex:
    """Routes filed by literal prefix; `candidates(path)` keeps their registration order."""

    def __init__(self, routes: Sequence[Any]) -> None:
        self.routes = list(routes)
        self.exact: dict[str, set[int]] = {}
        self.buckets: dict[str, set[int]] = {"": set()}
        for i, route in enumerate(self.routes):
            templates = _templates(route)
            if templates is None:  # matched some other way: tried for every path
                self.buckets[""].add(i)
                continue
            for template in templates:
                literal = _literal(template)
                if literal == template:
                    self.exact.setdefault(template, set()).add(i)
                else:
                    self.buckets.setdefault(_bucket(literal), set()).add(i)
        self._cache: dict[tuple[tuple[str, ...], str | None], list[Any]] = {}

    def candidates(self, path: str) -> list[Any]:
        present = tuple(k for k in _keys(path) if k in self.buckets)
        exact = path if path in self.exact else None
        key = (present, exact)
        found = self._cache.get(key)
        if found is None:
            chosen: set[int] = set()
            for k in present:
                chosen |= self.buckets[k]
            if exact is not None:
                chosen |= self.exact[exact]
            found = [self.routes[i] for i in sorted(chosen)]
            self._cache[key] = found  # bounded: keys are the index's own
        return found


class IndexedDispatch:
    """The router's dispatch with the index in front (see the module's docstring)."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self._index: RouteIndex | None = None
        self._built_for: tuple[int, int, int] = (-1, -1, -1)
        self._low_priority = False

    def index(self) -> RouteIndex:
        router: Any = self.router
        state = (id(router.routes), len(router.routes), getattr(router, "_routes_version", 0))
        if self._index is None or state != self._built_for:
            self._index = RouteIndex(router.routes)
            self._built_for = state
            self._low_priority = any(True for _ in router._iter_low_priority_routes())
            for route in router.routes:
                if _IncludedRouter is not None and isinstance(route, _IncludedRouter):
                    _index_included(route)
        return self._index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        router: Any = self.router
        if scope["type"] not in ("http", "websocket"):
            await router.app(scope, receive, send)
            return
        # what APIRouter.app does first
        _fa._apply_router_form_limits(scope, router.form_limits)
        if "router" not in scope:
            scope["router"] = router
        index = self.index()
        path = get_route_path(scope)
        partial = False
        for route in index.candidates(path):
            match, child_scope = route.matches(scope)
            if match == Match.FULL:
                # what APIRouter.app does on a full match
                _fa._update_scope(scope, child_scope)
                _fa._route_selected(
                    scope=scope,
                    path=getattr(route, "path_format", None),
                    mount=isinstance(route, routing.Mount),
                )
                await route.handle(scope, receive, send)
                return
            partial = partial or match == Match.PARTIAL
        if partial or self._low_priority or self._redirects(scope, path):
            # a method mismatch (405), a trailing-slash redirect, a low-priority route:
            # FastAPI's own walk, which finds no full match either and answers as it does
            await router.app(scope, receive, send)
            return
        # nothing matches, as APIRouter.app would find after walking every route: its default
        # (a 404, or a fallback such as the Trade API's)
        await router.default(scope, receive, send)

    def _redirects(self, scope: Scope, path: str) -> bool:
        """Whether APIRouter.app would answer with a trailing-slash redirect."""
        router: Any = self.router
        if scope["type"] != "http" or not router.redirect_slashes or path == "/":
            return False
        other = dict(scope)
        if path.endswith("/"):
            other["path"] = other["path"].rstrip("/")
        else:
            other["path"] = other["path"] + "/"
        index = self.index()
        return any(
            route.matches(other)[0] != Match.NONE
            for route in index.candidates(get_route_path(other))
        )


def _index_included(included: Any) -> None:
    """Serve an included router's `_match` from an index of its effective candidates."""
    original: Callable[[Scope], Any] = type(included)._match.__get__(included)
    cache: dict[str, Any] = {"source": None, "index": None}

    def match(scope: Scope) -> Any:
        candidates = included.effective_candidates()
        if cache["source"] is not candidates:
            if any(_templates(c) is None for c in candidates):
                cache["index"] = None
            else:
                cache["index"] = RouteIndex(candidates)
            cache["source"] = candidates
            for candidate in candidates:
                if isinstance(candidate, _IncludedRouter):
                    _index_included(candidate)
        index: RouteIndex | None = cache["index"]
        if index is None:
            return original(scope)
        chosen = index.candidates(get_route_path(scope))
        result = _match_among(chosen, scope)
        if result[0] == Match.FULL:
            return result
        return original(scope)  # partial or none: FastAPI's own answer

    if getattr(included, "_pull_indexed", False):
        return
    included._match = match
    included._pull_indexed = True


def _match_among(candidates: list[Any], scope: Scope) -> tuple[Any, Scope, Any, Any]:
    """`_IncludedRouter._match`'s loop over the given candidates, full matches only."""
    for candidate in candidates:
        if isinstance(candidate, _IncludedRouter):
            match, child_scope = candidate.matches(scope)
            route: BaseRoute = candidate
            route_context = None
        elif isinstance(candidate.original_route, APIRoute):
            route_context = candidate
            fastapi_scope = _fa._get_fastapi_scope(scope)
            key = _fa._FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY
            previous = fastapi_scope.get(key, _fa._SCOPE_MISSING)
            fastapi_scope[key] = route_context
            try:
                match, child_scope = candidate.original_route.matches(scope)
            finally:
                _fa._restore_fastapi_scope_key(scope, key, previous)
            route = candidate.original_route
        else:
            route_context = candidate
            match, child_scope = candidate.matches(scope)
            route = candidate.starlette_route or candidate.original_route
        if match == Match.FULL:
            return match, child_scope, route, route_context
    return Match.NONE, {}, None, None


def index_routes(router: APIRouter) -> None:
    """Dispatch `router`'s requests through an index (no-op if its stack is not plain)."""
    stack: Any = router.middleware_stack
    if _IncludedRouter is None or getattr(stack, "__func__", None) is not APIRouter.app:
        return
    router.middleware_stack = IndexedDispatch(router)
