"""Token caches at rest: Fernet with FREEBUSY_PROXY_TOKEN_KEY, several keys during a rotation.

The first key of the (comma-separated) variable encrypts; every key listed decrypts. That is
cryptography's MultiFernet, made for exactly this: list the new key first and the old one
after it, re-encrypt every row (``freebusy-proxy connections rotate-key``), then drop the old.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from proxy.config.load import token_key_problem, token_keys
from proxy.core.errors import ConfigError


class SealBroken(Exception):
    """A stored token cache that none of the configured keys opens (wrong or dropped key)."""


class Sealer:
    """Encrypts token caches with the first key; opens what any listed key sealed."""

    def __init__(self, value: str | None) -> None:
        problem = token_key_problem(value)
        if problem is not None:
            raise ConfigError(problem)
        self._keys = [Fernet(key.encode()) for key in token_keys(value)]
        self._fernet = MultiFernet(self._keys)

    def seal(self, token_cache: str) -> bytes:
        """Return ``token_cache`` encrypted with the first key."""
        return self._fernet.encrypt(token_cache.encode())

    def open(self, sealed: bytes) -> str:
        """Return the token cache sealed in ``sealed``; SealBroken when no key opens it."""
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken:
            raise SealBroken("no key in the token key variable opens this token cache") from None

    def opens(self, sealed: bytes) -> bool:
        """Return True when one of the keys opens ``sealed`` (nothing decrypted is kept)."""
        try:
            self._fernet.decrypt(sealed)
        except InvalidToken:
            return False
        return True

    def reseal(self, sealed: bytes) -> bytes:
        """Return ``sealed`` encrypted again with the first key; SealBroken when unreadable."""
        try:
            return self._fernet.rotate(sealed)
        except InvalidToken:
            raise SealBroken("no key in the token key variable opens this token cache") from None
