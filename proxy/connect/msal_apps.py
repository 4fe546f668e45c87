"""msal application objects for delegated flows, kept off the event loop by their callers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from proxy.config.schema import GraphSettings
from proxy.sources.credentials import MICROSOFT_HOSTS, oauth_error

# msal's answers that mean a person has to sign in (and consent) again.
CONSENT_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required"})


def build_app(
    graph: GraphSettings, http: requests.Session, *, public: bool, cache: Any = None
) -> Any:
    """Return a msal application for the Free/Busy registration (blocking: discovery I/O).

    Confidential (client secret) for the browser flow; public for the device-code flow,
    whose refresh tokens Entra ID redeems only without a secret.
    """
    authority = f"{graph.authority.rstrip('/')}/{graph.tenant_id}"
    common: dict[str, Any] = {
        "authority": authority,
        "http_client": http,
        "timeout": graph.timeout_seconds,
        "instance_discovery": urlsplit(authority).hostname in MICROSOFT_HOSTS,
        "token_cache": cache,
    }
    if public:
        return msal.PublicClientApplication(graph.client_id, **common)
    return msal.ConfidentialClientApplication(
        graph.client_id, client_credential=graph.client_secret, **common
    )


def error_code(result: Any) -> str:
    """Return msal's OAuth error code if it is one we know, else a code of ours (the platform's
    "error" may be any text, and it reaches logs)."""
    return oauth_error(result)
