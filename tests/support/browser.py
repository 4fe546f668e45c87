"""Driving a Chromium through Playwright: found on PATH or named by FREEBUSY_PROXY_CHROMIUM,
one launch for every browser test, traffic recording for leak scans, and screenshots written
where FREEBUSY_SCREENSHOTS says."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.async_api import Browser, Error, Page, Request, Response, async_playwright

from tests.support.paths import ROOT

# Checked in this order; the first one set wins. Then the names, on PATH.
CHROMIUM_VARIABLES = ("FREEBUSY_PROXY_CHROMIUM", "CHROMIUM")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SCREENSHOTS_ENV = "FREEBUSY_SCREENSHOTS"
# Under build/, which git ignores.
DEFAULT_SCREENSHOTS = ROOT / "build" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}


def chromium_executable() -> Path:
    """The Chromium to drive; fails (never skips) saying exactly what is missing."""
    for variable in CHROMIUM_VARIABLES:
        named = os.environ.get(variable)
        if named:
            path = Path(shutil.which(named) or named)
            if not (path.is_file() and os.access(path, os.X_OK)):
                pytest.fail(f"{variable}={named} is not an executable file")
            return path
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    pytest.fail(
        f"no Chromium found: none of {', '.join(CHROMIUM_NAMES)} is on PATH and neither "
        f"{' nor '.join(CHROMIUM_VARIABLES)} is set. Install one (Debian/Ubuntu: apt-get install "
        f"chromium) or set {CHROMIUM_VARIABLES[0]} to its executable."
    )


def spki_sha256(pem: bytes) -> str:
    """Base64 SHA-256 of a certificate's SubjectPublicKeyInfo, as Chromium's pin list wants."""
    key = x509.load_pem_x509_certificate(pem).public_key()
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@asynccontextmanager
async def chromium(*, trusting: bytes | None = None) -> AsyncIterator[Browser]:
    """A headless Chromium, trusting exactly the server key in ``trusting`` (PEM)."""
    executable = chromium_executable()
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    if trusting is not None:
        # Trust exactly that server key, nothing else (no blanket ignoring).
        args.append(f"--ignore-certificate-errors-spki-list={spki_sha256(trusting)}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(executable), args=args)
        try:
            yield browser
        finally:
            await browser.close()


def screenshot_path(name: str) -> Path:
    """Where the screenshot ``name`` (a file name) goes: FREEBUSY_SCREENSHOTS or build/."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or DEFAULT_SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@dataclass(frozen=True)
class Sent:
    """One request a page made, as it went out."""

    url: str
    body: str
    headers: dict[str, str]


@dataclass
class Traffic:
    """Every request a page makes, every response body it gets, and every page's HTML."""

    requests: list[Sent] = field(default_factory=list)
    bodies: list[tuple[str, str]] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    _reading: list[asyncio.Task[None]] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        """Record ``page``'s requests and responses from now on; return it."""
        page.on("request", lambda r: self._reading.append(asyncio.create_task(self._sent(r))))
        page.on("response", lambda r: self._reading.append(asyncio.create_task(self._read(r))))
        return page

    async def _sent(self, request: Request) -> None:
        headers = await request.all_headers()
        self.requests.append(Sent(request.url, request.post_data or "", headers))

    async def _read(self, response: Response) -> None:
        try:
            body = await response.body()
        except Error:
            return  # a redirect, or a page already gone: no body to read
        self.bodies.append((response.url, body.decode("utf-8", "replace")))

    async def snapshot(self, page: Page) -> str:
        """The page's HTML as it stands (scripts' work included), kept for the scan."""
        html = await page.content()
        self.pages.append(html)
        return html

    async def settled(self) -> None:
        """Wait until every request and response seen so far has been recorded."""
        while self._reading:
            await self._reading.pop()
