"""Path traversal in scenario files: an include, body_file or template may name only a file
inside the scenario's own folder, however the name is spelt; anything else is a ScenarioError
naming the file and line, never another exception and never the file's content.

tests/scenario/test_format.py already refuses `include: ../secret.yaml` and an absolute path;
these are the other spellings, and the step-level file parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.scenario.loader import ScenarioError
from gateway.scenario.model import load
from gateway.scenario.runner import run_scenario
from gateway.scenario.target import Target

HEAD = "version: 1\nname: traversal\n"
STOLEN = "stolen-secret-value"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A scenario folder, with a secret beside it (outside) and a subfolder inside."""
    (tmp_path / "secret.yaml").write_text(f"variables: {{stolen: {STOLEN}}}\n")
    (tmp_path / "secret.xml").write_text(f"<Stolen>{STOLEN}</Stolen>")
    inside = tmp_path / "scenarios"
    (inside / "sub").mkdir(parents=True)
    (inside / "common.yaml").write_text("variables: {council: E08000024}\n")
    return inside


def refusal(folder: Path, include: str) -> str:
    path = folder / "t.scenario.yaml"
    path.write_text(HEAD + f"include: {include}\nsteps: [{{sleep: {{seconds: 0}}}}]\n")
    with pytest.raises(ScenarioError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: "), message
    assert STOLEN not in message
    return message


@pytest.mark.parametrize(
    "include",
    [
        "sub/../../secret.yaml",
        "./../secret.yaml",
        "sub/../sub/../../secret.yaml",
        "[common.yaml, ../secret.yaml]",
        "/proc/self/environ",
    ],
)
def test_escapes_by_any_spelling_are_refused(folder: Path, include: str) -> None:
    assert "outside the scenario's directory" in refusal(folder, include)


def test_a_symlink_inside_the_folder_pointing_outside_is_refused(folder: Path) -> None:
    (folder / "looks-local.yaml").symlink_to(folder.parent / "secret.yaml")
    assert "outside the scenario's directory" in refusal(folder, "looks-local.yaml")


def test_a_symlink_to_a_device_is_refused_before_anything_is_read(folder: Path) -> None:
    # /dev/zero would never end; the check must come before the read.
    (folder / "zeros.yaml").symlink_to("/dev/zero")
    assert "outside the scenario's directory" in refusal(folder, "zeros.yaml")


@pytest.mark.parametrize(
    "include", ["'..\\\\secret.yaml'", "'file:///etc/passwd'", "'~/secret.yaml'", "'.'", "sub"]
)
def test_names_that_are_no_file_inside_are_refused(folder: Path, include: str) -> None:
    assert "does not exist" in refusal(folder, include)


def test_a_directory_symlink_escaping_the_folder_is_refused(folder: Path) -> None:
    (folder / "up").symlink_to(folder.parent, target_is_directory=True)
    assert "outside the scenario's directory" in refusal(folder, "up/secret.yaml")


def test_a_nul_byte_in_an_include_is_a_scenario_error(folder: Path) -> None:
    refusal(folder, '"a\\u0000b.yaml"')


@pytest.mark.parametrize("parameter", ["body_file", "template"])
@pytest.mark.parametrize("name", ["../secret.xml", "link.xml", "/etc/passwd"])
async def test_step_files_outside_the_folder_are_refused_before_anything_is_sent(
    folder: Path, parameter: str, name: str
) -> None:
    (folder / "link.xml").symlink_to(folder.parent / "secret.xml")
    path = folder / "steps.scenario.yaml"
    path.write_text(
        HEAD
        + "actors:\n  sun: {kind: citizen, demo: DEMO0SUN0001}\nsteps:\n"
        + "  - submit: {actor: sun, class: LA-CTAX-VIEW, organisation: E08000024, "
        + f"{parameter}: '{name}'}}\n"
    )
    scenario = load(path)
    # Nothing listens on the discard port: a request sent would be a connection error instead.
    nowhere = Target(url="http://127.0.0.1:9", https_url=None, ca_bundle=None, pki_dir=None,
                     embedded=False)  # fmt: skip
    result = await run_scenario(scenario, nowhere)
    assert not result.ok
    assert f"'{name}' is outside the scenario's directory" in result.error
    assert STOLEN not in result.error
    assert result.steps == []  # refused while building the request: no step ran to the wire
