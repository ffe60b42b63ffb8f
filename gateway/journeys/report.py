"""A journey as its citizen sees it: the JourneyReport XML (DSP) and the JSON (API)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from connectors.sdk import load_schema
from gateway.store.journey_models import Journey, JourneyLeg

NS = "urn:govtalk-hub:gw:journey-report:v1"
SCHEMA = Path(__file__).parent / "schemas" / "journey-report-v1.xsd"


def as_json(journey: Journey, legs: list[JourneyLeg]) -> dict[str, Any]:
    def leg_json(leg: JourneyLeg) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": leg.name,
            "class": leg.class_,
            "organisation": leg.organisation,
            "policy": leg.policy,
            "correlation_id": leg.correlation_id,
            "status": leg.state,
            "attempts": leg.attempts,
            "outcome": leg.outcome,
            "error": leg.error,
            "earlier_attempts": list(leg.history),
        }
        compensation = _compensation_of(leg, legs)
        if compensation is not None:
            out["compensation"] = leg_json(compensation)
        return out

    return {
        "id": journey.correlation_id,
        "journey": journey.kind,
        "class": journey.class_,
        "status": journey.state,
        "explanation": journey.explanation,
        "created_at": journey.created_at.isoformat(),
        "finished_at": journey.finished_at.isoformat() if journey.finished_at else None,
        "legs": [leg_json(x) for x in legs if x.compensates is None],
    }


def as_xml(journey: Journey, legs: list[JourneyLeg]) -> bytes:
    nsmap: Any = {None: NS}
    root = etree.Element(f"{{{NS}}}JourneyReport", nsmap=nsmap)

    def add(parent: etree._Element, name: str, value: str | None = None) -> etree._Element:
        el = etree.SubElement(parent, f"{{{NS}}}{name}")
        el.text = value
        return el

    def leg_xml(parent: etree._Element, name: str, leg: JourneyLeg) -> None:
        el = add(parent, name)
        add(el, "Name", leg.name)
        add(el, "Class", leg.class_)
        add(el, "Organisation", leg.organisation)
        add(el, "Policy", leg.policy)
        if leg.correlation_id:
            add(el, "CorrelationID", leg.correlation_id)
        add(el, "Status", leg.state)
        add(el, "Attempts", str(leg.attempts))
        if leg.outcome:
            add(el, "Outcome", leg.outcome)
        if leg.error:
            add(el, "Error", leg.error)
        compensation = _compensation_of(leg, legs)
        if compensation is not None:
            leg_xml(el, "Compensation", compensation)

    add(root, "CorrelationID", journey.correlation_id)
    add(root, "Journey", journey.kind)
    add(root, "Status", journey.state)
    if journey.explanation:
        add(root, "Explanation", journey.explanation)
    container = add(root, "Legs")
    for leg in legs:
        if leg.compensates is None:
            leg_xml(container, "Leg", leg)
    _schema().assertValid(root)
    return etree.tostring(root, encoding="UTF-8")


def _compensation_of(leg: JourneyLeg, legs: list[JourneyLeg]) -> JourneyLeg | None:
    if leg.compensates is not None:
        return None
    return next((x for x in legs if x.compensates == leg.position), None)


@cache
def _schema() -> etree.XMLSchema:
    return load_schema(SCHEMA)
