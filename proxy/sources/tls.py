"""Trust anchors for outbound TLS, shared by aiohttp (Graph) and msal (identity platform)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter


def client_ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Return a verifying client context: the system's trust store plus ``ca_file`` if given."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


class _ContextAdapter(HTTPAdapter):
    """A requests adapter that always verifies with one fixed SSL context.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override ``Session.verify``; pinning the
    context at the pool level is what keeps an extra CA trusted when those variables are set.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        pool_kwargs.pop("ca_certs", None)
        pool_kwargs.pop("ca_cert_dir", None)
        pool_kwargs["ssl_context"] = self._context
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs


def requests_session(ca_file: Path | None) -> requests.Session:
    """Return a requests session for msal that trusts ``ca_file`` whatever the environment says."""
    session = requests.Session()
    if ca_file is not None:
        session.mount("https://", _ContextAdapter(client_ssl_context(ca_file)))
    return session
