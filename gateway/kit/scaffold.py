"""`gateway connector new NAME`: a connector package that installs and passes its tests at once.

The files come from templates/skeleton.toml: a pyproject declaring the `gateway.connectors`
entry point, a typed connector over an in-memory demo back office (a View Council Tax-like
class), its schemas and conformance samples, tests using the hub's pytest plugin, a README.
"""

from __future__ import annotations

import keyword
import re
import sys
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import structlog

from gateway import __version__

log = structlog.get_logger("gateway.kit.scaffold")

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_CLASS = re.compile(r"^[A-Z0-9]+(?:-[A-Z0-9]+)*$")
_ORGANISATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_PLACEHOLDER = re.compile(r"\{\{[a-z_]+\}\}")
# Import names a connector package must not take: the hub's own, and the test directory's.
_TAKEN = frozenset({"gateway", "connectors", "examples", "tests"})


class ScaffoldError(ValueError):
    """The connector cannot be created as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Scaffolded:
    root: Path
    files: tuple[Path, ...]
    entry_point: str
    package: str


def names(name: str) -> dict[str, str]:
    """The template values derived from NAME (acme-ctax → acme_ctax, AcmeCtaxConnector, …)."""
    if not _NAME.match(name) or len(name) > 60:
        raise ScaffoldError(
            f"{name!r} is not a connector name: use lower-case letters, digits and single "
            "hyphens, starting with a letter (e.g. acme-ctax)"
        )
    package = name.replace("-", "_")
    if package in _TAKEN or package in sys.stdlib_module_names or keyword.iskeyword(package):
        raise ScaffoldError(f"{name!r} would make the package {package!r}, which is taken")
    parts = name.split("-")
    return {
        "dist": name,
        "package": package,
        "class_name": "".join(p.capitalize() for p in parts) + "Connector",
        "title": " ".join(p.capitalize() for p in parts),
        "hub_version": __version__,
    }


def render(text: str, values: dict[str, str]) -> str:
    """Fill the {{placeholders}}; one left over is a template bug, so it is an error."""
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    leftover = _PLACEHOLDER.search(text)
    if leftover:
        raise ScaffoldError(f"template placeholder {leftover.group(0)} has no value")
    return text


def create(
    name: str, directory: Path, *, class_: str = "LA-CTAX-VIEW", organisation: str = "E06000047"
) -> Scaffolded:
    """Write NAME/ under directory; refuses to touch an existing, non-empty NAME/."""
    if not _CLASS.match(class_) or class_.endswith("-TIL"):
        raise ScaffoldError(
            f"{class_!r} is not a GovTalk class: upper-case words joined by hyphens, "
            "without the -TIL suffix (e.g. LA-CTAX-VIEW)"
        )
    if not _ORGANISATION.match(organisation):
        raise ScaffoldError(f"{organisation!r} is not an organisation code (e.g. E06000047)")
    values = {**names(name), "gateway_class": class_, "organisation": organisation}
    root = directory / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScaffoldError(f"{root} already exists and is not empty")
    written: list[Path] = []
    for item in _templates():
        path = root / render(item["path"], values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(item["text"], values), encoding="utf-8")
        written.append(path)
    log.info("connector.scaffolded", name=name, root=str(root), files=len(written))
    return Scaffolded(root, tuple(written), name, values["package"])


def _templates() -> list[dict[str, str]]:
    text = (resources.files("gateway.kit") / "templates" / "skeleton.toml").read_text("utf-8")
    files = tomllib.loads(text)["file"]
    assert isinstance(files, list)
    return files
