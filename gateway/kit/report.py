"""A conformance report in four forms: console text, JUnit XML, a standalone HTML page, JSON.

The HTML page is what a council asks a supplier for: one self-contained file (no scripts, no
external resources, its own Content-Security-Policy), every value escaped, readable without
colour (each result is a word), with a results table and the evidence of every exchange.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from lxml import etree

from gateway.kit.render import ms
from gateway.kit.results import CheckResult, Report, Status
from gateway.storable import storable

_WORD = {Status.PASS: "Pass", Status.FAIL: "Fail", Status.SKIP: "Skipped", Status.ERROR: "Error"}
_MARK = {Status.PASS: "✓", Status.FAIL: "✗", Status.SKIP: "–", Status.ERROR: "!"}
CONSOLE_EVIDENCE_LINES = 30


def _is_diff(details: list[str]) -> bool:
    """Whether a check's details are a unified diff (shown as it is, not as a list)."""
    return bool(details) and details[0].startswith("--- ")


def _seconds(value: float) -> str:
    return f"{value:g} second" + ("" if value == 1 else "s")


def verdict(report: Report) -> str:
    return "PASSED" if report.ok else "FAILED"


def tally(report: Report) -> str:
    return (
        f"{len(report.results)} checks: {report.count(Status.PASS)} passed, "
        f"{report.count(Status.FAIL)} failed, {report.count(Status.ERROR)} errors, "
        f"{report.count(Status.SKIP)} skipped"
    )


# -- console ----------------------------------------------------------------------------------


def console(report: Report, *, evidence: bool = True) -> str:
    """Plain text: a line per check, why, and for failures what was sent and received."""
    width = max(len(r.id) for r in report.results) if report.results else 0
    lines = [
        f"Connector conformance: {report.subject}",
        f"class {report.class_} at {report.organisation}, deadline {report.deadline:g} s, "
        f"samples: {report.samples}",
        "",
    ]
    for r in report.results:
        lines.append(
            f"  {r.status.value.upper():5}  {r.id.ljust(width)}  {r.title}  ({ms(r.seconds)})"
        )
        lines.append(f"         {' ' * width}  {r.message}")
        bullet = "  " if _is_diff(r.details) else "• "
        lines.extend(f"         {' ' * width}    {bullet}{d}" for d in r.details)
        if evidence and r.failed:
            for item in r.evidence:
                lines.extend(_indented(f"sent ({item.label}):", item.sent, width))
                lines.extend(_indented("received:", item.received, width))
    lines += ["", f"{tally(report)} in {report.seconds:.1f} s — {verdict(report)}"]
    return "\n".join(lines)


def _indented(head: str, text: str, width: int) -> list[str]:
    pad = " " * (width + 15)
    body = text.splitlines()
    if len(body) > CONSOLE_EVIDENCE_LINES:
        body = [
            *body[:CONSOLE_EVIDENCE_LINES],
            f"… ({len(body) - CONSOLE_EVIDENCE_LINES} more lines)",
        ]
    return [pad + head, *(pad + "  " + line for line in body)]


# -- JUnit XML --------------------------------------------------------------------------------


def junit_xml(report: Report) -> bytes:
    """One testsuite, one testcase per check: failure, error or skipped as JUnit readers expect."""
    # Texts go through storable(): a connector's exception text may hold what XML cannot carry.
    suite = etree.Element(
        "testsuite",
        name=storable(f"connector conformance: {report.subject}"),
        tests=str(len(report.results)),
        failures=str(report.count(Status.FAIL)),
        errors=str(report.count(Status.ERROR)),
        skipped=str(report.count(Status.SKIP)),
        time=f"{report.seconds:.3f}",
        timestamp=report.started_at.replace(microsecond=0, tzinfo=None).isoformat(),
    )
    properties = etree.SubElement(suite, "properties")
    for name, value in _facts(report):
        etree.SubElement(properties, "property", name=name, value=storable(value))
    for r in report.results:
        case = etree.SubElement(
            suite,
            "testcase",
            classname="gateway.conformance",
            name=r.id,
            time=f"{r.seconds:.3f}",
        )
        if r.status != Status.PASS:
            tag = {Status.FAIL: "failure", Status.ERROR: "error", Status.SKIP: "skipped"}[r.status]
            node = etree.SubElement(case, tag, message=storable(r.message))
            if r.status != Status.SKIP:
                node.set("type", r.status.value)
                node.text = storable("\n".join([r.message, *(f"- {d}" for d in r.details)]))
        out = etree.SubElement(case, "system-out")
        out.text = storable(_evidence_text(r))
    root = etree.Element(
        "testsuites",
        tests=suite.get("tests", "0"),
        failures=suite.get("failures", "0"),
        errors=suite.get("errors", "0"),
        time=suite.get("time", "0"),
    )
    root.append(suite)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _evidence_text(r: CheckResult) -> str:
    parts = [f"{r.title}: {r.status.value}", r.message, *r.details]
    for item in r.evidence:
        seconds = f" ({ms(item.seconds)})" if item.seconds is not None else ""
        parts += [f"--- {item.label}{seconds}", "sent:", item.sent, "received:", item.received]
    return "\n".join(parts)


def _facts(report: Report) -> list[tuple[str, str]]:
    return [
        ("connector", report.subject),
        ("class", report.class_),
        ("organisation", report.organisation),
        ("deadline_seconds", f"{report.deadline:g}"),
        ("samples", report.samples),
        ("hub_version", report.hub_version),
        ("run_at", report.started_at.isoformat(timespec="seconds")),
    ]


# -- JSON -------------------------------------------------------------------------------------


def as_json(report: Report) -> str:
    data: dict[str, Any] = {
        "subject": report.subject,
        "class": report.class_,
        "organisation": report.organisation,
        "deadline_seconds": report.deadline,
        "samples": report.samples,
        "hub_version": report.hub_version,
        "started_at": report.started_at.isoformat(),
        "seconds": round(report.seconds, 3),
        "ok": report.ok,
        "checks": [
            {
                "id": r.id,
                "title": r.title,
                "status": r.status.value,
                "message": r.message,
                "details": r.details,
                "proves": r.proves,
                "seconds": round(r.seconds, 3),
                "evidence": [
                    {"label": e.label, "sent": e.sent, "received": e.received, "seconds": e.seconds}
                    for e in r.evidence
                ],
            }
            for r in report.results
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


# -- HTML -------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Arial,sans-serif;line-height:1.5;
color:#0b0c0c;background:#fff;margin:0 auto;max-width:72rem;padding:1rem 1.5rem 3rem}
a{color:#1d4f91}a:focus,summary:focus{outline:3px solid #fd0;outline-offset:0;background:#fd0}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border-bottom:1px solid #b1b4b6;padding:.5rem;text-align:left;vertical-align:top}
caption{text-align:left;font-weight:700;font-size:1.2rem;padding:.5rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:700}
dd{margin:0;overflow-wrap:anywhere}
.status,.time{white-space:nowrap}.status{font-weight:700}.pass{color:#00703c}.fail,.error{color:#b10e1e}
.skip-status{color:#505a5f}
.verdict{font-size:1.3rem;font-weight:700;padding:.75rem 1rem;border-left:.4rem solid}
.verdict.pass{border-color:#00703c}.verdict.fail{border-color:#b10e1e}
section{border-top:2px solid #0b0c0c;margin-top:2rem}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f3f2f1;padding:.75rem;
font-size:.875rem;max-height:30rem;overflow:auto}
details{margin:.5rem 0}summary{cursor:pointer;font-weight:700}
"""


def html_page(report: Report) -> str:
    """A standalone, accessible HTML page: summary, results table, each check's evidence."""
    word = "Passed" if report.ok else "Failed"
    title = f"Connector conformance report: {report.subject} — {word}"
    facts = "".join(
        f"<dt>{_h(label)}</dt><dd>{_h(value)}</dd>"
        for label, value in (
            ("Connector", report.subject),
            ("Class", report.class_),
            ("Organisation", report.organisation),
            ("Route deadline", _seconds(report.deadline)),
            ("Samples", report.samples),
            ("Hub version", report.hub_version),
            ("Run at", report.started_at.strftime("%d %B %Y %H:%M:%S UTC")),
            ("Duration", _seconds(round(report.seconds, 1))),
        )
    )
    rows = "".join(
        "<tr>"
        f'<th scope="row"><a href="#check-{_h(r.id)}">{_h(r.id)}</a></th>'
        f"<td>{_status(r.status)}</td>"
        f"<td>{_h(r.message)}</td>"
        f'<td class="time">{ms(r.seconds)}</td>'
        "</tr>"
        for r in report.results
    )
    sections = "".join(_section(r) for r in report.results)
    css_class = "pass" if report.ok else "fail"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{_h(title)}</title><style>{_CSS}</style></head><body>"
        '<a class="skip" href="#results">Skip to the results</a>'
        '<header><p>GovTalk reference hub — connector kit</p></header><main id="main">'
        "<h1>Connector conformance report</h1>"
        f'<p class="verdict {css_class}">{word} — {_h(tally(report))}</p>'
        f"<dl>{facts}</dl>"
        '<table id="results"><caption>Results</caption><thead><tr>'
        '<th scope="col">Check</th><th scope="col">Result</th>'
        '<th scope="col">Why</th><th scope="col">Time</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
        f"{sections}</main></body></html>\n"
    )


def _status(status: Status) -> str:
    css = "skip-status" if status == Status.SKIP else status.value
    return (
        f'<span class="status {css}"><span aria-hidden="true">{_MARK[status]} </span>'
        f"{_WORD[status]}</span>"
    )


def _section(r: CheckResult) -> str:
    ident = _h(r.id)
    if not r.details:
        details = ""
    elif _is_diff(r.details):
        details = f"<pre>{_h(chr(10).join(r.details))}</pre>"
    else:
        details = "<ul>" + "".join(f"<li>{_h(d)}</li>" for d in r.details) + "</ul>"
    exchanges = "".join(
        f"<details{' open' if r.failed else ''}><summary>{_h(e.label)}"
        + (f" ({ms(e.seconds)})" if e.seconds is not None else "")
        + "</summary>"
        f"<h4>Sent</h4><pre>{_h(e.sent)}</pre>"
        f"<h4>Received</h4><pre>{_h(e.received)}</pre></details>"
        for e in r.evidence
    )
    return (
        f'<section id="check-{ident}" aria-labelledby="title-{ident}">'
        f'<h2 id="title-{ident}">{_h(r.title)} <small>({ident})</small></h2>'
        f"<p><strong>Result:</strong> {_status(r.status)}</p>"
        f"<p>{_h(r.message)}</p>{details}"
        + (f"<p><strong>What it shows:</strong> {_h(r.proves)}</p>" if r.proves else "")
        + (f"<h3>Exchanges</h3>{exchanges}" if exchanges else "")
        + "</section>"
    )


def _h(text: str) -> str:
    """Escaped for HTML text and attributes, with characters no document may carry replaced."""
    return escape(storable(text), quote=True)
