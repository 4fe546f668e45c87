"""What every dialect's question must be: the addresses' judgement, remembered or not."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.errors import BadRequest
from proxy.web.dialects import query
from proxy.web.dialects.query import MAX_ADDRESS_LENGTH, schedules_of

# The rule, written out apart from the module's own pattern.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_RULE = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")

VALID = st.from_regex(_RULE, fullmatch=True)
# Near misses of valid ones: a trailing newline, a space, a letter's case, a cut, a doubling.
NEAR = st.builds(
    lambda address, change: change(address),
    VALID,
    st.sampled_from(
        [
            lambda a: a + "\n",
            lambda a: " " + a,
            str.upper,
            lambda a: a[:-1],
            lambda a: a + a,
            lambda a: a.replace("@", "@@"),
        ]
    ),
)
ANYTHING: st.SearchStrategy[Any] = st.one_of(VALID, NEAR, st.text(max_size=300), st.integers())


def accepted(address: Any) -> bool:
    """The rule's own judgement of one address."""
    return (
        isinstance(address, str)
        and len(address) <= MAX_ADDRESS_LENGTH
        and _RULE.fullmatch(address) is not None
    )


def judged(addresses: list[Any]) -> bool:
    """Whether schedules_of() accepts ``addresses``."""
    try:
        schedules_of(addresses)
    except BadRequest:
        return False
    return True


@given(st.lists(ANYTHING, min_size=1, max_size=6))
def test_an_address_accepted_before_changes_no_judgement(batch: list[Any]) -> None:
    """Each address is judged by the rule, the first time and every time after (when it may
    be remembered), and a list is accepted only when every address in it is."""
    for _ in range(2):
        for address in batch:
            assert judged([address]) is accepted(address)
        assert judged(batch) is all(map(accepted, batch))


def test_what_is_remembered_stays_bounded() -> None:
    """Past the addresses it keeps, the memory is emptied, and judgements hold through it."""
    kept = query._ACCEPTED_KEPT
    for n in range(kept + 10):
        assert judged([f"person{n}@contoso.example"])
        assert len(query._ACCEPTED) <= kept
    assert judged(["person0@contoso.example"])
    assert not judged(["person0@contoso.example\n"])


@pytest.mark.parametrize("junk", ["x" * 10_000 + "@contoso.example", "a@b"])
def test_long_or_short_junk_is_refused(junk: str) -> None:
    """An over-long address or one without a dotted domain is refused, remembered or not."""
    for _ in range(2):
        assert not judged([junk])
