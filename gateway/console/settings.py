"""Console: the route table, the effective configuration (secrets redacted) and BVPI 157.

Redaction is by name and by shape, and errs towards hiding: any option whose name says token,
secret, password, key, credential or auth (in any table, connector options included) shows only
that it is set; any URL's password (database, Redis, webhook and back-office URLs) is replaced.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit

from aiohttp import web

from gateway.console.paging import page_number, slice_page
from gateway.reports import bvpi157_report
from gateway.routing.bvpi157 import VOLUMES_NOTE, Bvpi157Report, UnknownCouncil, council_names

if TYPE_CHECKING:
    from gateway.config import Config, RouteConfig
    from gateway.store.engine import Database

REDACTED = "•••••• (set, not shown)"
REDACTED_SHORT = "••••••"
SECRET_NAME = re.compile(
    r"token|secret|passw|pwd|key|credential|auth(?!_level|_method)|cookie|signature|private",
    re.IGNORECASE,
)
# Names that match SECRET_NAME but hold no secret, shown as they are.
NOT_SECRET = frozenset({"current_key", "keys_required", "auth_level", "allow_md5"})
URL_IN_TEXT = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Setting:
    """One effective option: `name` is its dotted path (mail.keys, connectors.x.token)."""

    section: str
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class RouteLine:
    class_: str
    organisation: str
    organisation_name: str
    connector: str
    connector_type: str
    test_connector: str | None
    auth_level: float
    credentials: str
    keys_required: bool
    bvpi157: str  # the type's label, or "" when the route declares none
    mode: str
    timeout: float
    retries: int
    backoff: float
    poll_interval: int


def redact_url(url: str) -> str:
    """The URL without its password, and without values of query parameters that look secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return REDACTED
    out = url
    # Edited in place, not rebuilt: urlunsplit would turn sqlite:///x into sqlite:/x.
    if parts.password is not None and host is not None:
        port = f":{parts.port}" if parts.port is not None else ""
        out = out.replace(parts.netloc, f"{parts.username or ''}:{REDACTED_SHORT}@{host}{port}", 1)
    if parts.query:
        # Pair by pair as written, so what is not secret reads exactly as configured.
        query = "&".join(
            f"{pair.split('=', 1)[0]}={REDACTED_SHORT}"
            if SECRET_NAME.search(unquote_plus(pair.split("=", 1)[0]))
            else pair
            for pair in parts.query.split("&")
        )
        head = out.partition("?")[0]
        out = f"{head}?{query}" + (f"#{parts.fragment}" if parts.fragment else "")
    return out


def redact_value(name: str, value: Any) -> Any:
    """The value as the console may show it: secrets by name replaced, URLs' passwords too."""
    if name in NOT_SECRET:
        return value
    if SECRET_NAME.search(name) and not isinstance(value, (bool, int, float)):
        # Numbers and switches are never secrets (access_token_minutes, retired_key_days).
        if isinstance(value, Mapping):
            # A table of secrets (mail keys, council tokens): which exist, never what they are.
            return {str(k): REDACTED for k in value}
        return REDACTED if value not in (None, "", (), [], {}) else value
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(name, v) for v in value]
    if isinstance(value, str):
        return URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), value)
    return value


def effective_settings(config: Config) -> list[Setting]:
    """Every option of the configuration in force, redacted, by section; routes listed apart."""
    out: list[Setting] = []
    for field in dataclasses.fields(config):
        name = field.name
        value = getattr(config, name)
        if name == "routes":
            continue  # the route table has its own view
        if name == "connectors":
            for connector in value:
                section = f"connectors.{connector.name}"
                out.append(Setting(section, "type", connector.type))
                for key, option in sorted(connector.options.items()):
                    out.append(Setting(section, key, _show(redact_value(key, option))))
            continue
        if dataclasses.is_dataclass(value):
            for inner in dataclasses.fields(value):
                shown = redact_value(inner.name, _plain(getattr(value, inner.name)))
                out.append(Setting(name, inner.name, _show(shown)))
            continue
        out.append(Setting("", name, _show(redact_value(name, _plain(value)))))
    # What the hub actually connects to, which may come from the environment, not the file.
    out.append(Setting("database", "effective url", redact_url(config.database_url)))
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        if not value:
            return "(none)"
        return "; ".join(f"{k} = {_show(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return (
            ", ".join(f"{{{_show(v)}}}" if isinstance(v, Mapping) else _show(v) for v in value)
            or "(none)"
        )
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return str(value)


def route_lines(
    routes: Iterable[RouteConfig], connector_types: Mapping[str, str]
) -> list[RouteLine]:
    """The route table by organisation then class."""
    return [
        RouteLine(
            class_=r.class_,
            organisation=r.organisation,
            organisation_name=r.organisation_name,
            connector=r.connector,
            connector_type=connector_types.get(r.connector, ""),
            test_connector=r.test_connector,
            auth_level=r.auth_level,
            credentials=r.credentials,
            keys_required=r.keys_required,
            bvpi157=r.bvpi157.label if r.bvpi157 is not None else "",
            mode=r.mode,
            timeout=r.timeout,
            retries=r.retries,
            backoff=r.backoff,
            poll_interval=r.poll_interval,
        )
        for r in sorted(routes, key=lambda r: (r.organisation, r.class_))
    ]


async def bvpi157(
    db: Database, routes: Iterable[RouteConfig], *, as_of: datetime, council: str | None
) -> tuple[Bvpi157Report, str | None]:
    """The report (for one council when it is known); and why the council filter was dropped."""
    routes = tuple(routes)
    try:
        return await bvpi157_report(db, routes, as_of=as_of, council=council), None
    except UnknownCouncil as exc:
        return await bvpi157_report(db, routes, as_of=as_of), str(exc)


# --- HTTP ----------------------------------------------------------------------------------------


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/settings", settings_page)
    app.router.add_get("/console/settings/bvpi157", bvpi157_page)


async def settings_page(request: web.Request) -> web.Response:
    """The route table (filterable, paged) and the effective configuration, redacted."""
    from gateway.console import layout
    from gateway.web.keys import CONFIG, ROUTES

    config = request.app[CONFIG]
    params = {
        "organisation": request.query.get("organisation", "").strip()[:64],
        "class": request.query.get("class", "").strip()[:40],
    }
    routes = [
        r
        for r in request.app[ROUTES]
        if (not params["organisation"] or r.organisation == params["organisation"])
        and (not params["class"] or r.class_ == params["class"].upper())
    ]
    lines = route_lines(routes, {c.name: c.type for c in config.connectors})
    settings = effective_settings(config)
    sections: dict[str, list[Setting]] = {}
    for setting in settings:
        sections.setdefault(setting.section, []).append(setting)
    return await layout.render(
        request,
        "settings.html",
        section="settings",
        routes=slice_page(lines, page_number(request.query.get("page"))),
        params=params,
        sections=sections,
    )


async def bvpi157_page(request: web.Request) -> web.Response:
    """BVPI 157 per council: the types e-enabled, the percentage, volumes per type."""
    from gateway.console import layout
    from gateway.web.app import CLOCK  # here, not at the top: app.py imports the console
    from gateway.web.keys import DB, ROUTES

    council = request.query.get("council", "").strip()[:64] or None
    table = request.app[ROUTES]
    routes: tuple[RouteConfig, ...] = tuple(table)
    report, refused = await bvpi157(
        request.app[DB], routes, as_of=request.app[CLOCK](), council=council
    )
    # Councils a page at a time: a shared hub serves hundreds, each a ten-line table.
    councils = slice_page(report.councils, page_number(request.query.get("page")), 10)
    return layout.html(
        request,
        "settings_bvpi157.html",
        status=404 if refused else 200,
        section="settings",
        report=report,
        councils=councils,
        council=council or "",
        refused=refused,
        names=council_names(routes),
        note=VOLUMES_NOTE,
    )
