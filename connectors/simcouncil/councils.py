"""The demo councils the simulated back office can play, keyed by ONS GSS code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Area:
    """A town or village served by the council, with its locality names and postcode districts."""

    town: str
    districts: tuple[str, ...]
    localities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CouncilInfo:
    """One billing authority: identity, band D charge and the places its properties are in."""

    code: str
    name: str
    band_d_pence: int  # the full band D charge for the year, precepts included
    prefix: str  # three capitals that start every CTaxAccountRef of this council
    instalment_day: int  # day of the month the ten instalments fall due
    areas: tuple[Area, ...]
    band_weights: tuple[int, ...]  # relative numbers of dwellings in bands A..H


SUNDERLAND = CouncilInfo(
    code="E08000024",
    name="Sunderland City Council",
    band_d_pence=221_453,
    prefix="SUN",
    instalment_day=1,
    areas=(
        Area("Sunderland", ("SR1",), ("City Centre", "Bishopwearmouth")),
        Area("Sunderland", ("SR2",), ("Hendon", "Ashbrooke", "Thornhill", "Grangetown", "Ryhope")),
        Area("Sunderland", ("SR3",), ("Silksworth", "Doxford Park", "Tunstall", "Farringdon")),
        Area("Sunderland", ("SR4",), ("Millfield", "Pallion", "Barnes", "Ford Estate")),
        Area("Sunderland", ("SR5",), ("Southwick", "Castletown", "Monkwearmouth", "Witherwack")),
        Area("Sunderland", ("SR6",), ("Roker", "Fulwell", "Seaburn", "Whitburn")),
    ),
    # Wearside housing is mostly terraced and ex-council: over half of it sits in band A.
    band_weights=(55, 18, 12, 7, 4, 2, 1, 1),
)

SEDGEMOOR = CouncilInfo(
    code="E07000188",
    name="Sedgemoor District Council",
    band_d_pence=235_687,
    prefix="SED",
    instalment_day=15,
    areas=(
        Area("Bridgwater", ("TA6",), ("Wembdon", "Hamp", "Sydenham", "Durleigh", "Westover")),
        Area("Bridgwater", ("TA7",), ("Puriton", "Woolavington", "Westonzoyland", "Chedzoy")),
        Area("Burnham-on-Sea", ("TA8",), ("Berrow", "Brean", "Apex")),
        Area("Highbridge", ("TA9",), ("East Huntspill", "Watchfield", "Mark")),
    ),
    band_weights=(14, 29, 22, 15, 11, 6, 2, 1),
)

DEMO_COUNCILS: dict[str, CouncilInfo] = {c.code: c for c in (SUNDERLAND, SEDGEMOOR)}


def council(code: str) -> CouncilInfo:
    """The demo council with this GSS code, or ValueError naming the ones that exist."""
    try:
        return DEMO_COUNCILS[code]
    except KeyError:
        known = ", ".join(f"{c.code} ({c.name})" for c in DEMO_COUNCILS.values())
        raise ValueError(f"unknown council {code!r}; the demo councils are {known}") from None
