"""The one place a configuration is judged: a TOML file and the environment in, Settings out.

``check-config`` and ``serve`` both call ``load_settings``, so one fails exactly when the other
would. Every problem is collected before anything is refused, the environment's secrets
included, so a configuration is fixed in one round rather than one restart per mistake.

Any key of a section can also be set from the environment, for containers: the variable
``FREEBUSY_PROXY_<SECTION>__<KEY>`` (two underscores between section and key, any letter case)
overrides ``[section] key`` of the file, e.g. ``FREEBUSY_PROXY_SERVER__PORT=9000``. Its value is
read as the key's type (``true``/``false``, numbers, lists as comma-separated items); an empty
value unsets an optional key. Secrets
keep their own variables; ``[[consumers]]`` and ``[[feeds]]`` come only from the file.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
from cryptography.fernet import Fernet

from proxy.config.schema import (
    AUDIT_KEY_ENV,
    CLIENT_SECRET_ENV,
    CLUSTER_KEY_ENV,
    DATABASE_PASSWORD_ENV,
    ENV_ONLY,
    OVERRIDE_PREFIX,
    OVERRIDE_SEPARATOR,
    REDIS_PASSWORD_ENV,
    TOKEN_KEY_ENV,
    AuditSettings,
    BatchingSettings,
    CacheSettings,
    ClusterSettings,
    ConnectSettings,
    ConsumerSettings,
    CorsSettings,
    FeedSettings,
    GraphSettings,
    IcalSettings,
    LimitSettings,
    ServerSettings,
    Settings,
    ThrottleSettings,
)
from proxy.core.errors import ConfigError
from proxy.core.policy import Policy

T = TypeVar("T")
MIN_AUDIT_KEY_LENGTH = 32
_SECRET_ENV = {"client_secret": CLIENT_SECRET_ENV, "hmac_key": AUDIT_KEY_ENV,
               "token_key": TOKEN_KEY_ENV, "database_password": DATABASE_PASSWORD_ENV,
               "cluster_key": CLUSTER_KEY_ENV,
               "redis_password": REDIS_PASSWORD_ENV}  # fmt: skip
MIN_CLUSTER_KEY_LENGTH = 32
_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "graph": GraphSettings,
    "limits": LimitSettings,
    "connect": ConnectSettings,
    "cache": CacheSettings,
    "batching": BatchingSettings,
    "throttle": ThrottleSettings,
    "audit": AuditSettings,
    "cors": CorsSettings,
    "ical": IcalSettings,
    "cluster": ClusterSettings,
}
_ARRAYS = ("consumers", "feeds")
_POLICY_KEYS = frozenset(f.name for f in fields(Policy))
_ALLOW_PATTERN = re.compile(r"^(\*|[^@\s*]+)@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def load_settings(path: Path, *, environ: Mapping[str, str], host: str | None = None) -> Settings:
    """Read a config file and complete it from ``environ``; ConfigError lists every problem.

    ``host``: where ``serve --host`` makes the proxy listen, judged as if the file said it.
    """
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_settings(document, environ=environ, base_dir=path.parent, host=host)


def parse_settings(
    document: Mapping[str, Any],
    *,
    environ: Mapping[str, str],
    base_dir: Path,
    host: str | None = None,
) -> Settings:
    """Validate a parsed TOML document into Settings; ConfigError lists every problem.

    ``host``: where ``serve --host`` makes the proxy listen (over the file and the
    environment), judged as if the file said it.
    """
    problems: list[str] = []
    document = _with_overrides(document, environ, problems)
    if host is not None and isinstance(document.get("server", {}), Mapping):
        document = {**document, "server": {**document.get("server", {}), "host": host}}
    for key in document:
        if key not in _SECTIONS and key not in _ARRAYS:
            problems.append(f"{key}: unknown key")
    if "graph" not in document:
        problems.append("graph: missing section [graph]")
    sections = {
        name: _table(cls, document.get(name, {}), name, problems) for name, cls in _SECTIONS.items()
    }
    consumers = [
        _consumer(raw, f"consumers[{index}]", problems)
        for index, raw in enumerate(_array(document, "consumers", problems))
    ]
    feeds = [
        _table(FeedSettings, raw, f"feeds[{index}]", problems)
        for index, raw in enumerate(_array(document, "feeds", problems))
    ]
    settings: Settings | None = None
    if not problems:
        settings = Settings(
            **{name: cls(**sections[name]) for name, cls in _SECTIONS.items()},
            consumers=tuple(c for c in consumers if c is not None),
            feeds=tuple(FeedSettings(**f) for f in feeds),
        )
        settings = _resolve_paths(settings, base_dir)
        problems.extend(_rules(settings))
    # The environment is judged even when the file is not, so both are fixed in one go.
    problems.extend(_environment(document, environ))
    if problems or settings is None:
        raise ConfigError(problems)
    return _with_secrets(settings, environ)


def override_variable(section: str, key: str) -> str:
    """The environment variable that overrides ``[section] key``."""
    return f"{OVERRIDE_PREFIX}{section.upper()}{OVERRIDE_SEPARATOR}{key.upper()}"


def _with_overrides(
    document: Mapping[str, Any], environ: Mapping[str, str], problems: list[str]
) -> Mapping[str, Any]:
    """The document with every ``FREEBUSY_PROXY_<SECTION>__<KEY>`` variable applied."""
    merged: dict[str, Any] = dict(document)
    for variable in sorted(environ):
        name = variable.upper()
        if not name.startswith(OVERRIDE_PREFIX) or OVERRIDE_SEPARATOR not in name:
            continue
        section, _, key = name.removeprefix(OVERRIDE_PREFIX).lower().partition(OVERRIDE_SEPARATOR)
        if section in _ARRAYS:
            problems.append(f"{variable}: [[{section}]] entries come only from the config file")
            continue
        cls = _SECTIONS.get(section)
        if cls is None:
            problems.append(f"{variable}: no section [{section}] (see config/example.toml)")
            continue
        if key in ENV_ONLY:
            problems.append(f"{variable}: secrets are read only from {_SECRET_ENV[key]}")
            continue
        hint = typing.get_type_hints(cls, include_extras=True).get(key)
        if hint is None:
            problems.append(f"{variable}: [{section}] has no key {key!r}")
            continue
        table = merged.get(section, {})
        if not isinstance(table, Mapping):
            continue  # the file's own check names the section
        if not environ[variable].strip() and _is_optional(hint):
            # An empty value unsets an optional key the file sets (e.g. a storage_url).
            merged[section] = {k: v for k, v in table.items() if k != key}
            continue
        value = _from_environment(environ[variable], hint, variable, f"{section}.{key}", problems)
        if value is not None:
            merged[section] = {**table, key: value}
    return merged


def _from_environment(text: str, hint: Any, variable: str, where: str, problems: list[str]) -> Any:
    """A variable's text as the TOML value it stands for, or None (a problem recorded)."""
    if _is_list(hint):
        raw: Any = [item.strip() for item in text.split(",") if item.strip()]
    else:
        raw = text
    try:
        converted = msgspec.convert(raw, hint, strict=False, dec_hook=_path)
    except msgspec.ValidationError as exc:
        problems.append(f"{variable}: {_problem(where, exc, hint)}")
        return None
    if isinstance(converted, float) and not math.isfinite(converted):
        problems.append(f"{variable}: {where}: must be a finite number")
        return None
    # What a TOML file would hold, so the file's own check judges it the same way.
    if isinstance(converted, bool | int | float):
        return converted
    return raw


def _is_optional(hint: Any) -> bool:
    """True for a field that may be None (unset)."""
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return type(None) in typing.get_args(hint)


def _is_list(hint: Any) -> bool:
    """True for a tuple field (or an optional one)."""
    for arg in (hint, *typing.get_args(hint)):
        if typing.get_origin(arg) is typing.Annotated:
            arg = typing.get_args(arg)[0]
        if typing.get_origin(arg) is tuple:
            return True
    return False


def _array(document: Mapping[str, Any], name: str, problems: list[str]) -> list[Any]:
    raw = document.get(name, [])
    if not isinstance(raw, list):
        problems.append(f"{name}: must be an array of tables ([[{name}]])")
        return []
    return raw


def _table(cls: type[T], raw: Any, where: str, problems: list[str]) -> dict[str, Any]:
    """Each key of a TOML table converted to its field's type; problems recorded, not raised."""
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a table")
        return {}
    hints = typing.get_type_hints(cls, include_extras=True)
    settable = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ENV_ONLY:
            problems.append(
                f"{where}.{key}: secrets are not read from files; set {_SECRET_ENV[key]}"
            )
        elif key not in settable:
            problems.append(f"{where}.{key}: unknown key")
        else:
            try:
                converted = msgspec.convert(value, hints[key], strict=True, dec_hook=_path)
            except msgspec.ValidationError as exc:
                problems.append(_problem(f"{where}.{key}", exc, hints[key]))
                continue
            # TOML's inf (and an override's "inf") passes every lower bound; nothing that
            # reads a number of seconds or entries can use it.
            if isinstance(converted, float) and not math.isfinite(converted):
                problems.append(f"{where}.{key}: must be a finite number")
                continue
            values[key] = converted
    for name, spec in settable.items():
        required = spec.default is MISSING and spec.default_factory is MISSING
        if required and name not in raw and name not in ENV_ONLY:
            problems.append(f"{where}.{name}: required key is missing")
    return values


def _consumer(raw: Any, where: str, problems: list[str]) -> ConsumerSettings | None:
    """A [[consumers]] table: the consumer's own keys, and its policy's keys beside them."""
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a table")
        return None
    own = {k: v for k, v in raw.items() if k not in _POLICY_KEYS and k != "policy"}
    if "policy" in raw:
        problems.append(f"{where}.policy: unknown key (the policy's keys go in the table itself)")
    before = len(problems)
    values = _table(ConsumerSettings, own, where, problems)
    policy = _table(Policy, {k: v for k, v in raw.items() if k in _POLICY_KEYS}, where, problems)
    for pattern in values.get("allow", ()):
        if not _ALLOW_PATTERN.match(pattern):
            problems.append(f"{where}.allow: {pattern!r} is neither an address nor '*@domain'")
    minutes = policy.get("granularity_minutes", 0)
    if minutes and 1440 % minutes:
        # A divisor of a day keeps the grid on the same UTC times every day.
        problems.append(f"{where}.granularity_minutes: must be 0 or divide 1440 (a day)")
    if len(problems) > before:
        return None
    return ConsumerSettings(**values, policy=Policy(**policy))


def _path(kind: type, value: Any) -> Any:
    """msgspec's hook for Path fields: a non-empty string."""
    if kind is Path and isinstance(value, str) and value:
        return Path(value)
    raise ValueError("must be a non-empty path")


def _problem(where: str, exc: msgspec.ValidationError, hint: Any) -> str:
    """``where: what is wrong`` in our words, with the path inside the value appended."""
    text, _, path = str(exc).rpartition(" - at `")
    if not text:
        text, path = str(exc), "$`"
    inner = path.rstrip("`")[1:]
    return f"{where}{inner}: {_in_our_words(text, hint)}"


_KINDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
          "array": "a list", "object": "a table"}  # fmt: skip
_EXPECTED = re.compile(r"^Expected `(\w+)`(?:, got `\w+`)?(?: (>=|<=|>|<) (\S+))?$")
_BOUND = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}
_PATTERNS = {
    "^https://": "must be an https:// URL",
    "^https?://": "must be an http:// or https:// URL",
    "^[0-9a-f]{64}$": "must be 64 lower-case hex digits",
    r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$": "is not an origin like https://app.example.com",
}


def _in_our_words(text: str, hint: Any) -> str:
    """msgspec's message as the rest of our messages read ("must be …")."""
    match = _EXPECTED.match(text)
    if match is not None:
        kind, bound, value = match.groups()
        if bound is not None:
            return f"must be {_BOUND[bound]} {value}"
        return f"must be {_KINDS.get(kind, kind)}"
    if text.startswith("Invalid enum value"):
        choices = _choices(hint)
        return f"{text.removeprefix('Invalid enum value ')} is not one of {', '.join(choices)}"
    if text.startswith("Expected `str` matching regex"):
        pattern = text.removeprefix("Expected `str` matching regex ").strip("'")
        return _PATTERNS.get(pattern, "is not of the form this key takes (see config/example.toml)")
    if text.startswith("Expected `str` of length >= 1"):
        return "must be a non-empty string"
    return text[0].lower() + text[1:]


def _choices(hint: Any) -> list[str]:
    """The values a Literal, an enum, or a collection of either, may take."""
    for arg in (hint, *typing.get_args(hint)):
        if typing.get_origin(arg) is typing.Literal:
            return [str(value) for value in typing.get_args(arg)]
        if isinstance(arg, type) and issubclass(arg, enum.Enum):
            return [str(member.value) for member in arg]
    return []


def _resolve_paths(settings: Settings, base_dir: Path) -> Settings:
    """Relative paths in the file are relative to the file's own folder."""

    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else base_dir / path

    graph = settings.graph
    audit = settings.audit
    cluster = settings.cluster
    return replace(
        settings,
        graph=replace(graph, ca_file=None if graph.ca_file is None else absolute(graph.ca_file)),
        audit=replace(audit, file=None if audit.file is None else absolute(audit.file)),
        connect=replace(settings.connect, storage_path=absolute(settings.connect.storage_path)),
        cluster=replace(
            cluster, ca_file=None if cluster.ca_file is None else absolute(cluster.ca_file)
        ),
    )


def _rules(settings: Settings) -> list[str]:
    """What ties keys together, beyond each key's own type and range."""
    problems: list[str] = []
    for entry in settings.server.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(
                f"server.trusted_proxies: {entry!r} is not an address or network (10.0.0.0/8)"
            )
    ca_file = settings.graph.ca_file
    if ca_file is not None and not ca_file.is_file():
        problems.append(f"graph.ca_file: no such file: {ca_file}")
    audit_file = settings.audit.file
    if settings.audit.enabled and audit_file is not None:
        # serve creates the file, not its folder.
        if audit_file.is_dir():
            problems.append(f"audit.file: is a folder, not a file: {audit_file}")
        elif not audit_file.parent.is_dir():
            problems.append(f"audit.file: no such folder: {audit_file.parent}")
    connect = settings.connect
    if connect.storage_url is not None:
        problems.extend(_storage_url_problems(connect.storage_url))
    if connect.kinds and connect.redirect_uri is None and not is_loopback(settings.server.host):
        # Built from the Host header, the redirect URI would be whatever a client claims.
        problems.append(
            "connect.redirect_uri: required unless server.host is a loopback address "
            f"(the proxy listens on {settings.server.host!r})"
        )
    if not connect.kinds and not connect.application_permissions:
        problems.append(
            "connect.application_permissions: with no connection kinds enabled, nothing could "
            "be queried"
        )
    names: set[str] = set()
    hashes: set[str] = set()
    for index, consumer in enumerate(settings.consumers):
        where = f"consumers[{index}]"
        if consumer.name in names:
            problems.append(f"{where}.name: duplicate consumer name {consumer.name!r}")
        names.add(consumer.name)
        if consumer.key_sha256 in hashes:
            problems.append(f"{where}.key_sha256: two consumers share one key")
        hashes.add(consumer.key_sha256)
    problems.extend(_cluster_rules(settings))
    if settings.ical.default_days > settings.limits.max_window_days:
        problems.append("ical.default_days: must be between 1 and limits.max_window_days")
    problems.extend(_feed_rules(settings))
    return problems


def _cluster_rules(settings: Settings) -> list[str]:
    """[cluster]: a URL without credentials in it, and a CA file only for TLS."""
    problems: list[str] = []
    cluster = settings.cluster
    url = cluster.redis_url
    if url is not None:
        parts = urlsplit(url)
        if parts.password or parts.username:
            problems.append(
                "cluster.redis_url: no user or password in the URL; set "
                f"{REDIS_PASSWORD_ENV} instead (a file is no place for a secret)"
            )
        if not parts.hostname:
            problems.append("cluster.redis_url: names no host (redis://host:6379/0)")
        try:
            database = parts.path.strip("/")
            if database and not 0 <= int(database) <= 15:
                raise ValueError
            parts.port  # noqa: B018 (parsing it is the check)
        except ValueError:
            problems.append(
                "cluster.redis_url: is not of the form redis://host:port/db (db 0 to 15)"
            )
    if cluster.ca_file is not None:
        if url is None or not url.startswith("rediss://"):
            problems.append("cluster.ca_file: only for a TLS redis_url (rediss://)")
        elif not cluster.ca_file.is_file():
            problems.append(f"cluster.ca_file: no such file: {cluster.ca_file}")
    return problems


def _storage_url_problems(url: str) -> list[str]:
    """A PostgreSQL URL names where to connect; the password never sits in it."""
    where = "connect.storage_url"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return [f"{where}: not a valid URL (postgresql://user@host:5432/database)"]
    if parts.password is not None:
        return [
            f"{where}: the password does not go in the URL (config files get copied and "
            f"logged); set {DATABASE_PASSWORD_ENV} instead"
        ]
    return []


def is_loopback(host: str) -> bool:
    """True when ``host`` (a name or an address to listen on) is this machine's loopback only."""
    if host.casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _feed_rules(settings: Settings) -> list[str]:
    """[[feeds]]: unique names and tokens, each address allowed to its consumer."""
    problems: list[str] = []
    by_name = {consumer.name: consumer for consumer in settings.consumers}
    key_hashes = {consumer.key_sha256 for consumer in settings.consumers}
    seen_names: set[str] = set()
    seen_tokens: set[str] = set()
    for index, feed in enumerate(settings.feeds):
        where = f"feeds[{index}]"
        if feed.name in seen_names:
            problems.append(f"{where}.name: duplicate feed name {feed.name!r}")
        seen_names.add(feed.name)
        if feed.token_sha256 in seen_tokens | key_hashes:
            problems.append(f"{where}.token_sha256: already used by another feed or consumer")
        seen_tokens.add(feed.token_sha256)
        if "*" in feed.address or not _ALLOW_PATTERN.match(feed.address):
            problems.append(f"{where}.address: {feed.address!r} is not an address")
            continue
        consumer = by_name.get(feed.consumer)
        if consumer is None:
            problems.append(f"{where}.consumer: no consumer named {feed.consumer!r}")
            continue
        if consumer.policy.detail == "slots":
            # A feed shows one person's busy periods: exactly what such a key may not see.
            problems.append(
                f'{where}.consumer: consumer {feed.consumer!r} has detail = "slots" and may '
                "read no feed"
            )
            continue
        folded = feed.address.casefold()
        allowed = {p.casefold() for p in consumer.allow}
        if folded not in allowed and f"*@{folded.rpartition('@')[2]}" not in allowed:
            problems.append(
                f"{where}.address: consumer {feed.consumer!r} may not query {feed.address!r}"
            )
    return problems


def _environment(document: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """The secrets this configuration needs from the environment, each checked."""
    problems: list[str] = []
    if not environ.get(CLIENT_SECRET_ENV):
        problems.append(f"set {CLIENT_SECRET_ENV} to the app registration's client secret")
    connect = document.get("connect", {})
    if isinstance(connect, Mapping) and connect.get("kinds"):
        problem = token_key_problem(environ.get(TOKEN_KEY_ENV))
        if problem is not None:
            problems.append(problem)

    audit = document.get("audit", {})
    audit = audit if isinstance(audit, Mapping) else {}
    if audit.get("enabled", True) is not False and audit.get("audit_addresses") is not True:
        key = environ.get(AUDIT_KEY_ENV) or ""
        if len(key) < MIN_AUDIT_KEY_LENGTH:
            # Neither fallback is acceptable: a random per-process key makes lines from
            # different runs impossible to correlate, and an unkeyed hash of an address is
            # reversed by hashing a staff list. The operator decides.
            problems.append(
                f"audit: set {AUDIT_KEY_ENV} to a random string of at least "
                f"{MIN_AUDIT_KEY_LENGTH} characters (addresses in the audit trail are HMACs "
                "with it), or set audit.audit_addresses = true, or audit.enabled = false"
            )
    cluster = document.get("cluster", {})
    clustered = isinstance(cluster, Mapping) and bool(cluster.get("redis_url"))
    if clustered and len(environ.get(CLUSTER_KEY_ENV) or "") < MIN_CLUSTER_KEY_LENGTH:
        problems.append(
            f"cluster: set {CLUSTER_KEY_ENV} to a random string of at least "
            f"{MIN_CLUSTER_KEY_LENGTH} characters, the same on every replica (keys in "
            "Redis carry HMACs of addresses with it, never an address)"
        )
    return problems


def token_keys(value: str | None) -> list[str]:
    """The keys of a FREEBUSY_PROXY_TOKEN_KEY value: comma-separated, the first one encrypts."""
    return [key.strip() for key in (value or "").split(",") if key.strip()]


def token_key_problem(value: str | None) -> str | None:
    """What is wrong with a FREEBUSY_PROXY_TOKEN_KEY value, or None when it holds Fernet keys."""
    keys = token_keys(value)
    if not keys:
        return (
            f"set {TOKEN_KEY_ENV} (make one with `freebusy-proxy new-token-key`): delegated "
            "connections store their tokens encrypted with it"
        )
    for index, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            which = "" if len(keys) == 1 else f" key {index} of {len(keys)}"
            return f"{TOKEN_KEY_ENV}:{which} not a valid key (32 url-safe base64 bytes)"
    if len(set(keys)) != len(keys):
        return f"{TOKEN_KEY_ENV}: the same key is listed twice"
    return None


def _with_secrets(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """The settings with every secret the environment holds filled in."""
    return replace(
        settings,
        graph=replace(settings.graph, client_secret=environ.get(CLIENT_SECRET_ENV) or None),
        audit=replace(settings.audit, hmac_key=environ.get(AUDIT_KEY_ENV) or None),
        connect=replace(
            settings.connect,
            token_key=environ.get(TOKEN_KEY_ENV) or None,
            database_password=environ.get(DATABASE_PASSWORD_ENV) or None,
        ),
        cluster=replace(
            settings.cluster,
            cluster_key=environ.get(CLUSTER_KEY_ENV) or None,
            redis_password=environ.get(REDIS_PASSWORD_ENV) or None,
        ),
    )
