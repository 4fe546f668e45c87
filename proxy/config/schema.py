"""Configuration: TOML files validated strictly on load; secrets come from the environment."""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from proxy.core.errors import ConfigError
from proxy.core.model import Status

CONFIG_ENV = "FREEBUSY_PROXY_CONFIG"
CLIENT_SECRET_ENV = "FREEBUSY_PROXY_CLIENT_SECRET"  # noqa: S105 (a variable name)
AUDIT_KEY_ENV = "FREEBUSY_PROXY_AUDIT_KEY"
TOKEN_KEY_ENV = "FREEBUSY_PROXY_TOKEN_KEY"  # noqa: S105 (a variable name)
CONNECTION_KINDS = ("individual", "enterprise")
# Fields that are never read from a file, only from the environment.
ENV_ONLY = frozenset({"client_secret", "token_key", "hmac_key"})

_STATUSES = tuple(status.value for status in Status)
_ADDRESS_PATTERN = re.compile(r"^(\*|[^@\s*]+)@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Where the proxy listens and how much a request may carry."""

    host: str = "127.0.0.1"
    port: int = 8080
    client_max_size: int = 64 * 1024
    # aiohttp's parser limits: request line (with query string), one header, header count.
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64


@dataclass(frozen=True, kw_only=True)
class GraphSettings:
    """How to reach the identity platform and Microsoft Graph."""

    tenant_id: str
    client_id: str
    authority: str = "https://login.microsoftonline.com"
    base_url: str = "https://graph.microsoft.com/v1.0"
    ca_file: Path | None = None
    timeout_seconds: float = 20.0
    max_retries: int = 3
    mailbox_concurrency: int = 4
    # Never in a file: filled from FREEBUSY_PROXY_CLIENT_SECRET.
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class LimitSettings:
    """What one consumer request may ask for."""

    max_schedules: int = 100
    max_window_days: int = 180


@dataclass(frozen=True, kw_only=True)
class ConsumerSettings:
    """A downstream app: its key's SHA-256 and the addresses it may query."""

    name: str
    key_sha256: str = field(repr=False)
    allow: tuple[str, ...]
    # Statuses that count as busy wherever a view has only busy/free (Google, iCal, policies).
    busy_statuses: tuple[str, ...] = ("busy", "oof", "tentative", "unknown")
    # Privacy policy and limits of this consumer (proxy/policy.py).
    detail: str = "status"
    granularity_minutes: int = 0
    max_window_days: int | None = None
    max_schedules: int | None = None
    max_lookback_days: int = 0
    max_lookahead_days: int = 365
    rate_per_minute: int = 600


@dataclass(frozen=True, kw_only=True)
class AuditSettings:
    """The audit trail: one JSON line per consumer request (proxy/audit.py)."""

    enabled: bool = True
    # None: standard output. Otherwise a file, appended to.
    file: Path | None = None
    audit_addresses: bool = False
    # Never in a file: filled from FREEBUSY_PROXY_AUDIT_KEY.
    hmac_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class CorsSettings:
    """Browser cross-origin access: off unless origins are listed (proxy/cors.py)."""

    allow_origins: tuple[str, ...] = ()
    max_age_seconds: int = 600


@dataclass(frozen=True, kw_only=True)
class ConnectSettings:
    """Delegated connections (Individual / Enterprise Connect Free/Busy) and their admin API."""

    kinds: tuple[str, ...] = ()
    redirect_uri: str | None = None
    storage_path: Path = Path("freebusy-proxy-connections.sqlite3")
    strict_scopes: bool = True
    application_permissions: bool = True
    flow_timeout_seconds: float = 600.0
    admin_key_sha256: str | None = field(default=None, repr=False)
    # Never in a file: filled from FREEBUSY_PROXY_TOKEN_KEY.
    token_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """How long minimized availability is kept in memory (per process)."""

    ttl_seconds: float = 60.0
    max_entries: int = 50_000
    # 0 turns serve-stale off: when Graph fails, nothing older than ttl_seconds is served.
    stale_max_age_seconds: float = 0.0
    # A miss fetches at least this many days, so "today" and "the next 7 days" share a fetch.
    min_fetch_days: int = 8


@dataclass(frozen=True, kw_only=True)
class BatchingSettings:
    """How cache misses for different mailboxes are folded into one getSchedule call."""

    wait_ms: float = 2.0
    max_schedules: int = 20


@dataclass(frozen=True, kw_only=True)
class ThrottleSettings:
    """Self-imposed limits that keep the proxy inside Graph's throttling budget."""

    max_concurrency: int = 32
    mailbox_budget: int = 9_000
    breaker_failures: int = 5
    breaker_cool_down_seconds: float = 30.0


@dataclass(frozen=True, kw_only=True)
class IcalSettings:
    """How the iCalendar free/busy feed is written."""

    # FBTYPE for workingElsewhere, when a consumer's busy_statuses count it as busy at all.
    working_elsewhere: str = "BUSY-TENTATIVE"
    # Window of a feed request without start/end: this many days from today 00:00 UTC.
    default_days: int = 30


@dataclass(frozen=True, kw_only=True)
class FeedSettings:
    """A calendar feed token: lets a URL read one address's .ics as one consumer."""

    name: str
    token_sha256: str = field(repr=False)
    address: str
    consumer: str


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The whole validated configuration."""

    server: ServerSettings = field(default_factory=ServerSettings)
    graph: GraphSettings
    limits: LimitSettings = field(default_factory=LimitSettings)
    consumers: tuple[ConsumerSettings, ...] = ()
    connect: ConnectSettings = field(default_factory=ConnectSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    ical: IcalSettings = field(default_factory=IcalSettings)
    feeds: tuple[FeedSettings, ...] = ()


T = TypeVar("T")
FBTYPES = ("BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE")

_SECTIONS = {f.name for f in fields(Settings)}


def load_settings(path: Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a TOML config file; raise ConfigError naming the first bad key."""
    env = os.environ if environ is None else environ
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_settings(document, environ=env, base_dir=path.parent)


def parse_settings(
    document: Mapping[str, Any], *, environ: Mapping[str, str], base_dir: Path
) -> Settings:
    """Validate a parsed TOML document into Settings; raise ConfigError naming the bad key."""
    if "client_secret" in document.get("graph", {}):
        raise ConfigError(
            f"graph.client_secret: secrets are not read from files; set {CLIENT_SECRET_ENV}"
        )
    if "hmac_key" in document.get("audit", {}):
        raise ConfigError(f"audit.hmac_key: secrets are not read from files; set {AUDIT_KEY_ENV}")
    if "token_key" in document.get("connect", {}):
        raise ConfigError(
            f"connect.token_key: secrets are not read from files; set {TOKEN_KEY_ENV}"
        )
    _reject_unknown(document, _SECTIONS, "")
    if "graph" not in document:
        raise ConfigError("graph: missing section [graph]")
    server = _build(ServerSettings, document.get("server", {}), "server")
    graph = _build(GraphSettings, document["graph"], "graph")
    limits = _build(LimitSettings, document.get("limits", {}), "limits")
    raw_consumers = document.get("consumers", [])
    if not isinstance(raw_consumers, list):
        raise ConfigError("consumers: must be an array of tables ([[consumers]])")
    consumers = tuple(
        _build(ConsumerSettings, raw, f"consumers[{index}]")
        for index, raw in enumerate(raw_consumers)
    )
    _check_server(server)
    graph = _check_graph(graph, environ=environ, base_dir=base_dir)
    _check_limits(limits)
    _check_consumers(consumers)
    connect = _check_connect(
        _build(ConnectSettings, document.get("connect", {}), "connect"),
        environ=environ,
        base_dir=base_dir,
    )
    cache = _build(CacheSettings, document.get("cache", {}), "cache")
    batching = _build(BatchingSettings, document.get("batching", {}), "batching")
    throttle = _build(ThrottleSettings, document.get("throttle", {}), "throttle")
    _check_frugality(cache, batching, throttle)
    audit = _build(AuditSettings, document.get("audit", {}), "audit")
    cors = _build(CorsSettings, document.get("cors", {}), "cors")
    audit = _check_audit(audit, environ=environ, base_dir=base_dir)
    _check_cors(cors)
    _check_server_limits(server)
    for index, consumer in enumerate(consumers):
        _check_policy(consumer, f"consumers[{index}]")
    ical = _build(IcalSettings, document.get("ical", {}), "ical")
    feeds = _build_feeds(document.get("feeds", []), consumers)
    _check_ical(ical, limits)
    return Settings(
        server=server,
        graph=graph,
        limits=limits,
        consumers=consumers,
        connect=connect,
        cache=cache,
        batching=batching,
        throttle=throttle,
        audit=audit,
        cors=cors,
        ical=ical,
        feeds=feeds,
    )


def _check_connect(
    connect: ConnectSettings, *, environ: Mapping[str, str], base_dir: Path
) -> ConnectSettings:
    for kind in connect.kinds:
        if kind not in CONNECTION_KINDS:
            raise ConfigError(
                f"connect.kinds: {kind!r} is not one of {', '.join(CONNECTION_KINDS)}"
            )
    if connect.redirect_uri is not None and not re.match(r"^https?://", connect.redirect_uri):
        raise ConfigError("connect.redirect_uri: must be an http:// or https:// URL")
    if connect.flow_timeout_seconds <= 0:
        raise ConfigError("connect.flow_timeout_seconds: must be positive")
    if connect.admin_key_sha256 is not None and not re.fullmatch(
        r"[0-9a-f]{64}", connect.admin_key_sha256
    ):
        raise ConfigError("connect.admin_key_sha256: must be 64 lower-case hex digits")
    if not connect.kinds and not connect.application_permissions:
        raise ConfigError(
            "connect.application_permissions: with no connection kinds enabled, nothing could "
            "be queried"
        )
    path = connect.storage_path
    path = path if path.is_absolute() else base_dir / path
    return replace(connect, storage_path=path, token_key=environ.get(TOKEN_KEY_ENV) or None)


def _check_server(server: ServerSettings) -> None:
    if not 0 <= server.port <= 65535:
        raise ConfigError("server.port: must be between 0 and 65535")
    if server.client_max_size < 1024:
        raise ConfigError("server.client_max_size: must be at least 1024 bytes")


def _check_graph(
    graph: GraphSettings, *, environ: Mapping[str, str], base_dir: Path
) -> GraphSettings:
    for key in ("authority", "base_url"):
        if not getattr(graph, key).startswith("https://"):
            raise ConfigError(f"graph.{key}: must be an https:// URL")
    if graph.max_retries < 0 or graph.max_retries > 10:
        raise ConfigError("graph.max_retries: must be between 0 and 10")
    if not 1 <= graph.mailbox_concurrency <= 4:
        raise ConfigError("graph.mailbox_concurrency: Graph allows 1 to 4 concurrent requests")
    if graph.timeout_seconds <= 0:
        raise ConfigError("graph.timeout_seconds: must be positive")
    ca_file = graph.ca_file
    if ca_file is not None:
        ca_file = ca_file if ca_file.is_absolute() else base_dir / ca_file
        if not ca_file.is_file():
            raise ConfigError(f"graph.ca_file: no such file: {ca_file}")
    secret = environ.get(CLIENT_SECRET_ENV) or None
    return replace(graph, ca_file=ca_file, client_secret=secret)


def _check_limits(limits: LimitSettings) -> None:
    if limits.max_schedules < 1:
        raise ConfigError("limits.max_schedules: must be at least 1")
    if limits.max_window_days < 1:
        raise ConfigError("limits.max_window_days: must be at least 1")


def _check_consumers(consumers: tuple[ConsumerSettings, ...]) -> None:
    names: set[str] = set()
    hashes: set[str] = set()
    for index, consumer in enumerate(consumers):
        where = f"consumers[{index}]"
        if consumer.name in names:
            raise ConfigError(f"{where}.name: duplicate consumer name {consumer.name!r}")
        names.add(consumer.name)
        if not re.fullmatch(r"[0-9a-f]{64}", consumer.key_sha256):
            raise ConfigError(f"{where}.key_sha256: must be 64 lower-case hex digits")
        if consumer.key_sha256 in hashes:
            raise ConfigError(f"{where}.key_sha256: two consumers share one key")
        hashes.add(consumer.key_sha256)
        for status in consumer.busy_statuses:
            if status not in _STATUSES:
                raise ConfigError(
                    f"{where}.busy_statuses: {status!r} is not one of {', '.join(_STATUSES)}"
                )
        for pattern in consumer.allow:
            if not _ADDRESS_PATTERN.match(pattern):
                raise ConfigError(
                    f"{where}.allow: {pattern!r} is neither an address nor '*@domain'"
                )


def _check_frugality(
    cache: CacheSettings, batching: BatchingSettings, throttle: ThrottleSettings
) -> None:
    if cache.ttl_seconds < 0:
        raise ConfigError("cache.ttl_seconds: must be 0 (no caching) or positive")
    if cache.max_entries < 1:
        raise ConfigError("cache.max_entries: must be at least 1")
    if cache.stale_max_age_seconds < 0:
        raise ConfigError("cache.stale_max_age_seconds: must be 0 (off) or positive")
    if not 1 <= cache.min_fetch_days <= 61:
        raise ConfigError("cache.min_fetch_days: must be between 1 and 61")
    if not 0 <= batching.wait_ms <= 1000:
        raise ConfigError("batching.wait_ms: must be between 0 and 1000")
    if not 1 <= batching.max_schedules <= 20:
        raise ConfigError("batching.max_schedules: getSchedule takes 1 to 20 schedules")
    if throttle.max_concurrency < 1:
        raise ConfigError("throttle.max_concurrency: must be at least 1")
    if not 1 <= throttle.mailbox_budget <= 10_000:
        raise ConfigError(
            "throttle.mailbox_budget: Graph allows at most 10000 requests per 10 minutes"
        )
    if throttle.breaker_failures < 1:
        raise ConfigError("throttle.breaker_failures: must be at least 1")
    if throttle.breaker_cool_down_seconds <= 0:
        raise ConfigError("throttle.breaker_cool_down_seconds: must be positive")


def _reject_unknown(table: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in table:
        if key not in known:
            name = f"{where}.{key}" if where else key
            raise ConfigError(f"{name}: unknown key")


def _build(cls: type[T], table: Any, where: str) -> T:
    """Build a settings dataclass from a TOML table, checking keys and types."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table")
    hints = typing.get_type_hints(cls)
    settable = {f.name: f for f in fields(cls) if f.name not in ENV_ONLY}  # type: ignore[arg-type]
    _reject_unknown(table, set(settable), where)
    values: dict[str, Any] = {}
    for name, spec in settable.items():
        if name not in table:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise ConfigError(f"{where}.{name}: required key is missing")
            continue
        values[name] = _coerce(table[name], hints[name], f"{where}.{name}")
    return cls(**values)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a TOML value against a field type, converting where TOML has no such type."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _coerce(value, options[0], where)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: must be a list of strings")
        return tuple(value)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: must be a path")
        return Path(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: must be a number")
        return float(value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: must be an integer")
    if hint is str and (not isinstance(value, str) or not value):
        raise ConfigError(f"{where}: must be a non-empty string")
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: must be true or false")
    return value


_ORIGIN_PATTERN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_DETAILS = ("status", "busy")


def _check_server_limits(server: ServerSettings) -> None:
    for key in ("max_line_size", "max_field_size"):
        if not 1024 <= getattr(server, key) <= 65536:
            raise ConfigError(f"server.{key}: must be between 1024 and 65536 bytes")
    if not 16 <= server.max_headers <= 256:
        raise ConfigError("server.max_headers: must be between 16 and 256")


def _check_policy(consumer: ConsumerSettings, where: str) -> None:
    """Validate a consumer's privacy policy and limits."""
    if consumer.detail not in _DETAILS:
        raise ConfigError(f"{where}.detail: must be one of {', '.join(_DETAILS)}")
    minutes = consumer.granularity_minutes
    if minutes and (not 1 <= minutes <= 1440 or 1440 % minutes):
        # A divisor of a day keeps the grid on the same UTC times every day.
        raise ConfigError(f"{where}.granularity_minutes: must be 0 or divide 1440 (a day)")
    for key in ("max_window_days", "max_schedules"):
        value = getattr(consumer, key)
        if value is not None and value < 1:
            raise ConfigError(f"{where}.{key}: must be at least 1")
    if not 0 <= consumer.max_lookback_days <= 3660:
        raise ConfigError(f"{where}.max_lookback_days: must be between 0 and 3660")
    if not 1 <= consumer.max_lookahead_days <= 3660:
        raise ConfigError(f"{where}.max_lookahead_days: must be between 1 and 3660")
    if not 0 <= consumer.rate_per_minute <= 100_000:
        raise ConfigError(f"{where}.rate_per_minute: must be between 0 (no limit) and 100000")


def _check_audit(
    audit: AuditSettings, *, environ: Mapping[str, str], base_dir: Path
) -> AuditSettings:
    file = audit.file
    if file is not None and not file.is_absolute():
        file = base_dir / file
    key = environ.get(AUDIT_KEY_ENV) or None
    return replace(audit, file=file, hmac_key=key)


def _check_cors(cors: CorsSettings) -> None:
    for origin in cors.allow_origins:
        if not _ORIGIN_PATTERN.match(origin):
            raise ConfigError(
                f"cors.allow_origins: {origin!r} is not an origin like https://app.example.com"
            )
    if not 0 <= cors.max_age_seconds <= 86400:
        raise ConfigError("cors.max_age_seconds: must be between 0 and 86400")


def _check_ical(ical: IcalSettings, limits: LimitSettings) -> None:
    if ical.working_elsewhere not in FBTYPES:
        raise ConfigError(f"ical.working_elsewhere: must be one of {', '.join(FBTYPES)}")
    if not 1 <= ical.default_days <= limits.max_window_days:
        raise ConfigError("ical.default_days: must be between 1 and limits.max_window_days")


def _build_feeds(
    raw_feeds: Any, consumers: tuple[ConsumerSettings, ...]
) -> tuple[FeedSettings, ...]:
    """Validate [[feeds]]: unique names and tokens, each address allowed to its consumer."""
    if not isinstance(raw_feeds, list):
        raise ConfigError("feeds: must be an array of tables ([[feeds]])")
    by_name = {consumer.name: consumer for consumer in consumers}
    key_hashes = {consumer.key_sha256 for consumer in consumers}
    feeds: list[FeedSettings] = []
    for index, raw in enumerate(raw_feeds):
        where = f"feeds[{index}]"
        feed = _build(FeedSettings, raw, where)
        if feed.name in {f.name for f in feeds}:
            raise ConfigError(f"{where}.name: duplicate feed name {feed.name!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", feed.token_sha256):
            raise ConfigError(f"{where}.token_sha256: must be 64 lower-case hex digits")
        if feed.token_sha256 in {f.token_sha256 for f in feeds} | key_hashes:
            raise ConfigError(f"{where}.token_sha256: already used by another feed or consumer")
        if "*" in feed.address or not _ADDRESS_PATTERN.match(feed.address):
            raise ConfigError(f"{where}.address: {feed.address!r} is not an address")
        consumer = by_name.get(feed.consumer)
        if consumer is None:
            raise ConfigError(f"{where}.consumer: no consumer named {feed.consumer!r}")
        folded = feed.address.casefold()
        allowed = {p.casefold() for p in consumer.allow}
        if folded not in allowed and f"*@{folded.rpartition('@')[2]}" not in allowed:
            raise ConfigError(
                f"{where}.address: consumer {feed.consumer!r} may not query {feed.address!r}"
            )
        feeds.append(feed)
    return tuple(feeds)
