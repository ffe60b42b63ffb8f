"""Hub configuration: one TOML file, every option with a sane default."""

from __future__ import annotations

import json
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from gateway.errors import ConfigError
from gateway.routing.bvpi157 import InteractionType, parse_type

DEMO_COUNCILS: dict[str, str] = {
    "E08000024": "Sunderland City Council",
    "E07000188": "Sedgemoor District Council",
}
DEMO_CLASSES = ("LA-CTAX-VIEW", "LA-CTAX-SPD", "LA-CTAX-CLOSE", "LA-CTAX-REOPEN", "LA-CTAX-OPEN")
# The simulated electoral registration service notified when a citizen moves to Sunderland, and
# the hub's own joined-up service (change of address) that drives the legs.
DEMO_ELECTORAL = "ER-E08000024"
DEMO_ELECTORAL_COUNCIL = "E08000024"  # whose electoral registration officer runs it
DEMO_JOURNEYS = "GW"
# The demo services' BVPI 157 interaction types: viewing an account is information; discounts
# and opening or closing an account are the council collecting its tax (as would paying it be).
DEMO_BVPI157: dict[str, InteractionType] = {
    "LA-CTAX-VIEW": InteractionType.PROVIDING_INFORMATION,
    "LA-CTAX-SPD": InteractionType.COLLECTING_REVENUE,
    "LA-CTAX-CLOSE": InteractionType.COLLECTING_REVENUE,
    "LA-CTAX-REOPEN": InteractionType.COLLECTING_REVENUE,
    "LA-CTAX-OPEN": InteractionType.COLLECTING_REVENUE,
}


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080  # plain HTTP, for password clients and the CRL/OCSP URLs; keep it on loopback
    https_port: int = 8443  # HTTPS with optional client certificates; 0 turns it off
    # Base URL clients can reach the hub at; empty means derive it from each request's Host.
    public_url: str = ""
    max_body_bytes: int = 4 * 1024 * 1024
    default_poll_interval: int = 1
    # Let POST /admin/clock move the hub's time (scenarios testing expiry and lockout against a
    # running hub). Never in production: it moves every expiry the hub enforces.
    movable_clock: bool = False


@dataclass(frozen=True, slots=True)
class PkiConfig:
    """The hub's development PKI and how client certificates are checked."""

    dir: str = "certs"  # relative to base_dir
    # Base URL written into issued certificates for the CRL and OCSP (AIA) URLs; empty means
    # http://127.0.0.1:<server.http_port>.
    base_url: str = ""
    hosts: tuple[str, ...] = ()  # extra DNS names / IPs for the server certificate
    # A revocation status that cannot be obtained, or is stale, refuses the certificate unless
    # fail_open is set.
    fail_open: bool = False
    status_timeout: float = 2.0
    # Signed envelopes: how long a seen signature is remembered against replay.
    replay_window_seconds: float = 86400


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    # Empty: $GATEWAY_DATABASE_URL if set (containers, CI), else sqlite+aiosqlite:///<data_dir>/gateway.db
    url: str = ""
    echo: bool = False


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    response_days: float = 60
    error_days: float = 30
    purge_interval_seconds: float = 3600


@dataclass(frozen=True, slots=True)
class AuthConfig:
    allow_md5: bool = True


@dataclass(frozen=True, slots=True)
class EnrolmentConfig:
    """Enrolment with known facts and activation PINs sent by post."""

    max_attempts: int = 3  # failed attempts (wrong facts or PINs) before the enrolment locks
    lockout_minutes: float = 30  # how long a locked enrolment stays locked
    pin_days: float = 28  # how long a posted activation PIN stays valid
    letter_days: float = 7  # when the post is expected to arrive (informational)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """A URL payment events are POSTed to, signed with its secret (Gateway-Signature)."""

    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class PaymentsConfig:
    """The payment service (GOV.UK Pay-like); see gateway/services/payments/."""

    webhooks: tuple[WebhookConfig, ...] = ()
    # Council code -> bearer token a council system uses on /api/payments (loopback needs none).
    api_tokens: dict[str, str] = field(default_factory=dict)
    expiry_minutes: float = 90  # created/started payments older than this become expired
    idempotency_hours: float = 24  # how long an Idempotency-Key is remembered
    sender_interval_seconds: float = 5  # how often the background task looks for due work
    webhook_timeout_seconds: float = 10
    # How long a council's connector may take to accept a payment notification; then it is
    # retried with backoff, and the citizen's payment page does not wait on it any longer.
    notify_timeout_seconds: float = 10
    # A notification the council's connector has refused for this long after the payment is
    # given up on (audited, shown as failed) rather than retried for ever; the council can ask
    # for it again (POST /api/payments/{id}/notify).
    notify_give_up_hours: float = 72


@dataclass(frozen=True, slots=True)
class MailConfig:
    """Secure mail; see gateway/services/mail/service.py and gateway/web/mail_views.py."""

    # Key id -> base64 of 32 bytes (AES-256-GCM). Empty: a key derived from <data_dir>/mail.key,
    # created on first use (development). New messages use current_key; old ones keep theirs.
    keys: dict[str, str] = field(default_factory=dict)
    current_key: str = ""
    capacity: int = 100  # messages a mailbox holds (unexpired, undeleted, to the citizen)
    default_expiry_days: float | None = None  # applied when a sender gives no expiry
    pin_letters_to_mailbox: bool = False  # activation PIN letters also go to the mailbox
    # Council code -> bearer token for /api/council/mail. Empty: loopback peers only, naming
    # their organisation in an X-Council header (development).
    council_tokens: dict[str, str] = field(default_factory=dict)
    expiry_interval_seconds: float = 60  # how often unread expired messages are looked for


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    concurrency: int = 32
    # At most this many of the concurrency slots go to any one connector, so a slow or hanging
    # back office cannot hold up the others.
    per_connector: int = 16
    idle_poll_seconds: float = 0.5
    lease_margin_seconds: float = 10
    # While a connector's work queues, acknowledgements ask clients to wait about as long as the
    # submission still has to wait (above the route's poll_interval), up to this many seconds;
    # 0 keeps every route's poll_interval as it is.
    max_poll_interval: int = 60


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Request rate and authentication-failure limits."""

    # Where the counts are kept: "memory" (this process) or "redis" (shared by every worker and
    # host naming the same redis_url and redis_prefix).
    store: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "gateway:limits"

    # Requests per minute from one address (all paths but /health and /ready); 0: no limit.
    requests_per_minute: int = 1200
    # Failed authentications (wrong password, refused certificate or signature, Keys not
    # enrolled) within the window, per sender and per address, before a lockout.
    auth_failures_per_sender: int = 10
    auth_failures_per_address: int = 50
    auth_failure_window_minutes: float = 15
    lockout_minutes: float = 15
    # Loopback peers (a laptop, a CI runner) are not rate limited or locked out by address;
    # per-sender lockout still applies. Set false to test the limits locally.
    exempt_loopback: bool = True
    # Envelopes nested deeper than this are refused (1001) while parsing.
    max_xml_depth: int = 64


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """Who may use the admin console (/console) and the admin API (/admin)."""

    # Loopback peers are admins without credentials (a laptop, CI). Behind a reverse proxy on
    # the same host every peer looks local: set false there.
    allow_loopback: bool = True
    # Credentials for the console's sign-in form and HTTP Basic on /admin: a user name and a
    # scrypt hash from `gateway admin hash-password` (or GATEWAY_ADMIN_PASSWORD_HASH). Empty: none.
    user: str = "admin"
    password_hash: str = ""
    # SHA-256 fingerprints (hex) of client certificates from the hub's PKI that are admins.
    certificate_fingerprints: tuple[str, ...] = ()
    session_minutes: float = 60  # a console sign-in lasts this long
    # Let the console show secure messages' subjects and bodies (Services → Messages). Off: the
    # console shows mail as metadata only (who, to whom, when, read or not).
    show_mail_content: bool = False


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """The tamper-evident audit trail."""

    checkpoint_seconds: float = 60  # how often the chain's head is signed (if it moved)
    keep_bodies: bool = True  # keep request/response bodies beside their digests
    body_days: float = 30  # how long kept bodies stay; the digests stay in the chain for good
    flush_seconds: float = 0.05  # events are written in batches at most this far apart


@dataclass(frozen=True, slots=True)
class SsoConfig:
    """Single sign-on: the hub as an OpenID Connect provider for council portals."""

    # The issuer URL portals discover; empty: https://localhost:<https_port>, or the plain
    # listener's URL when HTTPS is off. It must be the URL portals and browsers reach.
    issuer: str = ""
    session_minutes: float = 480  # one sign-in lasts this long, across every portal
    code_seconds: float = 60
    access_token_minutes: float = 10
    id_token_minutes: float = 10
    # After `gateway sso keys rotate`, the old key stays in the JWKS this long so tokens it
    # signed still verify at the portals.
    retired_key_days: float = 2
    backchannel_timeout: float = 5  # seconds per back-channel logout delivery
    # How often failed back-channel logouts are tried again (backing off per portal, given up
    # on 12 hours after the sign-out).
    backchannel_retry_seconds: float = 10


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """One connector instance: an entry-point name (type) and its options."""

    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """Where (Class, Organisation) goes, and how it is served."""

    class_: str
    organisation: str
    connector: str
    organisation_name: str = ""
    # GatewayTest=1 submissions go here instead (the council's test back office), as the Gateway
    # sent them to the service's test system; None: to `connector`, told gateway_test.
    test_connector: str | None = None
    poll_interval: int = 1
    timeout: float = 10
    retries: int = 3
    backoff: float = 0.5
    mode: Literal["async", "sync"] = "async"
    # 0: anyone; 1: user ID + password (or stronger) and Keys of an active enrolment;
    # 2: a certificate, by mutual TLS or a signed envelope, and the Keys.
    auth_level: float = 1
    # "ignore" (auth_level 0 only): like the Gateway's local test tool, whatever credentials or
    # client certificate a submission carries are neither checked nor recorded, so a client set
    # up with live credentials can be tried against the hub as it is.
    credentials: Literal["check", "ignore"] = "check"
    allow_sha1: bool = False  # accept SHA-1 XML signatures on this class (logged)
    # False: level 1/2 needs a signed-on citizen but no enrolment Keys (hub services such as the
    # joined-up GW-CHANGE-OF-ADDRESS, which check the enrolments their legs need themselves).
    keys_required: bool = True
    # The service's BVPI 157 interaction type (`gateway report bvpi157`); None: not declared,
    # so the service counts towards no type (the report and `gateway serve` say so).
    bvpi157: InteractionType | None = None
    # The council whose BVPI 157 figures the service counts towards: None, the organisation
    # itself; a code, that council's (a council's own service under an organisation code of its
    # own, such as its electoral registration officer); "", no council's (the hub's own).
    council: str | None = None

    def serving(self, gateway_test: bool) -> RouteConfig:
        """The route as one submission takes it: a test one to `test_connector`, when set."""
        if gateway_test and self.test_connector:
            return replace(self, connector=self.test_connector)
        return self


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("var")
    # Relative paths in connector options (schemas, CA files) resolve against this: the
    # configuration file's directory, or the working directory without a file.
    base_dir: Path = Path(".")
    demo: bool = True
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    pki: PkiConfig = field(default_factory=PkiConfig)
    dispatcher: DispatcherConfig = field(default_factory=DispatcherConfig)
    enrolment: EnrolmentConfig = field(default_factory=EnrolmentConfig)
    payments: PaymentsConfig = field(default_factory=PaymentsConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    sso: SsoConfig = field(default_factory=SsoConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    connectors: tuple[ConnectorConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()

    @property
    def sso_issuer(self) -> str:
        if self.sso.issuer:
            return self.sso.issuer.rstrip("/")
        if self.server.https_port:
            return f"https://localhost:{self.server.https_port}"
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def pki_dir(self) -> Path:
        return self.base_dir / self.pki.dir

    @property
    def pki_base_url(self) -> str:
        return self.pki.base_url.rstrip("/") or f"http://127.0.0.1:{self.server.port}"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.data_dir / 'gateway.db'}"


def demo_connectors() -> tuple[ConnectorConfig, ...]:
    councils = tuple(
        ConnectorConfig(name=f"council-{code}", type="simulated-council", options={"council": code})
        for code in DEMO_COUNCILS
    )
    return (
        *councils,
        ConnectorConfig(
            name="electoral-E08000024",
            type="electoral-registration",
            options={"organisation": DEMO_ELECTORAL},
        ),
        ConnectorConfig(name="journeys", type="journey", options={"check_seconds": 1.0}),
    )


def demo_routes() -> tuple[RouteConfig, ...]:
    councils = tuple(
        RouteConfig(
            class_=class_,
            organisation=code,
            organisation_name=name,
            connector=f"council-{code}",
            bvpi157=DEMO_BVPI157[class_],
        )
        for code, name in DEMO_COUNCILS.items()
        for class_ in DEMO_CLASSES
    )
    return (
        *councils,
        RouteConfig(
            class_="ER-NOTIFY-MOVE",
            organisation=DEMO_ELECTORAL,
            organisation_name="Electoral Registration, Sunderland",
            connector="electoral-E08000024",
            retries=0,
            # Keeping the register of electors is a statutory registration, and Sunderland's.
            bvpi157=InteractionType.REGULATION,
            council=DEMO_ELECTORAL_COUNCIL,
        ),
        RouteConfig(
            class_="GW-CHANGE-OF-ADDRESS",
            organisation=DEMO_JOURNEYS,
            organisation_name="Government Gateway",
            connector="journeys",
            # Each delivery asks "is the journey final yet?" and counts as an attempt.
            retries=100000,
            keys_required=False,
            # The citizen asks for their services to move with them; a service of the hub's
            # own, not of any one council.
            bvpi157=InteractionType.APPLICATIONS,
            council="",
        ),
    )


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value


# The authentication levels the hub implements. The Gateway's scheme also has 1.5 (user ID,
# password and a security phrase) and 3; a route naming them would be served as 1 or 2 without
# a word, so they are refused.
AUTH_LEVELS = (0, 1, 2)

# The lowest (and highest) value of each numeric setting that takes other than "above 0", the
# rule for the rest: durations, intervals, timeouts and sizes, where 0 would spin a background
# task, expire everything at once or admit nothing.
_BOUNDS: dict[tuple[type[Any], str], tuple[float, float | None]] = {
    (ServerConfig, "port"): (1, 65535),
    (ServerConfig, "https_port"): (0, 65535),  # 0: HTTPS off
    (EnrolmentConfig, "lockout_minutes"): (0, None),
    (EnrolmentConfig, "pin_days"): (0, None),
    (EnrolmentConfig, "letter_days"): (0, None),
    (DispatcherConfig, "lease_margin_seconds"): (0, None),
    (DispatcherConfig, "max_poll_interval"): (0, None),  # 0: pacing off
    (LimitsConfig, "requests_per_minute"): (0, None),  # 0: no limit
    (LimitsConfig, "auth_failures_per_sender"): (0, None),  # 0: no lockout by sender
    (LimitsConfig, "auth_failures_per_address"): (0, None),
    (LimitsConfig, "lockout_minutes"): (0, None),
    (AuditConfig, "body_days"): (0, None),
    (AuditConfig, "flush_seconds"): (0, None),  # 0: each event written as it comes
    (RouteConfig, "retries"): (0, None),
    (RouteConfig, "backoff"): (0, None),
    (RouteConfig, "auth_level"): (0, None),  # and one of AUTH_LEVELS (_route checks first)
}


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    # Resolved once: the annotations are text (postponed), and parse_config runs in every test.
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _shown(value: Any) -> str:
    """A value as it was written in TOML, for an error message."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _conform(value: Any, hint: Any, name: str, bounds: tuple[float, float | None] | None) -> Any:
    """value as a setting of type `hint` holds it (an array as a tuple); ConfigError naming
    `name` when it is of another type (TOML has no coercions: "10" is not 10, nor "false"
    false) or out of `bounds` (None: above 0)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        if value is None:
            return None
        (hint,) = (arg for arg in args if arg is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        choices = " or ".join(repr(arg) for arg in args)
        raise ConfigError(f"{name} must be {choices}, not {_shown(value)}")
    if hint in (int, float):
        return _number(value, whole=hint is int, name=name, bounds=bounds)
    if origin is tuple:
        item = args[0]
        if isinstance(value, list | tuple) and all(isinstance(v, item) for v in value):
            return tuple(value)
        what = "strings" if item is str else f"{item.__name__} entries"
        raise ConfigError(f"{name} must be a list of {what}, not {_shown(value)}")
    if origin is dict:
        if isinstance(value, dict) and (args[1] is not str or _all_str(value)):
            return value
        what = "a table of strings" if args[1] is str else "a table"
        raise ConfigError(f"{name} must be {what}, not {_shown(value)}")
    if hint is Any or isinstance(value, hint):
        return value
    what = {bool: "true or false", str: "a string"}.get(hint, f"a {hint.__name__}")
    raise ConfigError(f"{name} must be {what}, not {_shown(value)}")


def _all_str(table: dict[Any, Any]) -> bool:
    return all(isinstance(k, str) and isinstance(v, str) for k, v in table.items())


def _number(
    value: Any, *, whole: bool, name: str, bounds: tuple[float, float | None] | None
) -> Any:
    lowest, highest = bounds if bounds is not None else (0, None)
    above = bounds is None
    kind = "a whole number" if whole else "a number"
    if highest is not None:
        rule = f"{kind} from {lowest:g} to {highest:g}"
    elif above:
        rule = f"{kind} above {lowest:g}"
    else:
        rule = f"{kind} of at least {lowest:g}"
    # bool is an int to Python; TOML's true is no number.
    numeric = not isinstance(value, bool) and isinstance(value, int if whole else int | float)
    if (
        not numeric
        or not math.isfinite(value)
        or value < lowest
        or (above and value == lowest)
        or (highest is not None and value > highest)
    ):
        raise ConfigError(f"{name} must be {rule}, not {_shown(value)}")
    return value


def _checked(cls: type[Any], raw: dict[str, Any], where: str) -> dict[str, Any]:
    """raw's settings checked against cls's fields' types (and _BOUNDS), as cls takes them."""
    hints = _hints(cls)
    return {
        key: _conform(value, hints[key], f"{where}: {key}", _BOUNDS.get((cls, key)))
        for key, value in raw.items()
    }


def _build(cls: type[Any], raw: dict[str, Any], where: str) -> Any:
    known = set(cls.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
    data = _checked(cls, raw, where)
    try:
        return cls(**data)
    except TypeError as exc:  # a required option missing
        raise ConfigError(f"{where}: {exc}") from exc


def _payments(raw: dict[str, Any]) -> PaymentsConfig:
    data = dict(raw)
    hooks = data.get("webhooks", [])
    if not isinstance(hooks, list) or not all(isinstance(h, dict) for h in hooks):
        raise ConfigError("[payments]: webhooks must be an array of {url, secret} tables")
    built = []
    for i, hook in enumerate(hooks):
        webhook: WebhookConfig = _build(WebhookConfig, hook, f"[payments] webhooks[{i}]")
        if not webhook.url.startswith(("http://", "https://")) or not webhook.secret:
            raise ConfigError(f"[payments] webhooks[{i}]: needs an http(s) url and a secret")
        built.append(webhook)
    data["webhooks"] = tuple(built)
    payments: PaymentsConfig = _build(PaymentsConfig, data, "[payments]")
    if not all(payments.api_tokens.values()):
        raise ConfigError("[payments]: api_tokens must map council codes to non-empty tokens")
    return payments


def _mail(raw: dict[str, Any]) -> MailConfig:
    import base64
    import binascii

    mail: MailConfig = _build(MailConfig, raw, "[mail]")
    for name in ("keys", "council_tokens"):
        if not all(getattr(mail, name).values()):
            raise ConfigError(f"[mail]: {name} must map names to non-empty strings")
    for key_id, encoded in mail.keys.items():
        try:
            key = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            key = b""
        if len(key) != 32:
            raise ConfigError(f"[mail]: key '{key_id}' must be the base64 of 32 bytes")
    if mail.keys and mail.current_key not in mail.keys:
        raise ConfigError("[mail]: current_key must name one of [mail] keys")
    if not mail.keys and mail.current_key:
        raise ConfigError("[mail]: current_key is set but no keys are configured")
    return mail


def _route(raw: Any, index: int) -> RouteConfig:
    where = f"routes[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table ([[routes]]), not {_shown(raw)}")
    data = dict(raw)
    if "class" not in data:
        raise ConfigError(f"{where}: 'class' is required")
    data["class_"] = data.pop("class")
    for required in ("class_", "organisation", "connector"):
        shown = required.rstrip("_")
        if required not in data:
            raise ConfigError(f"{where}: '{shown}' is required")
        if not isinstance(data[required], str) or not data[required]:
            raise ConfigError(
                f"{where}: {shown} must be a non-empty string, not {_shown(data[required])}"
            )
    where = f"{where} ({data['class_']} @ {data['organisation']})"
    if "bvpi157" in data:
        try:
            data["bvpi157"] = parse_type(data["bvpi157"])
        except ValueError as exc:
            raise ConfigError(f"{where}: bvpi157 {exc}") from None
    if "council" in data and not isinstance(data["council"], str):
        raise ConfigError(
            f'{where}: council must be a council\'s organisation code, or "" for a service '
            "that counts towards no council"
        )
    level = data.get("auth_level", 1)
    if isinstance(level, bool) or not isinstance(level, int | float) or level not in AUTH_LEVELS:
        raise ConfigError(
            f"{where}: auth_level must be 0, 1 or 2, the levels this hub implements (not the "
            f"Gateway's 1.5, password and security phrase, nor 3), not {_shown(level)}"
        )
    route: RouteConfig = _build(RouteConfig, data, where)
    if route.credentials == "ignore" and route.auth_level > 0:
        raise ConfigError(
            f'{where}: credentials = "ignore" needs auth_level = 0 (it is {route.auth_level:g}): '
            "a service that needs a sign-on must check it"
        )
    return route


def _connectors(raw: dict[str, Any]) -> tuple[ConnectorConfig, ...]:
    out = []
    for name, table in raw.items():
        if not isinstance(table, dict) or not isinstance(table.get("type"), str):
            raise ConfigError(
                f"[connectors.{name}] needs a 'type' (a gateway.connectors entry point's name)"
            )
        options = {k: v for k, v in table.items() if k != "type"}
        out.append(ConnectorConfig(name=name, type=table["type"], options=options))
    return tuple(out)


DATABASE_URL_ENV = "GATEWAY_DATABASE_URL"
# The drivers the hub's stores are written for: its hot paths speak aiosqlite's sqlite3 and
# asyncpg directly (gateway/store/sqlite_lane.py, pg_lane.py).
DATABASE_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")


def _database(raw: dict[str, Any]) -> DatabaseConfig:
    """[database]; a url from the environment when the file names none (12-factor deployments)."""
    database: DatabaseConfig = _build(DatabaseConfig, raw, "[database]")
    where = "[database]: url"
    if not database.url and os.environ.get(DATABASE_URL_ENV):
        database = replace(database, url=os.environ[DATABASE_URL_ENV])
        where = f"${DATABASE_URL_ENV}"
    if database.url:
        _check_database_url(database.url, where)
    return database


def _check_database_url(url: str, where: str) -> None:
    # Only the scheme is ever shown: the rest may hold a password.
    scheme, sep, rest = url.partition("://")
    supported = (
        "sqlite+aiosqlite:///PATH (SQLite) or postgresql+asyncpg://USER@HOST/DATABASE "
        "(PostgreSQL), the databases the hub supports"
    )
    if not sep or scheme not in DATABASE_SCHEMES:
        raise ConfigError(f"{where} must be {supported}, not {f'{scheme}://…' if sep else 'this'}")
    if scheme.startswith("sqlite") and rest.split("?")[0] in ("", "/", "/:memory:"):
        # Each engine would have an in-memory database of its own: nothing written is read.
        raise ConfigError(f"{where} must name a SQLite file (sqlite+aiosqlite:///PATH)")


ADMIN_USER_ENV, ADMIN_PASSWORD_HASH_ENV = "GATEWAY_ADMIN_USER", "GATEWAY_ADMIN_PASSWORD_HASH"


def _admin(raw: dict[str, Any]) -> AdminConfig:
    """[admin]; credentials may come from the environment (kept out of the file)."""
    data = dict(raw)
    for key, env in (("user", ADMIN_USER_ENV), ("password_hash", ADMIN_PASSWORD_HASH_ENV)):
        if os.environ.get(env):
            data[key] = os.environ[env]
    admin: AdminConfig = _build(AdminConfig, data, "[admin]")
    # Fingerprints are compared as lower-case hex; people paste them with colons, in capitals.
    fingerprints = tuple(f.lower().replace(":", "") for f in admin.certificate_fingerprints)
    return replace(admin, certificate_fingerprints=fingerprints)


def parse_config(raw: dict[str, Any], *, base_dir: Path | None = None) -> Config:
    """Build a Config from a TOML document's data; unknown keys are errors, not silence."""
    top_known = {
        "data_dir", "demo", "server", "database", "retention", "auth", "pki", "dispatcher",
        "connectors", "routes", "enrolment", "payments", "mail", "sso", "audit", "limits",
        "admin",
    }  # fmt: skip
    unknown = set(raw) - top_known
    if unknown:
        raise ConfigError(f"unknown top-level option(s): {', '.join(sorted(unknown))}")
    data_dir_raw = raw.get("data_dir", "var")
    if not isinstance(data_dir_raw, str | os.PathLike):
        raise ConfigError(f"data_dir must be a string (a directory), not {_shown(data_dir_raw)}")
    data_dir = Path(data_dir_raw)
    if base_dir is not None and not data_dir.is_absolute():
        data_dir = base_dir / data_dir
    demo = _conform(raw.get("demo", True), bool, "demo", None)
    connectors = _connectors(_section(raw, "connectors"))
    routes_raw = raw.get("routes", [])
    if not isinstance(routes_raw, list):
        raise ConfigError("routes must be an array of tables ([[routes]])")
    routes = tuple(_route(r, i) for i, r in enumerate(routes_raw))
    if demo:
        # The demo councils come first so a file can add routes without restating them.
        defined = {c.name for c in connectors}
        connectors = tuple(c for c in demo_connectors() if c.name not in defined) + connectors
        taken = {(r.class_, r.organisation) for r in routes}
        routes = tuple(r for r in demo_routes() if (r.class_, r.organisation) not in taken) + routes
    config = Config(
        data_dir=data_dir,
        base_dir=base_dir or Path("."),
        demo=demo,
        server=_build(ServerConfig, _section(raw, "server"), "[server]"),
        database=_database(_section(raw, "database")),
        retention=_build(RetentionConfig, _section(raw, "retention"), "[retention]"),
        auth=_build(AuthConfig, _section(raw, "auth"), "[auth]"),
        pki=_build(PkiConfig, _section(raw, "pki"), "[pki]"),
        dispatcher=_build(DispatcherConfig, _section(raw, "dispatcher"), "[dispatcher]"),
        enrolment=_build(EnrolmentConfig, _section(raw, "enrolment"), "[enrolment]"),
        payments=_payments(_section(raw, "payments")),
        mail=_mail(_section(raw, "mail")),
        sso=_build(SsoConfig, _section(raw, "sso"), "[sso]"),
        audit=_build(AuditConfig, _section(raw, "audit"), "[audit]"),
        limits=_build(LimitsConfig, _section(raw, "limits"), "[limits]"),
        admin=_admin(_section(raw, "admin")),
        connectors=connectors,
        routes=routes,
    )
    _check_references(config)
    return config


def _check_references(config: Config) -> None:
    names = {c.name for c in config.connectors}
    for route in config.routes:
        for named in (route.connector, route.test_connector):
            if named is not None and named not in names:
                raise ConfigError(
                    f"route {route.class_} @ {route.organisation} names connector "
                    f"'{named}', which is not defined under [connectors]"
                )
    seen: set[tuple[str, str]] = set()
    for route in config.routes:
        key = (route.class_, route.organisation)
        if key in seen:
            raise ConfigError(f"route {route.class_} @ {route.organisation} is defined twice")
        seen.add(key)


def load_config(path: Path | None) -> Config:
    """Read the TOML file at path; None gives the defaults (demo councils, SQLite under var/)."""
    if path is None:
        return parse_config({})
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_config(raw, base_dir=path.parent)
