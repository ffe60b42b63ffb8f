"""BVPI 157 without a hub: the ten types, the report builder, and the `bvpi157` route option."""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.config import DEMO_COUNCILS, RouteConfig, load_config, parse_config
from gateway.errors import ConfigError
from gateway.routing.bvpi157 import (
    CODES,
    InteractionType,
    UnknownCouncil,
    build_report,
    organisations_of,
)
from tests.conftest import ROOT

NOW = datetime(2005, 12, 31, 23, 59, tzinfo=UTC)
T = InteractionType


@pytest.fixture(autouse=True)
def database_backend() -> Iterator[None]:
    """Nothing here opens a database: skip making one per test on the PostgreSQL pass."""
    yield


def route(
    class_: str,
    organisation: str,
    type_: InteractionType | None,
    name: str = "",
    council: str | None = None,
) -> RouteConfig:
    return RouteConfig(
        class_=class_,
        organisation=organisation,
        connector="c",
        organisation_name=name,
        bvpi157=type_,
        council=council,
    )


def test_the_ten_types_have_stable_codes_and_the_indicators_labels() -> None:
    assert CODES == (
        "providing-information",
        "collecting-revenue",
        "benefits-grants",
        "consultation",
        "regulation",
        "applications",
        "booking",
        "paying",
        "networks",
        "procurement",
    )
    assert T.BOOKING.label == "Booking venues, resources and courses"
    assert T.NETWORKS.label == ("Providing access to community, professional or business networks")
    assert len({t.label for t in T}) == 10


ROUTES = (
    route("LA-CTAX-VIEW", "E1", T.PROVIDING_INFORMATION, "First Council"),
    route("LA-BINS-VIEW", "E1", T.PROVIDING_INFORMATION, "First Council"),
    route("LA-CTAX-SPD", "E1", T.COLLECTING_REVENUE, "First Council"),
    route("LA-OLD-FORM", "E1", None, "First Council"),
    route("LA-CTAX-VIEW", "E2", T.PROVIDING_INFORMATION),  # no name: the code stands in
)
VOLUMES = {
    ("E1", "LA-CTAX-VIEW"): 5,
    ("E1", "LA-BINS-VIEW"): 2,
    ("E1", "LA-OLD-FORM"): 4,  # routed without a type
    ("E1", "LA-GONE"): 1,  # no longer routed
    ("E2", "LA-CTAX-VIEW"): 7,
    ("E9", "LA-CTAX-VIEW"): 100,  # an organisation no route serves
}


def test_report_per_council_types_percentage_and_volumes() -> None:
    report = build_report(ROUTES, VOLUMES, as_of=NOW)
    assert [c.code for c in report.councils] == ["E1", "E2"]
    first, second = report.councils
    assert (first.name, second.name) == ("First Council", "E2")
    lines = {line.type: line for line in first.types}
    assert [line.type for line in first.types] == list(T)
    assert lines[T.PROVIDING_INFORMATION].classes == ("LA-BINS-VIEW", "LA-CTAX-VIEW")
    assert lines[T.PROVIDING_INFORMATION].volume == 7
    assert lines[T.COLLECTING_REVENUE].enabled and lines[T.COLLECTING_REVENUE].volume == 0
    assert not lines[T.PAYING].enabled and lines[T.PAYING].volume == 0
    assert (first.enabled, first.percentage) == (2, 20.0)
    assert first.undeclared_classes == ("LA-OLD-FORM",)
    assert first.unclassified_volume == 5
    assert first.total_volume == 12
    assert (second.enabled, second.percentage, second.total_volume) == (1, 10.0, 7)

    data = report.to_json()
    assert data["as_of"] == NOW.isoformat() and "purged" in data["note"]
    [e1] = [c for c in data["councils"] if c["code"] == "E1"]
    assert e1["percentage"] == 20.0 and e1["of"] == 10
    assert e1["types"][0] == {
        "code": "providing-information",
        "label": "Providing information",
        "enabled": True,
        "classes": ["LA-BINS-VIEW", "LA-CTAX-VIEW"],
        "volume": 7,
    }


def test_report_for_one_council_and_an_unknown_one() -> None:
    report = build_report(ROUTES, VOLUMES, as_of=NOW, council="E2")
    assert [c.code for c in report.councils] == ["E2"]
    with pytest.raises(UnknownCouncil, match=r"unknown council 'E9'.*E1 \(First Council\)"):
        build_report(ROUTES, VOLUMES, as_of=NOW, council="E9")


def test_a_route_counts_towards_the_council_it_names_or_towards_none() -> None:
    routes = (
        *ROUTES,
        route("ER-NOTIFY-MOVE", "ER-E1", T.REGULATION, "Electoral Registration", council="E1"),
        route("GW-CHANGE-OF-ADDRESS", "GW", T.APPLICATIONS, "Government Gateway", council=""),
        route("LA-LICENCE", "LIC-E3", T.REGULATION, council="E3"),  # no route at E3 itself
    )
    volumes = {
        **VOLUMES,
        ("ER-E1", "ER-NOTIFY-MOVE"): 3,
        ("ER-E1", "ER-OLD-NOTICE"): 2,  # no longer routed: its organisation's council's
        ("GW", "GW-CHANGE-OF-ADDRESS"): 50,
    }
    report = build_report(routes, volumes, as_of=NOW)
    assert [(c.code, c.name) for c in report.councils] == [
        ("E1", "First Council"),
        ("E2", "E2"),
        ("E3", "E3"),
    ]
    first = report.councils[0]
    lines = {line.type: line for line in first.types}
    assert lines[T.REGULATION].classes == ("ER-NOTIFY-MOVE",)
    assert lines[T.REGULATION].volume == 3
    assert (first.enabled, first.unclassified_volume, first.total_volume) == (3, 7, 17)
    assert not any(line.volume == 50 for c in report.councils for line in c.types)
    [licensing] = build_report(routes, volumes, as_of=NOW, council="E3").councils
    assert licensing.enabled == 1 and licensing.total_volume == 0
    with pytest.raises(UnknownCouncil, match="unknown council 'GW'"):
        build_report(routes, volumes, as_of=NOW, council="GW")
    assert organisations_of(routes, "E1") == {"E1", "ER-E1"}


def test_the_demo_report_lists_the_demo_councils_only() -> None:
    report = build_report(parse_config({}).routes, {}, as_of=NOW)
    assert {c.code: c.name for c in report.councils} == DEMO_COUNCILS
    sunderland = {c.code: c for c in report.councils}["E08000024"]
    enabled = {line.type: line.classes for line in sunderland.types if line.enabled}
    assert enabled[T.REGULATION] == ("ER-NOTIFY-MOVE",)


@pytest.mark.parametrize("value", [3, False, ["E1"]])
def test_a_council_that_is_not_a_code_is_refused(value: object) -> None:
    with pytest.raises(
        ConfigError, match=r"routes\[0\] \(LA-PLANNING-COMMENT @ E08000024\): council"
    ):
        parse_config({"routes": [raw_route(council=value)]})


def test_every_route_the_hub_ships_declares_a_type() -> None:
    for config in (
        parse_config({}),
        load_config(ROOT / "deploy" / "shared-hub.toml"),
        load_config(ROOT / "gateway.example.toml"),
    ):
        assert config.routes
        undeclared = [(r.class_, r.organisation) for r in config.routes if r.bvpi157 is None]
        assert undeclared == []
    demo = {r.class_: r.bvpi157 for r in parse_config({}).routes}
    assert demo["LA-CTAX-VIEW"] is T.PROVIDING_INFORMATION
    assert demo["LA-CTAX-SPD"] is T.COLLECTING_REVENUE


def test_the_example_configurations_route_documents_the_option() -> None:
    text = (ROOT / "gateway.example.toml").read_text(encoding="utf-8")
    block = text[text.index("# [[routes]]") :].splitlines()
    commented = list(itertools.takewhile(lambda line: line.startswith("#"), block))
    [example] = tomllib.loads("\n".join(line[2:] for line in commented))["routes"]
    assert example["bvpi157"] in CODES


def raw_route(**extra: object) -> dict[str, object]:
    return {
        "class": "LA-PLANNING-COMMENT",
        "organisation": "E08000024",
        "connector": "council-E08000024",
        **extra,
    }


def test_a_route_declares_its_type_or_leaves_it_undeclared() -> None:
    declared = parse_config({"routes": [raw_route(bvpi157="consultation")]}).routes[-1]
    assert declared.class_ == "LA-PLANNING-COMMENT" and declared.bvpi157 is T.CONSULTATION
    # Configurations written before the option still load: the route counts under no type.
    undeclared = parse_config({"routes": [raw_route()]}).routes[-1]
    assert undeclared.class_ == "LA-PLANNING-COMMENT" and undeclared.bvpi157 is None


@pytest.mark.parametrize("value", ["paying-for-goods", "Consultation", "", 3, ["paying"]])
def test_an_unknown_type_is_refused_naming_the_route_and_the_valid_codes(value: object) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({"routes": [raw_route(bvpi157=value)]})
    message = str(refused.value)
    assert message.startswith("routes[0] (LA-PLANNING-COMMENT @ E08000024): bvpi157 ")
    assert repr(value) in message
    assert ", ".join(CODES) in message


def test_the_cli_refuses_such_a_configuration(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[[routes]]\nclass = "LA-X"\norganisation = "E1"\nconnector = "council-E08000024"\n'
        'bvpi157 = "paying-for-stuff"\n'
    )
    result = CliRunner().invoke(main, ["--config", str(config), "report", "bvpi157"])
    assert result.exit_code != 0
    assert "bvpi157 'paying-for-stuff' is not a BVPI 157 interaction type" in result.output
    assert "providing-information" in result.output
