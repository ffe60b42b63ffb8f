"""`gateway scenario load`'s error gate: the share of iterations that failed, whatever failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scenario.test_runner import gateway


def load(path: Path, *options: str) -> tuple[int, str, dict[str, object]]:
    report = path.with_suffix(".json")
    code, output = gateway("scenario", "load", str(path), "--json", str(report), *options)
    return code, output, json.loads(report.read_text())


def gate(data: dict[str, object], name: str) -> dict[str, object]:
    gates = data["gates"]
    assert isinstance(gates, list)
    return next(g for g in gates if g["gate"] == name)


@pytest.mark.parametrize(
    ("actors", "step", "line", "error"),
    [
        ("  sun: {kind: citizen, demo: DEMO0NOPE001}\n", "sleep: {seconds: 0}", 4,
         "actor sun: no demo citizen DEMO0NOPE001"),
        ("  sun: {kind: citizen, demo: DEMO0SUN0001}\n",
         "submit: {actor: sun, class: LA-CTAX-VIEW, body_file: '${payload}'}", 7,
         "'missing.xml' does not exist"),
    ],
)  # fmt: skip
def test_iterations_that_cannot_run_fail_the_error_gate(
    tmp_path: Path, actors: str, step: str, line: int, error: str
) -> None:
    # Such an iteration ends before any step has a result: there is no step error to count.
    path = tmp_path / "broken.scenario.yaml"
    path.write_text(
        "version: 1\nname: Cannot run\nactors:\n"
        + actors
        + "variables: {payload: missing.xml}\nsteps:\n  - "
        + step
        + "\n"
    )
    code, output, data = load(path, "--iterations", "3")
    assert code == 1
    assert data["iterations"] == 3 and data["failed_iterations"] == 3 and data["error_rate"] == 1
    assert gate(data, "errors")["passed"] is False
    assert "FAIL  failed iterations 100.00% ≤ 5%" in output
    assert f"first error: {path}:{line}: {error}" in output


def test_the_error_gate_counts_failed_iterations_not_failed_steps(tmp_path: Path) -> None:
    # 24 steps pass and 1 fails, every time: 4 % of steps, but every iteration failed.
    path = tmp_path / "long.scenario.yaml"
    path.write_text(
        "version: 1\nname: Long, and failing at the end\nsteps:\n"
        + "  - sleep: {seconds: 0}\n" * 24
        + "  - name: always fails\n    sleep: {seconds: 0}\n    expect: {status: 500}\n"
    )
    code, output, data = load(path, "--iterations", "4")
    assert code == 1
    assert data["failed_iterations"] == 4 and data["error_rate"] == 1
    overall = data["overall"]
    assert isinstance(overall, dict) and overall["error_rate"] == 0.04  # for information
    assert gate(data, "errors") == {
        "gate": "errors",
        "passed": False,
        "detail": "failed iterations 100.00% ≤ 5%",
    }
    iterations = next(line for line in output.splitlines() if line.startswith("iterations"))
    assert "4 (100.0%)" in iterations


def test_max_errors_zero_allows_no_failed_iteration(tmp_path: Path) -> None:
    path = tmp_path / "clean.scenario.yaml"
    path.write_text("version: 1\nname: Clean\nsteps:\n  - sleep: {seconds: 0}\n")
    code, output, data = load(path, "--iterations", "3", "--max-errors", "0")
    assert code == 0, output
    assert gate(data, "errors") == {
        "gate": "errors",
        "passed": True,
        "detail": "failed iterations 0.00% ≤ 0%",
    }
