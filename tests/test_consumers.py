"""Key checks: every key maps to its own consumer, on first sight and on every repeat."""

from __future__ import annotations

import pickle

import pytest

from proxy.consumers import ConsumerRegistry, hash_key, new_key
from proxy.errors import Unauthorized
from proxy.settings import ConsumerSettings


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


def test_registry_keeps_no_key_it_has_seen() -> None:
    """After keys were checked (valid and not), the registry's whole state holds none of them."""
    valid, invalid = new_key()[0], new_key()[0]
    consumers = registry(valid)
    consumers.authenticate(f"Bearer {valid}")
    with pytest.raises(Unauthorized):
        consumers.authenticate(f"Bearer {invalid}")
    state = pickle.dumps(consumers)
    for key in (valid, invalid):
        assert key.encode() not in state
        assert key[4:].encode() not in state
