"""Known facts for enrolment: account reference, the property's postcode, a liable surname."""

from __future__ import annotations

from collections.abc import Mapping

from connectors.protocol import KnownFactsResult
from connectors.simcouncil.model import Address, Property
from connectors.simcouncil.service import ACCOUNT_KEY

POSTCODE, SURNAME = "PostCode", "Surname"
REQUIRED = (ACCOUNT_KEY, POSTCODE, SURNAME)
NO_MATCH = "the facts given do not match the council's records"


def normalise_postcode(value: str) -> str:
    return "".join(value.split()).upper()


def _norm_name(value: str) -> str:
    return " ".join(value.split()).casefold()


def missing(facts: Mapping[str, str]) -> list[str]:
    return [name for name in REQUIRED if not str(facts.get(name) or "").strip()]


def address_lines(address: Address) -> tuple[str, ...]:
    """The BS7666 address as letter lines: SAON, PAON + street, locality, town, postcode."""
    lines = [
        address.saon,
        f"{address.paon} {address.street}".strip(),
        address.locality,
        address.town,
        address.postcode,
    ]
    return tuple(line for line in lines if line)


def check(facts: Mapping[str, str], account: Property | None) -> KnownFactsResult:
    """Compare the facts with the account the council holds (None: no such account)."""
    absent = missing(facts)
    if absent:
        return KnownFactsResult(False, reason=f"missing known fact(s): {', '.join(absent)}")
    if account is None:
        return KnownFactsResult(False, reason=NO_MATCH)
    postcode_ok = normalise_postcode(facts[POSTCODE]) == normalise_postcode(
        account.address.postcode
    )
    surname = _norm_name(facts[SURNAME])
    surname_ok = any(_norm_name(p.surname) == surname for p in account.liable)
    if not (postcode_ok and surname_ok):
        return KnownFactsResult(False, reason=NO_MATCH)
    return KnownFactsResult(
        True,
        identifiers={ACCOUNT_KEY: account.account_ref},
        address=address_lines(account.address),
    )
