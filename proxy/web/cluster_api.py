"""POST /cluster/fetch: a fetch another replica forwarded here, joined to this one's batch.

Served only with [cluster] forward_misses on, and only to asks signed with the cluster key
(``proxy.cluster.forwarding``): anything else gets a 401 problem. The answer holds, per
address, an error code or packed items (status, start, end), never an address.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.cluster.forwarding import (
    CONTENT_TYPE,
    PATH,
    SIGNATURE_HEADER,
    Verifier,
    answer,
    signing_key,
)
from proxy.web.keys import CHAIN, SETTINGS, WALL_CLOCK

VERIFIER = web.AppKey("cluster_verifier", Verifier)


def setup_cluster_route(app: web.Application, add: Callable[[str, Handler], None]) -> None:
    """Serve POST /cluster/fetch through ``add`` (the envelope's), with one signature checker
    for the app (one, so a nonce is refused the second time)."""
    key = signing_key(app[SETTINGS].cluster.cluster_key or "")
    app[VERIFIER] = Verifier(key, app[WALL_CLOCK])
    add(PATH, cluster_fetch)


async def cluster_fetch(request: web.Request) -> web.Response:
    """POST /cluster/fetch: the results of a signed forwarded fetch, as msgpack."""
    body = await request.read()
    request.app[VERIFIER].check(request.headers.get(SIGNATURE_HEADER), body)
    chain = request.app[CHAIN]
    settings = request.app[SETTINGS]
    reply = await answer(
        chain.batcher,
        body,
        wait_s=settings.cluster.forward_wait_ms / 1000,
        max_schedules=settings.batching.max_schedules,
    )
    if chain.forwarder is not None:
        chain.forwarder.served()
    return web.Response(
        body=reply, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"}
    )


def listening(app: web.Application, host: str, port: int) -> None:
    """The server is bound: replicas may now forward here, at [cluster] advertise_url or
    where it listens."""
    chain = app.get(CHAIN)
    if chain is None or chain.members is None:
        return
    url = app[SETTINGS].cluster.advertise_url
    if url is None:
        # Listening on every interface: others reach it by this machine's name.
        wildcard = host in ("", "::") or host == "0.0.0.0"  # noqa: S104
        named = socket.gethostname() if wildcard else host
        url = f"http://[{named}]:{port}" if ":" in named else f"http://{named}:{port}"
    chain.members.advertise(url)
