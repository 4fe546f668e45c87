"""The request fuzzer: thousands of malformed requests on a real socket.

Zero 5xx, zero leaks, every answer of ours a problem document (or, on /connect, one of its
pages), and bounded memory. The proxy and the mock Graph run in a background thread's event
loop so hypothesis can drive plain blocking sockets (every request is raw bytes, so framing
and encoding can be hostile too: raw and non-ASCII bytes in the Host, Authorization and
other headers). Every route is served: the JSON API, the Graph drop-in, Google freeBusy, the
.ics feed (by key and by feed token), /connect and /admin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.access.consumers import new_key
from proxy.access.feeds import new_feed_token
from proxy.config.schema import AuditSettings, ConnectSettings, ConsumerSettings, FeedSettings
from proxy.core.clock import FixedWallClock
from proxy.core.policy import Policy
from proxy.mock import MOCK_CLIENT_SECRET, MOCK_DOMAIN, MockSettings, start_mock
from proxy.web.app import init_app, runner_kwargs
from tests.support.connect import ADMIN_KEY, ADMIN_KEY_SHA, TOKEN_KEY
from tests.support.leaks import assert_no_leak
from tests.support.proxies import AUDIT_KEY, KEY_ALL, KEY_ONE, ONE_ADDRESS, TEST_NOW, proxy_settings

# Examples per fuzz test; FUZZ_EXAMPLES raises it for a longer local run.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
MEMORY_ROUNDS = int(os.environ.get("FUZZ_MEMORY_ROUNDS", "60"))
# Peak of everything Python allocated (proxy, mock and test) while serving worst-case requests.
MEMORY_PEAK_BOUND = 64 * 1024 * 1024
# Growth of live memory between two equal batches: a leak per request would show here.
MEMORY_GROWTH_BOUND = 1024 * 1024
KEY_POLICY, KEY_POLICY_SHA = new_key()
FEED, FEED_SHA = new_feed_token()
KEY_SLOTS, KEY_SLOTS_SHA = new_key()
# Strings no answer may carry even when a request echoes itself back (aiohttp's parser
# errors quote the offending line to the sender, so the sender's own key is allowed there).
ALWAYS_FORBIDDEN = ("CANARY", MOCK_CLIENT_SECRET, "eyJ", AUDIT_KEY)


@dataclass
class Live:
    """The running proxy: its port and its audit file."""

    port: int
    audit: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Mock Graph and proxy on real sockets, served from a background event loop."""
    tmp = tmp_path_factory.mktemp("fuzz")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-server", daemon=True)
    thread.start()
    audit = tmp / "audit.jsonl"

    async def start() -> tuple[Any, web.AppRunner, int]:
        mock = await start_mock(settings=MockSettings(), cert_dir=tmp)
        base = proxy_settings(mock)
        consumers = (
            *(replace(c, policy=replace(c.policy, rate_per_minute=0)) for c in base.consumers),
            ConsumerSettings(
                name="policy",
                key_sha256=KEY_POLICY_SHA,
                allow=(f"*@{MOCK_DOMAIN}",),
                policy=Policy(
                    detail="busy", granularity_minutes=15, max_schedules=10, rate_per_minute=600
                ),
            ),
            ConsumerSettings(
                name="slots-only",
                key_sha256=KEY_SLOTS_SHA,
                allow=(f"*@{MOCK_DOMAIN}",),
                policy=Policy(detail="slots", rate_per_minute=0),
            ),
        )
        settings = replace(
            base,
            consumers=consumers,
            audit=AuditSettings(hmac_key=AUDIT_KEY, file=audit),
            # Every route served: the connect flows and the admin API too.
            connect=ConnectSettings(
                kinds=("individual", "enterprise"),
                storage_path=tmp / "connections.sqlite3",
                token_key=TOKEN_KEY,
                admin_key_sha256=ADMIN_KEY_SHA,
            ),
            feeds=(
                FeedSettings(
                    name="adele", token_sha256=FEED_SHA, address=ONE_ADDRESS, consumer="all"
                ),
            ),
        )
        runner = web.AppRunner(
            init_app(settings, wall_clock=FixedWallClock(TEST_NOW)),
            **runner_kwargs(settings.server),
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return mock, runner, runner.addresses[0][1]

    mock, runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    try:
        yield Live(port=port, audit=audit)
    finally:

        async def stop() -> None:
            await runner.cleanup()
            await mock.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@dataclass
class Answer:
    """A parsed HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


def send(port: int, data: bytes) -> Answer:
    """Send raw bytes on a fresh connection and read the answer to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status=int(status_line.split()[1]), headers=headers, body=body)


def request(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    host: bytes = b"127.0.0.1",
) -> bytes:
    """An HTTP/1.1 request; framing (Content-Length, Connection: close) is always honest."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + host, b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body or method in (b"POST", b"PUT", b"PATCH"):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# Dialect sub-apps answer errors in their own (JSON) shape instead of problem+json.
DIALECT_PREFIXES = (b"/v1.0/", b"/calendar/v3/")
PAGE_PATHS = (b"/", b"/console", b"/view")
# The connect flows answer a browser: their failures are pages of their own.
PAGE_PREFIX = b"/connect"


def check(answer: Answer, *, method: bytes, path: bytes = b"") -> None:
    """No 5xx; our answers are problem documents when they fail; nothing leaks."""
    assert answer.status < 500, (answer.status, answer.body[:300])
    text = answer.body.decode("utf-8", "replace")
    for marker in ALWAYS_FORBIDDEN:
        assert marker not in text, marker[:8]
    if answer.headers.get("server") == "freebusy-proxy":
        assert_no_leak(text, json.dumps(answer.headers))
        # A feed that answers with an ETag may be kept by its one client, and revalidated.
        feed = answer.status in (200, 304) and path.split(b"?")[0].endswith(b"/freebusy.ics")
        assert answer.headers["cache-control"] == ("private, no-cache" if feed else "no-store")
        if answer.status >= 400 and method != b"HEAD":
            if method == b"GET" and path.split(b"?")[0] in PAGE_PATHS:
                # A page a browser reads answers its errors as a page.
                assert answer.headers["content-type"].startswith("text/html")
            elif path.startswith(PAGE_PREFIX) and answer.headers["content-type"].startswith(
                "text/html"
            ):
                assert b'<h1 id="outcome">' in answer.body
            elif path.startswith(DIALECT_PREFIXES):
                assert answer.headers["content-type"].startswith("application/json")
                json.loads(answer.body)
            else:
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert isinstance(json.loads(answer.body)["code"], str)
    else:
        # Only aiohttp's parser answers without our banner: a plain 400, before our app.
        assert answer.status == 400, answer
        assert answer.headers["content-type"].startswith("text/plain")


# --- strategies ---------------------------------------------------------------------------

# Bytes that cannot break the framing (no CR/LF), for header values and targets.
safe_bytes = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
junk_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.sampled_from(["", " ", "\u202e", "\x00", "%00", "%ff%fe", "a" * 3000, "null", "[]"]),
)
addresses = st.one_of(
    st.sampled_from(
        [
            ONE_ADDRESS,
            ONE_ADDRESS.upper(),
            f"alex.wilber@{MOCK_DOMAIN}",
            f"nobody@{MOCK_DOMAIN}",
            "x@fabrikam.example",
            f"x@{MOCK_DOMAIN}.evil.example",
            "a" * 300 + f"@{MOCK_DOMAIN}",
            f"\u0430dele.vance@{MOCK_DOMAIN}",  # Cyrillic a
            f'"quoted"@{MOCK_DOMAIN}',
            f"a@{MOCK_DOMAIN}\n",
            "@",
        ]
    ),
    junk_text,
)
times = st.one_of(
    st.sampled_from(
        [
            "2026-01-05T00:00:00Z",
            "2026-01-05T09:30:00+01:00",
            "2026-01-06T00:00:00Z",
            "2026-02-20T00:00:00-08:00",
            "2025-12-01T00:00:00Z",
            "2031-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-01-05T00:00:00",
            "2026-13-45T99:99:99Z",
            "2026-01-05T00:00:00.123456789Z",
        ]
    ),
    junk_text,
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), junk_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(junk_text, inner, max_size=4)
    ),
    max_leaves=10,
)
VALID_ADDRESSES = [ONE_ADDRESS, f"alex.wilber@{MOCK_DOMAIN}", f"nobody@{MOCK_DOMAIN}"]
# Valid but for (at most) the times: deep enough to reach time parsing, policy and Graph.
near_valid = st.fixed_dictionaries(
    {
        "schedules": st.lists(st.sampled_from(VALID_ADDRESSES), min_size=1, max_size=4),
        "start": times,
        "end": times,
    }
).map(lambda d: json.dumps(d).encode())
# The slot search's fields, near valid: deep enough to reach the search itself.
near_valid_slots = st.fixed_dictionaries(
    {
        "participants": st.lists(
            st.fixed_dictionaries(
                {"schedule": st.sampled_from(VALID_ADDRESSES)},
                optional={"optional": st.one_of(st.booleans(), json_values)},
            ),
            min_size=1,
            max_size=4,
        ),
        "start": times,
        "end": times,
        "duration_minutes": st.one_of(st.integers(-5, 2000), json_values),
    },
    optional={
        "required": st.one_of(st.just("all"), st.integers(-1, 5), json_values),
        "interval_minutes": st.integers(-1, 2000),
        "buffer_before_minutes": st.integers(-1, 300),
        "buffer_after_minutes": st.integers(-1, 300),
        "format": st.one_of(st.sampled_from(["slots", "overlapping_slots", "periods"]), junk_text),
        "max_results": st.integers(-1, 2000),
        "open_hours": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "days": st.lists(st.sampled_from(["mon", "sun", "Mon", "x"]), max_size=3),
                        "start": st.one_of(st.sampled_from(["00:00", "09:00", "24:00"]), junk_text),
                        "end": st.one_of(st.sampled_from(["17:00", "24:00", "9:00"]), junk_text),
                        "time_zone": st.one_of(
                            st.sampled_from(["Europe/Berlin", "Pacific Standard Time", "UTC"]),
                            junk_text,
                        ),
                    }
                ),
                max_size=3,
            ),
            json_values,
        ),
    },
).map(lambda d: json.dumps(d).encode())
bodies = st.one_of(
    near_valid,
    near_valid_slots,
    st.fixed_dictionaries(
        {"schedules": st.one_of(st.lists(addresses, max_size=30), json_values)},
        optional={"start": st.one_of(times, json_values), "end": times, "extra": json_values},
    ).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"[" * 100_000,
            b'{"schedules": ["' + ONE_ADDRESS.encode() + b'"], "start": "\xff\xfe"}',
            b'{"schedules": ' + json.dumps([ONE_ADDRESS] * 101).encode() + b"}",
            b'{"a": 1e999999}',
            b"\xef\xbb\xbf{}",
            b"{" + b" " * 70_000 + b"}",
        ]
    ),
)
# What the identity platform posts back to /connect/callback, and what it never would.
forms = st.one_of(
    st.lists(
        st.tuples(
            st.sampled_from(["state", "code", "error", "session_state", "client_info", "x"]),
            junk_text,
        ),
        max_size=5,
    ).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode()),
    st.sampled_from([b"state=\xff\xfe&code=\xc3", b"state=%ff%fe", b"state=a&state=b", b"&&=&"]),
)
authorizations = st.one_of(
    st.sampled_from(
        [
            f"Bearer {KEY_ALL}".encode(),
            f"Bearer {KEY_ONE}".encode(),
            f"Bearer {KEY_POLICY}".encode(),
            f"Bearer {KEY_SLOTS}".encode(),
            f"bearer   {KEY_ALL}  ".encode(),
            f"Basic {KEY_ALL}".encode(),
            b"Bearer",
            b"Bearer " + b"k" * 600,
            b"Bearer fbp_\xff\xfe",
            f"Bearer {ADMIN_KEY}".encode(),
            "Bearer é".encode(),
            b"Bearer \xe9\xe9",
            b"Token " + b"t" * 9000,
            b"\x80\x81\xfe\xff",
        ]
    ),
    safe_bytes,
)
hosts = st.one_of(
    st.just(b"127.0.0.1"),
    st.sampled_from(
        [
            b"localhost:8080",
            b"evil.example",
            b"\xe9vil.example",
            "évil.example".encode(),
            b"127.0.0.1.evil.example",
            b"[::1]:1",
            b"",
            b"\x00",
            b"a" * 300,
        ]
    ),
    safe_bytes,
)
methods = st.sampled_from(
    [b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"HEAD", b"PATCH", b"BREW"]
)
paths = st.one_of(
    st.sampled_from(
        [
            b"/v1/availability",
            b"/v1/availability/",
            b"/healthz",
            b"/",
            b"//v1//availability",
            b"/v1/../v1/availability",
            b"/v1/availability%00",
            b"*",
            b"http://evil.example/v1/availability",
            # The other dialects and routes, which also reach lookup() or read the config.
            b"/v1.0/users/adele.vance@contoso.example/calendar/getSchedule",
            b"/v1.0/me/calendar/getSchedule",
            b"/calendar/v3/freeBusy",
            b"/v1/slots",
            b"/v1/schedules/adele.vance@contoso.example/freebusy.ics",
            b"/v1/schedules/%ff%00/freebusy.ics",
            b"/openapi.json",
            b"/metrics",
            b"/readyz",
            b"/connect",
            b"/connect/individual",
            b"/connect/enterprise",
            b"/connect/nobody",
            b"/connect/callback",
            b"/admin/connections",
            b"/admin/connections/00000000-0000-0000-0000-000000000000",
            b"/admin/connections/%ff%00",
        ]
    ),
    st.text(max_size=40).map(lambda t: b"/" + quote(t).encode()),
)
query_values = st.one_of(
    st.lists(addresses, max_size=8).map(lambda a: ",".join(a)), times, junk_text
)
queries = st.lists(
    st.tuples(
        st.sampled_from(
            ["schedules", "start", "end", "Schedules", "x", "", "token", "state", "code", "error"]
        ),
        st.one_of(query_values, st.just(FEED)),
    ),
    max_size=5,
).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode())
extra_headers = st.lists(
    st.tuples(
        st.sampled_from(
            [
                b"Content-Type",
                b"Origin",
                b"X-Forwarded-For",
                b"Accept",
                b"Cookie",
                b"X-Junk",
                b"Access-Control-Request-Method",
                b"Accept-Encoding",
                b"Content-Encoding",
                b"Prefer",
                b"If-None-Match",
                b"client-request-id",
                b"X-F\xc3\xbc\xc3\x9f",
            ]
        ),
        st.one_of(
            st.sampled_from(
                [
                    b"application/json",
                    b"application/json; charset=latin-1",
                    b"text/plain",
                    b"application/problem+json",
                    b"gzip",
                    b"https://scheduler.example",
                    b"POST",
                    b"application/x-www-form-urlencoded",
                    b'outlook.timezone="localtime"',
                    b'outlook.timezone="Pacific Standard Time"',
                    b"freebusy_signin=" + b"a" * 43,
                    b"freebusy_signin=\xff\xfe; x=\x80",
                    b"\xe9\xe9\xe9",
                ]
            ),
            safe_bytes,
        ),
    ),
    max_size=4,
)

FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the autouse log guard spans all examples
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@FUZZ_SETTINGS
@given(
    method=methods,
    path=paths,
    query=queries,
    authorization=st.one_of(st.none(), authorizations),
    headers=extra_headers,
    body=st.one_of(st.just(b""), bodies, forms),
    host=hosts,
)
def test_fuzzed_requests(
    live: Live,
    method: bytes,
    path: bytes,
    query: bytes,
    authorization: bytes | None,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    host: bytes,
) -> None:
    """Any method, path, query, Host, headers and body: never a 5xx, never a leak."""
    all_headers = list(headers)
    if authorization is not None:
        all_headers.append((b"Authorization", authorization))
    target = path + (b"?" + query if query else b"")
    answer = send(live.port, request(method, target, all_headers, body, host=host))
    check(answer, method=method, path=path)


@FUZZ_SETTINGS
@given(
    body=bodies,
    key=st.sampled_from([KEY_ALL, KEY_ONE, KEY_POLICY, KEY_SLOTS]),
    path=st.sampled_from(
        [
            b"/v1/availability",
            b"/v1/availability",
            b"/v1/slots",
            b"/calendar/v3/freeBusy",
            b"/v1.0/users/adele.vance@contoso.example/calendar/getSchedule",
        ]
    ),
)
def test_fuzzed_json_bodies_with_valid_keys(live: Live, body: bytes, key: str, path: bytes) -> None:
    """Authenticated POSTs with hostile JSON reach validation, policy and Graph, on every
    dialect: no 5xx, no leak."""
    headers = [(b"Authorization", f"Bearer {key}".encode()), (b"Content-Type", b"application/json")]
    answer = send(live.port, request(b"POST", path, headers, body))
    check(answer, method=b"POST", path=path)


@FUZZ_SETTINGS
@given(
    route=st.sampled_from(
        [
            (b"GET", b"/v1/schedules/adele.vance@contoso.example/freebusy.ics", None),
            (b"GET", b"/v1/schedules/adele.vance@contoso.example/freebusy.ics", KEY_ALL),
            (b"GET", b"/v1/schedules/ADELE.VANCE@contoso.example/freebusy.ics", KEY_POLICY),
            (b"GET", b"/admin/connections", ADMIN_KEY),
            (b"DELETE", b"/admin/connections/some-id", ADMIN_KEY),
            (b"GET", b"/readyz", ADMIN_KEY),
            (b"POST", b"/connect/callback", None),
            (b"GET", b"/connect/callback", None),
        ]
    ),
    query=queries,
    headers=extra_headers,
    body=st.one_of(st.just(b""), forms),
    feed_token=st.booleans(),
)
def test_fuzzed_feed_admin_and_connect_requests_with_valid_credentials(
    live: Live,
    route: tuple[bytes, bytes, str | None],
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    feed_token: bool,
) -> None:
    """The feed (by key or by its token), the admin API and the callback, reached with valid
    credentials and hostile parameters: no 5xx, no leak."""
    method, path, key = route
    all_headers = list(headers)
    if key is not None:
        all_headers.append((b"Authorization", f"Bearer {key}".encode()))
    if feed_token and path.endswith(b".ics"):
        query = b"token=" + FEED.encode() + (b"&" + query if query else b"")
    if method == b"POST":
        all_headers.append((b"Content-Type", b"application/x-www-form-urlencoded"))
    target = path + (b"?" + query if query else b"")
    answer = send(live.port, request(method, target, all_headers, body))
    check(answer, method=method, path=path)


def test_still_serving_and_audit_trail_clean_after_fuzzing(live: Live) -> None:
    """After the fuzzers, a good request is still answered, and the audit file leaks nothing."""
    body = json.dumps(
        {"schedules": [ONE_ADDRESS], "start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"}
    ).encode()
    headers = [
        (b"Authorization", f"Bearer {KEY_ALL}".encode()),
        (b"Content-Type", b"application/json"),
    ]
    answer = send(live.port, request(b"POST", b"/v1/availability", headers, body))
    assert answer.status == 200
    assert json.loads(answer.body)["schedules"][0]["error"] is None
    text = live.audit.read_text()
    assert_no_leak(text)
    assert len(text.splitlines()) >= 1


WORST_CASE = [
    # Largest accepted JSON body: many valid addresses, a long window, a valid key.
    request(
        b"POST",
        b"/v1/availability",
        [(b"Authorization", f"Bearer {KEY_ALL}".encode()), (b"Content-Type", b"application/json")],
        json.dumps(
            {
                "schedules": [f"p{i:03d}.{'x' * 40}@{MOCK_DOMAIN}" for i in range(100)],
                "start": "2026-01-05T00:00:00Z",
                "end": "2026-02-04T00:00:00Z",
            }
        ).encode(),
    ),
    # A body just over the limit, and absurd nesting.
    request(
        b"POST",
        b"/v1/availability",
        [(b"Authorization", f"Bearer {KEY_ALL}".encode()), (b"Content-Type", b"application/json")],
        b"[" * 65_000,
    ),
    request(b"POST", b"/v1/availability", [(b"Content-Type", b"application/json")], b"x" * 70_000),
    # Longest accepted request line and headers.
    request(
        b"GET", b"/v1/availability?schedules=" + b"a" * 8000, [(b"X-Pad", b"p" * 8000)] * 8, b""
    ),
    # Over the parser limits.
    request(b"GET", b"/?" + b"q" * 20_000, [], b""),
    request(b"GET", b"/healthz", [(b"X-Many", b"1")] * 200, b""),
]


def test_memory_stays_bounded(live: Live) -> None:
    """Worst-case requests, repeated: the peak stays under 64 MiB and live memory does not grow."""
    # The suite's DEBUG log capture keeps every record, which would look like growth:
    # logging is off while measuring (the fuzz tests above check what gets logged).
    logging.disable(logging.CRITICAL)
    tracemalloc.start()
    try:

        def batch() -> None:
            for _ in range(MEMORY_ROUNDS // len(WORST_CASE)):
                for data in WORST_CASE:
                    check(send(live.port, data), method=data.split(b" ", 1)[0])

        batch()  # warm-up: the token, the mailbox set, code paths, caches of libraries
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        batch()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
    assert peak < MEMORY_PEAK_BOUND, f"peak {peak / 2**20:.1f} MiB"
    assert after - before < MEMORY_GROWTH_BOUND, f"grew {(after - before) / 2**20:.1f} MiB"
