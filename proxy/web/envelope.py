"""The envelope every request passes through once, and the one place errors become answers.

Every route is registered through an ``Envelope``, which wraps its handler; the app has no
aiohttp middleware (with one, aiohttp chains every handler through partials and a coroutine
of its own per app: see bench/NOTES.md). What no route serves (404, 405, CORS preflights)
reaches a fallback resource registered last on each router.

The duties, outermost first:

- metrics count the status the client finally receives;
- CORS (when ``[cors] allow_origins`` is set) answers preflights and marks every other
  response, error answers included, readable by an allowed origin;
- every error, ours or aiohttp's, becomes a ProblemError and is answered by the route's
  ``ErrorShape``: problem+json by default, a dialect's own error document under its routes;
  a bug is a bare 500 in that shape and a log line;
- the audit trail records the error's stable code as the outcome, whatever the shape, so
  the same refusal reads the same on every route; preflights and probes are not audited;
- an over-long query string is refused before any handler runs;
- every response gets the standard headers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any, NamedTuple

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from proxy.config.schema import CorsSettings
from proxy.core.errors import Code, ProblemError
from proxy.observability.audit import AuditTrail
from proxy.observability.audit_record import CURRENT, AuditRecord
from proxy.observability.metrics import Metrics, method_label
from proxy.web.cors import expose, is_preflight, preflight
from proxy.web.headers import UNAUDITED_PATHS, add_standard_headers, check_query_length
from proxy.web.problems import http_problem, problem_response

log = logging.getLogger(__name__)

ErrorShape = Callable[[web.Request, ProblemError], web.StreamResponse]
"""How a route answers an error: problem+json, or a dialect's own error document."""

# The metric label and audit route of requests no route serves: one value, whatever the path.
UNMATCHED = "unmatched"
# The template of the route a request matched, for the access log (which runs after the
# handler, and also for requests the HTTP parser refused before any routing).
ROUTE_TEMPLATE = web.RequestKey("route_template", str)
# What the metrics and the audit trail record for a request whose client hung up before its
# answer (nginx's "client closed request"): not an error of ours, and nothing is sent.
CLIENT_CLOSED = 499


def problem_shape(request: web.Request, error: ProblemError) -> web.StreamResponse:
    """The default error shape: an RFC 9457 problem document."""
    return problem_response(error)


class Envelope:
    """Registers routes whose handlers carry every duty of the request envelope."""

    def __init__(self, *, trail: AuditTrail, metrics: Metrics, cors: CorsSettings | None) -> None:
        self._trail = trail
        self._metrics = metrics
        self._cors = cors if cors is not None and cors.allow_origins else None

    def add(
        self,
        router: web.UrlDispatcher,
        method: str,
        path: str,
        handler: Handler,
        *,
        shape: ErrorShape = problem_shape,
    ) -> None:
        """Serve ``method path`` with ``handler`` in the envelope, errors answered in ``shape``."""
        router.add_route(method, path, self._wrap(handler, method=method, shape=shape))

    def add_get(
        self,
        router: web.UrlDispatcher,
        path: str,
        handler: Handler,
        *,
        shape: ErrorShape = problem_shape,
    ) -> None:
        """Serve GET and HEAD ``path`` with ``handler`` in the envelope."""
        for method in ("GET", "HEAD"):
            self.add(router, method, path, handler, shape=shape)

    def add_fallback(self, router: web.UrlDispatcher, *, shape: ErrorShape = problem_shape) -> None:
        """Answer what no other route of ``router`` serves: 404, 405 or a CORS preflight.

        Register it after every other route: it matches any method on any path (within a
        sub-app's prefix), so aiohttp reaches it only when nothing else matched.
        """
        fallback = Anywhere()

        async def not_served(request: web.Request) -> web.StreamResponse:
            methods = await _served_methods(router, request, fallback)
            if methods:
                raise web.HTTPMethodNotAllowed(request.method, methods)
            raise web.HTTPNotFound()

        fallback.serve(
            self._wrap(
                not_served,
                method=None,
                shape=shape,
                preflights=partial(_served_methods, router, fallback=fallback),
            )
        )
        router.register_resource(fallback)

    def _wrap(
        self,
        handler: Handler,
        *,
        method: str | None,
        shape: ErrorShape,
        preflights: Callable[[web.Request], Awaitable[set[str]]] | None = None,
    ) -> Handler:
        """``handler`` inside the envelope; ``method`` None: the fallback (see add_fallback)."""
        metrics, cors, trail = self._metrics, self._cors, self._trail
        # The route's facts, final only once sub-apps are mounted: found on first use.
        facts: list[_RouteFacts] = []

        async def enveloped(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            record: AuditRecord | None = None
            # What the client receives, and what the audit trail says happened.
            status, outcome = 500, Code.INTERNAL_ERROR.value
            template = UNMATCHED
            try:
                if not facts:
                    facts.append(_RouteFacts.of(request, method))
                template, audit_route, audited = facts[0]
                request[ROUTE_TEMPLATE] = template
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
                    response, outcome = await _answer(request, handler, shape, record)
                status = response.status
                add_standard_headers(response.headers)
                if cors is not None and answer is None:
                    expose(request, cors, response.headers)
                return response
            except web.HTTPException as exc:
                # A redirect (errors became answers in _answer): aiohttp sends the exception
                # itself, so it gets the headers too.
                status, outcome = exc.status, "ok"
                add_standard_headers(exc.headers)
                if cors is not None:
                    expose(request, cors, exc.headers)
                raise
            except asyncio.CancelledError:
                # The client went away (aiohttp cancels the handler): still one line.
                status, outcome = CLIENT_CLOSED, "cancelled"
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


async def _answer(
    request: web.Request, handler: Handler, shape: ErrorShape, record: AuditRecord | None
) -> tuple[web.StreamResponse, str]:
    """The handler's response, or the route's answer to what it raised; and the outcome."""
    try:
        check_query_length(request)
        response = await handler(request)
    except ProblemError as exc:
        error = exc
    except ConnectionError as exc:
        if not _client_gone(request):
            _log_bug(request, exc)
            return shape(request, _INTERNAL), Code.INTERNAL_ERROR
        # The client hung up mid-body or before its answer: nothing is broken, nothing can be
        # sent, and a traceback per abandoned connection would drown the log.
        return web.Response(status=CLIENT_CLOSED), "cancelled"
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect: the envelope sends it as it is
        error = http_problem(request.method, exc)
    except Exception as exc:
        _log_bug(request, exc)
        error = _INTERNAL
    else:
        if response.status < 400:
            return response, "ok"
        # A page that is itself the answer to a failure (the connect flows) says why.
        return response, (record.outcome if record is not None and record.outcome else "failed")
    return shape(request, error), error.code


_INTERNAL = ProblemError("internal error", code=Code.INTERNAL_ERROR, status=500)


def _log_bug(request: web.Request, exc: BaseException) -> None:
    """One ERROR line for a bug: the route template, the exception's type and its frames.

    Never the path (the feed's and the Graph drop-in's name an address) nor the exception's
    own words (a KeyError of an address, a message quoting Graph): where it broke is enough
    to find it.
    """
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    route = request.get(ROUTE_TEMPLATE, UNMATCHED)
    method = method_label(request.method)
    log.error("unhandled %s on %s %s\n%s", type(exc).__name__, method, route, frames)


def _client_gone(request: web.Request) -> bool:
    """True when the request's connection is closed or closing (the client hung up)."""
    transport = request.transport
    return transport is None or transport.is_closing()


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


class Anywhere(web.AbstractResource):
    """A resource that matches every path under its router ("*" included), any method.

    A dynamic "/{path:.*}" resource would miss request targets that do not start with a
    slash; this one is indexed at its router's root, so aiohttp reaches it only after every
    more specific resource declined.
    """

    def __init__(self) -> None:
        super().__init__()
        self._prefix = ""
        self._route: web.ResourceRoute | None = None

    def serve(self, handler: Handler) -> None:
        """Answer every request this resource matches with ``handler``."""
        self._route = web.ResourceRoute("*", handler, self)

    @property
    def canonical(self) -> str:
        """The sub-app prefix it lives under, or the root."""
        return self._prefix or "/"

    def url_for(self, **kwargs: str) -> URL:
        """The resource's own path (no parameters)."""
        return URL.build(path=self.canonical, encoded=True)

    def add_prefix(self, prefix: str) -> None:
        """Move under a sub-app's prefix when the sub-app is mounted."""
        self._prefix = prefix + self._prefix

    def get_info(self) -> dict[str, Any]:  # type: ignore[override]
        """What aiohttp's introspection shows."""
        return {"path": self.canonical}

    def raw_match(self, path: str) -> bool:
        """Every path is this resource's."""
        return True

    async def resolve(self, request: web.Request) -> tuple[web.UrlMappingMatchInfo, set[str]]:
        """Match every request."""
        assert self._route is not None, "serve() the fallback before registering it"
        return web.UrlMappingMatchInfo({}, self._route), set()

    def __len__(self) -> int:
        """One route."""
        return 1

    def __iter__(self) -> Iterator[web.AbstractRoute]:
        """Its one route."""
        return iter([] if self._route is None else [self._route])


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
