"""The conformance suite against a connector with switchable defects, and the hub's own council.

A sound connector passes every check; each defect fails exactly the check that exists to catch
it, and the reports (JUnit XML, HTML, JSON) say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree, html

from gateway.kit.conformance import run_conformance
from gateway.kit.locations import resolves, to_xpath
from gateway.kit.report import html_page, junit_xml
from gateway.kit.results import Status
from gateway.kit.samples import SamplesError, load_samples, parse_samples
from gateway.kit.subject import Target
from tests.kit.support import FAULTY, gateway, view, write_samples

ALL_CHECKS = [
    "load",
    "response",
    "business-error",
    "known-facts",
    "idempotency",
    "malformed-input",
    "hub-roundtrip",
    "deadline",
]


async def test_a_sound_connector_passes_every_check(tmp_path: Path) -> None:
    samples = load_samples(write_samples(tmp_path / "samples"))
    report = await run_conformance(Target(connector=FAULTY), samples, workdir=tmp_path / "run")
    assert [r.id for r in report.results] == ALL_CHECKS
    assert {r.id: r.status for r in report.results} == dict.fromkeys(ALL_CHECKS, Status.PASS)
    assert report.ok
    # The read-back proved the payment was applied once, and the schemas were used.
    assert "left the state unchanged" in report.result("idempotency").message
    assert "valid against response.xsd" in report.result("response").message
    assert "unknown-element: refused with 3001" in report.result("malformed-input").details


def test_a_faulty_connector_fails_exactly_its_faults_in_every_report(tmp_path: Path) -> None:
    # No read-back: the idempotency check redelivers the valid view, whose answers now differ.
    samples = write_samples(tmp_path / "samples", read_back=False)
    faults = '["answers-differ", "no-locations", "crash-on-malformed", "slow", "facts-any"]'
    reports = {kind: tmp_path / f"report.{kind}" for kind in ("xml", "html", "json")}
    result = gateway(
        "connector", "check", FAULTY, "--samples", str(samples), "--options", f"faults={faults}",
        "--junit-xml", str(reports["xml"]), "--html", str(reports["html"]),
        "--json", str(reports["json"]),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    expected = {"business-error", "known-facts", "idempotency", "malformed-input", "deadline"}

    suite = etree.parse(str(reports["xml"])).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "5" and suite.get("tests") == "8"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == ALL_CHECKS
    assert {name for name, case in cases.items() if case.find("failure") is not None} == expected
    message = {name: _failure(cases[name]).get("message", "") for name in expected}
    assert "Locations do not point into the request" in message["business-error"]
    assert "2005" in message["deadline"]
    assert "not refused with 3001/4xxx" in message["malformed-input"]
    failure_text = cases["malformed-input"].findtext("failure") or ""
    assert "wrong-root: got an exception (AttributeError" in failure_text
    assert "oversized-value: got an exception (ValueError" in failure_text
    assert "the wrong facts were accepted" in (cases["known-facts"].findtext("failure") or "")
    assert "different answer" in message["idempotency"]

    page = reports["html"].read_text(encoding="utf-8")
    # The hostile body's <script> reached the report only inside escaped evidence.
    assert "<script" not in page.lower() and "&lt;script&gt;" in page
    document = html.fromstring(page)
    assert document.get("lang") == "en"
    assert (document.findtext(".//title") or "").startswith(
        f"Connector conformance report: {FAULTY}"
    )
    assert document.find(".//table/caption") is not None
    sections = {el.get("id"): "".join(el.itertext()) for el in document.iter("section")}
    for check in ALL_CHECKS:
        shown = sections[f"check-{check}"]
        assert ("Result: ✗ Fail" in shown) == (check in expected), check
        assert ("Result: ✓ Pass" in shown) == (check not in expected), check

    data = json.loads(reports["json"].read_text(encoding="utf-8"))
    assert data["ok"] is False
    assert {c["id"] for c in data["checks"] if c["status"] == "fail"} == expected
    assert "FAIL   deadline" in result.stdout and "FAILED" in result.stdout


async def test_a_redelivery_applied_twice_fails_only_idempotency(tmp_path: Path) -> None:
    samples = load_samples(write_samples(tmp_path / "samples")).with_overrides(
        options={"faults": ["applies-twice"]}
    )
    report = await run_conformance(Target(connector=FAULTY), samples, workdir=tmp_path / "run")
    assert report.failed_ids == ["idempotency"]
    result = report.result("idempotency")
    assert result.message == "The redelivery was applied again: the read-back changed after it."
    # The two read-backs' balances, 325.48 then 315.48, are in the evidence of the diff.
    assert any("-" in line and "325.48" in line for line in result.details)
    assert any("+" in line and "315.48" in line for line in result.details)
    # Without the read-back the same defect is invisible: the answers are identical.
    blind = load_samples(write_samples(tmp_path / "blind", read_back=False)).with_overrides(
        options={"faults": ["applies-twice"]}
    )
    assert (await run_conformance(Target(connector=FAULTY), blind)).ok


async def test_a_connector_that_cannot_be_built_fails_load_and_runs_nothing(
    tmp_path: Path,
) -> None:
    samples = load_samples(write_samples(tmp_path / "samples")).with_overrides(
        options={"faults": ["no-such-fault"]}
    )
    report = await run_conformance(Target(connector=FAULTY), samples)
    assert report.result("load").status == Status.FAIL
    assert "no-such-fault" in report.result("load").message
    assert [r.status for r in report.results[1:]] == [Status.SKIP] * 7
    assert not report.ok
    junit = etree.fromstring(junit_xml(report))
    assert junit.find(".//testcase[@name='load']/failure") is not None
    assert len(junit.findall(".//testcase/skipped")) == 7
    assert "Not run: the connector did not load." in html_page(report)


async def test_a_connector_that_cannot_close_fails_load_only(tmp_path: Path) -> None:
    samples = load_samples(write_samples(tmp_path / "samples")).with_overrides(
        options={"faults": ["close-fails"]}
    )
    report = await run_conformance(Target(connector=FAULTY), samples)
    assert report.failed_ids == ["load"]
    assert report.result("load").message == (
        "It loaded and started, but aclose() raised ConnectionError: "
        "the back office hung up while we were closing."
    )


async def test_the_hubs_own_simulated_council_passes(tmp_path: Path) -> None:
    """The kit judges a real connector: the simulated council, with the hub's own schemas."""
    namespace = "urn:govtalk-hub:la:ctax:view:v1"
    samples = parse_samples(
        {
            "route": {"class": "LA-CTAX-VIEW", "organisation": "E08000024"},
            "options": {"council": "E08000024"},
            "valid": {
                "keys": {"CTaxAccountRef": "SUN00874218"},
                "body": f'<CTaxViewRequest xmlns="{namespace}"><AccountRef>SUN00874218</AccountRef></CTaxViewRequest>',
            },
            "unknown": {
                "keys": {"CTaxAccountRef": "SUN99999999"},
                "body": f'<CTaxViewRequest xmlns="{namespace}"><AccountRef>SUN99999999</AccountRef></CTaxViewRequest>',
            },
            "known_facts": {
                "right": {
                    "CTaxAccountRef": "SUN00874218",
                    "PostCode": "SR6 7QS",
                    "Surname": "Robson",
                },
                "wrong": {
                    "CTaxAccountRef": "SUN00874218",
                    "PostCode": "SR1 1AA",
                    "Surname": "Robson",
                },
            },
        },
        source="test",
    )
    assert samples.response_schema is not None
    assert samples.response_schema.name == "ctax-view-response-v1.xsd"
    report = await run_conformance(Target(connector="simulated-council"), samples)
    assert report.ok, [(r.id, r.message, r.details) for r in report.results if r.failed]
    assert report.count(Status.PASS) == 8


def test_samples_are_checked_when_read(tmp_path: Path) -> None:
    path = write_samples(tmp_path)
    text = path.read_text()
    path.write_text(text.replace("[known_facts]", "[known_fact]"))
    with pytest.raises(SamplesError, match=r"conformance.toml: unknown key\(s\) known_fact"):
        load_samples(path)
    path.write_text(text.replace(f"body = '{view('99999999')}'", "body = '<Unclosed>'"))
    with pytest.raises(SamplesError, match=r"unknown.body is not a usable XML body"):
        load_samples(path)


def _failure(case: etree._Element) -> etree._Element:
    failure = case.find("failure")
    assert failure is not None, case.get("name")
    return failure


@pytest.mark.parametrize(
    ("location", "found"),
    [
        ("/CTaxViewRequest/AccountReference", True),
        ("/v:CTaxViewRequest/v:AccountReference", True),
        ("/CTaxViewRequest/Line[2]", True),
        ("/CTaxViewRequest/Line[3]", False),
        ("/CTaxViewRequest/@version", True),
        ("/CTaxViewRequest/AccountRef", False),
        ("/", False),
        ("AccountReference", False),
        ("/CTaxViewRequest/AccountReference') or ('1'='1", False),
    ],
)
def test_locations_must_point_into_the_request(location: str, found: bool) -> None:
    body = (
        b'<CTaxViewRequest xmlns="urn:x" version="1"><AccountReference>1</AccountReference>'
        b"<Line>a</Line><Line>b</Line></CTaxViewRequest>"
    )
    assert resolves(location, body) is found
    if not found and location.startswith("/CTaxViewRequest/AccountReference'"):
        assert to_xpath(location) is None
