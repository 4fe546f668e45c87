"""Key checks: every key maps to its own consumer, on first sight and on every repeat."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from proxy.access.consumers import ConsumerRegistry, hash_key, new_key
from proxy.config.schema import ConsumerSettings
from proxy.core.errors import Unauthorized


def registry(*keys: str) -> ConsumerRegistry:
    """Consumers c0, c1, … with these keys."""
    return ConsumerRegistry(
        ConsumerSettings(name=f"c{i}", key_sha256=hash_key(key), allow=("*@contoso.example",))
        for i, key in enumerate(keys)
    )


def test_repeated_keys_stay_with_their_consumer() -> None:
    """Alternating keys, repeated: each is its own consumer; near misses stay refused."""
    first, second = new_key()[0], new_key()[0]
    consumers = registry(first, second)
    for _ in range(3):
        assert consumers.authenticate(f"Bearer {first}").name == "c0"
        assert consumers.authenticate(f"bearer  {second} ").name == "c1"
        for wrong in (first + "x", first[:-1], second.upper(), "fbp_" + "A" * 43):
            with pytest.raises(Unauthorized):
                consumers.authenticate(f"Bearer {wrong}")


def hash_states(consumers: ConsumerRegistry) -> dict[str, Any]:
    """The registry's attributes that are hashlib objects."""
    return {n: v for n, v in vars(consumers).items() if hasattr(v, "hexdigest")}


def state_digest(hasher: Any) -> bytes:
    """What a hash object's state yields now (digest() leaves the state as it was)."""
    return bytes(hasher.digest())


def test_registry_keeps_no_key_it_has_seen() -> None:
    """After keys were checked (valid and not), the registry's whole state holds none of them."""
    valid, invalid = new_key()[0], new_key()[0]
    consumers = registry(valid)
    # Hash states do not pickle: they are checked to have absorbed nothing (a digest of the
    # state is unchanged), everything else is scanned as pickled bytes.
    hashers = {name: state_digest(value) for name, value in hash_states(consumers).items()}
    consumers.authenticate(f"Bearer {valid}")
    with pytest.raises(Unauthorized):
        consumers.authenticate(f"Bearer {invalid}")
    assert {name: state_digest(value) for name, value in hash_states(consumers).items()} == hashers
    state = pickle.dumps({n: v for n, v in vars(consumers).items() if n not in hashers})
    for key in (valid, invalid):
        assert key.encode() not in state
        assert key[4:].encode() not in state
