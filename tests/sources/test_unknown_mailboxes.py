"""Unknown mailboxes cost a bounded number of Graph calls, are remembered apart from the days,
and neither they nor one-off sweeps push out the days people keep asking about."""

from __future__ import annotations

from typing import Any

from proxy.config.schema import CacheSettings
from proxy.mock import MOCK_DOMAIN, Fault, RunningMock
from tests.support.proxies import ask, cache_of, chain_proxy, graph_calls

WEEK = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-23T00:00:00Z"}


def unknown(count: int, tag: str) -> list[str]:
    """``count`` addresses of the organisation's domain that Graph does not know."""
    return [f"ghost.{tag}.{n}@{MOCK_DOMAIN}" for n in range(count)]


async def test_a_chunk_of_unknown_addresses_costs_two_calls_not_twenty(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """The reproduction: Graph 404s the mailbox in the URL, and the proxy dropped one address
    and asked again, up to 20 calls per chunk. Now the chunk is asked again once, as a mailbox
    known to exist, and Graph reports the unknown ones inside its answer."""
    client = await chain_proxy(aiohttp_client, mock_graph)
    known = mock_graph.graph.organisation.addresses()[0]
    assert (await ask(client, [known]))[0] == 200
    calls = graph_calls(mock_graph)
    status, body = await ask(client, unknown(20, "a"))
    assert status == 200
    assert {entry["error"]["code"] for entry in body["schedules"]} == {"not_found"}
    assert graph_calls(mock_graph) == calls + 2
    # Asked again: answered from memory, no call at all.
    assert (await ask(client, unknown(20, "a")))[0] == 200
    assert graph_calls(mock_graph) == calls + 2


async def test_without_a_known_mailbox_a_chunk_costs_three_calls_at_most(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """A fresh proxy knows no mailbox yet: a chunk of unknown addresses makes three calls, and
    the known address among them is still answered."""
    client = await chain_proxy(aiohttp_client, mock_graph)
    status, body = await ask(client, unknown(19, "b"))
    assert status == 200
    assert graph_calls(mock_graph) == 3
    known = mock_graph.graph.organisation.addresses()[0]
    status, body = await ask(client, [*unknown(2, "c"), known])
    assert status == 200
    assert [entry["error"] for entry in body["schedules"]] == [
        {"code": "not_found"},
        {"code": "not_found"},
        None,
    ]


async def test_unknown_addresses_push_no_one_out(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """The reproduction, in a smaller cache: three requests for 100 unknown addresses over ten
    days each filled it (one entry per address per day) and pushed everyone's days out. Now an
    unknown address is one entry apart from the days: the week asked for before is still
    served without Graph."""
    client = await chain_proxy(
        aiohttp_client, mock_graph, cache=CacheSettings(max_entries=2_000, min_fetch_days=1)
    )
    person = mock_graph.graph.organisation.addresses()[0]
    for _ in range(2):
        assert (await ask(client, [person], WEEK))[0] == 200
    ten_days = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-11T00:00:00Z"}
    for tag in "xyz":
        assert (await ask(client, unknown(100, tag), ten_days))[0] == 200
    calls = graph_calls(mock_graph)
    # Spelled otherwise, so the response memo does not answer instead of the cache.
    assert (await ask(client, [person.upper()], WEEK))[0] == 200
    assert graph_calls(mock_graph) == calls
    assert len(cache_of(client).unknown()) == 300


async def test_a_one_off_sweep_pushes_out_only_other_one_off_days(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """A sweep over every mailbox for a month (more days than the cache holds) displaces only
    days other sweeps fetched, never the week someone asked for."""
    client = await chain_proxy(
        aiohttp_client, mock_graph, cache=CacheSettings(max_entries=400, min_fetch_days=1)
    )
    person, *everyone = mock_graph.graph.organisation.addresses()
    assert (await ask(client, [person], WEEK))[0] == 200
    month = {"start": "2026-04-01T00:00:00Z", "end": "2026-05-01T00:00:00Z"}
    assert (await ask(client, everyone, month))[0] == 200
    calls = graph_calls(mock_graph)
    assert (await ask(client, [person.upper()], WEEK))[0] == 200
    assert graph_calls(mock_graph) == calls


async def test_a_mailbox_refused_in_the_url_does_not_fail_the_others(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """Graph refuses the first mailbox of a chunk as the one in the URL. On a 403 (outside
    an application access policy) that mailbox is answered as refused, never read through
    another, and the rest are asked as another mailbox; on a 429 (throttled there) the chunk
    is asked whole as another of its mailboxes. Nobody else fails with it."""
    client = await chain_proxy(aiohttp_client, mock_graph, max_retries=1)
    first, second, third = mock_graph.graph.organisation.addresses()[:3]
    for status, retry_after in ((403, None), (429, "0")):
        mock_graph.graph.add_fault(
            Fault(kind="status", status=status, retry_after=retry_after, mailbox=first, count=None)
        )
        # Each round in a month of its own: nothing of it cached yet.
        month = 4 if status == 403 else 5
        window = {"start": f"2026-0{month}-06T00:00:00Z", "end": f"2026-0{month}-07T00:00:00Z"}
        before = graph_calls(mock_graph)
        code, body = await ask(client, [first, second, third], window)
        assert code == 200, body
        errors = [entry["error"] for entry in body["schedules"]]
        refused = {"code": "upstream_error"} if status == 403 else None
        assert errors == [refused, None, None]
        recent = mock_graph.graph.stats()["recent"]
        assert recent[-1]["mailbox"].casefold() == second.casefold()
        assert recent[-1]["status"] == 200
        if status == 403:
            assert [s.casefold() for s in recent[-1]["schedules"]] == [
                second.casefold(),
                third.casefold(),
            ]
        # 403 is not retried as the same mailbox; a 429 is, once (max_retries=1).
        assert graph_calls(mock_graph) - before == (2 if status == 403 else 3)
        mock_graph.graph.clear_faults()
    # Alone, a refused mailbox is not asked about through the one that answered before.
    mock_graph.graph.add_fault(Fault(kind="status", status=403, mailbox=first, count=None))
    alone = {"start": "2026-06-06T00:00:00Z", "end": "2026-06-07T00:00:00Z"}
    before = graph_calls(mock_graph)
    assert (await ask(client, [first], alone))[0] == 502
    assert graph_calls(mock_graph) - before == 1
