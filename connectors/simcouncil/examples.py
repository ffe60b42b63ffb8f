"""Valid example request bodies for the demo councils' accounts (used by `gateway demo info`)."""

from __future__ import annotations

from connectors.simcouncil import spd, til, view
from connectors.simcouncil.dataset import by_ref, generate
from connectors.simcouncil.model import SINGLE_PERSON


def spd_eligible_account_refs(council_code: str) -> list[str]:
    """Accounts in the dataset with exactly one liable adult and no single-person discount yet."""
    return [
        p.account_ref
        for p in generate(council_code)
        if len(p.liable) == 1 and not p.has_discount(SINGLE_PERSON)
    ]


def example_request(class_: str, account_ref: str, council_code: str) -> bytes:
    """A request body the council accepts for this account as first seeded (-TIL classes too).

    The SPD example dates the discount from the start of the charge year, so it is accepted from
    a month before that date until the year ends; once accepted it is refused as a duplicate.
    """
    base = class_.removesuffix(til.SUFFIX)
    account = by_ref(council_code).get(account_ref)
    if account is None:
        raise ValueError(f"council {council_code} has no account {account_ref}")
    if base == view.CLASS:
        return view.build_request(account_ref)
    if base == spd.CLASS:
        if account_ref not in spd_eligible_account_refs(council_code):
            raise ValueError(
                f"account {account_ref} cannot take a single-person discount "
                "(it has one already, or more than one liable person); "
                "pick one from spd_eligible_account_refs()"
            )
        return spd.build_request(account_ref, account.liable[0])
    raise ValueError(f"no example for class {class_}; known: {view.CLASS}, {spd.CLASS}")
