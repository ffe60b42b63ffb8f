"""`gateway scenario run|load` through the CLI, against an embedded hub."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from lxml import etree

from gateway.cli import main

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"


def gateway(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_the_whole_library_passes_and_reports(tmp_path: Path) -> None:
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    code, output = gateway(
        "scenario", "run", str(LIBRARY), "--junit-xml", str(junit), "--json", str(report)
    )
    assert code == 0, output
    data = json.loads(report.read_text())
    names = {s["name"] for s in data["scenarios"]}
    assert data["failed"] == 0 and len(names) == len(list(LIBRARY.glob("*.scenario.yaml")))
    assert {"View Council Tax by password", "Single sign-on across two council portals"} <= names
    suite = etree.parse(str(junit)).getroot()[0]
    assert suite.get("tests") == str(len(names)) and suite.get("failures") == "0"


def test_a_failing_step_shows_where_and_what_was_sent_and_received(tmp_path: Path) -> None:
    broken = tmp_path / "broken.scenario.yaml"
    broken.write_text(
        "version: 1\n"
        "name: Expects the wrong answer\n"
        "actors:\n"
        "  sun: {kind: citizen, demo: DEMO0SUN0001}\n"
        "steps:\n"
        "  - name: view\n"
        "    submit: {actor: sun, class: LA-CTAX-VIEW, until_final: true}\n"
        "    expect: {qualifier: error, error_number: 3001}\n"
        "  - name: never reached\n"
        "    sleep: {seconds: 0}\n"
    )
    junit = tmp_path / "junit.xml"
    code, output = gateway("scenario", "run", str(broken), "--junit-xml", str(junit))
    assert code == 1
    assert f"{broken}:7: expected qualifier 'error', got 'response'" in output
    assert "sent:" in output and "<CTaxViewRequest" in output
    assert "received:" in output and "<CTaxViewResponse" in output
    assert "never reached (skipped)" in output
    failure = etree.parse(str(junit)).find(".//failure")
    assert failure is not None and "expected qualifier" in failure.get("message", "")


def test_a_scenario_back_dates_a_test_submission(tmp_path: Path) -> None:
    dated = tmp_path / "dated.scenario.yaml"
    dated.write_text(
        "version: 1\n"
        "name: Filed just before the deadline\n"
        "actors:\n"
        "  sun: {kind: citizen, demo: DEMO0SUN0001}\n"
        "steps:\n"
        "  - name: view, back-dated\n"
        "    submit: {actor: sun, class: LA-CTAX-VIEW, gateway_test: true,\n"
        "             gateway_timestamp: '2026-03-31T23:59:59', until_final: true}\n"
        "    expect: {qualifier: response, facts: {gateway_timestamp: '2026-03-31T23:59:59.000'}}\n"
    )
    code, output = gateway("scenario", "run", str(dated))
    assert code == 0, output


def test_tag_and_name_filters_choose_scenarios() -> None:
    code, output = gateway("scenario", "run", str(LIBRARY), "--tag", "sso")
    assert code == 0 and "1 scenarios, 1 passed" in output
    code, output = gateway("scenario", "run", str(LIBRARY), "--name", "nothing like this")
    assert code != 0 and "no scenarios matched" in output


def test_load_mode_reports_percentiles_and_gates(tmp_path: Path) -> None:
    scenario = str(LIBRARY / "view-council-tax-password.scenario.yaml")
    report = tmp_path / "load.json"
    code, output = gateway(
        "scenario", "load", scenario, "--users", "2", "--iterations", "6", "--json", str(report)
    )
    assert code == 0, output
    data = json.loads(report.read_text())
    assert data["iterations"] == 6 and data["overall"]["count"] == 6 * 4
    assert data["overall"]["errors"] == 0
    assert 0 < data["overall"]["p50_s"] <= data["overall"]["p95_s"] <= data["overall"]["p99_s"]
    assert all(g["passed"] for g in data["gates"])
    assert "p95" in output and "poll until answered" in output
    # An impossible gate fails the run.
    code, output = gateway(
        "scenario", "load", scenario, "--users", "1", "--iterations", "2", "--p95", "0.000001"
    )
    assert code == 1 and "FAIL" in output


VIEW = str(LIBRARY / "view-council-tax-password.scenario.yaml")


def poll_step_seconds(report: Path, *options: str) -> float:
    """How long View Council Tax's "poll until answered" step took in a run with `options`."""
    code, output = gateway("scenario", "run", VIEW, "--json", str(report), *options)
    assert code == 0, output
    [result] = json.loads(report.read_text())["scenarios"]
    return next(s["seconds"] for s in result["steps"] if s["name"] == "poll until answered")


def test_interval_polling_waits_the_poll_interval_the_hub_asked_for(tmp_path: Path) -> None:
    # The embedded hub acknowledges View Council Tax with its route's PollInterval, 1 s; the
    # simulated council answers within milliseconds, so only the client's waiting takes longer.
    # (0.95: the event loop's timers may fire a clock tick early — 0.9995 s was seen.)
    assert poll_step_seconds(tmp_path / "interval.json", "--poll", "interval") >= 0.95
    assert poll_step_seconds(tmp_path / "eager.json") < 1.0  # the default: polled at once

    report = tmp_path / "load.json"
    code, output = gateway(
        "scenario", "load", VIEW, "--poll", "interval", "--users", "2", "--iterations", "2",
        "--p95", "5", "--json", str(report),
    )  # fmt: skip
    assert code == 0, output
    assert "interval polling" in output
    steps = json.loads(report.read_text())["steps"]
    poll = next(s for s in steps if s["step"] == "poll until answered")
    assert poll["errors"] == 0 and poll["p50_s"] >= 0.95


def test_a_timeout_shorter_than_the_poll_interval_fails_at_once_and_says_why(
    tmp_path: Path,
) -> None:
    short = tmp_path / "short.scenario.yaml"
    short.write_text(
        "version: 1\n"
        "name: Waits less than the hub asks\n"
        "actors:\n"
        "  sun: {kind: citizen, demo: DEMO0SUN0001}\n"
        "steps:\n"
        "  - name: view\n"
        "    submit: {actor: sun, class: LA-CTAX-VIEW, until_final: true, timeout: 0.5}\n"
        "    expect: {qualifier: response}\n"
    )
    report = tmp_path / "report.json"
    code, output = gateway(
        "scenario", "run", str(short), "--poll", "interval", "--json", str(report)
    )
    assert code == 1
    assert "no final answer within 0.5 s (the hub asked to poll again after" in output
    [result] = json.loads(report.read_text())["scenarios"]
    assert result["steps"][0]["seconds"] < 0.5  # not waited out


def test_a_missing_file_or_demo_citizen_is_named_at_its_file_and_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.scenario.yaml"
    missing.write_text(
        "version: 1\n"
        "name: Names a payload that is not there\n"
        "actors:\n"
        "  sun: {kind: citizen, demo: DEMO0SUN0001}\n"
        "variables: {payload: missing.xml}\n"
        "steps:\n"
        "  - submit: {actor: sun, class: LA-CTAX-VIEW, body_file: '${payload}'}\n"
    )
    nobody = tmp_path / "nobody.scenario.yaml"
    nobody.write_text(
        "version: 1\n"
        "name: Names a demo citizen there is not\n"
        "actors:\n"
        "  sun: {kind: citizen, demo: DEMO0NOPE001}\n"
        "steps:\n"
        "  - sleep: {seconds: 0}\n"
    )
    code, output = gateway("scenario", "run", str(tmp_path))
    assert code == 1
    assert f"{missing}:7: 'missing.xml' does not exist (no file {tmp_path / 'missing.xml'})" in (
        output
    )
    assert f"{nobody}:4: actor sun: no demo citizen DEMO0NOPE001" in output


def test_a_value_a_variable_gives_the_wrong_type_fails_its_step_at_file_and_line(
    tmp_path: Path,
) -> None:
    # The loader checks what is written; a variable's value is known only when the step runs.
    folder = tmp_path / "typed"
    folder.mkdir()
    amount = folder / "amount.scenario.yaml"
    amount.write_text(
        "version: 1\n"
        "name: Pays an amount that is no number\n"
        "actors:\n"
        "  sed: {kind: council, organisation: E07000188}\n"
        "variables: {amount: £100}\n"
        "steps:\n"
        "  - pay: {council: sed, reference: '123', amount_pence: '${amount}'}\n"
    )
    wait = folder / "wait.scenario.yaml"
    wait.write_text(
        "version: 1\n"
        "name: Waits for an answer by a word\n"
        "actors:\n"
        "  sun: {kind: citizen, demo: DEMO0SUN0001}\n"
        "variables: {wait: 'false', limit: 30s}\n"
        "steps:\n"
        "  - submit: {actor: sun, class: LA-CTAX-VIEW, until_final: '${wait}'}\n"
        "  - submit: {actor: sun, class: LA-CTAX-VIEW, until_final: true, timeout: '${limit}'}\n"
    )
    code, output = gateway("scenario", "run", str(folder))
    assert code == 1
    assert f"{amount}:7: amount_pence must be a whole number, not '£100'" in output
    assert f"{wait}:7: until_final must be true or false, not 'false'" in output


def test_capturing_a_fact_the_reply_lacks_fails_the_step(tmp_path: Path) -> None:
    path = tmp_path / "capture.scenario.yaml"
    path.write_text(
        "version: 1\n"
        "name: Follows a redirect that is not there\n"
        "steps:\n"
        "  - http: {method: GET, path: /pki/ca-bundle.pem}\n"
        "    capture: {next: location}\n"
        "  - name: never reached\n"
        "    http: {method: GET, path: '${next}'}\n"
    )
    code, output = gateway("scenario", "run", str(path))
    assert code == 1
    assert f"{path}:4: capture next: the reply has no location" in output
    assert "never reached (skipped)" in output


def test_an_xpath_expected_true_needs_a_true_result(tmp_path: Path) -> None:
    # XPath's boolean(): a count of 0 and an empty string are false, as an empty node-set is.
    head = (
        "version: 1\n"
        "actors:\n"
        "  sun: {kind: citizen, demo: DEMO0SUN0001}\n"
        "steps:\n"
        "  - submit: {actor: sun, class: LA-CTAX-VIEW, until_final: true}\n"
        "    expect:\n"
        "      xpath:\n"
    )
    holds = tmp_path / "holds.scenario.yaml"
    holds.write_text(
        f"name: What the reply has\n{head}"
        "        \"count(//*[local-name()='AccountRef'])\": true\n"
        "        \"string(//*[local-name()='AccountRef'])\": true\n"
        "        \"count(//*[local-name()='NoSuchThing'])\": false\n"
        "        \"string(//*[local-name()='NoSuchThing'])\": false\n"
    )
    none = tmp_path / "none.scenario.yaml"
    none.write_text(
        f"name: Counts what the reply lacks\n{head}"
        "        \"count(//*[local-name()='NoSuchThing'])\": true\n"
    )
    empty = tmp_path / "empty.scenario.yaml"
    empty.write_text(
        f"name: Reads what the reply lacks\n{head}"
        "        \"string(//*[local-name()='NoSuchThing'])\": true\n"
    )
    report = tmp_path / "report.json"
    code, output = gateway("scenario", "run", str(tmp_path), "--json", str(report))
    assert code == 1
    outcomes = {r["name"]: r["ok"] for r in json.loads(report.read_text())["scenarios"]}
    assert outcomes == {
        "What the reply has": True,
        "Counts what the reply lacks": False,
        "Reads what the reply lacks": False,
    }
    assert f"{none}:6: xpath \"count(//*[local-name()='NoSuchThing'])\": expected True" in output
    assert f"{empty}:6: xpath \"string(//*[local-name()='NoSuchThing'])\": expected True" in output


def test_junit_xml_carries_a_binary_reply(tmp_path: Path) -> None:
    # The CRL is DER: its bytes include control characters XML 1.0 cannot carry.
    path = tmp_path / "crl.scenario.yaml"
    path.write_text(
        "version: 1\n"
        "name: Expects a PEM CRL\n"
        "steps:\n"
        "  - http: {method: GET, path: /pki/crl}\n"
        "    expect: {contains: BEGIN X509 CRL}\n"
    )
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    code, _ = gateway(
        "scenario", "run", str(path), "--junit-xml", str(junit), "--json", str(report)
    )
    assert code == 1
    failure = etree.parse(str(junit)).find(".//failure")
    assert failure is not None and "BEGIN X509 CRL" in failure.get("message", "")
    assert failure.text is not None and "\ufffd" in failure.text  # what XML cannot carry, marked
    assert json.loads(report.read_text())["failed"] == 1
