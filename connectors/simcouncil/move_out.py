"""LA-CTAX-CLOSE and LA-CTAX-REOPEN: close an account when its liable people move out, and undo it.

A close is refused (3001, with Locations) when the account is not the enrolment's, is already
closed, or the move-out date is outside the year the council bills, too far ahead or before the
account opened. A closed account is charged (and discounted) by the day to the day before the move
out. REOPEN is the compensation a joined-up transaction runs when a later step of a move fails.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from lxml import etree

from connectors.simcouncil.charges import refit
from connectors.simcouncil.dates import YEAR_END, YEAR_START
from connectors.simcouncil.model import Property
from connectors.simcouncil.service import (
    Decision,
    Service,
    Situation,
    StatusChange,
    account_errors,
    refuse,
    rule,
)
from connectors.simcouncil.validation import MOVE_NS, BodySpec
from connectors.simcouncil.xmlbody import bs7666, child, root, serialise, text

CLOSE_CLASS = "LA-CTAX-CLOSE"
REOPEN_CLASS = "LA-CTAX-REOPEN"
CLOSE_REQUEST = BodySpec(MOVE_NS, "CTaxCloseRequest", "ctax-close-request-v1.xsd")
CLOSE_RESPONSE = BodySpec(MOVE_NS, "CTaxCloseResponse", "ctax-close-response-v1.xsd")
REOPEN_REQUEST = BodySpec(MOVE_NS, "CTaxReopenRequest", "ctax-reopen-request-v1.xsd")
REOPEN_RESPONSE = BodySpec(MOVE_NS, "CTaxReopenResponse", "ctax-reopen-response-v1.xsd")

MAX_DAYS_AHEAD = 90


def build_close(account_ref: str, move_out: date) -> bytes:
    request = root(MOVE_NS, CLOSE_REQUEST.root)
    child(request, "AccountRef", account_ref)
    child(request, "MoveOutDate", move_out.isoformat())
    return serialise(request)


def build_reopen(account_ref: str, reason: str) -> bytes:
    request = root(MOVE_NS, REOPEN_REQUEST.root)
    child(request, "AccountRef", account_ref)
    child(request, "Reason", reason[:200] or "move cancelled")
    return serialise(request)


def decide_close(
    request: etree._Element, account: Property | None, situation: Situation
) -> Decision:
    errors = account_errors(request, CLOSE_REQUEST.root, account, situation)
    if errors or account is None:
        return refuse(situation, errors)
    where = f"/{CLOSE_REQUEST.root}/MoveOutDate"
    move_out = date.fromisoformat(text(request, "MoveOutDate"))
    if account.closed_from is not None:
        message = f"account {account.account_ref} is already closed from {account.closed_from}"
        return refuse(situation, [rule(message, f"/{CLOSE_REQUEST.root}/AccountRef")])
    if not YEAR_START <= move_out <= YEAR_END:
        message = (
            f"the move-out date {move_out} is outside the year billed ({YEAR_START} to {YEAR_END})"
        )
        return refuse(situation, [rule(message, where)])
    if move_out > situation.today + timedelta(days=MAX_DAYS_AHEAD):
        message = f"the move-out date {move_out} is more than {MAX_DAYS_AHEAD} days ahead"
        return refuse(situation, [rule(message, where)])
    if account.opened_from is not None and move_out < account.opened_from:
        message = (
            f"the move-out date {move_out} is before the account opened ({account.opened_from})"
        )
        return refuse(situation, [rule(message, where)])
    reply = root(MOVE_NS, CLOSE_RESPONSE.root)
    child(reply, "AccountRef", account.account_ref)
    child(reply, "Status", "Closed")
    child(reply, "ClosedFrom", move_out.isoformat())
    bs7666(reply, account.address, account.uprn)  # where they moved out of, for later steps
    # Charged to the day before the move out: discounts and the plan shrink to match.
    closed = refit(replace(account, closed_from=move_out), situation.today)
    return Decision(reply, updated=closed, status=StatusChange(account.account_ref, move_out))


def decide_reopen(
    request: etree._Element, account: Property | None, situation: Situation
) -> Decision:
    errors = account_errors(request, REOPEN_REQUEST.root, account, situation)
    if errors or account is None:
        return refuse(situation, errors)
    if account.closed_from is None:
        message = f"account {account.account_ref} is open: there is no close to undo"
        return refuse(situation, [rule(message, f"/{REOPEN_REQUEST.root}/AccountRef")])
    reply = root(MOVE_NS, REOPEN_RESPONSE.root)
    child(reply, "AccountRef", account.account_ref)
    child(reply, "Status", "Open")
    child(reply, "CancelledClosure", account.closed_from.isoformat())
    # Undoing the close charges the whole year again, and discounts with it.
    reopened = refit(replace(account, closed_from=None), situation.today)
    return Decision(reply, updated=reopened, status=StatusChange(account.account_ref, None))


CLOSE = Service(CLOSE_CLASS, CLOSE_REQUEST, CLOSE_RESPONSE, decide_close)
REOPEN = Service(REOPEN_CLASS, REOPEN_REQUEST, REOPEN_RESPONSE, decide_reopen)
