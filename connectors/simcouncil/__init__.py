"""The simulated council back office: two demo councils, View Council Tax and SPD applications."""

from __future__ import annotations

from connectors.simcouncil.connector import SimulatedCouncilConnector
from connectors.simcouncil.councils import DEMO_COUNCILS, CouncilInfo
from connectors.simcouncil.dataset import account_refs, generate
from connectors.simcouncil.examples import example_request, spd_eligible_account_refs
from connectors.simcouncil.service import ACCOUNT_KEY
from connectors.simcouncil.spd import CLASS as SPD_CLASS
from connectors.simcouncil.validation import SPD_NS, TIL_NS, VIEW_NS
from connectors.simcouncil.view import CLASS as VIEW_CLASS

__all__ = [
    "ACCOUNT_KEY",
    "DEMO_COUNCILS",
    "SPD_CLASS",
    "SPD_NS",
    "TIL_NS",
    "VIEW_CLASS",
    "VIEW_NS",
    "CouncilInfo",
    "SimulatedCouncilConnector",
    "account_refs",
    "example_request",
    "generate",
    "spd_eligible_account_refs",
]
