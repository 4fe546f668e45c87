"""The envelope every request passes through once: CORS, limits, problems, audit, metrics.

Every route is registered through an ``Envelope``, which wraps its handler; the app has no
aiohttp middleware at all. With none, aiohttp calls the route's handler directly, whereas one
middleware anywhere makes it chain every handler through partials and an extra coroutine of
its own per app, which on the cached path cost a twentieth of the throughput. What no route
serves (404, 405, CORS preflights) reaches a fallback route registered last.

The duties, in the order they had as separate middlewares, outermost first:

- metrics count the status the client finally receives;
- CORS (when ``[cors] allow_origins`` is set) answers preflights and marks every other
  response, problems included, readable by an allowed origin;
- every error becomes problem+json (a bug: a bare 500 and a log line), or the dialect's own
  error document under a dialect's routes (``shape``);
- the audit trail records the error as raised (our code, or aiohttp's status); preflights
  and probes are not consumer requests and are not audited;
- an over-long query string is refused before any handler runs;
- every response gets the standard headers (``proxy.web.headers``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import NamedTuple, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.core.errors import ProblemError
from proxy.observability.audit import UNAUDITED_PATHS, AuditTrail
from proxy.observability.audit_record import CURRENT, AuditRecord
from proxy.observability.metrics import Metrics
from proxy.web.cors import expose, is_preflight, preflight
from proxy.web.headers import add_standard_headers, check_query_length
from proxy.web.keys import AUDIT_TRAIL, SETTINGS
from proxy.web.problems import http_error_code, internal_error, problem_for, problem_for_http

log = logging.getLogger(__name__)


class Shape(Protocol):
    """A dialect's error answers: calls the handler, answers what it raises in its own shape."""

    def __call__(self, request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]: ...


# The metric label and audit route of requests no route serves: one value, whatever the path.
UNMATCHED = "unmatched"


class Envelope:
    """Registers routes whose handlers carry every duty of the request envelope."""

    def __init__(self, app: web.Application, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics
        cors = app[SETTINGS].cors
        self._cors = cors if cors.allow_origins else None
        # The audit trail opens on start-up, after routes are registered: found on first use.
        self._trail: AuditTrail | None = None

    def add(
        self,
        router: web.UrlDispatcher,
        method: str,
        path: str,
        handler: Handler,
        *,
        shape: Shape | None = None,
    ) -> None:
        """Serve ``method path`` with ``handler`` in the envelope (errors in ``shape`` if given)."""
        router.add_route(
            method,
            path,
            self._wrap(
                handler if shape is None else partial(shape, handler=handler),
                method=method,
                own_query_check=shape is not None,
            ),
        )

    def add_get(
        self, router: web.UrlDispatcher, path: str, handler: Handler, *, shape: Shape | None = None
    ) -> None:
        """Serve GET and HEAD ``path`` with ``handler`` in the envelope."""
        for method in ("GET", "HEAD"):
            self.add(router, method, path, handler, shape=shape)

    def add_fallback(self, router: web.UrlDispatcher, *, shape: Shape | None = None) -> None:
        """Answer what no other route of ``router`` serves: 404, 405 or a CORS preflight.

        Register it after every other route: it matches any method on any path (within a
        sub-app's prefix), so aiohttp reaches it only when nothing else matched.
        """
        fallback = _Anywhere("")

        async def not_served(request: web.Request) -> web.StreamResponse:
            methods = await _served_methods(router, request, fallback)
            if methods:
                raise web.HTTPMethodNotAllowed(request.method, methods)
            raise web.HTTPNotFound()

        router.register_resource(fallback)
        fallback.add_route(
            "*",
            self._wrap(
                not_served if shape is None else partial(shape, handler=not_served),
                method=None,
                own_query_check=shape is not None,
                preflights=partial(_served_methods, router, fallback=fallback),
            ),
        )

    def _wrap(
        self,
        handler: Handler,
        *,
        method: str | None,
        own_query_check: bool,
        preflights: Callable[[web.Request], Awaitable[set[str]]] | None = None,
    ) -> Handler:
        """``handler`` inside the envelope; ``method`` None: the fallback (see add_fallback)."""
        metrics, cors = self._metrics, self._cors
        # The route's facts, final only once sub-apps are mounted: found on first use.
        facts: list[_RouteFacts] = []

        async def enveloped(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            record: AuditRecord | None = None
            # What the client receives, and what the audit trail says happened.
            status, outcome = 500, "internal_error"
            template = UNMATCHED
            trail = self._trail
            if trail is None:
                trail = self._trail = self._app[AUDIT_TRAIL]
            try:
                if not facts:
                    facts.append(_RouteFacts.of(request, method))
                template, audit_route, audited = facts[0]
                answer = None
                if preflights is not None and cors is not None and is_preflight(request):
                    # The fallback: a preflight for a path that is served is answered here.
                    answer = preflight(request, cors, await preflights(request))
                if (
                    answer is None
                    and trail.enabled
                    and (audited if method is not None else request.path not in UNAUDITED_PATHS)
                ):
                    record = AuditRecord()
                    token = CURRENT.set(record)
                if answer is not None:
                    response, outcome = answer, "ok"
                else:
                    # The handler's response, or the problem document for what it raised.
                    try:
                        if not own_query_check:
                            check_query_length(request)
                        response = await handler(request)
                    except ProblemError as exc:
                        response, outcome = problem_for(exc), exc.code
                    except web.HTTPException as exc:
                        if exc.status < 400:
                            raise  # a redirect: below
                        response = problem_for_http(request.method, exc)
                        outcome = http_error_code(exc.status)
                    except Exception:
                        log.exception("unhandled error on %s %s", request.method, request.path)
                        response, outcome = internal_error(), "internal_error"
                    else:
                        # A dialect answers its own errors in its own shape: only the status
                        # is known.
                        outcome = "ok" if response.status < 400 else "failed"
                status = response.status
                add_standard_headers(response.headers)
                if cors is not None and answer is None:
                    expose(request, cors, response.headers)
                return response
            except web.HTTPException as exc:
                # A redirect (the rest became problems above): aiohttp sends the exception
                # itself, so it gets the headers too.
                status, outcome = exc.status, "ok"
                add_standard_headers(exc.headers)
                if cors is not None:
                    expose(request, cors, exc.headers)
                raise
            except asyncio.CancelledError:
                # The client went away: still one line.
                outcome = "cancelled"
                raise
            finally:
                if record is not None:
                    CURRENT.reset(token)
                    trail.write(
                        record,
                        route=audit_route or f"{request.method} {UNMATCHED}",
                        status=status,
                        outcome=outcome,
                    )
                metrics.record_request(
                    template, request.method, status, time.perf_counter() - started
                )

        return enveloped


class _RouteFacts(NamedTuple):
    """What the envelope needs to know about a route, the same for each of its requests."""

    template: str  # the metric label
    audit_route: str  # method and template; "" for the fallback (its method varies)
    audited: bool  # probes are not consumer requests

    @classmethod
    def of(cls, request: web.Request, method: str | None) -> _RouteFacts:
        """The facts of the route that matched ``request`` (``method`` None: the fallback)."""
        resource = request.match_info.route.resource
        if method is None or resource is None:
            return cls(UNMATCHED, "", True)
        template = resource.canonical
        return cls(template, f"{method} {template}", template not in UNAUDITED_PATHS)


class _Anywhere(web.PlainResource):
    """The fallback's resource: every path (under its sub-app's prefix), "*" included.

    A dynamic "/{path:.*}" would miss request targets that do not start with a slash.
    """

    def _match(self, path: str) -> dict[str, str] | None:
        return {}


async def _served_methods(
    router: web.UrlDispatcher, request: web.Request, fallback: web.AbstractResource
) -> set[str]:
    """The methods the routes of ``router`` serve on the request's path (empty: no such path)."""
    methods: set[str] = set()
    for resource in router.resources():
        # A sub-app's own fallback answers everything under its prefix.
        if resource is not fallback and not isinstance(resource, web.PrefixedSubAppResource):
            _, allowed = await resource.resolve(request)
            methods |= allowed
    return methods
