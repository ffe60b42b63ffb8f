"""The simulated council's known-facts check, against its own store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.protocol import ConnectorContext, KnownFactsChecker, KnownFactsRequest
from connectors.simcouncil import SimulatedCouncilConnector
from connectors.simcouncil.dataset import generate

SUNDERLAND = "E08000024"


@pytest.fixture
async def council(
    tmp_path: Path,
) -> AsyncIterator[tuple[SimulatedCouncilConnector, ConnectorContext]]:
    ctx = ConnectorContext(name="council", options={"council": SUNDERLAND}, data_dir=tmp_path)
    connector = SimulatedCouncilConnector(ctx)
    await connector.start()
    yield connector, ctx
    await connector.aclose()


async def test_known_facts(council: tuple[SimulatedCouncilConnector, ConnectorContext]) -> None:
    connector, ctx = council
    assert isinstance(connector, KnownFactsChecker)
    # One with a flat (SAON) if the dataset has one, to see every address line.
    prop = next((p for p in generate(SUNDERLAND) if p.address.saon), generate(SUNDERLAND)[0])
    a = prop.address
    right = {
        "CTaxAccountRef": prop.account_ref.lower(),
        "PostCode": f"  {a.postcode.replace(' ', '').lower()} ",
        "Surname": prop.liable[-1].surname.swapcase(),
    }

    async def check(facts: dict[str, str], class_: str = "LA-CTAX-VIEW", org: str = SUNDERLAND):
        return await connector.check_known_facts(KnownFactsRequest(class_, org, facts), ctx)

    result = await check(right)
    assert result.match, result.reason
    assert result.identifiers == {"CTaxAccountRef": prop.account_ref}
    expected = [a.saon, f"{a.paon} {a.street}", a.locality, a.town, a.postcode]
    assert list(result.address) == [line for line in expected if line]
    assert (await check(right, class_="LA-CTAX-SPD")).match

    for name, value in (
        ("Surname", "Nobody"),
        ("PostCode", "ZZ9 9ZZ"),
        ("CTaxAccountRef", "SUN99999999"),
    ):
        result = await check({**right, name: value})
        assert not result.match and result.identifiers == {} and result.address == ()
        assert result.reason == "the facts given do not match the council's records"

    missing = await check({"CTaxAccountRef": prop.account_ref})
    assert not missing.match and "PostCode" in missing.reason and "Surname" in missing.reason

    unknown = await check(right, class_="LA-PLANNING-COMMENT")
    assert not unknown.match and "LA-PLANNING-COMMENT" in unknown.reason
    elsewhere = await check(right, org="E07000188")
    assert not elsewhere.match
