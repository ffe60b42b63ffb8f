"""Running scenarios: steps in order, expectations checked, values captured, results recorded."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateway.scenario.checks import Observed, StepFailed, capture, check, substitute
from gateway.scenario.loader import ScenarioError
from gateway.scenario.model import Scenario, Step
from gateway.scenario.steps import STEPS, Polling, Run
from gateway.scenario.target import Target

SHOWN = 4000  # characters of a failing step's request and reply kept for the report


@dataclass(slots=True)
class StepResult:
    name: str
    kind: str
    where: str
    ok: bool
    seconds: float
    error: str = ""
    sent: str = ""
    received: str = ""
    skipped: bool = False


@dataclass(slots=True)
class ScenarioResult:
    name: str
    path: str
    tags: tuple[str, ...]
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""  # a failure outside any step (e.g. the file did not load)

    @property
    def ok(self) -> bool:
        return (
            not self.error
            and all(s.ok or s.skipped for s in self.steps)
            and not any(s.skipped for s in self.steps)
        )


Progress = Callable[[ScenarioResult, StepResult], None]


def builtins() -> dict[str, Any]:
    """Variables every scenario has: dates relative to today, and a fresh unique token."""
    today = date.today()
    return {
        "today": today.isoformat(),
        "in_a_week": (today + timedelta(days=7)).isoformat(),
        "in_two_weeks": (today + timedelta(days=14)).isoformat(),
        "unique": secrets.token_hex(6),
    }


def _actors(scenario: Scenario, target: Target) -> dict[str, dict[str, Any]]:
    from gateway.demo import citizens_list

    demo = {c.user_id: c for c in citizens_list()}
    actors: dict[str, dict[str, Any]] = {}
    for name, actor in scenario.actors.items():
        state: dict[str, Any] = {**actor.fields, "name": name}
        demo_id = actor.fields.get("demo")
        if demo_id is not None:
            citizen = demo.get(str(demo_id))
            if citizen is None:
                raise ScenarioError(
                    actor.where or str(scenario.path), f"actor {name}: no demo citizen {demo_id}"
                )
            state.update(user_id=citizen.user_id, password=citizen.password)
            state["demo_enrolments"] = citizen.enrolments
            state["accounts"] = {e.organisation: e.account_ref for e in citizen.enrolments}
            if citizen.enrolments:
                state["account"] = citizen.enrolments[0].account_ref
            if target.pki_dir is not None:
                issued = target.pki_dir / "issued"
                state.setdefault("certificate", str(issued / f"{citizen.user_id}.pem"))
                state.setdefault("key", str(issued / f"{citizen.user_id}.key"))
        for key in ("certificate", "key"):
            if key in actor.fields:
                state[key] = str((scenario.directory / str(actor.fields[key])).resolve())
        actors[name] = state
    return actors


async def run_scenario(
    scenario: Scenario,
    target: Target,
    *,
    progress: Progress | None = None,
    session: aiohttp.ClientSession | None = None,
    variables: dict[str, Any] | None = None,
    polling: Polling = "eager",
) -> ScenarioResult:
    result = ScenarioResult(scenario.name, str(scenario.path), scenario.tags)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scenario-") as tmp:
        own = session is None
        http = session or aiohttp.ClientSession()
        run = Run(
            scenario=scenario,
            target=target,
            workdir=Path(tmp),
            variables={**builtins(), **scenario.variables, **(variables or {})},
            actors={},
            session=http,
            polling=polling,
        )
        try:
            run.actors = _actors(scenario, target)
            failed = False
            for step in scenario.steps:
                if failed:
                    outcome = StepResult(step.name, step.kind, step.where, False, 0.0, skipped=True)
                else:
                    outcome = await run_step(run, step)
                    failed = not outcome.ok
                result.steps.append(outcome)
                if progress is not None:
                    progress(result, outcome)
        except ScenarioError as exc:
            result.error = str(exc)
        finally:
            await run.aclose()
            if own:
                await http.close()
    result.seconds = time.perf_counter() - started
    return result


async def run_step(run: Run, step: Step) -> StepResult:
    """One step: substitute, act, check, capture; failures carry what was sent and received."""
    started = time.perf_counter()
    seen: Observed | None = None
    run.where = step.where
    try:
        scope = {**run.actors, **run.variables}
        params = substitute(dict(step.params), scope)
        expect = substitute(dict(step.expect), scope)
        seen = await STEPS[step.kind](run, params)
        if "status" not in expect and "error_number" not in expect:
            status = seen.facts.get("status")
            if isinstance(status, int) and status >= 400:
                raise StepFailed(f"HTTP {status} (add expect: {{status: {status}}} if intended)")
        check(expect, seen)
        run.variables.update(capture(step.capture, seen))
    except StepFailed as exc:
        return _result(step, started, str(exc), seen)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return _result(step, started, f"{type(exc).__name__}: {exc}", seen)
    except (ValueError, TypeError) as exc:
        # A parameter of the wrong type that no check caught (its value came from a variable, say):
        # this step fails, at its file:line, rather than the whole run ending in a traceback.
        return _result(step, started, f"{type(exc).__name__}: {exc}", seen)
    return _result(step, started, "", seen)


def _result(step: Step, started: float, error: str, seen: Observed | None) -> StepResult:
    return StepResult(
        name=step.name,
        kind=step.kind,
        where=step.where,
        ok=not error,
        seconds=time.perf_counter() - started,
        error=error,
        sent=(seen.sent[:SHOWN] if seen and error else ""),
        received=(seen.received[:SHOWN] if seen and error else ""),
    )


async def run_all(
    scenarios: Sequence[Scenario],
    target: Target,
    *,
    concurrency: int = 4,
    progress: Progress | None = None,
    polling: Polling = "eager",
) -> list[ScenarioResult]:
    """Scenarios are independent: up to `concurrency` at once, results in the given order.

    Those that move the hub's clock or inject faults run afterwards, one at a time, so no other
    scenario's codes expire or back office hangs under it.
    """
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(scenario: Scenario) -> ScenarioResult:
        async with gate:
            return await run_scenario(scenario, target, progress=progress, polling=polling)

    results: dict[int, ScenarioResult] = {}
    together = [(i, s) for i, s in enumerate(scenarios) if not s.exclusive]
    for i, result in zip(
        [i for i, _ in together], await asyncio.gather(*(one(s) for _, s in together)), strict=True
    ):
        results[i] = result
    for i, scenario in enumerate(scenarios):
        if scenario.exclusive:
            results[i] = await run_scenario(scenario, target, progress=progress, polling=polling)
    return [results[i] for i in range(len(scenarios))]
