"""The benchmark runs end to end and reports every metric: a smoke test, never a speed test.

Targets are met or missed depending on the machine and what else runs on it; that is for
`python -m bench.run` to report, not for a unit test to assert.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# The benchmark starts hubs on SQLite files of its own, whichever database the pass is for.
pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parents[2]

METRICS = {
    "acks_per_s",
    "password_cycles_per_s",
    "ack_p99_ms",
    "signed_cycles_per_s",
    "mtls_cycles_per_s",
    "peak_rss_mb_stored",
    "peak_rss_mb_rounds",
    "serve_ready_s",
}


def run_bench(module_and_args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m` a benchmark from the project's root; it must exit 0 (its stderr says why not)."""
    result = subprocess.run(
        [sys.executable, "-m", *module_and_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_one_short_run_reports_every_metric(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run_bench(
        [
            "bench.run",
            "--seconds",
            "1",
            "--warmup",
            "0.2",
            "--concurrency",
            "2",
            "--rounds",
            "1",
            "--stored",
            "1000",
            "--json",
            str(out),
        ],
        timeout=120,
    )
    report = json.loads(out.read_text())

    assert set(report["metrics"]) == METRICS
    for name, row in report["metrics"].items():
        assert row["floor"] > 0, name
        assert row["hub"] > 0, name
        assert row["ratio"] > 0, name
        assert row["target"], name
        assert row["passed"] in (True, False, None), name

    scenarios = {(m["side"], m["scenario"]) for m in report["measurements"]}
    assert scenarios == {
        ("floor", "ack"),
        ("floor", "cycle-password"),
        ("hub", "ack"),
        ("hub", "cycle-password"),
        ("hub", "cycle-mtls"),
        ("hub", "cycle-signed"),
    }
    for m in report["measurements"]:
        assert m["errors"] == 0, m["error_samples"]
        assert m["operations"] > 0 and m["latency"]["all"]["p99_ms"] > 0, m
    assert report["stored"]["submissions"] == 1000
    assert report["stored"]["list_requests"][0]["records"] > 0
    # The table printed for people carries the same metrics.
    assert "password cycles/s" in result.stdout and "serve ready" in result.stdout


def test_the_backlog_benchmark_runs_both_settings_to_the_end(tmp_path: Path) -> None:
    out = tmp_path / "backlog.json"
    run_bench(
        ["bench.backlog", "--submissions", "40", "--connections", "4", "--json", str(out)],
        timeout=300,
    )
    figures = json.loads(out.read_text())
    assert [f["max_poll_interval"] for f in figures] == [0, 60]
    for f in figures:
        # Every transaction was acknowledged, polled at least once, answered and deleted (the
        # script raises otherwise).
        assert f["submissions"] == 40
        assert f["polls"] >= 40
        assert f["answered_s"] >= f["burst_s"] > 0
