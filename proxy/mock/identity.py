"""The identity-platform half of the mock: OpenID discovery and the v2.0 token endpoint.

Grants are looked up in ``GRANTS`` by ``grant_type``; adding a flow (authorization code with
PKCE, refresh token, device code) means adding one handler there, next to client credentials.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from aiohttp import web

from proxy.mock.faults import Fault
from proxy.mock.responses import (
    drop_connection,
    fault_status_headers,
    json_response,
    malformed_response,
)
from proxy.mock.state import MockGraph
from proxy.mock.typedefs import GRAPH_KEY

GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
MULTI_TENANT_ALIASES = frozenset({"common", "organizations"})


def aad_error(
    status: int,
    error: str,
    code: int,
    description: str,
    *,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """Return the identity platform's error body: error, "AADSTSnnnnn: …", codes and ids."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
            f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}"
        ),
        "error_codes": [code],
        "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": trace_id,
        "correlation_id": correlation_id,
    }
    return json_response(body, status=status, headers=headers)


def _fault_response(request: web.Request, fault: Fault) -> web.Response | None:
    """Return the scripted answer for ``fault``, or None when it only delays (latency)."""
    if fault.kind == "status":
        return aad_error(
            fault.status,
            "temporarily_unavailable",
            50196 if fault.status == 429 else 90033,
            "Injected failure: the service is temporarily unavailable.",
            headers=fault_status_headers(fault),
        )
    if fault.kind == "malformed":
        return malformed_response()
    if fault.kind == "drop":
        return drop_connection(request)
    if fault.kind == "body":
        return json_response(fault.body)
    return None


async def _apply_fault(
    request: web.Request, graph: MockGraph, endpoint: str
) -> web.Response | None:
    fault = graph.faults.take(endpoint, None)
    if fault is None:
        return None
    answer = _fault_response(request, fault)
    if answer is None:
        await graph.faults.delay(fault)
    return answer


@dataclass(frozen=True, kw_only=True)
class Tenant:
    """How a tenant segment of the URL resolved."""

    segment: str
    """As the client wrote it: the GUID, the domain, "common" or "organizations"."""
    tenant_id: str | None
    """The concrete tenant, or None for the multi-tenant aliases."""


def _resolve_tenant(graph: MockGraph, segment: str) -> Tenant | None:
    lowered = segment.lower()
    if lowered in MULTI_TENANT_ALIASES:
        return Tenant(segment=lowered, tenant_id=None)
    if lowered in (graph.settings.tenant_id.lower(), graph.organisation.domain):
        return Tenant(segment=segment, tenant_id=graph.settings.tenant_id)
    return None


def _unknown_tenant(segment: str) -> web.Response:
    return aad_error(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud.",
    )


def _base_url(request: web.Request) -> str:
    # Built from the Host header so the same mock works as 127.0.0.1 and as mock-graph:8443.
    return f"https://{request.host}"


def browser_base_url(request: web.Request) -> str:
    """Where a person's browser reaches the mock: ``browser_url``, else as this client did."""
    configured = request.app[GRAPH_KEY].settings.browser_url
    return configured.rstrip("/") if configured else _base_url(request)


async def openid_configuration(request: web.Request) -> web.Response:
    """GET /{tenant}/v2.0/.well-known/openid-configuration: the endpoints msal discovers."""
    graph = request.app[GRAPH_KEY]
    graph.counters.calls["openid-configuration"] += 1
    faulted = await _apply_fault(request, graph, "openid-configuration")
    if faulted is not None:
        return faulted
    tenant = _resolve_tenant(graph, request.match_info["tenant"])
    if tenant is None:
        return _unknown_tenant(request.match_info["tenant"])
    base = _base_url(request)
    path_tenant = tenant.tenant_id or tenant.segment
    endpoints = f"{base}/{path_tenant}/oauth2/v2.0"
    # The pages a browser is sent to; the proxy itself calls the others.
    pages = f"{browser_base_url(request)}/{path_tenant}/oauth2/v2.0"
    return json_response(
        {
            "token_endpoint": f"{endpoints}/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{path_tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tenant.tenant_id or '{tenantid}'}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{pages}/authorize",
            "device_authorization_endpoint": f"{endpoints}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{pages}/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
    )


async def jwks(request: web.Request) -> web.Response:
    """GET /{tenant}/discovery/v2.0/keys: empty, the mock's tokens are not publicly verifiable."""
    return json_response({"keys": []})


@dataclass(frozen=True, kw_only=True)
class TokenRequest:
    """A parsed token request: the form, the tenant and the client's credentials."""

    form: Mapping[str, str]
    tenant: Tenant
    client_id: str | None
    client_secret: str | None
    base_url: str = ""
    """``https://host:port`` as the client reached the mock (the id_token issuer's base)."""


Grant = Callable[[MockGraph, TokenRequest], Awaitable[web.Response]]


def _basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """Return (client_id, secret) from an HTTP Basic header (RFC 6749 §2.3.1), if present."""
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, _, password = decoded.partition(":")
    return unquote_plus(user), unquote_plus(password)


def _authenticate_client(graph: MockGraph, request: TokenRequest) -> web.Response | None:
    """Return the identity platform's refusal of the client's credentials, or None if valid."""
    settings = graph.settings
    if request.client_id is None:
        return aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    if request.client_id != settings.client_id:
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{request.client_id}' was not found in the directory "
            f"'{settings.tenant_id}'.",
        )
    if not request.client_secret:
        return aad_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )
    if request.client_secret != settings.client_secret:
        return aad_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app "
            f"'{settings.client_id}'.",
        )
    return None


async def client_credentials(graph: MockGraph, request: TokenRequest) -> web.Response:
    """grant_type=client_credentials: an app-only token with the configured roles."""
    if request.tenant.tenant_id is None:
        return aad_error(
            400,
            "invalid_request",
            1002012,
            f"The tenant '{request.tenant.segment}' cannot be used for the client credentials "
            "flow. Use a tenant ID or domain.",
        )
    refused = _authenticate_client(graph, request)
    if refused is not None:
        return refused
    scope = request.form.get("scope", "")
    if scope.split() != [GRAPH_DEFAULT_SCOPE]:
        return aad_error(
            400,
            "invalid_scope",
            70011,
            f"The provided request must include a 'scope' input parameter. The provided value for "
            f"the input parameter 'scope' ('{scope}') is not valid. The scope should be "
            f"{GRAPH_DEFAULT_SCOPE}.",
        )
    lifetime = graph.tokens.lifetime_s
    return json_response(
        {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": graph.issue_app_token(),
        }
    )


GRANTS: dict[str, Grant] = {
    "client_credentials": client_credentials,
}


async def token(request: web.Request) -> web.Response:
    """POST /{tenant}/oauth2/v2.0/token (form-encoded): dispatch on grant_type."""
    graph = request.app[GRAPH_KEY]
    graph.counters.calls["token"] += 1
    faulted = await _apply_fault(request, graph, "token")
    if faulted is not None:
        return faulted
    tenant = _resolve_tenant(graph, request.match_info["tenant"])
    if tenant is None:
        return _unknown_tenant(request.match_info["tenant"])
    posted = await request.post()
    form = {key: value for key, value in posted.items() if isinstance(value, str)}
    basic_id, basic_secret = _basic_credentials(request.headers.get("Authorization"))
    parsed = TokenRequest(
        form=form,
        tenant=tenant,
        # msal sends the secret both in the form and as HTTP Basic; accept either.
        client_id=form.get("client_id") or basic_id,
        client_secret=form.get("client_secret") or basic_secret,
        base_url=_base_url(request),
    )
    grant_type = form.get("grant_type")
    if not grant_type:
        return aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )
    grant = GRANTS.get(grant_type)
    if grant is None:
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )
    return await grant(graph, parsed)
