"""The supplier's connector kit: scaffold a connector, test it against a real hub, check conformance.

- `scaffold`: `gateway connector new NAME` — a connector package that installs and passes its tests.
- `hub`: a real hub in this process with one connector routed in (the pytest plugin's fixture).
- `conformance` and `checks`: `gateway connector check` — the conformance suite.
- `report`: its results as console text, JUnit XML, a standalone HTML page and JSON.
- `pytest_plugin`: the `pytest11` entry point giving suppliers `gateway_hub` and friends.
"""

from __future__ import annotations
