"""Misses forwarded to their window's owner: three replicas' misses share calls as one
process's do, only replicas may forward, and an owner that dies costs no answer."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from proxy.cluster.derived_keys import derive_key
from proxy.cluster.forwarding import (
    CONTENT_TYPE,
    PATH,
    SIGNATURE_HEADER,
    Answer,
    Ask,
    answer,
    read_answer,
    sign,
    signing_key,
)
from proxy.cluster.members import owner_of
from proxy.core.errors import UpstreamFailure
from proxy.core.model import BusyItem, ErrorCode, ScheduleResult, Status, Window
from proxy.core.timefmt import format_utc
from proxy.mock import Fault, RunningMock
from tests.support.leaks import assert_no_leak
from tests.support.proxies import TEST_NOW, ProxyFactory, graph_calls
from tests.support.redis_server import RedisServer
from tests.support.replicas import (
    CLUSTER_KEY,
    Replica,
    ask_replica,
    cluster_config,
    cluster_settings,
    metric,
    running_replicas,
)
from tests.support.waiting import eventually

DAY = ("2026-03-16T00:00:00Z", "2026-03-17T00:00:00Z")
# The window the replicas' caches ask for a miss on DAY: its block of 8 days on the grid.
DAY_WINDOW = Window(start=datetime(2026, 3, 13, tzinfo=UTC), end=datetime(2026, 3, 21, tzinfo=UTC))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KEY = signing_key(CLUSTER_KEY)


async def all_see_each_other(
    session: aiohttp.ClientSession, replicas: list[Replica], *, expected: int | None = None
) -> None:
    """Until every replica has heard every other beat (``expected`` members in all)."""
    wanted = len(replicas) if expected is None else expected

    async def seen() -> bool:
        counts = [await metric(session, r, "freebusy_cluster_replicas") for r in replicas]
        return counts == [wanted] * len(replicas)

    await eventually(seen)


async def test_misses_on_three_replicas_share_the_owners_calls(
    mock_graph: RunningMock, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Nine people missed at once, three through each replica, one window: the owner makes
    the calls for all of them (two at most: its own first miss goes at once), where three
    replicas batching alone would make six. Entries in the replica set that no replica
    signed (anyone may write to Redis) are never forwarded to."""
    config = cluster_config(
        mock_graph,
        redis_server.url,
        tmp_path / "proxy.toml",
        extra="forward_wait_ms = 1000\n[batching]\nwait_ms = 1000\n",
    )
    people = mock_graph.graph.organisation.addresses()[:9]
    forger = redis_server.client()
    for entry in ("http://127.0.0.1:9", "http://127.0.0.1:9 " + "0" * 64):
        await forger.zadd("fbp:replicas", {entry: 2**50})
    await forger.aclose()
    async with running_replicas(config) as replicas, aiohttp.ClientSession() as session:
        await all_see_each_other(session, replicas)
        mock_graph.graph.reset()
        mock_graph.graph.add_fault(Fault(kind="latency", delay_ms=200, count=None))
        answers = await asyncio.gather(
            *(ask_replica(session, replicas[n % 3], [p], *DAY) for n, p in enumerate(people))
        )
        mock_graph.graph.clear_faults()
        assert [status for status, _ in answers] == [200] * 9
        assert graph_calls(mock_graph) <= 2, mock_graph.graph.stats()["recent"]
        asked = [s for call in mock_graph.graph.stats()["recent"] for s in call["schedules"]]
        assert sorted(asked) == sorted(people)
        owner = owner_of(DAY_WINDOW, sorted(r.base for r in replicas))
        for replica in replicas:
            sent = await metric(session, replica, "freebusy_cluster_forwards_total", outcome="sent")
            served = await metric(
                session, replica, "freebusy_cluster_forwards_total", outcome="served"
            )
            if replica.base == owner:
                assert (sent, served) == (0, 6)
            else:
                assert (sent, served) == (3, 0)
        # What came through the owner is each person's calendar: the same again from the
        # shared days, through a replica that fetched nothing itself.
        for n, person in enumerate(people):
            status, again = await ask_replica(session, replicas[(n + 1) % 3], [person], *DAY)
            assert (status, again) == (200, answers[n][1])
        assert graph_calls(mock_graph) <= 2
        assert any(body["schedules"][0]["items"] for _, body in answers)


async def test_a_killed_owner_costs_no_answer(
    mock_graph: RunningMock, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The owner of a window killed with SIGKILL: a miss for that window through another
    replica is fetched there (once the forward fails), answered 200, and the dead owner is
    left out at once: the next miss goes to the owner among the living."""
    config = cluster_config(mock_graph, redis_server.url, tmp_path / "proxy.toml")
    people = mock_graph.graph.organisation.addresses()
    async with running_replicas(config) as replicas, aiohttp.ClientSession() as session:
        await all_see_each_other(session, replicas)
        owner = owner_of(DAY_WINDOW, sorted(r.base for r in replicas))
        dead = next(r for r in replicas if r.base == owner)
        asker = next(r for r in replicas if r is not dead)
        dead.kill()
        await dead.process.wait()
        mock_graph.graph.reset()
        status, body = await ask_replica(session, asker, [people[0]], *DAY)
        assert status == 200
        assert body["schedules"][0]["error"] is None
        assert graph_calls(mock_graph) == 1
        unanswered = {"outcome": "unanswered"}
        assert await metric(session, asker, "freebusy_cluster_forwards_total", **unanswered) == 1
        status, _ = await ask_replica(session, asker, [people[1]], *DAY)
        assert status == 200
        assert await metric(session, asker, "freebusy_cluster_forwards_total", **unanswered) == 1
        # The window's owner among the living now: the asker itself, or the third replica.
        living = owner_of(DAY_WINDOW, sorted(r.base for r in replicas if r is not dead))
        sent = await metric(session, asker, "freebusy_cluster_forwards_total", outcome="sent")
        assert sent == (0 if living == asker.base else 1)


async def test_an_owner_answering_nonsense_costs_no_answer(
    mock_graph: RunningMock, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A replica (validly in the set) that answers forwarded fetches with 401, 500 or bytes
    that are no answer: each miss it owns is fetched by the asker instead, answered 200 with
    the calendar, and counted unanswered."""
    config = cluster_config(mock_graph, redis_server.url, tmp_path / "proxy.toml")
    people = mock_graph.graph.organisation.addresses()
    replies = [
        web.Response(status=401, text="no"),
        web.Response(status=500, text="broken"),
        web.Response(body=b"\x93\x01\x02", content_type=CONTENT_TYPE),
    ]

    async def nonsense(request: web.Request) -> web.Response:
        return replies.pop(0)

    app = web.Application()
    app.router.add_post(PATH, nonsense)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake = f"http://127.0.0.1:{port}"
    client = redis_server.client()
    mac = hmac.new(derive_key(CLUSTER_KEY, "freebusy-proxy replica"), fake.encode(), "sha256")
    await client.zadd("fbp:replicas", {f"{fake} {mac.hexdigest()}": 2**50})
    await client.aclose()
    try:
        async with running_replicas(config) as replicas, aiohttp.ClientSession() as session:
            await all_see_each_other(session, replicas, expected=4)
            members = sorted([fake, *(r.base for r in replicas)])
            # The first three blocks of 8 days from DAY's on that the fake owns.
            starts = [DAY_WINDOW.start + timedelta(days=8 * n) for n in range(100)]
            owned = [
                start
                for start in starts
                if owner_of(Window(start=start, end=start + timedelta(days=8)), members) == fake
            ][:3]
            assert len(owned) == 3
            # One miss through each replica (each leaves the fake out once it fails it).
            for replica, start, person in zip(replicas, owned, people[:3], strict=True):
                mock_graph.graph.reset()
                day = (format_utc(start), format_utc(start + timedelta(days=1)))
                status, body = await ask_replica(session, replica, [person], *day)
                assert status == 200
                assert body["schedules"][0]["error"] is None
                assert graph_calls(mock_graph) == 1
                unanswered = {"outcome": "unanswered"}
                assert (
                    await metric(session, replica, "freebusy_cluster_forwards_total", **unanswered)
                    == 1
                )
            assert replies == []
    finally:
        await runner.cleanup()


def signed(body: bytes, at: datetime = TEST_NOW) -> dict[str, str]:
    """Headers of a forwarded fetch signed with the replicas' key (at the test proxy's now)."""
    return {"Content-Type": CONTENT_TYPE, SIGNATURE_HEADER: sign(KEY, body, at)}


def ask_body(addresses: list[str], window: Window = DAY_WINDOW) -> bytes:
    """A forwarded fetch's body."""
    start = (window.start - EPOCH) // timedelta(microseconds=1)
    end = (window.end - EPOCH) // timedelta(microseconds=1)
    return msgspec.msgpack.encode(Ask(addresses, start, end))


async def problem(resp: aiohttp.ClientResponse) -> tuple[int, str]:
    """Status and stable code of a problem+json answer."""
    assert resp.content_type == "application/problem+json"
    text = await resp.text()
    assert_no_leak(text)
    return resp.status, json.loads(text)["code"]


async def test_only_replicas_may_forward(
    make_proxy: ProxyFactory, mock_graph: RunningMock, redis_server: RedisServer
) -> None:
    """/cluster/fetch answers a fresh ask signed with the cluster key, once: no signature, a
    wrong one, an expired one and a replayed one get 401; a signed ask that is not one, or is
    larger than one call, gets 400; the answer holds codes and integers, nothing of anyone."""
    client: TestClient[Any, Any] = await make_proxy(
        mock_graph, settings=cluster_settings(mock_graph, redis_server.url)
    )
    people = mock_graph.graph.organisation.addresses()
    body = ask_body([*people[:2], "nobody@example.invalid"])
    async with client.post(PATH, data=body) as resp:
        assert await problem(resp) == (401, "unauthorized")
    for header in ("1.2.3", f"1.{'a' * 32}.{'é' * 64}", f"1.{'é' * 32}.{'a' * 64}"):
        async with client.post(PATH, data=body, headers={SIGNATURE_HEADER: header}) as resp:
            assert await problem(resp) == (401, "unauthorized")
    forged = {
        SIGNATURE_HEADER: sign(signing_key("not-the-key-" + "x" * 32), body, datetime.now(UTC))
    }
    async with client.post(PATH, data=body, headers=forged) as resp:
        assert await problem(resp) == (401, "unauthorized")
    old = signed(body, TEST_NOW - timedelta(minutes=2))
    async with client.post(PATH, data=body, headers=old) as resp:
        assert await problem(resp) == (401, "unauthorized")
    # Signed for another body: the MAC covers every byte.
    async with client.post(PATH, data=ask_body(people[:1]), headers=signed(body)) as resp:
        assert await problem(resp) == (401, "unauthorized")

    headers = signed(body)
    async with client.post(PATH, data=body, headers=headers) as resp:
        assert resp.status == 200
        assert resp.content_type == CONTENT_TYPE
        raw = await resp.read()
    assert_no_leak(raw.decode("latin-1"))
    for person in people[:2]:
        assert person.encode() not in raw
    reply = msgspec.msgpack.decode(raw, type=Answer)
    assert reply.failure is None
    assert reply.codes == ["", "", "not_found"]
    assert all(isinstance(n, int) for packed in reply.items for n in packed)
    assert reply.items[0], "the first person has nothing in their calendar that week"
    async with client.post(PATH, data=body, headers=headers) as resp:
        assert await problem(resp) == (401, "unauthorized")

    for bad in (b"\x93\xa1x", ask_body(people[:21]), b"not msgpack at all"):
        async with client.post(PATH, data=bad, headers=signed(bad)) as resp:
            assert await problem(resp) == (400, "invalid_request")
    too_long = Window(start=DAY_WINDOW.start, end=DAY_WINDOW.start + timedelta(days=63))
    long_body = ask_body(people[:1], too_long)
    async with client.post(PATH, data=long_body, headers=signed(long_body)) as resp:
        assert await problem(resp) == (400, "invalid_request")
    async with client.get(PATH) as resp:
        assert await problem(resp) == (405, "method_not_allowed")


async def test_a_proxy_without_cluster_serves_no_cluster_route(
    proxy: TestClient[Any, Any],
) -> None:
    """Without [cluster], /cluster/fetch is not a route at all, signed or not."""
    body = ask_body(["someone@example.invalid"])
    async with proxy.post(PATH, data=body, headers=signed(body)) as resp:
        assert await problem(resp) == (404, "not_found")


class Recorded:
    """A batcher answering from fixed results (or failing), as the owner's would."""

    def __init__(self, results: dict[str, ScheduleResult], failure: UpstreamFailure | None):
        self.results = results
        self.failure = failure

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        return await self.batched(addresses, window, wait_s=0, idle_sends=True)

    async def batched(
        self, addresses: Sequence[str], window: Window, *, wait_s: float, idle_sends: bool
    ) -> dict[str, ScheduleResult]:
        if self.failure is not None:
            raise self.failure
        return {a.casefold(): self.results[a.casefold()] for a in addresses}


def _items(window: Window) -> st.SearchStrategy[tuple[BusyItem, ...]]:
    minutes = int(window.duration / timedelta(minutes=1))
    spans = st.tuples(st.integers(0, minutes - 1), st.integers(1, 24 * 60), st.sampled_from(Status))
    return st.lists(spans, max_size=12).map(
        lambda found: tuple(
            sorted(
                BusyItem(
                    window.start + timedelta(minutes=start),
                    min(window.end, window.start + timedelta(minutes=start + length)),
                    status,
                )
                for start, length, status in found
            )
        )
    )


_RESULTS = st.one_of(
    _items(DAY_WINDOW).map(lambda items: ScheduleResult(items=items)),
    st.sampled_from(ErrorCode).map(ScheduleResult.failed),
)


@given(results=st.lists(_RESULTS, min_size=1, max_size=20))
def test_what_the_owner_answers_is_what_its_batch_gave(results: list[ScheduleResult]) -> None:
    """Items and codes come through the answer exactly as the owner's batch returned them."""
    addresses = [f"p{n}@example.invalid" for n in range(len(results))]
    batcher = Recorded(dict(zip(addresses, results, strict=True)), None)
    raw = asyncio.run(answer(batcher, ask_body(addresses), wait_s=0, max_schedules=20))
    decoded = read_answer(raw, addresses, DAY_WINDOW)
    assert decoded == dict(zip(addresses, results, strict=True))


def test_a_whole_failure_comes_through_as_its_code_alone() -> None:
    """The owner's whole failure arrives as its code, status and Retry-After, in fixed
    wording: its own text never travels."""
    failure = UpstreamFailure(
        "secret upstream words", code=None, status=502, retry_after=7.0, graph_failing=True
    )
    raw = asyncio.run(
        answer(Recorded({}, failure), ask_body(["p@example.invalid"]), wait_s=0, max_schedules=20)
    )
    assert b"secret" not in raw
    with pytest.raises(UpstreamFailure) as raised:
        read_answer(raw, ["p@example.invalid"], DAY_WINDOW)
    exc = raised.value
    assert (exc.code.value, exc.status, exc.retry_after) == ("upstream_error", 502, 7.0)
    assert exc.detail == "Microsoft Graph failed for the whole request"
    assert exc.graph_failing


def test_an_answer_with_a_code_of_none_of_ours_is_no_answer() -> None:
    """A code outside the proxy's own, or counts that do not match the ask, are refused as
    a whole (ValueError: the asker fetches itself), never passed on."""
    for reply in (
        Answer(codes=["Graph said: meeting with HR"], items=[[]]),
        Answer(codes=["", ""], items=[[], []]),
    ):
        raw = msgspec.msgpack.encode(reply)
        with pytest.raises(ValueError, match="not"):
            read_answer(raw, ["p@example.invalid"], DAY_WINDOW)
