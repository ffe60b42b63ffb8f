"""The scenario format (version 1), checked on load: unknown keys and kinds are errors at file:line.

    version: 1
    name: View Council Tax by password
    tags: [dsp, smoke]
    include: [common.yaml]          # variables and actors from files beside this one
    variables: {council: E08000024}
    actors:
      sun: {kind: citizen, demo: DEMO0SUN0001}
    steps:
      - name: file it
        submit: {actor: sun, class: LA-CTAX-VIEW, organisation: "${council}", auth: password}
        expect: {qualifier: response}
        capture: {cid: correlation_id}

No I/O beyond reading the scenario's own files; no aiohttp, no database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.scenario.loader import Located, LocatedList, ScenarioError, load_yaml

VERSION = 1
TOP_KEYS = {"version", "name", "description", "tags", "include", "variables", "actors", "steps"}
COMMON_STEP_KEYS = {"name", "expect", "capture"}
ACTOR_KINDS: dict[str, set[str]] = {
    "citizen": {"kind", "demo", "user_id", "password", "certificate", "key"},
    "council": {"kind", "organisation", "token"},
    "portal": {"kind", "organisation", "title"},
}
# Each step kind and the parameters it takes.
STEP_KINDS: dict[str, set[str]] = {
    "register": {"actor", "password", "display_name", "kind"},
    "issue_certificate": {"actor", "common_name"},
    "enrol": {"actor", "class", "organisation", "facts"},
    "activate": {"actor", "enrolment", "pin"},
    "sign_in": {"actor", "method", "portal", "scope", "credential"},
    "submit": {
        "actor", "class", "organisation", "keys", "body", "body_file", "template", "auth",
        "gateway_test", "gateway_timestamp", "until_final", "timeout", "transaction_id",
    },
    "poll": {"actor", "class", "correlation_id", "until_final", "timeout"},
    "delete": {"actor", "class", "correlation_id"},
    "list": {"actor", "class", "start", "end"},
    "send_mail": {
        "council", "class", "identifier_type", "identifier", "subject", "body",
        "sender_message_id", "expires_at", "replies",
    },
    "read_mail": {"actor", "subject", "via"},
    "pay": {"council", "actor", "reference", "amount_pence", "description", "card", "expiry", "cvc"},
    "revoke_certificate": {"actor", "reason"},
    "clock": {"advance", "set"},
    "fault": {"connector", "set", "params", "clear"},
    "http": {"method", "path", "json", "body", "headers", "actor", "auth"},
    "sleep": {"seconds"},
}  # fmt: skip
EXPECT_KEYS = {
    "qualifier", "error_number", "status", "facts", "xpath", "json", "contains", "not_contains",
}  # fmt: skip
# Parameters of one type, wherever they appear. The loader keeps `no`, `False` and `30s` as text,
# and text is truthy or unparsable when run: these are refused at load instead.
FLAGS = {"until_final", "gateway_test", "clear"}
NUMBERS = {"timeout"}
WHOLE_NUMBERS = {"amount_pence"}
DURATIONS = {"seconds", "advance"}
MAPPINGS = {"keys", "facts", "headers", "params"}
NUMBER = re.compile(r"^\s*[0-9]+(?:\.[0-9]+)?\s*$")
WHOLE = re.compile(r"^\s*[0-9]+\s*$")
DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*$")
_SCALAR = (str, int, float)
_SHAPES = {
    "facts": "{fact: value}",
    "xpath": "{EXPR: value | true | false}",
    "json": "{path: value}",
}


@dataclass(frozen=True, slots=True)
class Step:
    kind: str
    name: str
    params: Mapping[str, Any]
    expect: Mapping[str, Any]
    capture: Mapping[str, str]
    where: str  # file:line, for every message about this step


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    kind: str
    fields: Mapping[str, Any]
    where: str = ""  # file:line, for a demo citizen only the hub's own list can check


@dataclass(frozen=True, slots=True)
class Scenario:
    path: Path
    name: str
    description: str
    tags: tuple[str, ...]
    variables: Mapping[str, Any]
    actors: Mapping[str, Actor]
    steps: tuple[Step, ...]

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def exclusive(self) -> bool:
        """Moving the hub's clock or injecting a fault affects every scenario on the hub: such
        scenarios run alone."""
        return any(step.kind in ("clock", "fault") for step in self.steps)


def inside(directory: Path, relative: str, where: str) -> Path:
    """A file named by a scenario, which must stay inside the scenario's directory."""
    if not isinstance(relative, str) or not relative:
        raise ScenarioError(where, "a file name is needed")
    if "\0" in relative:  # the OS refuses it, with a ValueError rather than a missing file
        raise ScenarioError(where, f"{relative!r} is not a file name (it holds a NUL byte)")
    base = directory.resolve()
    candidate = (base / relative).resolve()
    if Path(relative).is_absolute() or not candidate.is_relative_to(base):
        raise ScenarioError(where, f"{relative!r} is outside the scenario's directory")
    if not candidate.is_file():
        raise ScenarioError(where, f"{relative!r} does not exist (no file {candidate})")
    return candidate


def load(path: Path) -> Scenario:
    """Read and check one scenario file."""
    document = load_yaml(path)
    where = f"{path}:1"
    if not isinstance(document, Located):
        raise ScenarioError(where, "a scenario is a mapping (version, name, steps, ...)")

    def at(mapping: Located, key: str) -> str:
        return f"{path}:{mapping.line_of(key)}"

    unknown = sorted(set(document) - TOP_KEYS)
    if unknown:
        raise ScenarioError(at(document, unknown[0]), f"unknown key '{unknown[0]}'")
    if document.get("version") != VERSION:
        raise ScenarioError(at(document, "version"), f"version must be {VERSION}")
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ScenarioError(at(document, "name"), "name is required")
    tags = document.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ScenarioError(at(document, "tags"), "tags must be a list of words")

    variables: dict[str, Any] = {}
    actors: dict[str, Actor] = {}
    includes = document.get("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise ScenarioError(at(document, "include"), "include must be a file or a list of files")
    for include in includes:
        included = load_yaml(inside(path.parent, include, at(document, "include")))
        if not isinstance(included, Located) or set(included) - {"variables", "actors"}:
            raise ScenarioError(
                at(document, "include"), f"{include}: an include holds variables and actors only"
            )
        variables.update(_variables(included, path.parent / include))
        actors.update(_actors(included, path.parent / include))
    variables.update(_variables(document, path))
    actors.update(_actors(document, path))

    raw_steps = document.get("steps")
    if not isinstance(raw_steps, LocatedList) or not raw_steps:
        raise ScenarioError(at(document, "steps"), "steps must be a non-empty list")
    steps = tuple(
        _step(raw, f"{path}:{line}", index, actors)
        for index, (raw, line) in enumerate(zip(raw_steps, raw_steps.item_lines, strict=True))
    )
    return Scenario(
        path=path,
        name=name.strip(),
        description=str(document.get("description", "")),
        tags=tuple(tags),
        variables=variables,
        actors=actors,
        steps=steps,
    )


def _variables(document: Located, path: Path) -> dict[str, Any]:
    variables = document.get("variables", {})
    if not isinstance(variables, dict):
        raise ScenarioError(
            f"{path}:{document.line_of('variables')}", "variables must be a mapping"
        )
    return dict(variables)


def _actors(document: Located, path: Path) -> dict[str, Actor]:
    raw = document.get("actors", Located())
    if not isinstance(raw, Located):
        raise ScenarioError(f"{path}:{document.line_of('actors')}", "actors must be a mapping")
    actors = {}
    for name, spec in raw.items():
        where = f"{path}:{raw.line_of(name)}"
        if not isinstance(spec, Located):
            raise ScenarioError(where, f"actor '{name}' must be a mapping with a kind")
        kind = spec.get("kind")
        if kind not in ACTOR_KINDS:
            raise ScenarioError(
                where, f"actor '{name}': kind must be one of {', '.join(ACTOR_KINDS)}"
            )
        unknown = sorted(set(spec) - ACTOR_KINDS[kind])
        if unknown:
            raise ScenarioError(
                f"{path}:{spec.line_of(unknown[0])}", f"actor '{name}': unknown key '{unknown[0]}'"
            )
        if kind in ("council", "portal") and not isinstance(spec.get("organisation"), str):
            raise ScenarioError(where, f"actor '{name}': organisation is required")
        actors[name] = Actor(name, kind, dict(spec), where)
    return actors


def _step(raw: Any, where: str, index: int, actors: Mapping[str, Actor]) -> Step:
    if not isinstance(raw, Located):
        raise ScenarioError(where, "a step is a mapping with one step kind")
    kinds = [k for k in raw if k not in COMMON_STEP_KEYS]
    if len(kinds) != 1:
        found = ", ".join(kinds) or "none"
        raise ScenarioError(
            where, f"a step has exactly one kind ({', '.join(STEP_KINDS)}); found {found}"
        )
    kind = kinds[0]
    here = f"{where.rsplit(':', 1)[0]}:{raw.line_of(kind)}"
    if kind not in STEP_KINDS:
        raise ScenarioError(here, f"unknown step kind '{kind}'")
    params = raw[kind] if raw[kind] is not None else Located()
    if not isinstance(params, dict):
        raise ScenarioError(here, f"'{kind}' takes a mapping of parameters")
    unknown = sorted(set(params) - STEP_KINDS[kind])
    if unknown:
        line = params.line_of(unknown[0]) if isinstance(params, Located) else raw.line_of(kind)
        raise ScenarioError(
            f"{where.rsplit(':', 1)[0]}:{line}", f"{kind}: unknown parameter '{unknown[0]}'"
        )
    for role in ("actor", "council", "portal"):
        named = params.get(role)
        if isinstance(named, str) and "${" not in named and named not in actors:
            raise ScenarioError(here, f"{kind}: no actor named '{named}'")
    for key, value in params.items():
        problem = _parameter_problem(key, value)
        if problem:
            line = params.line_of(key) if isinstance(params, Located) else raw.line_of(kind)
            raise ScenarioError(f"{where.rsplit(':', 1)[0]}:{line}", f"{kind}: {key} {problem}")
    expect = raw.get("expect", {})
    if not isinstance(expect, dict) or set(expect) - EXPECT_KEYS:
        bad = sorted(set(expect) - EXPECT_KEYS) if isinstance(expect, dict) else ["(not a mapping)"]
        raise ScenarioError(
            f"{where.rsplit(':', 1)[0]}:{raw.line_of('expect')}",
            f"expect: unknown check '{bad[0]}' (one of {', '.join(sorted(EXPECT_KEYS))})",
        )
    for check, wanted in expect.items():
        problem = _expectation_problem(check, wanted)
        if problem:
            line = expect.line_of(check) if isinstance(expect, Located) else raw.line_of("expect")
            raise ScenarioError(f"{where.rsplit(':', 1)[0]}:{line}", f"expect: {check} {problem}")
    capture = raw.get("capture", {})
    if not isinstance(capture, dict) or not all(isinstance(v, str) for v in capture.values()):
        raise ScenarioError(
            f"{where.rsplit(':', 1)[0]}:{raw.line_of('capture')}",
            "capture maps a variable name to what to take (e.g. correlation_id, json:id)",
        )
    name = raw.get("name") or f"{index + 1}. {kind}"
    return Step(kind, str(name), dict(params), dict(expect), dict(capture), here)


def _variable(value: Any) -> bool:
    """Text naming a variable: its type is known only when the step runs, and checked then."""
    return isinstance(value, str) and "${" in value


def _parameter_problem(key: str, value: Any) -> str:
    """What is wrong with a typed parameter's value, or "" if nothing (or not yet knowable)."""
    if _variable(value):
        return ""
    if key in FLAGS and not isinstance(value, bool):
        return f"must be true or false, not {value!r}"
    numeric = isinstance(value, int) and not isinstance(value, bool)
    if key in NUMBERS and not (numeric or (isinstance(value, str) and NUMBER.match(value))):
        return f"must be a number of seconds (e.g. 30 or 0.5), not {value!r}"
    if key in WHOLE_NUMBERS and not (numeric or (isinstance(value, str) and WHOLE.match(value))):
        return f"must be a whole number (e.g. 10000), not {value!r}"
    if key in DURATIONS and not (numeric or (isinstance(value, str) and DURATION.match(value))):
        return f"must be a duration (e.g. 30, 90s, 15m, 2h, 29d), not {value!r}"
    if key in MAPPINGS and not isinstance(value, dict):
        return f"must be a mapping, not {value!r}"
    return ""


def _expectation_problem(check: str, wanted: Any) -> str:
    """What is wrong with an expectation's shape, or "" if nothing (or not yet knowable)."""
    if _variable(wanted):
        return ""
    if check in ("status", "error_number") and (
        isinstance(wanted, bool) or not isinstance(wanted, (int, str))
    ):
        return f"must be a number, not {wanted!r}"
    if check == "qualifier" and not isinstance(wanted, str):
        return f"must be a word (e.g. response), not {wanted!r}"
    if check in ("facts", "xpath", "json") and not isinstance(wanted, dict):
        return f"must be a mapping ({_SHAPES[check]}), not {wanted!r}"
    if check == "xpath":
        bad = [v for v in wanted.values() if not isinstance(v, _SCALAR)]
        if bad:
            return f"values are text, a number, true or false, not {bad[0]!r}"
    if check in ("contains", "not_contains"):
        texts = wanted if isinstance(wanted, list) else [wanted]
        if not all(isinstance(t, _SCALAR) and not isinstance(t, bool) for t in texts):
            return f"is text or a list of texts, not {wanted!r}"
    return ""


__all__ = ["Actor", "Scenario", "ScenarioError", "Step", "inside", "load"]
