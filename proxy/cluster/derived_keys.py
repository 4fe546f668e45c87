"""Keys derived from FREEBUSY_PROXY_CLUSTER_KEY: one per use, none equal to the key itself.

Redis' client is not imported here: the web layer checks signatures with these keys.
"""

from __future__ import annotations

import hashlib
import hmac


def derive_key(cluster_key: str, purpose: str) -> bytes:
    """HMAC-SHA256 of ``purpose`` under the cluster key."""
    return hmac.new(cluster_key.encode(), purpose.encode(), hashlib.sha256).digest()
