"""Consumer authentication (API keys stored as SHA-256) and address allowlists."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.config.schema import ConsumerSettings
from proxy.core.errors import Code, Forbidden, Unauthorized
from proxy.core.policy import DEFAULT_POLICY, Policy
from proxy.observability.audit_record import note_consumer

KEY_PREFIX = "fbp_"


@dataclass(frozen=True, slots=True)
class Consumer:
    """An authenticated downstream app."""

    name: str
    exact: frozenset[str]
    domains: frozenset[str]
    policy: Policy = DEFAULT_POLICY


def new_key() -> tuple[str, str]:
    """Return a fresh random API key and the SHA-256 hex digest to put in the config."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key, as stored in the config."""
    return hashlib.sha256(key.encode()).hexdigest()


class ConsumerRegistry:
    """Finds the consumer a bearer key belongs to, in time independent of which one matches."""

    def __init__(self, consumers: Iterable[ConsumerSettings]) -> None:
        self._entries = [(bytes.fromhex(c.key_sha256), _consumer(c)) for c in consumers]
        # Keys seen to be valid, by a BLAKE2b tag under a key that lives only in this process:
        # a repeat is one built-in hash and a dict lookup instead of SHA-256 through OpenSSL and
        # a comparison with every entry. It holds tags, never keys, at most one per valid key.
        # The keyed state is computed once; each tag copies it (as HMAC keeps its pads).
        self._tagger = hashlib.blake2b(digest_size=32, key=secrets.token_bytes(32))
        self._valid: dict[bytes, Consumer] = {}

    def authenticate(self, authorization: str | None) -> Consumer:
        """Return the consumer for an ``Authorization: Bearer <key>`` header or raise."""
        if not authorization:
            raise Unauthorized("an API key is required: Authorization: Bearer <key>")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.casefold() != "bearer" or not key or len(key) > 512:
            raise Unauthorized("an API key is required: Authorization: Bearer <key>")
        # A header may carry undecodable bytes (kept as surrogates); they must not crash us.
        raw = key.encode("utf-8", "surrogateescape")
        tagger = self._tagger.copy()
        tagger.update(raw)
        tag = tagger.digest()
        found = self._valid.get(tag)
        if found is not None:
            note_consumer(found.name)
            return found
        digest = hashlib.sha256(raw).digest()
        for stored, consumer in self._entries:
            # Compare against every entry so timing does not reveal which one matched.
            if hmac.compare_digest(stored, digest):
                found = consumer
        if found is None:
            raise Unauthorized("the API key is not valid")
        self._valid[tag] = found
        note_consumer(found.name)
        return found

    @staticmethod
    def authorize(consumer: Consumer, addresses: Iterable[str]) -> None:
        """Raise Forbidden unless the consumer may query every (case-folded) address."""
        exact, domains = consumer.exact, consumer.domains
        denied = [a for a in addresses if a not in exact and a.rpartition("@")[2] not in domains]
        if denied:
            raise Forbidden(
                f"this API key may not query: {', '.join(denied[:5])}"
                + (f" and {len(denied) - 5} more" if len(denied) > 5 else ""),
                code=Code.SCHEDULE_NOT_ALLOWED,
            )

    def named(self, name: str) -> Consumer:
        """The consumer configured under ``name``; KeyError when there is none."""
        for _, consumer in self._entries:
            if consumer.name == name:
                return consumer
        raise KeyError(name)


def _consumer(settings: ConsumerSettings) -> Consumer:
    exact = frozenset(p.casefold() for p in settings.allow if not p.startswith("*@"))
    domains = frozenset(p[2:].casefold() for p in settings.allow if p.startswith("*@"))
    return Consumer(name=settings.name, exact=exact, domains=domains, policy=settings.policy)
