#!/usr/bin/env python3
"""The two commands a newcomer needs; nothing but Python 3.11+ required.

python3 dev.py run    set up, start the demo hub on SQLite, show one View Council Tax
                      transaction end to end, keep serving until Ctrl-C
python3 dev.py test   set up and run the checks (ruff, mypy) and the whole test suite, twice:
                      on SQLite, then (but for tests marked no_database) on the local PostgreSQL (GATEWAY_TEST_PG, default
                      postgresql://postgres@127.0.0.1:5432/test; skipped with a warning when no
                      server answers, unless GATEWAY_TEST_REQUIRE_PG=1 as in CI)
                      GATEWAY_TEST_DATABASE=sqlite|postgresql runs one pass only; extra
                      arguments go to pytest
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _run(*args: str | Path, **kw: object) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def setup(extra: str) -> None:
    """Create .venv and install the hub (editable) once per pyproject change."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on whatever python3 a newcomer has
        sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]})")
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()
    stamp = VENV / f".installed-{extra or 'base'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    _run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(PY, "-m", "pip", "install", "--quiet", "-e", f".[{extra}]" if extra else ".")
    stamp.write_text(digest)


def run() -> int:
    setup("")
    gateway = BIN / "gateway"
    _run(gateway, "db", "upgrade")
    server = subprocess.Popen([str(gateway), "serve"], cwd=ROOT)
    try:
        demo = subprocess.run([str(gateway), "demo", "client", "--wait", "30"], cwd=ROOT)
        if demo.returncode != 0:
            print("the demo transaction did not complete; see the hub's log above", file=sys.stderr)
        print(
            "\nThe hub is serving on http://127.0.0.1:8080 — `.venv/bin/gateway demo info` lists "
            "the demo citizens. Ctrl-C stops it.",
            flush=True,
        )
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGINT)
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait()


PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_answers() -> bool:
    probe = "import asyncio, asyncpg, sys; asyncio.run(asyncpg.connect(sys.argv[1], timeout=3))"
    server = os.environ.get("GATEWAY_TEST_PG", PG_SERVER)
    return subprocess.run([str(PY), "-c", probe, server], capture_output=True).returncode == 0


def test(pytest_args: list[str]) -> int:
    setup("test")
    _run(BIN / "ruff", "check", ".")
    _run(BIN / "mypy", "gateway", "connectors")
    chosen = os.environ.get("GATEWAY_TEST_DATABASE")
    backends = [chosen] if chosen else ["sqlite", "postgresql"]
    if "postgresql" in backends and not _postgres_answers():
        if os.environ.get("GATEWAY_TEST_REQUIRE_PG") == "1":
            print("no PostgreSQL server answers; GATEWAY_TEST_REQUIRE_PG=1", file=sys.stderr)
            return 1
        print("WARNING: no PostgreSQL server answers: the PostgreSQL pass is skipped", flush=True)
        backends.remove("postgresql")
    # Three workers on two cores: much of a hub test is waiting (polls, child processes).
    workers = [] if any(a.startswith("-n") for a in pytest_args) else ["-n", "3"]
    for backend in backends:
        print(f"== the test suite on {backend} ==", flush=True)
        env = dict(os.environ, GATEWAY_TEST_DATABASE=backend)
        command = [str(PY), "-m", "pytest", *workers, *pytest_args]
        code = subprocess.run(command, cwd=ROOT, env=env).returncode
        if code != 0:
            return code
    return 0


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "test"):
        print(__doc__)
        return 2
    try:
        return run() if sys.argv[1] == "run" else test(sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
