"""Sampling profiles of a running server with py-spy, summarised as the functions that dominate.

py-spy attaches with ptrace (it needs CAP_SYS_PTRACE, or kernel.yama.ptrace_scope 0) and samples
from outside: the server runs unmodified. `.venv/bin/pip install py-spy`.

    python -m bench.profile summarise /tmp/ack.raw     # a collapsed-stack file from py-spy
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# Frames from these places are what the team can change; the rest is libraries and the loop.
OWN_CODE = ("gateway/", "connectors/")
# Entry points that sit at the bottom of every stack on the event loop: never "the" hub frame.
ENTRY = ("gateway/cli.py:", "gateway/web/server.py:")

# Where a sample's leaf frame lives -> the component it is charged to (first match wins).
COMPONENTS = (
    # aiosqlite runs each call in its connection's thread: a queue put, a wake-up through the
    # loop's self-pipe, a callback. py-spy charges its frames the Python-side cost of that
    # hand-off; SQLite's own C work runs without the GIL and only shows in --native profiles.
    ("aiosqlite/", "aiosqlite: per-call thread hand-off (and sqlite3 glue)"),
    ("sqlite3", "aiosqlite: per-call thread hand-off (and sqlite3 glue)"),
    ("sqlalchemy/", "SQLAlchemy (Python: ORM, compilation, results)"),
    ("selectors.py:", "event loop waiting for I/O (idle)"),
    ("concurrent/futures/", "thread pool (to_thread: scrypt, PKI)"),
    ("aiohttp/", "aiohttp (HTTP parsing, responses)"),
    (
        "asyncio/selector_events.py:BaseSelectorEventLoop._read_from_self",
        "aiosqlite: per-call thread hand-off (and sqlite3 glue)",
    ),
    (
        "asyncio/selector_events.py:BaseSelectorEventLoop._write_to_self",
        "aiosqlite: per-call thread hand-off (and sqlite3 glue)",
    ),
    ("asyncio/", "asyncio machinery (tasks, callbacks, transports)"),
    ("lxml", "lxml"),
    ("gateway/govtalk/", "GovTalk parse / serialise (hub code)"),
    ("structlog/", "logging (structlog)"),
    ("logging/", "logging (stdlib)"),
    ("gateway/audit/", "audit trail (hub code)"),
    ("signxml/", "XML signatures (signxml, cryptography)"),
    ("cryptography/", "XML signatures (signxml, cryptography)"),
    ("ssl.py:", "TLS"),
    ("connectors/", "connectors (the simulated council)"),
    ("gateway/", "other hub code"),
)


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, raw: Path, *, native: bool = False) -> Path:
    """Sample `pid` (and its children) for `seconds` into a collapsed-stack file.

    By default only samples of a thread holding the GIL are kept: that is the CPU the event loop
    spends in Python, the hub's bottleneck. Samples of waiting threads (an aiosqlite worker
    waiting for work, the loop waiting in epoll) would otherwise swamp the picture: py-spy cannot
    tell a Python thread blocked in a C call from one running it."""
    tool = py_spy()
    if tool is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    command = [tool, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    command += ["--format", "raw", "--output", str(raw), "--subprocesses", "--rate", "200"]
    # Native frames show where C code (SQLite, OpenSSL, lxml) spends its time, but need the
    # process paused for each sample; without them the server runs undisturbed.
    command += ["--native"] if native else ["--nonblocking", "--gil"]
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0 or not await asyncio.to_thread(raw.exists):
        raise RuntimeError(f"py-spy failed ({proc.returncode}): {err.decode(errors='replace')}")
    return raw


def _frames(stack: str) -> list[str]:
    # py-spy's raw format: "process;thread;frame;frame... count"; frames are "func (file:line)".
    return [f for f in stack.split(";") if f]


def _function(frame: str) -> str:
    """'func (path/file.py:123)' -> 'path/file.py:func', the line dropped so lines add up."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{name}" if path else name


# Whole-stack patterns, checked before the leaf: in a --native profile every thread is sampled,
# waiting or not, and these say what a thread was waiting for.
STACK_PATTERNS = (
    (
        "sqlite3InvokeBusyHandler",
        "SQLite busy handler: sleeping until another connection's write lock goes",
    ),
    ("_queue_SimpleQueue_get", "idle: a worker thread waiting for work"),
    ("EpollSelector.select", "event loop waiting for I/O (idle)"),
    ("Condition.wait", "idle: a thread waiting on a condition"),
)


def _classify(functions: list[str]) -> str:
    for marker, component in STACK_PATTERNS:
        if any(marker in f for f in functions):
            return component
    return _component(functions[-1])


def _component(function: str) -> str:
    for marker, component in COMPONENTS:
        if function.startswith(marker) or f"/{marker}" in function:
            return component
    return "other (Python runtime, stdlib)"


def summarise(raw: Path, top: int = 25) -> dict[str, Any]:
    """Shares of samples: by leaf function (self), by any function on the stack (inclusive), and
    by the hub's own function nearest the leaf (where its code hands off to a library)."""
    total = 0
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own_leaf: Counter[str] = Counter()
    components: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        functions = [_function(f) for f in _frames(stack) if "(" in f]
        if not functions:
            continue
        self_time[functions[-1]] += count
        components[_classify(functions)] += count
        for name in set(functions):
            inclusive[name] += count
        own = [f for f in functions if f.startswith(OWN_CODE) and not f.startswith(ENTRY)]
        own_leaf[own[-1] if own else "(no hub frame: event loop, threads, libraries)"] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "components": shares(components),
        "self": shares(self_time),
        "inclusive_own": shares(
            Counter(
                {
                    k: v
                    for k, v in inclusive.items()
                    if k.startswith(OWN_CODE) and not k.startswith(ENTRY)
                }
            )
        ),
        "inclusive": shares(inclusive),
        "nearest_own_frame": shares(own_leaf),
    }


def render(summary: dict[str, Any], heading: str) -> str:
    lines = [f"## {heading} ({summary['samples']} samples)"]
    for key, title in (
        ("components", "self time by component"),
        ("self", "self time (leaf function)"),
        ("nearest_own_frame", "hub function nearest the leaf"),
        ("inclusive_own", "inclusive, hub code only"),
    ):
        lines.append(f"\n### {title}\n")
        lines.extend(f"{share:5.1f}%  {name}" for name, share in summary[key])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    summarise_cmd = sub.add_parser("summarise", help="summarise a py-spy raw (collapsed) file")
    summarise_cmd.add_argument("raw", type=Path)
    summarise_cmd.add_argument("--top", type=int, default=25)
    summarise_cmd.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    summary = summarise(args.raw, args.top)
    print(json.dumps(summary, indent=2) if args.json else render(summary, str(args.raw)))


if __name__ == "__main__":
    main()
