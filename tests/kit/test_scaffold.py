"""`gateway connector new`: the package it writes installs into a fresh virtual environment,
passes its own tests there (through the hub's pytest plugin) and the conformance check.

The fresh environment sees the hub the way a supplier's would after `pip install
govtalk-gateway-hub`: a .pth file adds this environment's site-packages (where the hub and its
dependencies are installed) as a site directory. The connector itself is built into a wheel and
installed by pip, with its dependencies resolved — so its pyproject, entry point and package
data are exercised for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from lxml import etree

from gateway.kit.scaffold import ScaffoldError, create
from tests.kit.support import ROOT, gateway

BIN = Path(sys.executable).parent


def run(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


def fresh_venv(where: Path) -> Path:
    """A new virtual environment whose site sees the hub's installed packages; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    hub_site = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "govtalk_hub_site.pth").write_text(
        f"import site; site.addsitedir({hub_site!r})\n"
    )
    return python


def child_env() -> dict[str, str]:
    # Nothing of this test session's Python setup may leak into the supplier's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHON"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_a_scaffolded_connector_installs_passes_its_tests_and_the_check(tmp_path: Path) -> None:
    made = gateway("connector", "new", "acme-ctax", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    package = tmp_path / "acme-ctax"
    assert (package / "src" / "acme_ctax" / "connector.py").is_file()

    python = fresh_venv(tmp_path / "venv")
    env = child_env()
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        package,
        cwd=tmp_path,
        env=env,
    )
    # Installed as a wheel, not read from the source tree: the entry point is registered.
    entry = run(
        python,
        "-c",
        "from importlib.metadata import entry_points; "
        "print(entry_points(group='gateway.connectors')['acme-ctax'].value)",
        cwd=tmp_path,
        env=env,
    )
    assert entry.stdout.strip() == "acme_ctax.connector:AcmeCtaxConnector"

    tests = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package, env=env)
    assert "5 passed" in tests.stdout, tests.stdout

    junit, page = tmp_path / "conformance.xml", tmp_path / "conformance.html"
    check = gateway(
        "connector", "check", "acme-ctax", "--junit-xml", str(junit), "--html", str(page),
        python=str(python), cwd=tmp_path,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    suite = etree.parse(str(junit)).getroot()[0]
    assert [c.get("name") for c in suite.iter("testcase")] == [
        "load", "response", "business-error", "known-facts", "idempotency",
        "malformed-input", "hub-roundtrip", "deadline",
    ]  # fmt: skip
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0")
    samples = suite.find("properties/property[@name='samples']")
    assert samples is not None
    # The samples and schemas came with the installed package (package data), found by the
    # entry point alone.
    assert samples.get("value", "").endswith("site-packages/acme_ctax/conformance.toml")
    assert "valid against view-response.xsd" in check.stdout
    assert "Passed — 8 checks: 8 passed" in page.read_text(encoding="utf-8")


@pytest.mark.no_database
def test_the_scaffold_is_lint_clean_and_strictly_typed(tmp_path: Path) -> None:
    made = create("a-much-longer-supplier-name", tmp_path, class_="HMRC-EXAMPLE-CLASS")
    run(BIN / "ruff", "check", "--no-cache", ".", cwd=made.root)
    run(BIN / "ruff", "format", "--check", "--no-cache", ".", cwd=made.root)
    # The hub ships no py.typed yet, so mypy is shown the hub's source tree directly.
    env = {**child_env(), "MYPYPATH": f"src{os.pathsep}{ROOT}"}
    run(
        BIN / "mypy", "--strict", "--cache-dir", tmp_path / "mypy", "src", "tests",
        cwd=made.root, env=env,
    )  # fmt: skip


@pytest.mark.no_database
@pytest.mark.parametrize(
    ("name", "kw", "message"),
    [
        ("Acme", {}, "not a connector name"),
        ("acme--ctax", {}, "not a connector name"),
        ("gateway", {}, "which is taken"),
        ("json", {}, "which is taken"),
        ("acme", {"class_": "LA-CTAX-VIEW-TIL"}, "not a GovTalk class"),
        ("acme", {"class_": "la-ctax"}, "not a GovTalk class"),
        ("acme", {"organisation": "E06 000047"}, "not an organisation code"),
    ],
)
def test_bad_names_are_refused(tmp_path: Path, name: str, kw: dict[str, str], message: str) -> None:
    with pytest.raises(ScaffoldError, match=message):
        create(name, tmp_path, **kw)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.no_database
def test_an_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "acme" / "src").mkdir(parents=True)
    (tmp_path / "acme" / "src" / "mine.py").write_text("keep me")
    result = gateway("connector", "new", "acme", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "already exists and is not empty" in result.stderr
    assert (tmp_path / "acme" / "src" / "mine.py").read_text() == "keep me"
    assert [p.name for p in (tmp_path / "acme").iterdir()] == ["src"]
