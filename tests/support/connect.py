"""Builders for the connect tests: settings with delegated connections, a scripted consent."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from proxy.access.consumers import new_key
from proxy.config.schema import ConnectSettings, Settings
from proxy.mock import RunningMock
from proxy.sources.tls import client_ssl_context
from tests.support.proxies import proxy_settings

ADMIN_KEY, ADMIN_KEY_SHA = new_key()
TOKEN_KEY = Fernet.generate_key().decode()
_HIDDEN = re.compile(r'type="hidden" name="([a-z_]+)" value="([^"]*)"')


def connect_settings(mock: RunningMock, db: Path, **connect: Any) -> Settings:
    """Proxy settings with both connect kinds enabled, storing connections in ``db``."""
    base = proxy_settings(mock)
    # The "all" consumer may also ask for a foreign domain, to see it refused per schedule.
    everyone = replace(base.consumers[0], allow=(*base.consumers[0].allow, "*@fabrikam.example"))
    base = replace(base, consumers=(everyone, *base.consumers[1:]))
    options: dict[str, Any] = {
        "kinds": ("individual", "enterprise"),
        "storage_path": db,
        "token_key": TOKEN_KEY,
        "admin_key_sha256": ADMIN_KEY_SHA,
        "application_permissions": False,
        # Proxies sharing a store in one test see each other's changes quickly.
        "changes_poll_seconds": 0.1,
        **connect,
    }
    return replace(base, connect=ConnectSettings(**options))


def _unescape(value: str) -> str:
    return value.replace("&quot;", '"').replace("&#x27;", "'").replace("&amp;", "&")


async def sign_in(
    proxy: TestClient[Any, Any],
    mock: RunningMock,
    kind: str,
    *,
    user: str,
    decision: str = "accept",
    tamper: Any = None,
) -> tuple[int, str]:
    """Walk the browser's path through a connect flow; return the proxy's final page.

    ``tamper`` may rewrite the fields posted back to /connect/callback.
    """
    answer = await platform_answer(proxy, mock, kind, user=user, decision=decision)
    if tamper is not None:
        answer = tamper(answer)
    async with proxy.post("/connect/callback", data=answer) as done:
        return done.status, await done.text()


async def platform_answer(
    proxy: TestClient[Any, Any], mock: RunningMock, kind: str, *, user: str, decision: str
) -> dict[str, str]:
    """Start a sign-in with ``proxy``'s client (its cookie jar is the browser's) and answer the
    mock's consent page; return the fields the platform posts back to /connect/callback."""
    import aiohttp

    async with proxy.get(f"/connect/{kind}", allow_redirects=False) as start:
        assert start.status == 302, await start.text()
        authorize = start.headers["Location"]
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(mock.ca_file))
    async with aiohttp.ClientSession(connector=connector) as browser:
        async with browser.get(authorize) as page:
            assert page.status == 200
            fields = {k: _unescape(v) for k, v in _HIDDEN.findall(await page.text())}
        form = {**fields, "user": user, "decision": decision}
        async with browser.post(authorize.split("?")[0], data=form) as back:
            assert back.status == 200
            return {k: _unescape(v) for k, v in _HIDDEN.findall(await back.text())}


def admin(key: str = ADMIN_KEY) -> dict[str, str]:
    """Authorization header for the admin API."""
    return {"Authorization": f"Bearer {key}"}
