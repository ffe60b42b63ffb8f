"""The scenario runner's `fault` step sets and clears faults on the hub it drives."""

from __future__ import annotations

from pathlib import Path

from gateway.scenario.model import load
from gateway.scenario.runner import run_scenario
from gateway.scenario.target import Target
from tests.conftest import Hub

SCENARIO = """\
version: 1
name: The council hangs, then recovers
actors:
  sun: {kind: citizen, demo: DEMO0SUN0001}
steps:
  - name: the council stops answering
    fault: {connector: council-E08000024, set: hang}
    expect: {status: 200}
  - name: a view is given up with 2005
    submit: {actor: sun, class: LA-CTAX-VIEW, until_final: true, timeout: 10}
    expect: {qualifier: error, error_number: 2005}
  - name: the council is repaired
    fault: {connector: council-E08000024, clear: true}
    expect: {status: 204}
  - name: a view is answered
    submit: {actor: sun, class: LA-CTAX-VIEW, until_final: true, timeout: 10}
    expect: {qualifier: response}
"""


async def test_fault_steps_drive_the_hub(council_hub: Hub, tmp_path: Path) -> None:
    path = tmp_path / "hang.scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    target = Target(council_hub.url, None, None, council_hub.config.pki_dir, embedded=False)
    result = await run_scenario(load(path), target)
    failures = [(s.name, s.error, s.received) for s in result.steps if not s.ok]
    assert failures == [] and len(result.steps) == 4
