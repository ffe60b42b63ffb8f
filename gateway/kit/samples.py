"""Conformance samples: what `gateway connector check` sends, read from a `conformance.toml`.

A connector package ships its samples as `conformance.toml` next to the module its entry point
names, so the check finds them by the entry point alone; `--samples FILE` names another file.
Without either, the built-in samples are the example View Council Tax format that
`examples/supplier_backoffice` and the scaffolded skeleton speak.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

from lxml import etree

from connectors.sdk import BodyError, parse_body

FILE_NAME = "conformance.toml"
DEFAULT_TIMEOUT = 10.0  # the hub's default route timeout
EXAMPLE_NS = "urn:govtalk-hub:example:ctax-view:v1"

# The classes the hub simulates publish their schemas (connectors/simcouncil/schemas); they apply
# to a connector whose sample request is in the schema's namespace.
HUB_SCHEMAS: dict[str, tuple[str, str]] = {
    "LA-CTAX-VIEW": ("ctax-view-request-v1.xsd", "ctax-view-response-v1.xsd"),
    "LA-CTAX-SPD": ("ctax-spd-request-v1.xsd", "ctax-spd-response-v1.xsd"),
    "LA-CTAX-CLOSE": ("ctax-close-request-v1.xsd", "ctax-close-response-v1.xsd"),
    "LA-CTAX-REOPEN": ("ctax-reopen-request-v1.xsd", "ctax-reopen-response-v1.xsd"),
    "LA-CTAX-OPEN": ("ctax-open-request-v1.xsd", "ctax-open-response-v1.xsd"),
}

BUILTIN = f'''
[route]
class = "LA-CTAX-VIEW"
organisation = "E06000047"

[valid]
keys = {{ CTaxAccountRef = "10000002" }}
body = """<CTaxViewRequest xmlns="{EXAMPLE_NS}"><AccountReference>10000002</AccountReference></CTaxViewRequest>"""

[unknown]
keys = {{ CTaxAccountRef = "99999999" }}
body = """<CTaxViewRequest xmlns="{EXAMPLE_NS}"><AccountReference>99999999</AccountReference></CTaxViewRequest>"""
locations = ["/CTaxViewRequest/AccountReference"]
'''


class SamplesError(ValueError):
    """A conformance.toml that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: its body as the hub would deliver it, its Keys, and a class if not the route's."""

    body: bytes
    keys: Mapping[str, str] = field(default_factory=dict)
    class_: str | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class KnownFacts:
    right: Mapping[str, str]
    wrong: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Samples:
    class_: str
    organisation: str
    timeout: float
    valid: Sample
    unknown: Sample
    source: str  # the file they came from, or "built-in"
    options: Mapping[str, Any] = field(default_factory=dict)
    unknown_locations: tuple[str, ...] = ()
    request_schema: Path | None = None
    response_schema: Path | None = None
    known_facts: KnownFacts | None = None
    idempotent: Sample | None = None  # a state-changing request; None: the valid one
    read_back: Sample | None = None  # a request whose answer shows the state
    deadline: Sample | None = None  # the slowest request the supplier knows; None: the valid one
    malformed: tuple[Sample, ...] = ()

    def with_overrides(
        self,
        *,
        class_: str | None = None,
        organisation: str | None = None,
        timeout: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Samples:
        """These samples with the command line's choices on top (options are merged)."""
        return replace(
            self,
            class_=class_ or self.class_,
            organisation=organisation or self.organisation,
            timeout=self.timeout if timeout is None else timeout,
            options={**self.options, **(options or {})},
        )


def load_samples(path: Path) -> Samples:
    """Read a conformance.toml; schema paths in it are relative to its directory."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SamplesError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SamplesError(f"{path}: not valid TOML: {exc}") from exc
    return parse_samples(raw, source=str(path), base=path.parent)


def builtin_samples() -> Samples:
    return parse_samples(tomllib.loads(BUILTIN), source="built-in (example View Council Tax)")


def package_samples(entry_point: EntryPoint) -> Path | None:
    """The conformance.toml shipped beside the module an entry point names, if there is one."""
    module = entry_point.module
    package = module.rpartition(".")[0] or module
    try:
        candidate = resources.files(package) / FILE_NAME
    except (ModuleNotFoundError, TypeError):
        return None
    # Installed packages are directories on disk; anything else (a zip) has no usable path.
    return candidate if isinstance(candidate, Path) and candidate.is_file() else None


def hub_schemas(class_: str, valid: Sample) -> tuple[Path, Path] | None:
    """The hub's published schemas for class_, if the sample request is in their namespace."""
    names = HUB_SCHEMAS.get(class_)
    if names is None:
        return None
    folder = resources.files("connectors.simcouncil") / "schemas"
    request, response = (folder / names[0], folder / names[1])
    if not isinstance(request, Path) or not isinstance(response, Path):
        return None
    namespace = etree.parse(str(request)).getroot().get("targetNamespace")
    if etree.QName(parse_body(valid.body)).namespace != namespace:
        return None
    return request, response


def parse_samples(raw: Mapping[str, Any], *, source: str, base: Path | None = None) -> Samples:
    """Build Samples from a conformance.toml's data; unknown keys are errors, not silence."""
    where = _Where(source)
    where.only(
        raw,
        "",
        {"route", "options", "schemas", "valid", "unknown", "known_facts", "idempotency",
         "deadline", "malformed"},
    )  # fmt: skip
    route = where.table(raw, "route")
    where.only(route, "route", {"class", "organisation", "timeout"})
    unknown_table = where.table(raw, "unknown")
    schemas = where.table(raw, "schemas")
    where.only(schemas, "schemas", {"request", "response"})
    idempotency = where.table(raw, "idempotency")
    where.only(idempotency, "idempotency", {"request", "read_back"})
    timeout = route.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise where.error("route.timeout", "must be a number of seconds above 0")
    malformed = raw.get("malformed", [])
    if not isinstance(malformed, list):
        raise where.error("malformed", "must be an array of tables ([[malformed]])")
    samples = Samples(
        class_=where.text(route, "route.class", "class"),
        organisation=where.text(route, "route.organisation", "organisation"),
        timeout=float(timeout),
        options=where.table(raw, "options"),
        valid=where.sample(where.table(raw, "valid"), "valid", required=True),
        unknown=where.sample(
            unknown_table, "unknown", extra=frozenset({"locations"}), required=True
        ),
        unknown_locations=where.strings(unknown_table, "unknown.locations", "locations"),
        request_schema=where.path(schemas, "schemas.request", "request", base),
        response_schema=where.path(schemas, "schemas.response", "response", base),
        known_facts=where.known_facts(where.table(raw, "known_facts")),
        idempotent=where.optional_sample(idempotency, "idempotency.request", "request"),
        read_back=where.optional_sample(idempotency, "idempotency.read_back", "read_back"),
        deadline=(
            where.sample(where.table(raw, "deadline"), "deadline", required=True)
            if "deadline" in raw
            else None
        ),
        malformed=tuple(
            where.sample(
                item, f"malformed[{i}]", extra=frozenset({"name"}), required=True, named=True
            )
            for i, item in enumerate(malformed)
        ),
        source=source,
    )
    if samples.request_schema is None and samples.response_schema is None:
        found = hub_schemas(samples.class_, samples.valid)
        if found is not None:
            samples = replace(samples, request_schema=found[0], response_schema=found[1])
    return samples


def hub_body(text: str) -> bytes:
    """A sample body as the hub delivers it: the payload root re-serialised, no declaration."""
    root = parse_body(text.strip().encode("utf-8"))
    return etree.tostring(root, encoding="utf-8")


@dataclass(frozen=True, slots=True)
class _Where:
    """Reads one file's values, naming the file and key in every error."""

    source: str

    def error(self, key: str, problem: str) -> SamplesError:
        return SamplesError(f"{self.source}: {key} {problem}")

    def only(self, table: Mapping[str, Any], where: str, known: set[str]) -> None:
        unknown = set(table) - known
        if unknown:
            prefix = f"{where}." if where else ""
            names = ", ".join(prefix + name for name in sorted(unknown))
            raise SamplesError(f"{self.source}: unknown key(s) {names}")

    def table(self, raw: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return value

    def text(self, table: Mapping[str, Any], where: str, key: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.error(where, "is required (a non-empty string)")
        return value.strip()

    def strings(self, table: Mapping[str, Any], where: str, key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(where, "must be a list of strings")
        return tuple(value)

    def mapping(self, table: Mapping[str, Any], where: str, key: str) -> dict[str, str]:
        value = table.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.error(where, "must be a table of strings")
        return dict(value)

    def path(
        self, table: Mapping[str, Any], where: str, key: str, base: Path | None
    ) -> Path | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(where, "must be a file path")
        path = Path(value)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise self.error(where, f"names {path}, which does not exist")
        return path

    def sample(
        self,
        table: Mapping[str, Any],
        where: str,
        *,
        extra: frozenset[str] = frozenset(),
        required: bool = False,
        named: bool = False,
    ) -> Sample:
        if not isinstance(table, dict):
            raise self.error(where, "must be a table")
        if required and "body" not in table:
            raise self.error(f"{where}.body", "is required")
        self.only(table, where, {"body", "keys", "class", *extra})
        body = self.text(table, f"{where}.body", "body")
        try:
            delivered = hub_body(body)
        except BodyError as exc:
            raise self.error(f"{where}.body", f"is not a usable XML body: {exc}") from exc
        class_ = table.get("class")
        if class_ is not None and (not isinstance(class_, str) or not class_.strip()):
            raise self.error(f"{where}.class", "must be a non-empty string")
        name = self.text(table, f"{where}.name", "name") if named else where
        return Sample(
            body=delivered,
            keys=self.mapping(table, f"{where}.keys", "keys"),
            class_=class_.strip() if class_ else None,
            name=name,
        )

    def optional_sample(self, table: Mapping[str, Any], where: str, key: str) -> Sample | None:
        if key not in table:
            return None
        return self.sample(table[key], where, required=True)

    def known_facts(self, table: Mapping[str, Any]) -> KnownFacts | None:
        if not table:
            return None
        self.only(table, "known_facts", {"right", "wrong"})
        right = self.mapping(table, "known_facts.right", "right")
        wrong = self.mapping(table, "known_facts.wrong", "wrong")
        if not right or not wrong:
            raise self.error("known_facts", "needs both right and wrong facts")
        return KnownFacts(right=right, wrong=wrong)
