"""The scenario format: strict YAML, file:line errors, files only inside the scenario's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.scenario.loader import ScenarioError, load_yaml
from gateway.scenario.model import load

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

GOOD_HEAD = "version: 1\nname: t\n"


def write(tmp_path: Path, text: str, name: str = "t.scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(path: Path) -> str:
    with pytest.raises(ScenarioError) as caught:
        load(path)
    return str(caught.value)


def test_yaml_1_1_coercions_are_off(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, "a: NO\nb: 0755\nc: 1.10\nd: yes\ne: 12\nf: true\ng: ~\n"))
    assert doc == {"a": "NO", "b": "0755", "c": "1.10", "d": "yes", "e": 12, "f": True, "g": None}


def test_duplicate_keys_are_errors_at_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\nb: 2\na: 3\n")
    with pytest.raises(ScenarioError, match=rf"^{path}:3: 'a' is given twice"):
        load_yaml(path)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (GOOD_HEAD + "stepz: []\n", 3, "unknown key 'stepz'"),
        (GOOD_HEAD + "steps:\n  - submitt: {class: X}\n", 4, "unknown step kind 'submitt'"),
        (GOOD_HEAD + "steps:\n  - submit:\n      class: X\n      colour: red\n", 6,
         "submit: unknown parameter 'colour'"),
        (GOOD_HEAD + "steps:\n  - poll: {class: X}\n    expect: {qualifer: response}\n", 5,
         "expect: unknown check 'qualifer'"),
        (GOOD_HEAD + "steps:\n  - submit: {actor: nobody, class: X}\n", 4, "no actor named 'nobody'"),
        (GOOD_HEAD + "steps:\n  - submit: {class: X}\n    poll: {class: X}\n", 4,
         "exactly one kind"),
        ("version: 2\nname: t\nsteps: [{sleep: {seconds: 1}}]\n", 1, "version must be 1"),
        (GOOD_HEAD + "actors:\n  a: {kind: robot}\nsteps: [{sleep: {}}]\n", 4, "kind must be one of"),
        (GOOD_HEAD + "steps:\n  - submit: {class: [unclosed\n", 5, "expected"),
        # Values of the wrong shape: refused here, not a traceback halfway through a run.
        (GOOD_HEAD + "steps:\n  - sleep: {seconds: 0}\n    expect: {xpath: '//x'}\n", 5,
         "expect: xpath must be a mapping"),
        (GOOD_HEAD + "steps:\n  - sleep: {seconds: 0}\n    expect: {facts: [state]}\n", 5,
         "expect: facts must be a mapping"),
        (GOOD_HEAD + "steps:\n  - sleep: {seconds: 0}\n    expect:\n      status: 200\n"
         "      json: a.b\n", 7, "expect: json must be a mapping"),
        (GOOD_HEAD + "steps:\n  - sleep: {seconds: 0}\n    expect: {xpath: {'//x': [a]}}\n", 5,
         "expect: xpath values are text, a number, true or false"),
        (GOOD_HEAD + "actors:\n  c: {kind: council, organisation: E08000024}\n"
         "steps:\n  - pay: {council: c, reference: X, amount_pence: £100}\n", 6,
         "pay: amount_pence must be a whole number"),
        (GOOD_HEAD + "steps:\n  - poll:\n      class: X\n      correlation_id: Y\n"
         "      timeout: 30s\n", 7, "poll: timeout must be a number of seconds"),
        (GOOD_HEAD + "steps:\n  - sleep: {seconds: soon}\n", 4, "sleep: seconds must be a duration"),
        (GOOD_HEAD + "steps:\n  - submit: {class: X, keys: CTaxAccountRef}\n", 4,
         "submit: keys must be a mapping"),
        # YAML 1.1's spellings of false stay text under this loader, and text is true.
        (GOOD_HEAD + "steps:\n  - submit:\n      class: X\n      until_final: False\n", 6,
         "submit: until_final must be true or false, not 'False'"),
        (GOOD_HEAD + "steps:\n  - submit: {class: X, gateway_test: no}\n", 4,
         "submit: gateway_test must be true or false, not 'no'"),
        (GOOD_HEAD + "steps:\n  - fault: {connector: c, clear: 'false'}\n", 4,
         "fault: clear must be true or false, not 'false'"),
    ],
)  # fmt: skip
def test_mistakes_are_named_at_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, text)
    error = refused(path)
    assert error.startswith(f"{path}:{line}: "), error
    assert message in error


def test_includes_and_payloads_stay_inside_the_scenario_folder(tmp_path: Path) -> None:
    outside = tmp_path / "secret.yaml"
    outside.write_text("variables: {stolen: yes}\n")
    folder = tmp_path / "scenarios"
    folder.mkdir()
    path = write(folder, GOOD_HEAD + "include: ../secret.yaml\nsteps: [{sleep: {seconds: 0}}]\n")
    assert "outside the scenario's directory" in refused(path)
    absolute = write(
        folder, GOOD_HEAD + f"include: {outside}\nsteps: [{{sleep: {{seconds: 0}}}}]\n", "b.yaml"
    )
    assert "outside the scenario's directory" in refused(absolute)
    (folder / "common.yaml").write_text("variables: {council: E08000024}\n")
    ok = write(
        folder, GOOD_HEAD + "include: common.yaml\nsteps: [{sleep: {seconds: 0}}]\n", "c.yaml"
    )
    assert load(ok).variables == {"council": "E08000024"}
