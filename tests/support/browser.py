"""A real headless Chromium for page tests: found on PATH or named by an environment variable."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.async_api import Browser, async_playwright

# Checked in this order; the first one set wins.
CHROMIUM_VARIABLES = ("FREEBUSY_PROXY_CHROMIUM", "CHROMIUM")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


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
async def headless_chromium(*, trust_certificate: bytes) -> AsyncIterator[Browser]:
    """Chromium, headless, trusting exactly one server certificate (no blanket ignoring)."""
    executable = chromium_executable()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(executable),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--ignore-certificate-errors-spki-list={spki_sha256(trust_certificate)}",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()
