"""Configuration: one TOML file, every value overridable from the environment.

Read once by the CLI and passed down as a frozen ``Settings``; no other module
reads ``os.environ``. A wrong or missing value raises ``ConfigError`` naming
the key, so start-up stops with one clear line.

Environment overrides:

* ``CHANNELHUB_CONFIG`` -- the file (``serve --config`` wins over it);
* ``CHANNELHUB_<SECTION>_<KEY>`` -- a scalar in a table, e.g. ``CHANNELHUB_SERVER_PORT``,
  ``CHANNELHUB_DATABASE_URL``;
* ``CHANNELHUB_<LIST>_<ID>_<KEY>`` -- a key of one list entry, by its id, e.g.
  ``CHANNELHUB_ACCOUNTS_FB_MAIN_APP_SECRET`` (id upper-cased, ``-`` and ``.`` as ``_``);
* any string value ``env:NAME`` is replaced by the variable ``NAME`` (for secrets
  kept out of the file).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from hub.bot_settings import BotSettings, bot_for_queue, parse_bots
from hub.errors import ConfigError
from hub.event_loop import check_event_loop
from hub.hours import BusinessHours, parse_hours
from hub.iframe import IframeRefused, check_iframe_template, normalise_host
from hub.model import Channel, ChannelAccount, Queue, Status
from hub.ports import ProviderFacts
from hub.registry import provider_facts
from hub.room_settings import RoomsSettings, rooms_settings
from hub.time_zones import named_zone
from hub.webhooks_out_config import WebhookOut, WebhooksDelivery, parse_webhooks_delivery, parse_webhooks_out

__all__ = [
    "AuditSettings",
    "MediaSettings",
    "MetricsSettings",
    "Narrowing",
    "ReportsSettings",
    "ServerSettings",
    "Settings",
    "load_settings",
]

ENV_PREFIX = "CHANNELHUB_"
#: the tables an environment variable may set a key of; other CHANNELHUB_* variables are not configuration
_ENV_SECTIONS = ("server", "database", "outbox", "routing", "auth", "demo", "templates", "log", "media", "rooms")
_REPORTS_SECTIONS = ("reports",)  # [reports]: docs/reports.md
_OPERATIONS_SECTIONS = ("metrics", "audit")  # [metrics] and [audit]: docs/operations.md
_ENV_LONG_SECTIONS = ("webhooks_delivery",)  # whose names hold a '_': CHANNELHUB_WEBHOOKS_DELIVERY_TIMEOUT_SECONDS

T = TypeVar("T")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 1024 * 1024
    shutdown_timeout: float = 10.0
    read_timeout: float = 30.0  # a request body (or the next request's headers) may pause this long
    #: reverse proxies (addresses or CIDR networks) whose X-Forwarded-For is believed (hub/api/proxies.py)
    trusted_proxies: tuple[str, ...] = ()
    #: the event loop ``serve`` runs on: "asyncio" or "uvloop" (hub/event_loop.py, ADR 0047)
    event_loop: str = "asyncio"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxSettings:
    workers: int = 4
    max_attempts: int = 8
    base_backoff: float = 0.5  # seconds; doubled per attempt, with jitter
    max_backoff: float = 60.0
    rate_limit: float = 50.0  # messages/s per account unless the account says otherwise
    lease_seconds: float = 60.0  # a claimed row is another worker's to resume after this long
    poll_seconds: float = 1.0  # idle workers look for due rows this often (a new send wakes them at once)
    batch: int = 16  # sends one worker keeps in flight; it holds up to one batch more claimed ahead


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingSettings:
    tick_seconds: float = 1.0  # how often deadlines and waiting queues are swept
    waiting_update_seconds: float = 0.25  # consoles hear of waiting-list changes at most this often per queue
    missed_offer_reason: str = "missed offer"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthSettings:
    session_hours: float = 12.0
    cookie_secure: bool = False  # set true behind HTTPS
    login_attempts: int = 5  # per login name in one window; past it the login is locked for a while
    login_address_attempts: int = 50  # per client address in one window (0: no limit per address)
    login_window_seconds: float = 900.0
    login_lockout_seconds: float = 60.0  # the first lockout; each further one in a row lasts twice as long
    login_max_lockout_seconds: float = 3600.0
    password_checks: int = 2  # password hashes computed at once per process (argon2: 64 MiB each)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSettings:
    """The offline demo: start the provider emulators beside the hub."""

    emulators: bool = False
    emulator_host: str = "127.0.0.1"
    emulator_port: int = 8090
    admin_login: str | None = None
    admin_password: str | None = None
    agents: tuple[tuple[str, str, str], ...] = ()  # (login, password, role)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaSettings:
    """Where attachments are kept (``hub/media``): a directory (``path``) or an S3-compatible bucket (``url``).
    Neither set: a ``media/`` folder beside the SQLite file; a PostgreSQL hub must name one (see
    ``hub.media.open_blob_store``)."""

    path: str | None = None
    url: str | None = None  # s3://bucket/prefix
    endpoint_url: str | None = None  # an S3-compatible server; None: AWS
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    keep_days: int = 0  # 0: kept until their contact's data is deleted
    max_bytes: int = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    """``/metrics`` (hub/metrics.py): behind a bearer ``token``, or on a listener of its own (``port``, on
    ``host``), or both. Neither set: served to loopback clients only (docs/operations.md)."""

    token: str | None = None
    port: int | None = None  # 0: any free port (tests)
    host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditSettings:
    """The audit log (hub/audit.py): entries older than ``keep_days`` are swept away."""

    keep_days: int = 365
    sweep_seconds: float = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportsSettings:
    """``[reports]``: ``timezone``, the IANA zone whose hours and days reports count in unless a request names
    another (``?tz=``), and whose midnight starts today's service level (docs/reports.md)."""

    timezone: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return named_zone(self.timezone)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database_url: str = "sqlite:///channelhub.db"
    database_pool_size: int | None = None  # connections per process; None: 20 on PostgreSQL, 10 on SQLite
    queues: tuple[Queue, ...] = ()
    statuses: tuple[Status, ...] = ()
    accounts: tuple[ChannelAccount, ...] = ()
    account_rate_limits: Mapping[str, float] = field(default_factory=dict)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    rooms: RoomsSettings = field(default_factory=RoomsSettings)  # co-browsing rooms (hub/room_settings.py)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    reports: ReportsSettings = field(default_factory=ReportsSettings)
    bots: tuple[BotSettings, ...] = ()  # [[bots]] (hub/bot_settings.py)
    queue_hours: Mapping[str, BusinessHours] = field(default_factory=dict)  # [queues.hours] (hub/hours.py)
    templates_dir: str | None = None
    log_level: str = "INFO"
    log_format: str = "auto"  # auto | json | text
    # outgoing webhooks (integrations): [[webhooks_out]] and [webhooks_delivery]
    webhooks_out: tuple[WebhookOut, ...] = ()
    webhooks_delivery: WebhooksDelivery = field(default_factory=WebhooksDelivery)

    def account(self, account_id: str) -> ChannelAccount:
        for account in self.accounts:
            if account.id == account_id:
                return account
        raise KeyError(account_id)

    def bot(self, bot_id: str) -> BotSettings:
        for bot in self.bots:
            if bot.id == bot_id:
                return bot
        raise KeyError(bot_id)

    def queue(self, queue_id: str) -> Queue:
        for queue in self.queues:
            if queue.id == queue_id:
                return queue
        raise KeyError(queue_id)

    def secrets(self) -> frozenset[str]:
        """Every secret value, so the log filter can redact them: every credential its provider does not
        declare public (all of them, for a provider that is not installed)."""
        facts = provider_facts()
        values = {
            value
            for account in self.accounts
            for key, value in account.credentials.items()
            if value and not (account.adapter_name in facts and key in facts[account.adapter_name].public)
        }
        if self.demo.admin_password:
            values.add(self.demo.admin_password)
        values |= {value for value in (self.media.access_key, self.media.secret_key) if value}
        values |= self.rooms.secrets()
        if self.metrics.token:
            values.add(self.metrics.token)
        values |= {value for bot in self.bots for value in (bot.secret, bot.token) if value}
        values |= {hook.secret for hook in self.webhooks_out}
        return frozenset(values)


#: takes the raw configuration (environment overrides applied, ``env:`` references not yet resolved) and
#: returns the part of it to resolve and build
Narrowing = Callable[[dict[str, Any]], dict[str, Any]]


def load_settings(path: str | Path | None, environ: Mapping[str, str], *, narrow: Narrowing | None = None) -> Settings:
    """Read ``path`` (or ``CHANNELHUB_CONFIG``; none means defaults), apply the
    environment, validate everything. Raises ConfigError naming the key.

    ``narrow`` is for a command that reads only a few tables (``emulate say``): what it leaves out is
    neither resolved nor checked, so an ``env:`` secret the command never uses need not be set. ``serve``
    and every other command read the whole file, every reference resolved."""
    raw: dict[str, Any] = {}
    path = path or environ.get(f"{ENV_PREFIX}CONFIG")
    if path:
        file = Path(path)
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("config", f"file {str(file)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{file}: not valid TOML ({exc})") from None
    _apply_environment(raw, environ)
    if narrow is not None:
        raw = narrow(raw)
    raw = _resolve_env_references(raw, environ, "")
    return _build(raw)


# ----------------------------------------------------------------- environment


def _env_id(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", value).upper()


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    lists = {name for name, value in raw.items() if isinstance(value, list)} | {"accounts", "queues", "statuses"}
    lists |= {"bots", "webhooks_out"}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}CONFIG":
            continue
        rest = name[len(ENV_PREFIX) :]
        matched = False
        for list_name in lists:
            prefix = list_name.upper() + "_"
            if not rest.startswith(prefix):
                continue
            ids = []
            for entry in raw.get(list_name, []):
                if not isinstance(entry, dict) or "id" not in entry:
                    continue
                ids.append(str(entry["id"]))
                entry_prefix = prefix + _env_id(str(entry["id"])) + "_"
                if rest.startswith(entry_prefix):
                    entry[rest[len(entry_prefix) :].lower()] = value
                    matched = True
            if not matched:  # a misspelt id would leave the file's value in force without a word
                known = ", ".join(_env_id(i) for i in ids) or "none in the file"
                raise ConfigError(
                    name, f"names no [[{list_name}]] entry (their ids, as the variable spells them: {known})"
                )
        if matched:
            continue
        section, _, key = rest.partition("_")
        section = section.lower()
        for long_name in _ENV_LONG_SECTIONS:
            if rest.lower().startswith(long_name + "_"):
                section, key = long_name, rest[len(long_name) + 1 :]
        if not key or section not in (*_ENV_SECTIONS, *_OPERATIONS_SECTIONS, *_REPORTS_SECTIONS, *_ENV_LONG_SECTIONS):
            continue  # not ours to read (CHANNELHUB_REQUIRE_POSTGRES and such belong to other tools)
        if section in ("log",):
            raw[f"log_{key.lower()}"] = value
        elif section in ("templates",):
            raw[f"templates_{key.lower()}"] = value
        else:
            table = raw.setdefault(section, {})
            if isinstance(table, dict):
                table[key.lower()] = value


def _resolve_env_references(value: Any, environ: Mapping[str, str], key: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env_references(v, environ, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env_references(v, environ, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("env:"):
        variable = value[4:]
        if variable not in environ:
            raise ConfigError(key, f"refers to environment variable {variable} which is not set")
        return environ[variable]
    return value


# -------------------------------------------------------------------- building


def _build(raw: dict[str, Any]) -> Settings:
    known = {"server", "database", "queues", "statuses", "accounts", "outbox", "routing", "auth", "demo", "templates"}
    known |= {"media"}
    known |= {"rooms"}
    known |= {"metrics", "audit"}
    known |= {"reports"}
    known |= {"bots"}
    known |= {"webhooks_out", "webhooks_delivery"}
    known |= {"log_level", "log_format", "templates_dir"}
    for key in raw:
        if key not in known:
            raise ConfigError.unknown(key, known, what="section")
    server = _section(raw, "server", ServerSettings)
    if not server.read_timeout > 0:
        raise ConfigError("server.read_timeout", "must be greater than 0")
    server = replace(server, trusted_proxies=_trusted_proxies(server.trusted_proxies))
    if (problem := check_event_loop(server.event_loop)) is not None:
        raise ConfigError("server.event_loop", problem)
    database = _table(raw, "database")
    _only(database, "database", {"url", "pool_size"})
    database_url = _str(database, "database", "url", "sqlite:///channelhub.db")
    pool_size = _coerce(database["pool_size"], int, "database.pool_size") if "pool_size" in database else None
    if pool_size is not None and pool_size < 1:
        raise ConfigError("database.pool_size", "must be at least 1")
    statuses = _statuses(raw.get("statuses", []))
    queues = _queues(raw.get("queues", []), {s.id for s in statuses})
    _iframes_elsewhere(queues, server.public_url)
    accounts, rates = _accounts(raw.get("accounts", []), {q.id for q in queues})
    bots = parse_bots(raw.get("bots", []), {q.id for q in queues})
    queue_hours = {
        str(entry["id"]): parse_hours(entry["hours"], f"queues[{i}].hours")
        for i, entry in enumerate(raw.get("queues", []))
        if "hours" in entry
    }
    answered_by = bot_for_queue(bots)
    accounts = tuple(replace(a, bot=answered_by.get(a.queue)) for a in accounts)
    templates = _table(raw, "templates")
    templates_dir = raw.get("templates_dir", templates.get("dir"))
    demo_raw = _table(raw, "demo")
    demo_agents = tuple(
        (
            _str(a, f"demo.agents[{i}]", "login"),
            _str(a, f"demo.agents[{i}]", "password"),
            _str(a, f"demo.agents[{i}]", "role", "agent"),
        )
        for i, a in enumerate(demo_raw.pop("agents", []))
    )
    demo = _coerce_dataclass(DemoSettings, demo_raw, "demo", extra={"agents": demo_agents})
    log_format = str(raw.get("log_format", "auto"))
    if log_format not in ("auto", "json", "text"):
        raise ConfigError("log_format", f"{log_format!r} is not one of auto, json, text")
    return Settings(
        server=server,
        database_url=_database_url(database_url),
        database_pool_size=pool_size,
        queues=queues,
        statuses=statuses,
        accounts=accounts,
        account_rate_limits=rates,
        outbox=_section(raw, "outbox", OutboxSettings),
        routing=_section(raw, "routing", RoutingSettings),
        auth=_auth(_section(raw, "auth", AuthSettings)),
        demo=demo,
        media=_media(raw),
        rooms=rooms_settings(_table(raw, "rooms")),
        metrics=_metrics(raw, server),
        audit=_audit(raw),
        reports=_reports(raw),
        bots=bots,
        queue_hours=queue_hours,
        templates_dir=str(templates_dir) if templates_dir else None,
        log_level=str(raw.get("log_level", "INFO")).upper(),
        log_format=log_format,
        webhooks_out=parse_webhooks_out(raw.get("webhooks_out", []), {q.id for q in queues}),
        webhooks_delivery=parse_webhooks_delivery(_table(raw, "webhooks_delivery")),
    )


def _media(raw: Mapping[str, Any]) -> MediaSettings:
    media = _section(raw, "media", MediaSettings)
    if media.path is not None and media.url is not None:
        raise ConfigError("media.url", "set either media.path (a directory) or media.url (s3://...), not both")
    if media.path is not None and not media.path.strip():
        raise ConfigError("media.path", "must not be empty")
    if media.url is not None:
        bucket = media.url.removeprefix("s3://").partition("/")[0]
        if not media.url.startswith("s3://") or not bucket:
            raise ConfigError("media.url", f"{media.url!r} is not an s3://bucket/prefix URL")
    if media.endpoint_url is not None and not media.endpoint_url.startswith(("http://", "https://")):
        raise ConfigError("media.endpoint_url", f"{media.endpoint_url!r} is not an http(s) URL")
    if (media.access_key is None) != (media.secret_key is None):
        missing = "secret_key" if media.secret_key is None else "access_key"
        raise ConfigError(f"media.{missing}", "is required with the other S3 credential")
    if media.keep_days < 0:
        raise ConfigError("media.keep_days", "must be 0 (keep) or a positive number of days")
    if media.max_bytes < 1:
        raise ConfigError("media.max_bytes", "must be a positive number of bytes")
    return media


def _metrics(raw: Mapping[str, Any], server: ServerSettings) -> MetricsSettings:
    table = _table(raw, "metrics")
    _only(table, "metrics", {"token", "port", "host"})
    token = table.get("token")
    if token is not None and (not isinstance(token, str) or len(token.strip()) < 16):
        raise ConfigError("metrics.token", "must be a string of at least 16 characters")
    port = _coerce(table["port"], int, "metrics.port") if "port" in table else None
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError("metrics.port", f"{port} is not a TCP port")
    host = _str(table, "metrics", "host", "127.0.0.1")
    wildcards = {"", "0.0.0.0", "::"}  # noqa: S104 -- compared with, not bound: every address clashes
    if port and port == server.port and (host == server.host or {host, server.host} & wildcards):
        raise ConfigError("metrics.port", f"{port} is server.port on the same address: give the metrics another port")
    return MetricsSettings(token=token, port=port, host=host)


def _trusted_proxies(value: Any) -> tuple[str, ...]:
    """A list of addresses or CIDR networks (a comma-separated string from the environment), normalised."""
    entries = value.split(",") if isinstance(value, str) else value
    if not isinstance(entries, list | tuple) or not all(isinstance(e, str) for e in entries):
        raise ConfigError("server.trusted_proxies", "must be a list of addresses or CIDR networks")
    networks = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise ConfigError("server.trusted_proxies", f"{entry!r} is not an address or a CIDR network") from None
    return tuple(networks)


def _reports(raw: Mapping[str, Any]) -> ReportsSettings:
    reports = _section(raw, "reports", ReportsSettings)
    try:
        named_zone(reports.timezone)
    except ValueError as exc:
        raise ConfigError("reports.timezone", str(exc)) from None
    return reports


def _audit(raw: Mapping[str, Any]) -> AuditSettings:
    audit = _section(raw, "audit", AuditSettings)
    if audit.keep_days < 1:
        raise ConfigError("audit.keep_days", "must be at least 1 day")
    if not audit.sweep_seconds > 0:
        raise ConfigError("audit.sweep_seconds", "must be greater than 0")
    return audit


def _database_url(url: str) -> str:
    if not url.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+", "sqlite+")):
        raise ConfigError("database.url", f"{url.split(':', 1)[0]!r} is not supported; use sqlite:/// or postgresql://")
    return url


def _auth(auth: AuthSettings) -> AuthSettings:
    at_least = {
        "login_attempts": (auth.login_attempts, 1),
        "login_address_attempts": (auth.login_address_attempts, 0),
        "password_checks": (auth.password_checks, 1),
    }
    for key, (value, least) in at_least.items():
        if value < least:
            raise ConfigError(f"auth.{key}", f"must be at least {least}")
    for key in ("session_hours", "login_window_seconds", "login_lockout_seconds", "login_max_lockout_seconds"):
        if not getattr(auth, key) > 0:
            raise ConfigError(f"auth.{key}", "must be greater than 0")
    if auth.login_max_lockout_seconds < auth.login_lockout_seconds:
        raise ConfigError("auth.login_max_lockout_seconds", "must be at least auth.login_lockout_seconds")
    return auth


def _table(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return dict(value)


def _only(table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError.unknown(f"{where}.{key}", allowed)


def _section(raw: Mapping[str, Any], key: str, cls: type[T]) -> T:
    return _coerce_dataclass(cls, _table(raw, key), key)


def _coerce_dataclass(cls: type[T], table: Mapping[str, Any], where: str, extra: Mapping[str, Any] | None = None) -> T:
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    values: dict[str, Any] = dict(extra or {})
    for key, value in table.items():
        if key not in fields:
            raise ConfigError.unknown(f"{where}.{key}", fields)
        kind = type(fields[key].default) if fields[key].default is not None else str
        values[key] = _coerce(value, kind, f"{where}.{key}")
    return cls(**values)


def _coerce(value: Any, kind: type, key: str) -> Any:
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            if not isinstance(value, str | int):
                raise ValueError
            return str(value)
    except ValueError:
        raise ConfigError(key, f"{value!r} is not a valid {kind.__name__}") from None
    return value


def _str(table: Mapping[str, Any], where: str, key: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ConfigError(f"{where}.{key}", "is required")
    if not isinstance(value, str | int):
        raise ConfigError(f"{where}.{key}", "must be a string")
    return str(value)


def _check_id(value: str, key: str) -> str:
    if not _ID.match(value):
        raise ConfigError(key, f"{value!r} is not a valid id (letters, digits, '_', '-', '.')")
    return value


def _entries(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(where, "must be an array of tables ([[...]])")
    return value


def _statuses(value: Any) -> tuple[Status, ...]:
    statuses = []
    seen: set[str] = set()
    for i, entry in enumerate(_entries(value, "statuses")):
        where = f"statuses[{i}]"
        _only(entry, where, {"id", "name"})
        status_id = _check_id(_str(entry, where, "id"), f"{where}.id")
        if status_id in seen:
            raise ConfigError(f"{where}.id", f"{status_id!r} is defined twice")
        seen.add(status_id)
        statuses.append(Status(id=status_id, name=_str(entry, where, "name", status_id)))
    return tuple(statuses)


def _queues(value: Any, status_ids: set[str]) -> tuple[Queue, ...]:
    queues = []
    seen: set[str] = set()
    for i, entry in enumerate(_entries(value, "queues")):
        where = f"queues[{i}]"
        _only(
            entry,
            where,
            {"id", "name", "number", "offer_timeout", "statuses", "url_template", "transfer_back", "hours"}
            | {"iframe_url", "iframe_hosts", *_SLA_KEYS},
        )
        queue_id = _check_id(_str(entry, where, "id"), f"{where}.id")
        if queue_id in seen:
            raise ConfigError(f"{where}.id", f"{queue_id!r} is defined twice")
        seen.add(queue_id)
        timeout = _coerce(entry.get("offer_timeout", 30), int, f"{where}.offer_timeout")
        if timeout <= 0:
            raise ConfigError(f"{where}.offer_timeout", "must be a positive number of seconds")
        allowed = entry.get("statuses", [])
        if isinstance(allowed, str):
            allowed = [s.strip() for s in allowed.split(",") if s.strip()]
        for status in allowed:
            if status not in status_ids:
                raise ConfigError(f"{where}.statuses", f"{status!r} is not a configured status")
        queues.append(
            Queue(
                id=queue_id,
                name=_str(entry, where, "name", queue_id),
                number=_coerce(entry.get("number", 100 + i), int, f"{where}.number"),
                offer_timeout=timeout,
                statuses=tuple(allowed),
                url_template=entry.get("url_template"),
                transfer_back=_coerce(entry.get("transfer_back", False), bool, f"{where}.transfer_back"),
                **_iframe(entry, where),
                **_sla(entry, where),
            )
        )
    return tuple(queues)


def _iframes_elsewhere(queues: tuple[Queue, ...], public_url: str) -> None:
    """No queue's page in an iframe may come from the hub's own host: the frame runs the page's scripts
    with the page's origin, which on the hub's host could reach the console."""
    own = normalise_host(urlsplit(public_url).hostname or "")
    for i, queue in enumerate(queues):
        if own and own in queue.iframe_hosts:
            raise ConfigError(f"queues[{i}].iframe_hosts", f"{own!r} is the hub's own host (server.public_url)")


def _iframe(entry: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A queue's ``iframe_url`` and ``iframe_hosts``, the template checked against the hosts (hub.iframe)."""
    hosts = entry.get("iframe_hosts", [])
    if isinstance(hosts, str):
        hosts = [h.strip() for h in hosts.split(",") if h.strip()]
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h.strip() for h in hosts):
        raise ConfigError(f"{where}.iframe_hosts", "must be a list of host names")
    template = entry.get("iframe_url")
    if template is None:
        return {"iframe_url": None, "iframe_hosts": tuple(normalise_host(h) for h in hosts)}
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"{where}.iframe_url", "must be a URL template")
    try:
        check_iframe_template(template.strip(), hosts)
    except IframeRefused as exc:
        key = "iframe_hosts" if exc.code == "iframe_host_not_allowed" else "iframe_url"
        raise ConfigError(f"{where}.{key}", exc.message) from None
    return {"iframe_url": template.strip(), "iframe_hosts": tuple(normalise_host(h) for h in hosts)}


# ----------------------------------------------------------------- queue SLA targets (reports)

_SLA_KEYS = ("sla_accept_seconds", "sla_accept_share", "sla_first_response_seconds")


def _sla(entry: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A queue's service-level targets: positive seconds, and a share between 0 and 1; each optional."""
    found: dict[str, Any] = {}
    for key in ("sla_accept_seconds", "sla_first_response_seconds"):
        if key in entry:
            seconds = _coerce(entry[key], int, f"{where}.{key}")
            if seconds <= 0:
                raise ConfigError(f"{where}.{key}", "must be a positive number of seconds")
            found[key] = seconds
    if "sla_accept_share" in entry:
        share = _coerce(entry["sla_accept_share"], float, f"{where}.sla_accept_share")
        if not 0 <= share <= 1:
            raise ConfigError(f"{where}.sla_accept_share", "must be a share between 0 and 1 (0.8 for 80%)")
        found["sla_accept_share"] = share
    return found


def _accounts(value: Any, queue_ids: set[str]) -> tuple[tuple[ChannelAccount, ...], dict[str, float]]:
    accounts = []
    rates: dict[str, float] = {}
    seen: set[str] = set()
    for i, entry in enumerate(_entries(value, "accounts")):
        where = f"accounts[{i}]"
        account_id = _check_id(_str(entry, where, "id"), f"{where}.id")
        if account_id in seen:
            raise ConfigError(f"{where}.id", f"{account_id!r} is defined twice")
        seen.add(account_id)
        channel_name = _str(entry, where, "channel")
        try:
            channel = Channel(channel_name)
        except ValueError:
            choices = ", ".join(c.value for c in Channel)
            raise ConfigError(f"{where}.channel", f"{channel_name!r} is not one of {choices}") from None
        provider = str(entry.get("provider", "") or "")
        facts = _provider(channel, provider, where)
        queue = _str(entry, where, "queue")
        if queue not in queue_ids:
            raise ConfigError(f"{where}.queue", f"{queue!r} is not a configured queue")
        credentials = {key: _str(entry, where, key) for key in facts.credentials}
        after_close = str(entry.get("after_close", "new"))
        if after_close not in ("new", "reopen"):
            raise ConfigError(f"{where}.after_close", f"{after_close!r} is not one of new, reopen")
        allowed = {"id", "channel", "provider", "queue", "api_base", "after_close", "rate_limit", "avatar"}
        allowed |= set(facts.credentials)
        _only(entry, where, allowed)
        if "avatar" in entry:
            credentials["avatar"] = str(entry["avatar"])
        if "rate_limit" in entry:
            rates[account_id] = _coerce(entry["rate_limit"], float, f"{where}.rate_limit")
        api_base = str(entry.get("api_base") or facts.api_base).rstrip("/")
        if not api_base.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.api_base", f"{api_base!r} is not an http(s) URL")
        accounts.append(
            ChannelAccount(
                id=account_id,
                channel=channel,
                provider=facts.provider,
                queue=queue,
                api_base=api_base,
                reopen_after_close=after_close == "reopen",
                credentials=credentials,
                subscribes_on_message=facts.subscribes_on_message,
                echoes_own_sends=facts.echoes_own_sends,
            )
        )
    return tuple(accounts), rates


def _provider(channel: Channel, provider: str, where: str) -> ProviderFacts:
    """The installed provider an account entry names: its channel's only one (``provider`` left out or the
    channel's name), or the one ``provider`` names when the channel has several (WhatsApp)."""
    offered = {facts.provider: facts for facts in provider_facts().values() if facts.channel is channel}
    if not offered:
        raise ConfigError(f"{where}.channel", f"no adapter is installed for {channel.value!r}")
    if list(offered) == [channel.value]:
        if provider and provider != channel.value:
            raise ConfigError(f"{where}.provider", f"{channel.value} accounts take no provider")
        return offered[channel.value]
    if provider not in offered:
        raise ConfigError(f"{where}.provider", f"{provider or 'nothing'!r} is not one of {', '.join(sorted(offered))}")
    return offered[provider]
