"""What a valid configuration is: one frozen value per TOML section, with defaults and ranges.

Types and ``Meta`` ranges are checked by the loader (``proxy.config.load``) through msgspec;
rules that tie several keys together are checked there too. Secrets are never read from a
file: the loader fills them from the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta

from proxy.core.policy import Policy

CONFIG_ENV = "FREEBUSY_PROXY_CONFIG"
CLIENT_SECRET_ENV = "FREEBUSY_PROXY_CLIENT_SECRET"  # noqa: S105 (a variable name)
AUDIT_KEY_ENV = "FREEBUSY_PROXY_AUDIT_KEY"
TOKEN_KEY_ENV = "FREEBUSY_PROXY_TOKEN_KEY"  # noqa: S105 (a variable name)
CLUSTER_KEY_ENV = "FREEBUSY_PROXY_CLUSTER_KEY"
REDIS_PASSWORD_ENV = "FREEBUSY_PROXY_REDIS_PASSWORD"  # noqa: S105 (a variable name)
DATABASE_PASSWORD_ENV = "FREEBUSY_PROXY_DATABASE_PASSWORD"  # noqa: S105 (a variable name)
# FREEBUSY_PROXY_<SECTION>__<KEY> overrides [section] key of the file (proxy/config/load.py).
OVERRIDE_PREFIX = "FREEBUSY_PROXY_"
OVERRIDE_SEPARATOR = "__"
CONNECTION_KINDS = ("individual", "enterprise")
FBTYPES = ("BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE")
# Fields that are never read from a file, only from the environment.
ENV_ONLY = frozenset(
    {"client_secret", "token_key", "hmac_key", "database_password", "cluster_key", "redis_password"}
)

Text = Annotated[str, Meta(min_length=1)]
Sha256 = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]
PostgresUrl = Annotated[str, Meta(pattern="^postgres(ql)?://")]
HttpsUrl = Annotated[str, Meta(pattern="^https://")]
Positive = Annotated[float, Meta(gt=0)]
AtLeastOne = Annotated[int, Meta(ge=1)]
ParserLimit = Annotated[int, Meta(ge=1024, le=65536)]
# A TCP port, as the file and `serve --port` both take it (0: any free port).
Port = Annotated[int, Meta(ge=0, le=65535)]


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Where the proxy listens and how much a request may carry."""

    host: Text = "127.0.0.1"
    port: Port = 8080
    client_max_size: Annotated[int, Meta(ge=1024)] = 64 * 1024
    # aiohttp's parser limits: request line (with query string), one header, header count.
    max_line_size: ParserLimit = 8190
    max_field_size: ParserLimit = 8190
    max_headers: Annotated[int, Meta(ge=16, le=256)] = 64
    # A connection must finish a request's headers this long after it opened (or after its
    # previous answer), and a request's body this long after its headers; then it is cut.
    header_timeout_seconds: Annotated[float, Meta(gt=0, le=3600)] = 15.0
    body_timeout_seconds: Annotated[float, Meta(gt=0, le=3600)] = 15.0
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GraphSettings:
    """How to reach the identity platform and Microsoft Graph."""

    tenant_id: Text
    client_id: Text
    authority: HttpsUrl = "https://login.microsoftonline.com"
    base_url: HttpsUrl = "https://graph.microsoft.com/v1.0"
    ca_file: Path | None = None
    timeout_seconds: Positive = 20.0
    max_retries: Annotated[int, Meta(ge=0, le=10)] = 3
    # Graph allows 4 concurrent requests per app and mailbox.
    mailbox_concurrency: Annotated[int, Meta(ge=1, le=4)] = 4
    # Never in a file: filled from FREEBUSY_PROXY_CLIENT_SECRET.
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class LimitSettings:
    """What one consumer request may ask for, whoever asks."""

    max_schedules: AtLeastOne = 100
    max_window_days: AtLeastOne = 180
    # What one request may cost, in mailbox-days; the default lets any request within
    # max_schedules and max_window_days through (a 180-day window touches up to 181 UTC days).
    max_request_cost: AtLeastOne = 18_100


@dataclass(frozen=True, kw_only=True)
class ConsumerSettings:
    """A downstream app: its key's SHA-256, the addresses it may query, and its policy."""

    name: Text
    key_sha256: Sha256 = field(repr=False)
    allow: tuple[str, ...]
    # In the file, the policy's keys sit in the consumer's own table (proxy/core/policy.py).
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True, kw_only=True)
class AuditSettings:
    """The audit trail: one JSON line per consumer request (proxy/observability/audit.py)."""

    enabled: bool = True
    # None: standard output. Otherwise a file, appended to.
    file: Path | None = None
    audit_addresses: bool = False
    # Never in a file: filled from FREEBUSY_PROXY_AUDIT_KEY.
    hmac_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class CorsSettings:
    """Browser cross-origin access: off unless origins are listed (proxy/web/cors.py)."""

    allow_origins: tuple[
        Annotated[str, Meta(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")], ...
    ] = ()
    max_age_seconds: Annotated[int, Meta(ge=0, le=86400)] = 600


@dataclass(frozen=True, kw_only=True)
class ConnectSettings:
    """Delegated connections (Individual / Enterprise Connect Free/Busy) and their admin API."""

    kinds: tuple[Literal["individual", "enterprise"], ...] = ()
    redirect_uri: Annotated[str, Meta(pattern="^https?://")] | None = None
    storage_path: Path = Path("freebusy-proxy-connections.sqlite3")
    # PostgreSQL instead of the SQLite file; the password comes from the environment.
    storage_url: PostgresUrl | None = None
    storage_pool_size: Annotated[int, Meta(ge=2, le=100)] = 10
    # How often each process looks for connections made, changed or removed elsewhere.
    changes_poll_seconds: Annotated[float, Meta(ge=0.05, le=300)] = 2.0
    strict_scopes: bool = True
    application_permissions: bool = True
    flow_timeout_seconds: Positive = 600.0
    # Sign-ins one client address may start per minute.
    sign_ins_per_minute: Annotated[int, Meta(ge=1, le=10_000)] = 10
    admin_key_sha256: Sha256 | None = field(default=None, repr=False)
    # Never in a file: filled from FREEBUSY_PROXY_TOKEN_KEY (comma-separated during a rotation).
    token_key: str | None = field(default=None, repr=False)
    # Never in a file: filled from FREEBUSY_PROXY_DATABASE_PASSWORD.
    database_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """How long minimized availability is kept in memory (per process)."""

    # 0: no caching.
    ttl_seconds: Annotated[float, Meta(ge=0)] = 60.0
    max_entries: AtLeastOne = 50_000
    # Mailboxes Graph said it does not know, remembered for ttl_seconds apart from the days.
    max_unknown_mailboxes: AtLeastOne = 10_000
    # 0 turns serve-stale off: when Graph fails, nothing older than ttl_seconds is served.
    stale_max_age_seconds: Annotated[float, Meta(ge=0)] = 0.0
    # A miss fetches the whole blocks of this many days (on a grid fixed by the calendar)
    # that hold it: requests over nearby days, and every replica, share fetches and calls.
    min_fetch_days: Annotated[int, Meta(ge=1, le=61)] = 8


@dataclass(frozen=True, kw_only=True)
class BatchingSettings:
    """How cache misses for different mailboxes are folded into one getSchedule call."""

    wait_ms: Annotated[float, Meta(ge=0, le=1000)] = 2.0
    # getSchedule takes 1 to 20 schedules.
    max_schedules: Annotated[int, Meta(ge=1, le=20)] = 20


@dataclass(frozen=True, kw_only=True)
class ThrottleSettings:
    """Self-imposed limits that keep the proxy inside Graph's throttling budget."""

    max_concurrency: AtLeastOne = 32
    # Graph allows at most 10,000 requests per 10 minutes per mailbox.
    mailbox_budget: Annotated[int, Meta(ge=1, le=10_000)] = 9_000
    breaker_failures: AtLeastOne = 5
    breaker_cool_down_seconds: Positive = 30.0


@dataclass(frozen=True, kw_only=True)
class ClusterSettings:
    """Replicas sharing Graph's limits, the cache and consumer rates through Redis (off by
    default: each process on its own)."""

    # redis://host:6379/0 or rediss:// (TLS); the password comes from the environment.
    redis_url: Annotated[str, Meta(pattern="^rediss?://")] | None = None
    # For rediss://: the CA that signed Redis' certificate (default: the system's).
    ca_file: Path | None = None
    # While Redis is unreachable each replica keeps 1/fallback_replicas of Graph's limits and
    # of every consumer's rate, so this many replicas together stay within them.
    fallback_replicas: Annotated[int, Meta(ge=1, le=1000)] = 3
    # A Graph call through the shared gate is cut off after this long; its lease on one of
    # the mailbox's slots lasts a second longer, so a replica that dies frees its slots.
    lease_seconds: Annotated[float, Meta(ge=1, le=120)] = 10.0
    # Each window's misses are fetched by one replica (picked by hashing the window over
    # the replicas alive), so they share its calls as one process's would; the others
    # send it their misses, signed with the cluster key. Off with connections in SQLite,
    # which only the replica holding them can use.
    forward_misses: bool = True
    # How long the owner's batch for a window stays open (for its own misses and those
    # forwarded to it): they come from several replicas, spread by the hop, and
    # [batching] wait_ms is one process's window.
    forward_wait_ms: Annotated[float, Meta(ge=0, le=1000)] = 20.0
    # Where the other replicas reach this one (http://10.0.0.5:8080). Default: the host it
    # listens on and the port it bound, or this machine's host name when it listens on all.
    advertise_url: Annotated[str, Meta(pattern="^https?://[^/?#]+$")] | None = None
    # Never in a file: filled from FREEBUSY_PROXY_CLUSTER_KEY and FREEBUSY_PROXY_REDIS_PASSWORD.
    cluster_key: str | None = field(default=None, repr=False)
    redis_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class IcalSettings:
    """How the iCalendar free/busy feed is written."""

    # FBTYPE for workingElsewhere, when a consumer's busy_statuses count it as busy at all.
    working_elsewhere: Literal["BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE"] = "BUSY-TENTATIVE"
    # Window of a feed request without start/end: this many days from today 00:00 UTC.
    default_days: AtLeastOne = 30


@dataclass(frozen=True, kw_only=True)
class FeedSettings:
    """A calendar feed token: lets a URL read one address's .ics as one consumer."""

    name: Text
    token_sha256: Sha256 = field(repr=False)
    address: Text
    consumer: Text


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
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    feeds: tuple[FeedSettings, ...] = ()

    def secrets(self) -> list[str]:
        """The literal secrets this configuration holds, for the log redactor."""
        connect = self.connect
        keys = (connect.token_key or "").split(",")
        values = (
            self.graph.client_secret,
            self.audit.hmac_key,
            *keys,
            connect.database_password,
            self.cluster.cluster_key,
            self.cluster.redis_password,
        )
        return [value.strip() for value in values if value and value.strip()]
