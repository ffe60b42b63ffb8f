"""Shared by the kit's tests: the faulty connector's samples and the `gateway` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAULTY = "tests.kit.faulty:FaultyConnector"
NS = "urn:govtalk-hub:example:ctax-view:v1"

REQUEST_XSD = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{NS}"
           xmlns="{NS}" elementFormDefault="qualified">
  <xs:element name="CTaxViewRequest"><xs:complexType><xs:sequence>
    <xs:element name="AccountReference" type="xs:token"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>
"""

RESPONSE_XSD = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{NS}"
           xmlns="{NS}" elementFormDefault="qualified">
  <xs:element name="CTaxViewResponse"><xs:complexType><xs:sequence>
    <xs:element name="AccountReference" type="xs:token"/>
    <xs:element name="Name" type="xs:token"/>
    <xs:element name="Band" type="xs:token"/>
    <xs:element name="AnnualCharge" type="xs:decimal"/>
    <xs:element name="Balance" type="xs:decimal"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>
"""


def view(reference: str) -> str:
    return f'<CTaxViewRequest xmlns="{NS}"><AccountReference>{reference}</AccountReference></CTaxViewRequest>'


def write_samples(folder: Path, *, timeout: float = 1.0, read_back: bool = True) -> Path:
    """The faulty connector's conformance.toml (with schemas beside it), as a supplier writes one."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "request.xsd").write_text(REQUEST_XSD)
    (folder / "response.xsd").write_text(RESPONSE_XSD)
    payment = (
        f'<CTaxPayment xmlns="{NS}"><AccountReference>10000002</AccountReference>'
        "<Amount>10.00</Amount></CTaxPayment>"
    )
    idempotency = (
        f"""
[idempotency]
request = {{ class = "LA-CTAX-PAY", keys = {{ CTaxAccountRef = "10000002" }}, body = '{payment}' }}
read_back = {{ keys = {{ CTaxAccountRef = "10000002" }}, body = '{view("10000002")}' }}
"""
        if read_back
        else ""
    )
    path = folder / "conformance.toml"
    path.write_text(
        f"""
[route]
class = "LA-CTAX-VIEW"
organisation = "E06000047"
timeout = {timeout}

[schemas]
request = "request.xsd"
response = "response.xsd"

[valid]
keys = {{ CTaxAccountRef = "10000002" }}
body = '{view("10000002")}'

[unknown]
keys = {{ CTaxAccountRef = "99999999" }}
body = '{view("99999999")}'
locations = ["/CTaxViewRequest/AccountReference"]

[known_facts]
right = {{ CTaxAccountRef = "10000002", PostCode = "DH1 3NJ" }}
wrong = {{ CTaxAccountRef = "10000002", PostCode = "ZZ9 9ZZ" }}

[deadline]
keys = {{ CTaxAccountRef = "10000003" }}
body = '{view("10000003")}'
{idempotency}"""
    )
    return path


def gateway(
    *args: str, cwd: Path = ROOT, python: str = sys.executable, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`gateway ARGS` in a child process (python -m gateway), output captured."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GATEWAY_CONFIG", None)
    return subprocess.run(
        [python, "-m", "gateway", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
