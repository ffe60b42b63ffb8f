"""Data request filters (1038, 1039) and the StatusReport body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from gateway.govtalk.errors import GovTalkFault
from gateway.govtalk.listing import (
    STATUS_REPORT_NS,
    ListFilter,
    StatusRecord,
    parse_list_filter,
    status_report,
)
from gateway.govtalk.parse import parse

from .samples import envelope

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

SR = f"{{{STATUS_REPORT_NS}}}"


def filter_body(**fields: str) -> etree._Element:
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return etree.fromstring(f'<DataRequest xmlns="urn:example:list">{inner}</DataRequest>')


def fault_of(body: etree._Element) -> GovTalkFault:
    with pytest.raises(GovTalkFault) as info:
        parse_list_filter(body)
    return info.value


def test_no_body_no_filter():
    assert parse_list_filter(None) == ListFilter(None, None, False)
    assert parse_list_filter(filter_body()) == ListFilter(None, None, False)


def test_full_filter():
    filt = parse_list_filter(
        filter_body(
            StartDate="01/04/2014",
            StartTime="09:30:00",
            EndDate="11/04/2014",
            EndTime="17:00:05",
            IncludeIdentifiers="1",
        )
    )
    assert filt.start == datetime(2014, 4, 1, 9, 30, 0, tzinfo=UTC)
    assert filt.end is not None
    assert filt.end.replace(microsecond=0) == datetime(2014, 4, 11, 17, 0, 5, tzinfo=UTC)
    assert filt.include_identifiers is True


def test_dates_without_times_cover_whole_days():
    filt = parse_list_filter(filter_body(StartDate="01/04/2014", EndDate="01/04/2014"))
    assert filt.start == datetime(2014, 4, 1, 0, 0, 0, tzinfo=UTC)
    assert filt.end is not None
    assert (filt.end.hour, filt.end.minute, filt.end.second) == (23, 59, 59)
    assert filt.end.date() == filt.start.date()
    # A record in the last second of the day is still inside the range.
    assert filt.start <= datetime(2014, 4, 1, 23, 59, 59, 500_000, tzinfo=UTC) <= filt.end


def test_open_ended_ranges():
    assert parse_list_filter(filter_body(StartDate="01/04/2014")).end is None
    assert parse_list_filter(filter_body(EndDate="01/04/2014")).start is None


def test_include_identifiers_zero():
    assert parse_list_filter(filter_body(IncludeIdentifiers="0")).include_identifiers is False


def test_filters_found_in_any_namespace_or_none():
    body = etree.fromstring(
        b"<Q><Filters><StartDate>02/01/2020</StartDate></Filters>"
        b"<IncludeIdentifiers>1</IncludeIdentifiers></Q>"
    )
    filt = parse_list_filter(body)
    assert filt.start == datetime(2020, 1, 2, tzinfo=UTC)
    assert filt.include_identifiers is True


def test_filter_from_a_parsed_list_request():
    data = envelope(
        function="list",
        body="""<Body><DataRequest xmlns="urn:example:list">
          <StartDate>01/04/2014</StartDate><EndDate>30/04/2014</EndDate></DataRequest></Body>""",
    )
    filt = parse_list_filter(parse(data).body)
    assert filt.start == datetime(2014, 4, 1, tzinfo=UTC)


def test_start_after_end_is_1038():
    fault = fault_of(filter_body(StartDate="02/04/2014", EndDate="01/04/2014"))
    assert fault.first.number == 1038


def test_start_time_after_end_time_same_day_is_1038():
    fault = fault_of(
        filter_body(
            StartDate="01/04/2014", StartTime="12:00:00", EndDate="01/04/2014", EndTime="11:59:59"
        )
    )
    assert fault.first.number == 1038


def test_same_second_is_not_out_of_order():
    filt = parse_list_filter(
        filter_body(
            StartDate="01/04/2014", StartTime="12:00:00", EndDate="01/04/2014", EndTime="12:00:00"
        )
    )
    assert filt.start is not None and filt.end is not None


@pytest.mark.parametrize(
    ("field", "fields"),
    [
        ("StartDate", {"StartDate": "31/02/2014"}),
        ("StartDate", {"StartDate": "2014-04-01"}),
        ("EndDate", {"EndDate": "1/4/2014"}),
        ("StartTime", {"StartDate": "01/04/2014", "StartTime": "25:00:00"}),
        ("EndTime", {"EndDate": "01/04/2014", "EndTime": "12:00"}),
        ("StartTime", {"StartTime": "12:00:00"}),
        ("IncludeIdentifiers", {"IncludeIdentifiers": "yes"}),
    ],
)
def test_invalid_values_are_1039_naming_the_field(field, fields):
    fault = fault_of(filter_body(**fields))
    assert fault.first.number == 1039
    assert field in fault.first.text
    assert fault.first.locations == (field,)


# -- StatusReport -------------------------------------------------------------------------------

RECORDS = [
    StatusRecord(
        timestamp=datetime(2014, 4, 11, 15, 41, 39, 775_000, tzinfo=UTC),
        correlation_id="0123456789ABCDEF0123456789ABCDEF",
        transaction_id="20140411154139",
        status="SUBMISSION_RESPONSE",
        identifiers={"UPRN": "100023336956", "PostCode": "AB1 2CD"},
    ),
    StatusRecord(
        # 09:05 in BST is 08:05 UTC: the report is in UTC.
        timestamp=datetime(2014, 4, 12, 9, 5, 0, tzinfo=timezone(timedelta(hours=1))),
        correlation_id="FEDCBA9876543210FEDCBA9876543210",
        transaction_id=None,
        status="SUBMISSION_ACKNOWLEDGE",
    ),
]


def report(include: bool) -> etree._Element:
    return status_report(
        sender_id="8CK3SA26U1G4",
        start=datetime(2014, 4, 1, tzinfo=UTC),
        end=datetime(2014, 4, 30, 23, 59, 59, 999_999, tzinfo=UTC),
        records=RECORDS,
        include_identifiers=include,
    )


def test_status_report_shape():
    root = report(include=True)
    assert root.tag == f"{SR}StatusReport"
    assert root.nsmap[None] == STATUS_REPORT_NS
    assert [etree.QName(c).localname for c in root] == [
        "SenderID",
        "StartTimeStamp",
        "EndTimeStamp",
        "StatusRecord",
        "StatusRecord",
    ]
    assert root.findtext(f"{SR}SenderID") == "8CK3SA26U1G4"
    assert root.findtext(f"{SR}StartTimeStamp") == "01/04/2014 00:00:00"
    assert root.findtext(f"{SR}EndTimeStamp") == "30/04/2014 23:59:59"
    first, second = root.findall(f"{SR}StatusRecord")
    assert [etree.QName(c).localname for c in first] == [
        "TimeStamp",
        "CorrelationID",
        "TransactionID",
        "Identifiers",
        "Status",
    ]
    assert first.findtext(f"{SR}TimeStamp") == "11/04/2014 15:41:39"
    assert first.findtext(f"{SR}CorrelationID") == "0123456789ABCDEF0123456789ABCDEF"
    assert first.findtext(f"{SR}TransactionID") == "20140411154139"
    assert first.findtext(f"{SR}Status") == "SUBMISSION_RESPONSE"
    identifiers = {i.get("Type"): i.text for i in first.iterfind(f"{SR}Identifiers/{SR}Identifier")}
    assert identifiers == {"UPRN": "100023336956", "PostCode": "AB1 2CD"}
    assert second.findtext(f"{SR}TimeStamp") == "12/04/2014 08:05:00"
    assert second.find(f"{SR}TransactionID") is not None
    assert not second.findtext(f"{SR}TransactionID")
    assert second.findtext(f"{SR}Status") == "SUBMISSION_ACKNOWLEDGE"
    assert second.find(f"{SR}Identifiers") is None


def test_status_report_without_identifiers():
    root = report(include=False)
    assert root.find(f".//{SR}Identifiers") is None
    assert len(root.findall(f"{SR}StatusRecord")) == 2


def test_empty_status_report():
    root = status_report(
        sender_id="U1", start=None, end=None, records=[], include_identifiers=False
    )
    assert root.findtext(f"{SR}StartTimeStamp") == ""
    assert root.find(f"{SR}StatusRecord") is None
