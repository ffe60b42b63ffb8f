"""YAML for scenario files: safe, strict, and every value knows the line it came from.

PyYAML's SafeLoader follows YAML 1.1, which turns `NO` into False, `0755` into 493 and `1.10`
into 1.1 — wrong for council codes, account references and version-looking strings. This loader
keeps only the unsurprising implicit types (null, true/false, decimal integers); everything else,
decimals included, is a string, converted where a step expects a number. Duplicate keys are errors, not a silent last-one-wins.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

MAX_BYTES = 1024 * 1024


class ScenarioError(Exception):
    """A scenario file is invalid; the message starts with file:line."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class Located(dict[str, Any]):
    """A mapping that remembers its own line and each key's line (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list[Any]):
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


# Start from no implicit resolvers at all, then add back the few that surprise nobody.
_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), [*"~nN", ""]
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)


def _construct_int(loader: _Loader, node: Node) -> int:
    assert isinstance(node, ScalarNode)
    return int(node.value)


def _construct_mapping(loader: _Loader, node: Node) -> Located:
    assert isinstance(node, MappingNode)
    loader.flatten_mapping(node)
    mapping = Located()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        where = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise _error(loader, where, f"keys must be text, not {key!r}")
        if key in mapping:
            raise _error(loader, where, f"'{key}' is given twice")
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = where
    return mapping


def _construct_sequence(loader: _Loader, node: Node) -> LocatedList:
    items = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    items.line = node.start_mark.line + 1
    items.item_lines = [child.start_mark.line + 1 for child in node.value]
    return items


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def _error(loader: _Loader, line: int, message: str) -> ScenarioError:
    return ScenarioError(f"{loader.name}:{line}", message)


def load_yaml(path: Path) -> Any:
    """The document in `path`, strictly loaded; ScenarioError with file:line when it is not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(str(path), f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ScenarioError(str(path), f"larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(str(path), "not UTF-8") from None
    loader = _Loader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise ScenarioError(f"{path}:{line}", str(exc.problem or exc)) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), str(exc)) from None
    finally:
        loader.dispose()
