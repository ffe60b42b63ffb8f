"""Load mode: virtual users run a scenario over and over; latency, throughput, errors, gates.

Profiles give sensible defaults for the usual shapes of test; explicit options override them.
Gates default to GOV.UK One Login's load-test bar: p95 ≤ 1 s, p99 ≤ 2.5 s, and at most 5 % of
iterations failed. The error gate counts iterations, not steps: a scenario of 25 steps whose last
fails every time has failed every time, whatever share of its steps passed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from gateway.scenario.model import Scenario
from gateway.scenario.runner import ScenarioResult, run_scenario
from gateway.scenario.steps import Polling
from gateway.scenario.target import Target


@dataclass(frozen=True, slots=True)
class Phase:
    users: int
    share: float  # of the duration (or of the iterations)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    users: int
    duration: float | None
    iterations: int | None
    phases: tuple[Phase, ...] = ()  # spike: users change between phases
    description: str = ""


PROFILES = {
    p.name: p
    for p in (
        Profile("smoke", 1, None, 3, description="one user, a few iterations: does it work at all"),
        Profile("load", 10, 60, None, description="expected concurrent use for a minute"),
        Profile("stress", 50, 120, None, description="well past expected use"),
        Profile("soak", 10, 1800, None, description="expected use, for half an hour"),
        Profile(
            "spike",
            5,
            60,
            None,
            phases=(Phase(5, 0.25), Phase(50, 0.25), Phase(5, 0.5)),
            description="a sudden burst, then back to normal: does it recover",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Gates:
    p95: float = 1.0
    p99: float = 2.5
    error_rate: float = 0.05


@dataclass(slots=True)
class StepStats:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    @property
    def count(self) -> int:
        return len(self.latencies)

    def percentile(self, p: float) -> float:
        return percentile(self.latencies, p)

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (what load tools report), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class LoadReport:
    scenario: str
    profile: str
    users: int
    elapsed: float = 0.0
    steps: dict[str, StepStats] = field(default_factory=dict)
    # Whole iterations: their durations, and those that failed (a step failed, or the scenario
    # could not run at all, e.g. an unknown demo citizen, which leaves no step result).
    runs: StepStats = field(default_factory=lambda: StepStats("iterations"))

    @property
    def iterations(self) -> int:
        return self.runs.count

    def record(self, result: ScenarioResult) -> None:
        """One iteration's steps, and whether the iteration as a whole failed."""
        self.runs.latencies.append(result.seconds)
        failure = result.error
        for step in result.steps:
            if step.skipped:
                continue
            stats = self.steps.setdefault(step.name, StepStats(step.name))
            stats.latencies.append(step.seconds)
            if not step.ok:
                stats.errors += 1
                stats.first_error = stats.first_error or f"{step.where}: {step.error}"
                failure = failure or f"{step.where}: {step.error}"
        if failure:
            self.runs.errors += 1
            self.runs.first_error = self.runs.first_error or failure

    @property
    def overall(self) -> StepStats:
        total = StepStats("all steps")
        for stats in self.steps.values():
            total.latencies.extend(stats.latencies)
            total.errors += stats.errors
            total.first_error = total.first_error or stats.first_error
        return total

    def gate_results(self, gates: Gates) -> list[tuple[str, bool, str]]:
        overall = self.overall
        p95, p99, rate = overall.percentile(95), overall.percentile(99), self.runs.error_rate
        # With no step measured the latency gates pass vacuously; the error gate must not.
        measured = overall.count > 0
        errors = f"failed iterations {rate:.2%} ≤ {gates.error_rate * 100:g}%"
        return [
            ("p95", p95 <= gates.p95, f"p95 {p95 * 1000:.0f} ms ≤ {gates.p95 * 1000:.0f} ms"),
            ("p99", p99 <= gates.p99, f"p99 {p99 * 1000:.0f} ms ≤ {gates.p99 * 1000:.0f} ms"),
            (
                "errors",
                measured and rate <= gates.error_rate,
                errors if measured else f"{errors} (no step was measured)",
            ),
        ]

    def table(self) -> str:
        rows = [("step", "n", "errors", "per s", "p50 ms", "p95 ms", "p99 ms")]
        for stats in [*self.steps.values(), self.overall, self.runs]:
            rows.append(
                (
                    stats.name,
                    str(stats.count),
                    f"{stats.errors} ({stats.error_rate:.1%})",
                    f"{stats.count / self.elapsed:.1f}" if self.elapsed else "-",
                    f"{stats.percentile(50) * 1000:.1f}",
                    f"{stats.percentile(95) * 1000:.1f}",
                    f"{stats.percentile(99) * 1000:.1f}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for n, row in enumerate(rows):
            cells = [row[0].ljust(widths[0])] + [c.rjust(widths[i]) for i, c in enumerate(row) if i]
            lines.append("  ".join(cells))
            if n in (0, len(rows) - 3):
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def as_json(self, gates: Gates) -> dict[str, object]:
        def one(stats: StepStats) -> dict[str, object]:
            return {
                "step": stats.name,
                "count": stats.count,
                "errors": stats.errors,
                "error_rate": stats.error_rate,
                "throughput_per_s": stats.count / self.elapsed if self.elapsed else 0,
                "p50_s": stats.percentile(50),
                "p95_s": stats.percentile(95),
                "p99_s": stats.percentile(99),
                "first_error": stats.first_error,
            }

        return {
            "scenario": self.scenario,
            "profile": self.profile,
            "users": self.users,
            "elapsed_s": self.elapsed,
            "iterations": self.iterations,
            "failed_iterations": self.runs.errors,
            "error_rate": self.runs.error_rate,  # failed iterations ÷ iterations: the errors gate
            "steps": [one(s) for s in self.steps.values()],
            "overall": one(self.overall),
            "per_iteration": one(self.runs),
            "gates": [
                {"gate": g, "passed": ok, "detail": d} for g, ok, d in self.gate_results(gates)
            ],
        }


async def run_load(
    scenario: Scenario,
    target: Target,
    profile: Profile,
    *,
    polling: Polling = "eager",
) -> LoadReport:
    """Run the scenario with the profile's users until its duration or iterations are spent."""
    report = LoadReport(scenario.name, profile.name, profile.users)
    for step in scenario.steps:
        report.steps.setdefault(step.name, StepStats(step.name))
    phases = profile.phases or (Phase(profile.users, 1.0),)
    report.users = max(p.users for p in phases)
    connector = aiohttp.TCPConnector(limit=report.users * 2)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        for phase in phases:
            budget_s = profile.duration * phase.share if profile.duration is not None else None
            budget_n = (
                max(1, round(profile.iterations * phase.share))
                if profile.iterations is not None
                else None
            )
            await _phase(
                scenario, target, session, phase.users, budget_s, budget_n, report, polling
            )
    report.elapsed = time.perf_counter() - started
    return report


async def _phase(
    scenario: Scenario,
    target: Target,
    session: aiohttp.ClientSession,
    users: int,
    duration: float | None,
    iterations: int | None,
    report: LoadReport,
    polling: Polling,
) -> None:
    deadline = time.perf_counter() + duration if duration is not None else math.inf
    remaining = [iterations if iterations is not None else -1]

    def take() -> bool:
        if time.perf_counter() >= deadline:
            return False
        if remaining[0] == 0:
            return False
        if remaining[0] > 0:
            remaining[0] -= 1
        return True

    async def user() -> None:
        while take():
            report.record(await run_scenario(scenario, target, session=session, polling=polling))

    await asyncio.gather(*(user() for _ in range(users)))
