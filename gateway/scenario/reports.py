"""Scenario results for people (live lines, a summary table) and for CI (JUnit XML, JSON)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from lxml import etree

from gateway.scenario.runner import ScenarioResult, StepResult
from gateway.storable import storable


def step_line(result: ScenarioResult, step: StepResult) -> str:
    if step.skipped:
        return click.style(f"  - {result.name} › {step.name} (skipped)", dim=True)
    mark = click.style("✓", fg="green") if step.ok else click.style("✗", fg="red", bold=True)
    line = f"  {mark} {result.name} › {step.name} ({step.seconds * 1000:.0f} ms)"
    if not step.ok:
        line += "\n" + failure_text(step, indent="      ")
    return line


def failure_text(step: StepResult, indent: str = "") -> str:
    lines = [f"{step.where}: {step.error}"]
    if step.sent:
        lines += ["sent:", *("  " + x for x in step.sent.splitlines()[:40])]
    if step.received:
        lines += ["received:", *("  " + x for x in step.received.splitlines()[:40])]
    return "\n".join(indent + line for line in lines)


def summary(results: Sequence[ScenarioResult]) -> str:
    rows = [("scenario", "steps", "time", "result")]
    for r in results:
        passed = sum(s.ok for s in r.steps)
        rows.append(
            (r.name, f"{passed}/{len(r.steps)}", f"{r.seconds:.2f} s", "pass" if r.ok else "FAIL")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    failed = sum(not r.ok for r in results)
    out.append(f"\n{len(results)} scenarios, {len(results) - failed} passed, {failed} failed")
    # A scenario's own error already starts with its file:line.
    out.extend(r.error for r in results if r.error)
    return "\n".join(out)


def junit_xml(results: Sequence[ScenarioResult]) -> bytes:
    """JUnit XML; every text through storable(), as a reply may be binary (a DER CRL, say)."""
    suite = etree.Element(
        "testsuite",
        name="gateway scenarios",
        tests=str(len(results)),
        failures=str(sum(not r.ok for r in results)),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for r in results:
        case = etree.SubElement(
            suite,
            "testcase",
            classname=storable(Path(r.path).stem),
            name=storable(r.name),
            time=f"{r.seconds:.3f}",
        )
        failed = next((s for s in r.steps if not s.ok and not s.skipped), None)
        if r.error or failed is not None:
            message = r.error or f"{failed.name}: {failed.error}" if failed else r.error
            node = etree.SubElement(case, "failure", message=storable(message))
            node.text = storable(failure_text(failed) if failed is not None else r.error)
        out = etree.SubElement(case, "system-out")
        out.text = storable(
            "\n".join(
                f"{'skip' if s.skipped else 'ok' if s.ok else 'FAIL'} {s.name} {s.seconds * 1000:.0f} ms"
                for s in r.steps
            )
        )
    root = etree.Element("testsuites")
    root.append(suite)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def as_json(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    return {
        "passed": sum(r.ok for r in results),
        "failed": sum(not r.ok for r in results),
        "scenarios": [{**dataclasses.asdict(r), "ok": r.ok, "tags": list(r.tags)} for r in results],
    }


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
