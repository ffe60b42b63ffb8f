"""`gateway connector new|check`: the supplier's connector kit on the command line."""

from __future__ import annotations

import asyncio
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from gateway.errors import ConfigError


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; a VALUE that reads as a TOML value (5, true, [..]) is taken as one."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--options")
        try:
            options[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            options[key.strip()] = value
    return options


@click.group()
def connector() -> None:
    """The connector kit: scaffold a connector package, check a connector's conformance."""


@connector.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create the NAME/ directory.",
)
@click.option("--class", "class_", default="LA-CTAX-VIEW", show_default=True)
@click.option("--organisation", default="E06000047", show_default=True)
def new(name: str, directory: Path, class_: str, organisation: str) -> None:
    """Scaffold NAME/: a connector package that installs and passes its tests."""
    from gateway import logs
    from gateway.kit.scaffold import ScaffoldError, create

    logs.configure("WARNING")  # the files written are the output; the log line is for tooling
    try:
        made = create(name, directory, class_=class_, organisation=organisation)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {made.root}")
    for path in made.files:
        click.echo(f"  {path.relative_to(made.root)}")
    click.echo(
        f"\nnext:\n  cd {made.root}\n  pip install -e '.[test]'\n  pytest\n"
        f"  gateway connector check {made.entry_point} --html conformance.html"
    )


@connector.command("check")
@click.argument("name", required=False)
@click.option("--url", help="Check a back office reached over HTTP through http-forward.")
@click.option("--class", "class_", help="The class to send (default: from the samples).")
@click.option("--organisation", help="The organisation (default: from the samples).")
@click.option(
    "--options",
    "-o",
    "option_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A connector option (repeatable), as under [connectors.NAME].",
)
@click.option(
    "--samples",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A conformance.toml (default: the one the connector package ships, else built-in).",
)
@click.option(
    "--timeout", type=float, help="The route's deadline in seconds (default: the samples', or 10)."
)
@click.option(
    "--junit-xml", type=click.Path(dir_okay=False, path_type=Path), help="Write a JUnit XML report."
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as a standalone HTML page (the one a council asks for).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON."
)
def check(
    name: str | None,
    url: str | None,
    class_: str | None,
    organisation: str | None,
    option_pairs: tuple[str, ...],
    samples: Path | None,
    timeout: float | None,
    junit_xml: Path | None,
    html_path: Path | None,
    json_path: Path | None,
) -> None:
    """Run the conformance suite against connector NAME (an entry point) or --url.

    NAME may also be module:attribute, for a connector factory not yet installed. Exits 1 when
    any check fails.
    """
    from gateway import logs
    from gateway.kit import report
    from gateway.kit.conformance import resolve_samples, run_conformance
    from gateway.kit.samples import SamplesError
    from gateway.kit.subject import Target

    if (name is None) == (url is None):
        raise click.UsageError("give a connector NAME or --url, not both")
    if timeout is not None and timeout <= 0:
        raise click.BadParameter("must be above 0", param_hint="--timeout")
    # The embedded hub's own lifecycle logs would drown the report; warnings still show.
    logs.configure("WARNING")
    if name is not None and ":" in name and "" not in sys.path:
        # A module:attribute not yet installed is imported from here, as `python -m` would.
        sys.path.insert(0, str(Path.cwd()))
    target = Target(connector=name, url=url)
    try:
        chosen = resolve_samples(target, samples).with_overrides(
            class_=class_,
            organisation=organisation,
            timeout=timeout,
            options=parse_options(option_pairs),
        )
    except (SamplesError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    result = asyncio.run(run_conformance(target, chosen))
    click.echo(report.console(result))
    for path, text in (
        (junit_xml, report.junit_xml(result)),
        (html_path, report.html_page(result).encode("utf-8")),
        (json_path, report.as_json(result).encode("utf-8")),
    ):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text)
            click.echo(f"wrote {path}")
    if not result.ok:
        raise SystemExit(1)
