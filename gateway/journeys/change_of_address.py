"""The change-of-address journey: a citizen moves from one council to another.

    close   LA-CTAX-CLOSE  at the old council   required; undone by LA-CTAX-REOPEN
    open    LA-CTAX-OPEN   at the new council   compensate: on failure the close is undone
    notify  ER-NOTIFY-MOVE at the electoral registration service   retry (3 attempts in all)

The request, as stored and as the JSON API takes it:

    {"name": {"forename", "surname"},
     "old_council": {"organisation", "account_ref"},
     "new_council": {"organisation"},
     "new_address": {"saon"?, "paon", "street", "locality"?, "town", "postcode", "uprn"},
     "move_date": "YYYY-MM-DD",
     "electoral_registration": "ER-<new council>"?}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from lxml import etree

from connectors.electoral.connector import CLASS as ER_CLASS
from connectors.electoral.connector import build_request as er_request
from connectors.sdk import BodyError, load_schema, parse_body, schema_errors
from connectors.simcouncil.model import Address, Person
from connectors.simcouncil.move_in import CLASS as OPEN_CLASS
from connectors.simcouncil.move_in import build_open
from connectors.simcouncil.move_out import CLOSE_CLASS, REOPEN_CLASS, build_close, build_reopen
from gateway.govtalk.errors import GovTalkError
from gateway.journeys.definition import (
    Compensation,
    JourneyDefinition,
    JourneyRequestError,
    LegSpec,
)

CLASS = "GW-CHANGE-OF-ADDRESS"
KIND = "change-of-address"
NS = "urn:govtalk-hub:gw:change-of-address:v1"
SCHEMAS = Path(__file__).parent / "schemas"
ACCOUNT_KEY = "CTaxAccountRef"


# --- reading the request ---------------------------------------------------------------------


def from_xml(body: bytes) -> dict[str, Any]:
    """The JSON-shaped request from a ChangeOfAddressRequest body; 4xxx errors on a bad one."""
    try:
        root = parse_body(body)
    except BodyError as exc:
        raise RequestRejected((GovTalkError.of(4000, str(exc), locations=("/",)),)) from None
    etree.strip_tags(root, etree.Comment, etree.ProcessingInstruction)
    errors = schema_errors(
        load_schema(SCHEMAS / "change-of-address-request-v1.xsd"), root, number=4001
    )
    if errors:
        raise RequestRejected(errors)

    def t(path: str) -> str | None:
        found = root.xpath(f"string({path})", namespaces={"c": NS})
        value = " ".join(str(found).split())
        return value or None

    address = "c:NewAddress/c:BS7666Address"
    data: dict[str, Any] = {
        "name": {"forename": t("c:Name/c:Forename"), "surname": t("c:Name/c:Surname")},
        "old_council": {
            "organisation": t("c:OldCouncil/c:Organisation"),
            "account_ref": t("c:OldCouncil/c:AccountRef"),
        },
        "new_council": {"organisation": t("c:NewCouncil/c:Organisation")},
        "new_address": {
            "saon": t(f"{address}/c:SAON"),
            "paon": t(f"{address}/c:PAON"),
            "street": t(f"{address}/c:StreetDescription"),
            "locality": t(f"{address}/c:Locality"),
            "town": t(f"{address}/c:Town"),
            "postcode": t(f"{address}/c:PostCode"),
            "uprn": t(f"{address}/c:UniquePropertyReferenceNumber"),
        },
        "move_date": t("c:MoveDate"),
        "electoral_registration": t("c:ElectoralRegistration/c:Organisation"),
    }
    return normalise(data)


class RequestRejected(Exception):
    def __init__(self, errors: tuple[GovTalkError, ...]) -> None:
        super().__init__("; ".join(e.text for e in errors))
        self.errors = errors


def normalise(data: Any) -> dict[str, Any]:
    """Check a JSON-shaped request and fill defaults; JourneyRequestError names what is wrong."""
    if not isinstance(data, Mapping):
        raise JourneyRequestError("the request must be a JSON object")

    def section(name: str) -> Mapping[str, Any]:
        value = data.get(name)
        if not isinstance(value, Mapping):
            raise JourneyRequestError(f"'{name}' must be an object", f"/{name}")
        return value

    def text(where: Mapping[str, Any], path: str, key: str, *, required: bool = True) -> str | None:
        value = where.get(key)
        if value is None or value == "":
            if required:
                raise JourneyRequestError(f"'{path}/{key}' is required", f"{path}/{key}")
            return None
        if not isinstance(value, str) or len(value) > 100:
            raise JourneyRequestError(f"'{path}/{key}' must be a string", f"{path}/{key}")
        return " ".join(value.split())

    name, old, new, address = (
        section("name"),
        section("old_council"),
        section("new_council"),
        section("new_address"),
    )
    move = data.get("move_date")
    try:
        move_date = date.fromisoformat(move) if isinstance(move, str) else None
    except ValueError:
        move_date = None
    if move_date is None:
        raise JourneyRequestError("'move_date' must be a date (YYYY-MM-DD)", "/move_date")
    account_ref = (text(old, "/old_council", "account_ref") or "").upper()
    if not re.fullmatch(r"[A-Z]{3}[0-9]{8}", account_ref):
        raise JourneyRequestError(
            "'old_council/account_ref' must be a CTaxAccountRef", "/old_council/account_ref"
        )
    old_org = text(old, "/old_council", "organisation")
    new_org = text(new, "/new_council", "organisation")
    if old_org == new_org:
        raise JourneyRequestError(
            "a move within one council is not a change of council", "/new_council/organisation"
        )
    er = data.get("electoral_registration")
    if er is not None and not isinstance(er, str):
        raise JourneyRequestError("'electoral_registration' must be a string")
    return {
        "name": {
            "forename": text(name, "/name", "forename"),
            "surname": text(name, "/name", "surname"),
        },
        "old_council": {"organisation": old_org, "account_ref": account_ref},
        "new_council": {"organisation": new_org},
        "new_address": {
            "saon": text(address, "/new_address", "saon", required=False),
            "paon": text(address, "/new_address", "paon"),
            "street": text(address, "/new_address", "street"),
            "locality": text(address, "/new_address", "locality", required=False),
            "town": text(address, "/new_address", "town"),
            "postcode": (text(address, "/new_address", "postcode") or "").upper(),
            "uprn": text(address, "/new_address", "uprn"),
        },
        "move_date": move_date.isoformat(),
        "electoral_registration": er or f"ER-{new_org}",
    }


def build_xml(request: Mapping[str, Any]) -> bytes:
    """A ChangeOfAddressRequest body for a JSON-shaped request (client tooling and tests)."""
    nsmap: Any = {None: NS}
    root = etree.Element(f"{{{NS}}}ChangeOfAddressRequest", nsmap=nsmap)

    def add(parent: etree._Element, name: str, value: str | None = None) -> etree._Element:
        el = etree.SubElement(parent, f"{{{NS}}}{name}")
        el.text = value
        return el

    name = add(root, "Name")
    add(name, "Forename", request["name"]["forename"])
    add(name, "Surname", request["name"]["surname"])
    old = add(root, "OldCouncil")
    add(old, "Organisation", request["old_council"]["organisation"])
    add(old, "AccountRef", request["old_council"]["account_ref"])
    add(add(root, "NewCouncil"), "Organisation", request["new_council"]["organisation"])
    a = request["new_address"]
    bs = add(add(root, "NewAddress"), "BS7666Address")
    for key, tag in (
        ("saon", "SAON"),
        ("paon", "PAON"),
        ("street", "StreetDescription"),
        ("locality", "Locality"),
        ("town", "Town"),
        ("postcode", "PostCode"),
        ("uprn", "UniquePropertyReferenceNumber"),
    ):
        if a.get(key):
            add(bs, tag, a[key])
    add(root, "MoveDate", request["move_date"])
    if request.get("electoral_registration"):
        add(add(root, "ElectoralRegistration"), "Organisation", request["electoral_registration"])
    return etree.tostring(root, encoding="UTF-8")


# --- the legs --------------------------------------------------------------------------------


def _find(body: bytes, name: str) -> str:
    root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    return " ".join(str(root.xpath(f"string(//*[local-name()='{name}'])")).split())


def _new_address(request: Mapping[str, Any]) -> tuple[Address, str]:
    a = request["new_address"]
    address = Address(a["paon"], a["street"], a["town"], a["postcode"], a["saon"], a["locality"])
    return address, a["uprn"]


def _lines(address: Address) -> list[str]:
    return [
        part
        for part in (
            address.saon,
            f"{address.paon} {address.street}",
            address.locality,
            address.town,
        )
        if part
    ]


def _close_body(request: Mapping[str, Any], results: Mapping[str, bytes]) -> bytes:
    old = request["old_council"]
    return build_close(old["account_ref"], date.fromisoformat(request["move_date"]))


def _reopen_body(request: Mapping[str, Any], results: Mapping[str, bytes]) -> bytes:
    return build_reopen(
        request["old_council"]["account_ref"],
        f"move to {request['new_council']['organisation']} did not complete",
    )


def _open_body(request: Mapping[str, Any], results: Mapping[str, bytes]) -> bytes:
    address, uprn = _new_address(request)
    who = Person(request["name"]["forename"], request["name"]["surname"])
    return build_open(who, address, uprn, date.fromisoformat(request["move_date"]))


def _notify_body(request: Mapping[str, Any], results: Mapping[str, bytes]) -> bytes:
    closed = results["close"]  # the close answer carries the address moved out of
    old = Address(
        _find(closed, "PAON"),
        _find(closed, "StreetDescription"),
        _find(closed, "Town"),
        _find(closed, "PostCode"),
        _find(closed, "SAON") or None,
        _find(closed, "Locality") or None,
    )
    new, _uprn = _new_address(request)
    return er_request(
        request["name"]["forename"],
        request["name"]["surname"],
        (_lines(old), old.postcode),
        (_lines(new), new.postcode),
        request["move_date"],
    )


def _old_keys(request: Mapping[str, Any]) -> dict[str, str]:
    return {ACCOUNT_KEY: request["old_council"]["account_ref"]}


DEFINITION = JourneyDefinition(
    kind=KIND,
    class_=CLASS,
    legs=(
        LegSpec(
            name="close",
            class_=CLOSE_CLASS,
            organisation=lambda r: r["old_council"]["organisation"],
            body=_close_body,
            keys=_old_keys,
            summary=lambda b: (
                f"account {_find(b, 'AccountRef')} closed from {_find(b, 'ClosedFrom')}"
            ),
            policy="required",
            compensation=Compensation(
                class_=REOPEN_CLASS,
                body=_reopen_body,
                summary=lambda b: (
                    f"account {_find(b, 'AccountRef')} reopened: the closure from "
                    f"{_find(b, 'CancelledClosure')} is cancelled"
                ),
            ),
            description="close the Council Tax account at the old council",
        ),
        LegSpec(
            name="open",
            class_=OPEN_CLASS,
            organisation=lambda r: r["new_council"]["organisation"],
            body=_open_body,
            summary=lambda b: (
                f"account {_find(b, 'AccountRef')} opened from "
                f"{_find(b, 'OpenedFrom')} (band {_find(b, 'Band')})"
            ),
            policy="compensate",
            description="open a Council Tax account at the new council",
        ),
        LegSpec(
            name="notify",
            class_=ER_CLASS,
            organisation=lambda r: r["electoral_registration"],
            body=_notify_body,
            summary=lambda b: f"electoral registration notified, reference {_find(b, 'Reference')}",
            policy="retry",
            max_attempts=3,
            description="notify electoral registration of the move",
        ),
    ),
)
