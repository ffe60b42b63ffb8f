"""Child processes for the benchmark: start, wait for readiness, watch memory and CPU via /proc, stop.

psutil is not a dependency of the hub, so everything is read from /proc directly (Linux only).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env() -> dict[str, str]:
    """The environment for the floor and the hub: nothing that would redirect their database or
    configuration away from what the bench wrote."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name in ("GATEWAY_DATABASE_URL", "GATEWAY_CONFIG"):
        env.pop(name, None)
    return env


def spawn(command: Sequence[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    # Output goes to a file: a pipe nobody reads would fill and stall a chatty server mid-run.
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command), stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=child_env()
        )


async def wait_healthy(
    proc: subprocess.Popen[bytes], url: str, started: float, within: float = 60
) -> float:
    """Seconds from `started` (time.perf_counter) to the first 200 from `url`."""
    deadline = started + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - started
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.01)
    raise RuntimeError(f"{url}: not healthy after {within} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM (the hub drains its dispatcher and closes the database), then SIGKILL if stuck."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def descendants(pid: int) -> list[int]:
    """pid's child processes, recursively (`serve --workers N` runs its workers as children)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        children: list[int] = []
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    children.extend(int(c) for c in handle.read().split())
        except OSError:
            continue
        found.extend(children)
        pending.extend(children)
    return found


def _status_kb(pid: int, field_name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int, tid: int | None = None) -> int:
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as handle:
            # The command name (field 2) may contain spaces; the fields after ')' do not.
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    return int(fields[11]) + int(fields[12])


@dataclass
class ProcessWatch:
    """Samples the summed RSS of a process tree in a thread; reads CPU time on demand.

    VmHWM (the kernel's own high-water mark) catches a single process's peaks between samples;
    the sampled sum covers trees of several processes.
    """

    pid: int
    interval: float = 0.05
    peak_rss_kb: int = 0
    samples: int = 0
    _hwm_kb: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def pids(self) -> list[int]:
        return [self.pid, *descendants(self.pid)]

    def sample(self) -> None:
        total = 0
        for pid in self.pids():
            total += _status_kb(pid, "VmRSS")
            hwm = _status_kb(pid, "VmHWM")
            if hwm:
                self._hwm_kb[pid] = max(self._hwm_kb.get(pid, 0), hwm)
        self.peak_rss_kb = max(self.peak_rss_kb, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> ProcessWatch:
        self.sample()
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop sampling, after a last sample (call before the process is stopped)."""
        self.sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_mb(self) -> float:
        """The highest of the sampled tree total and any one process's own high-water mark."""
        single = max(self._hwm_kb.values(), default=0)
        return max(self.peak_rss_kb, single) / 1024

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the live process tree so far."""
        return sum(_cpu_ticks(pid) for pid in self.pids()) / CLOCK_TICKS

    def main_thread_seconds(self) -> dict[int, float]:
        """CPU time of each process's main thread — the asyncio event loop in a hub process —
        by pid: one thread holding the GIL caps a process, whatever its other threads do."""
        return {pid: _cpu_ticks(pid, pid) / CLOCK_TICKS for pid in self.pids()}
