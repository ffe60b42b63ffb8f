"""Data request (Function list): filter parsing and the StatusReport body (reference §3)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Literal

from lxml import etree

from gateway.govtalk.errors import GovTalkFault
from gateway.govtalk.model import default_nsmap

# The reference names the StatusReport's elements but not its namespace. The hub puts it in its
# own namespace so that the lax Body never mixes it with envelope elements; clients read it by
# local name.
STATUS_REPORT_NS = "http://www.govtalk.gov.uk/CM/StatusReport"

Status = Literal["SUBMISSION_ACKNOWLEDGE", "SUBMISSION_RESPONSE", "SUBMISSION_ERROR"]

DATE_FORMAT = "%d/%m/%Y"
TIME_FORMAT = "%H:%M:%S"
REPORT_TIMESTAMP_FORMAT = f"{DATE_FORMAT} {TIME_FORMAT}"

_DATE = re.compile(r"\d{2}/\d{2}/\d{4}")
_TIME = re.compile(r"\d{2}:\d{2}:\d{2}")
_START_OF_DAY = time(0, 0, 0)
# The end bound is inclusive of its whole second, so a record at 23:59:59.5 is still listed.
_END_OF_DAY = time(23, 59, 59, 999_999)


@dataclass(frozen=True, slots=True)
class ListFilter:
    """The optional filters of a data request; bounds are UTC-aware and inclusive."""

    start: datetime | None = None
    end: datetime | None = None
    include_identifiers: bool = False


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """One submission as listed in a StatusReport."""

    timestamp: datetime
    correlation_id: str
    transaction_id: str | None
    status: Status
    identifiers: Mapping[str, str] = field(default_factory=dict)


def _find(body: etree._Element, name: str) -> str | None:
    """Text of the first element (self or descendant) with this local name, whatever its ns."""
    for el in body.iter(etree.Element):
        if etree.QName(el).localname == name:
            text = "".join(t for t in el.itertext() if isinstance(t, str)).strip()
            # An empty filter element is what form-driven clients write for "no filter".
            return text or None
    return None


def _invalid(field_name: str, value: str, expected: str) -> GovTalkFault:
    """A 1039 fault naming the offending field."""
    return GovTalkFault.of(
        1039, f"{field_name} {value!r} is not a valid {expected}", locations=(field_name,)
    )


def _parse(field_name: str, value: str, pattern: re.Pattern[str], fmt: str, what: str) -> datetime:
    """value in fmt, strictly: the pattern first, as strptime alone takes 1/2/2014 too."""
    if not pattern.fullmatch(value):
        raise _invalid(field_name, value, what)
    try:
        return datetime.strptime(value, fmt)
    except ValueError:
        raise _invalid(field_name, value, what) from None


def _bound(body: etree._Element, prefix: str, default_time: time) -> datetime | None:
    """One end of the range from <prefix>Date and <prefix>Time."""
    date_text = _find(body, f"{prefix}Date")
    time_text = _find(body, f"{prefix}Time")
    if date_text is None:
        if time_text is not None:
            raise GovTalkFault.of(
                1039,
                f"{prefix}Time is given without {prefix}Date",
                locations=(f"{prefix}Time",),
            )
        return None
    day = _parse(f"{prefix}Date", date_text, _DATE, DATE_FORMAT, "date (dd/mm/yyyy)").date()
    at = default_time
    if time_text is not None:
        at = _parse(f"{prefix}Time", time_text, _TIME, TIME_FORMAT, "time (hh:mm:ss)").time()
        if prefix == "End":
            at = at.replace(microsecond=999_999)
    return datetime.combine(day, at, tzinfo=UTC)


def parse_list_filter(body: etree._Element | None) -> ListFilter:
    """Read StartDate/StartTime/EndDate/EndTime and IncludeIdentifiers from a list request."""
    if body is None:
        return ListFilter()
    start = _bound(body, "Start", _START_OF_DAY)
    end = _bound(body, "End", _END_OF_DAY)
    if start is not None and end is not None and start > end:
        raise GovTalkFault.of(
            1038,
            "The data request's start ("
            f"{format_report_timestamp(start)}) is after its end ({format_report_timestamp(end)})",
        )
    include = _find(body, "IncludeIdentifiers")
    if include not in (None, "0", "1"):
        raise GovTalkFault.of(
            1039,
            f"IncludeIdentifiers {include!r} must be 0 or 1",
            locations=("IncludeIdentifiers",),
        )
    return ListFilter(start=start, end=end, include_identifiers=include == "1")


def format_report_timestamp(dt: datetime) -> str:
    """dd/mm/yyyy hh:mm:ss in UTC (naive values are taken to be UTC already)."""
    utc = dt.astimezone(UTC) if dt.tzinfo is not None else dt
    return utc.strftime(REPORT_TIMESTAMP_FORMAT)


def _sr(name: str) -> str:
    """Clark name in the StatusReport namespace."""
    return f"{{{STATUS_REPORT_NS}}}{name}"


def _sub(parent: etree._Element, name: str, text: str) -> etree._Element:
    """Append a StatusReport-namespace child with text."""
    el = etree.SubElement(parent, _sr(name))
    el.text = text
    return el


def status_report(
    *,
    sender_id: str,
    start: datetime | None,
    end: datetime | None,
    records: Iterable[StatusRecord],
    include_identifiers: bool,
) -> etree._Element:
    """The StatusReport body of a data response; empty Start/EndTimeStamp when unbounded."""
    root = etree.Element(_sr("StatusReport"), nsmap=default_nsmap(STATUS_REPORT_NS))
    _sub(root, "SenderID", sender_id)
    _sub(root, "StartTimeStamp", format_report_timestamp(start) if start is not None else "")
    _sub(root, "EndTimeStamp", format_report_timestamp(end) if end is not None else "")
    for record in records:
        el = etree.SubElement(root, _sr("StatusRecord"))
        _sub(el, "TimeStamp", format_report_timestamp(record.timestamp))
        _sub(el, "CorrelationID", record.correlation_id)
        # Written even when empty so that every record has the same shape for clients.
        _sub(el, "TransactionID", record.transaction_id or "")
        if include_identifiers and record.identifiers:
            identifiers = etree.SubElement(el, _sr("Identifiers"))
            for id_type, value in record.identifiers.items():
                _sub(identifiers, "Identifier", value).set("Type", id_type)
        _sub(el, "Status", record.status)
    return root
