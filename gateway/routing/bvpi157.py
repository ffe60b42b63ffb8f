"""Best Value Performance Indicator 157: the ten interaction types, and which a council e-enables.

Pure: the route table and transaction counts come in, a report value goes out. Councils are the
route table's organisations, but for routes whose `council` option counts them towards another
council or none; a type is e-enabled at a council when at least one of its routes declares it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.config import RouteConfig


class InteractionType(StrEnum):
    """The ten BVPI 157 interaction types, by stable short code (the `bvpi157` route option)."""

    PROVIDING_INFORMATION = "providing-information"
    COLLECTING_REVENUE = "collecting-revenue"
    BENEFITS_GRANTS = "benefits-grants"
    CONSULTATION = "consultation"
    REGULATION = "regulation"
    APPLICATIONS = "applications"
    BOOKING = "booking"
    PAYING = "paying"
    NETWORKS = "networks"
    PROCUREMENT = "procurement"

    @property
    def label(self) -> str:
        """The indicator's own wording for this type."""
        return LABELS[self]


LABELS: dict[InteractionType, str] = {
    InteractionType.PROVIDING_INFORMATION: "Providing information",
    InteractionType.COLLECTING_REVENUE: "Collecting revenue",
    InteractionType.BENEFITS_GRANTS: "Providing benefits and grants",
    InteractionType.CONSULTATION: "Consultation",
    InteractionType.REGULATION: "Regulation (such as issuing licences)",
    InteractionType.APPLICATIONS: "Applications for services",
    InteractionType.BOOKING: "Booking venues, resources and courses",
    InteractionType.PAYING: "Paying for goods and services",
    InteractionType.NETWORKS: "Providing access to community, professional or business networks",
    InteractionType.PROCUREMENT: "Procurement",
}

CODES: tuple[str, ...] = tuple(t.value for t in InteractionType)

VOLUMES_NOTE = (
    "Transaction volumes count the submissions stored now, in any state (queued, answered, "
    "deleted but not yet purged); submissions already purged under the retention policy, and "
    "tests (GatewayTest or test in live), are not counted."
)


def parse_type(value: object) -> InteractionType:
    """The interaction type for a code; ValueError naming the valid codes otherwise."""
    if isinstance(value, str):
        try:
            return InteractionType(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a BVPI 157 interaction type; use one of {', '.join(CODES)}")


class UnknownCouncil(ValueError):
    """A report was asked for an organisation the route table does not have."""

    def __init__(self, code: str, known: Mapping[str, str]) -> None:
        listed = ", ".join(f"{c} ({name})" for c, name in known.items())
        super().__init__(f"unknown council '{code}'; the route table has: {listed}")
        self.code = code


@dataclass(frozen=True, slots=True)
class TypeLine:
    """One interaction type at one council."""

    type: InteractionType
    classes: tuple[str, ...]  # the council's routed classes declaring this type
    volume: int

    @property
    def enabled(self) -> bool:
        return bool(self.classes)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.type.value,
            "label": self.type.label,
            "enabled": self.enabled,
            "classes": list(self.classes),
            "volume": self.volume,
        }


@dataclass(frozen=True, slots=True)
class CouncilLine:
    """One council: its ten lines, and what no declared type covers."""

    code: str
    name: str
    types: tuple[TypeLine, ...]
    undeclared_classes: tuple[str, ...]  # routed without a bvpi157 type
    # Transactions no declared type covers: routes without a type, classes no longer routed.
    unclassified_volume: int

    @property
    def enabled(self) -> int:
        return sum(1 for line in self.types if line.enabled)

    @property
    def percentage(self) -> float:
        return round(100 * self.enabled / len(InteractionType), 1)

    @property
    def total_volume(self) -> int:
        return sum(line.volume for line in self.types) + self.unclassified_volume

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "enabled": self.enabled,
            "of": len(InteractionType),
            "percentage": self.percentage,
            "total_volume": self.total_volume,
            "types": [line.to_json() for line in self.types],
            "undeclared_classes": list(self.undeclared_classes),
            "unclassified_volume": self.unclassified_volume,
        }


@dataclass(frozen=True, slots=True)
class Bvpi157Report:
    as_of: datetime
    councils: tuple[CouncilLine, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "indicator": "BVPI 157",
            "as_of": self.as_of.isoformat(),
            "note": VOLUMES_NOTE,
            "types": [{"code": t.value, "label": t.label} for t in InteractionType],
            "councils": [c.to_json() for c in self.councils],
        }


def council_of(route: RouteConfig) -> str | None:
    """The council whose figures a route counts towards (the route's `council` option)."""
    if route.council is None:
        return route.organisation
    return route.council or None


def council_names(routes: Iterable[RouteConfig]) -> dict[str, str]:
    """Council code → name: the councils the routes count towards, named as the route table
    names their organisations (the code stands in for a council no route serves directly)."""
    # Here, not at the top: gateway.config imports this module for InteractionType.
    from gateway.routing.table import RouteTable

    routes = tuple(routes)
    names = RouteTable(routes).organisations()
    councils: dict[str, str] = {}
    for route in routes:
        code = council_of(route)
        if code is not None:
            councils.setdefault(code, names.get(code, code))
    return councils


def check_council(routes: Iterable[RouteConfig], council: str) -> None:
    """Raise UnknownCouncil unless some route counts towards `council`."""
    names = council_names(routes)
    if council not in names:
        raise UnknownCouncil(council, names)


def organisations_of(routes: Iterable[RouteConfig], council: str) -> set[str]:
    """The organisations whose transactions count towards `council`."""
    return {route.organisation for route in routes if council_of(route) == council}


def build_report(
    routes: Iterable[RouteConfig],
    volumes: Mapping[tuple[str, str], int],
    *,
    as_of: datetime,
    council: str | None = None,
) -> Bvpi157Report:
    """Per council (code order): each type's routed classes and volume.

    `volumes` maps (organisation, base class) to a transaction count; `council` keeps one
    council (UnknownCouncil if no route counts towards it).
    """
    routes = tuple(routes)
    names = council_names(routes)
    if council is not None and council not in names:
        raise UnknownCouncil(council, names)
    # Where a class no longer routed counts: with its organisation's (first) route.
    counted_at: dict[str, str | None] = {}
    for route in routes:
        counted_at.setdefault(route.organisation, council_of(route))
    councils = []
    for code in sorted(names):
        if council is not None and code != council:
            continue
        mine = [r for r in routes if council_of(r) == code]
        typed: dict[InteractionType, list[RouteConfig]] = {t: [] for t in InteractionType}
        for route in mine:
            if route.bvpi157 is not None:
                typed[route.bvpi157].append(route)
        lines = tuple(
            TypeLine(
                type=t,
                classes=tuple(sorted({r.class_ for r in typed[t]})),
                volume=sum(volumes.get((r.organisation, r.class_), 0) for r in typed[t]),
            )
            for t in InteractionType
        )
        declared = {(r.organisation, r.class_) for r in mine if r.bvpi157 is not None}
        unclassified = sum(
            n
            for key, n in volumes.items()
            if counted_at.get(key[0]) == code and key not in declared
        )
        councils.append(
            CouncilLine(
                code=code,
                name=names[code],
                types=lines,
                undeclared_classes=tuple(sorted(r.class_ for r in mine if r.bvpi157 is None)),
                unclassified_volume=unclassified,
            )
        )
    return Bvpi157Report(as_of=as_of, councils=tuple(councils))
