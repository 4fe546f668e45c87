"""The envelope every request passes through once: CORS, limits, problems, audit, metrics.

One middleware rather than five: each layer is a coroutine per request, and on the cached
path the layers cost more than the answer. The duties, in the order they had as separate
middlewares, outermost first:

- metrics count the status the client finally receives;
- CORS (when ``[cors] allow_origins`` is set) answers preflights and marks every other
  response, problems included, readable by an allowed origin;
- every error becomes problem+json (a bug: a bare 500 and a log line);
- the audit trail records the error as raised (our code, or aiohttp's status); preflights
  are not consumer requests and are not audited;
- an over-long query string is refused before any handler runs;
- every response gets the standard headers (``proxy.hardening``), here rather than in an
  ``on_response_prepare`` signal, which costs a coroutine per response.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from proxy.audit import UNAUDITED_PATHS
from proxy.audit_record import CURRENT, AuditRecord
from proxy.cors import expose, preflight
from proxy.errors import ProblemError
from proxy.hardening import add_standard_headers, check_query_length
from proxy.metrics import Metrics
from proxy.problems import http_error_code, internal_error, problem_for, problem_for_http
from proxy.typedefs import AUDIT_TRAIL, SETTINGS

log = logging.getLogger(__name__)


def edge_middleware(app: web.Application, metrics: Metrics) -> Middleware:
    """The request envelope for ``app``, counting every request in ``metrics``."""
    # The audit trail is looked up per request: it opens on start-up, after this runs.
    cors = app[SETTINGS].cors if app[SETTINGS].cors.allow_origins else None

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        answer = None if cors is None else preflight(request, cors)
        trail = app[AUDIT_TRAIL]
        record: AuditRecord | None = None
        if answer is None and trail.enabled and request.path not in UNAUDITED_PATHS:
            record = AuditRecord()
            token = CURRENT.set(record)
        # What the client receives, and what the audit trail says happened.
        status, outcome = 500, "internal_error"
        try:
            if answer is not None:
                response, outcome = answer, "ok"
            else:
                response, outcome = await _answer(request, handler)
            status = response.status
            add_standard_headers(response.headers)
            if cors is not None and answer is None:
                expose(request, cors, response.headers)
            return response
        except web.HTTPException as exc:
            # Only below 400 (_answer turns the rest into problems): aiohttp sends the
            # exception itself, a redirect, so it gets the headers too.
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
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            if record is not None:
                CURRENT.reset(token)
                trail.write(
                    record, route=f"{request.method} {route}", status=status, outcome=outcome
                )
            metrics.record_request(route, request.method, status, time.perf_counter() - started)

    return edge


async def _answer(request: web.Request, handler: Handler) -> tuple[web.StreamResponse, str]:
    """The handler's response, or the problem document for what it raised; and the outcome."""
    try:
        if len(request.match_info.apps) == 1:
            # A dialect sub-app checks for itself, to answer in its own error shape.
            check_query_length(request)
        response = await handler(request)
    except ProblemError as exc:
        return problem_for(exc), exc.code
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_for_http(request.method, exc), http_error_code(exc.status)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return internal_error(), "internal_error"
    # A dialect sub-app answers its own errors in its own shape: only the status is known.
    return response, "ok" if response.status < 400 else "failed"
