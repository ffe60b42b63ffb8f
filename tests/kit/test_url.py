"""`gateway connector check --url`: a back office reached over HTTP through http-forward.

The back office is the example supplier back office (examples/supplier_backoffice), a real
aiohttp server in its own process speaking the wire format; the check runs as `gateway`
would for a supplier.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.kit.support import ROOT, gateway


@pytest.fixture
def back_office() -> Iterator[str]:
    """The example back office on a free port; its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.supplier_backoffice", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, "the back office exited"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the back office did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def stats(base: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{base}/_stats", timeout=5) as reply:
        data: dict[str, int] = json.load(reply)
        return data


def test_the_example_back_office_passes_over_http(back_office: str, tmp_path: Path) -> None:
    junit = tmp_path / "url.xml"
    result = gateway(
        "connector", "check", "--url", f"{back_office}/transactions", "--junit-xml", str(junit)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cases = {c.get("name"): c for c in etree.parse(str(junit)).iter("testcase")}
    failed = [
        n for n, c in cases.items() if c.find("failure") is not None or c.find("error") is not None
    ]
    assert failed == []
    # http-forward offers no known-facts capability: not applicable, and said so.
    skipped = [n for n, c in cases.items() if c.find("skipped") is not None]
    assert skipped == ["known-facts"]
    assert "through the http-forward connector" in result.stdout
    # The redelivery really crossed the wire with the same Idempotency-Key, and the back office
    # answered it from its stored answer instead of applying it again.
    counted = stats(back_office)
    assert counted["replays"] == 1
    assert counted["requests"] >= 11


def test_a_back_office_that_hangs_fails_at_the_deadline(back_office: str) -> None:
    request = urllib.request.Request(
        f"{back_office}/_fault",
        data=json.dumps({"mode": "hang"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()
    result = gateway(
        "connector", "check", "--url", f"{back_office}/transactions", "--timeout", "0.3"
    )
    assert result.returncode == 1
    assert "FAIL   deadline" in result.stdout
    assert (
        "the hub abandons such a call, retries it, and then answers the client 2005"
        in result.stdout
    )
