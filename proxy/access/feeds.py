"""Calendar feed tokens: a secret URL parameter that reads one address's .ics as one consumer.

Tokens are stored as SHA-256 in [[feeds]]; revoking one means deleting its entry and
restarting. A token is accepted only by the .ics route and only for its own address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.access.consumers import Consumer, ConsumerRegistry
from proxy.config.schema import FeedSettings
from proxy.core.errors import Unauthorized
from proxy.observability.audit_record import note_consumer

FEED_TOKEN_PREFIX = "fbf_"  # noqa: S105 (a prefix, not a secret)
_INVALID = "the feed token is not valid for this address"


@dataclass(frozen=True, slots=True)
class Feed:
    """A feed token's scope: one address, read as one consumer."""

    name: str
    address: str
    consumer: Consumer


def new_feed_token() -> tuple[str, str]:
    """Return a fresh unguessable feed token and the SHA-256 hex digest to put in the config."""
    token = FEED_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


class FeedRegistry:
    """Finds the feed a token belongs to, in time independent of which one matches."""

    def __init__(self, feeds: Iterable[FeedSettings], consumers: ConsumerRegistry) -> None:
        self._entries = [
            (
                bytes.fromhex(f.token_sha256),
                Feed(
                    name=f.name, address=f.address.casefold(), consumer=consumers.named(f.consumer)
                ),
            )
            for f in feeds
        ]

    def authenticate(self, token: str, address: str) -> Feed:
        """Return the feed for a token if it is scoped to ``address``; raise Unauthorized."""
        if not token or len(token) > 512:
            raise Unauthorized(_INVALID)
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: Feed | None = None
        for stored, feed in self._entries:
            # Compare against every entry so timing does not reveal which one matched.
            if hmac.compare_digest(stored, digest):
                found = feed
        # Another address's token is answered exactly like an unknown one.
        if found is None or found.address != address.casefold():
            raise Unauthorized(_INVALID)
        note_consumer(found.consumer.name)
        return found
