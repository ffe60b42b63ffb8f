"""Password sign-in at the DSP: a 1046 takes as long for an unknown User ID as for a wrong
password, so the time it takes does not tell which User IDs exist."""

from __future__ import annotations

import statistics
import time

from tests.conftest import Hub, HubFactory
from tests.hub import wire
from tests.hub.test_dsp import view_submission


async def _seconds_to_1046(hub: Hub, xml: str) -> float:
    start = time.perf_counter()
    reply = wire.read(await hub.post(xml))
    elapsed = time.perf_counter() - start
    assert reply.error_number == 1046, reply.errors
    return elapsed


async def test_an_unknown_user_id_is_refused_no_faster_than_a_wrong_password(
    hub_factory: HubFactory,
) -> None:
    """An unknown User ID costs the scrypt a wrong password does (the gap was 30 times)."""
    hub: Hub = await hub_factory({"limits": {"auth_failures_per_sender": 0}})
    # First uses make the dummy hash and fill caches: not what is measured.
    await _seconds_to_1046(hub, view_submission(password="warm-up"))
    await _seconds_to_1046(hub, view_submission(user="ZZZZ9NOSUCH0", password="warm-up"))
    wrong, unknown = [], []
    for i in range(7):
        wrong.append(await _seconds_to_1046(hub, view_submission(password=f"guess-{i}")))
        unknown.append(
            await _seconds_to_1046(hub, view_submission(user=f"ZZZZ9NOSUCH{i}", password="x"))
        )
    # Generous: a loaded machine moves both; a refusal without scrypt is a small fraction.
    assert statistics.median(unknown) >= 0.3 * statistics.median(wrong), (unknown, wrong)
