"""`gateway connector check`: load the connector as the hub would, run every check, report.

    report = await run_conformance(Target(connector="my-connector"))
    report = await run_conformance(Target(url="http://127.0.0.1:8081/transactions"))

The first check, `load`, builds and starts the connector through the hub's registry (or the
http-forward connector for a URL); if it fails, the others are not run.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import structlog

from gateway import __version__
from gateway.errors import ConfigError
from gateway.kit.checks import CHECKS, Check, Run
from gateway.kit.results import CheckResult, Report, Status
from gateway.kit.samples import Samples, builtin_samples, load_samples, package_samples
from gateway.kit.subject import Deliverer, Target, build

log = structlog.get_logger("gateway.kit.conformance")

LOAD_TITLE = "The connector loads, speaks connector API 1, starts and closes"
LOAD_PROVES = (
    "The hub can build the connector from its entry point and options, it implements the "
    "connector protocol with coroutines, and start() and aclose() succeed."
)


def resolve_samples(target: Target, path: Path | None = None) -> Samples:
    """The samples to use: a named file, the connector package's conformance.toml, or built-in."""
    if path is not None:
        return load_samples(path)
    entry_point = target.entry_point
    shipped = package_samples(entry_point) if entry_point is not None else None
    return load_samples(shipped) if shipped is not None else builtin_samples()


async def run_conformance(
    target: Target, samples: Samples | None = None, *, workdir: Path | None = None
) -> Report:
    """Run the whole suite against target; the report says what passed and why not."""
    samples = samples or resolve_samples(target)
    started = time.monotonic()
    report = Report(
        subject=target.describe(),
        class_=samples.class_,
        organisation=samples.organisation,
        deadline=samples.timeout,
        samples=samples.source,
        started_at=datetime.now(UTC),
        hub_version=__version__,
    )
    with _scratch(workdir) as scratch:
        deliverer, loaded = await _load(target, samples, scratch)
        report.results.append(loaded)
        if deliverer is None:
            report.results.extend(
                CheckResult(
                    c.id,
                    c.title,
                    Status.SKIP,
                    "Not run: the connector did not load.",
                    proves=c.proves,
                )
                for c in CHECKS
            )
        else:
            try:
                for check in CHECKS:
                    run = Run(target, samples, deliverer, scratch)
                    report.results.append(await _run_check(check, run))
            finally:
                closing = await deliverer.aclose()
            if closing is not None:
                # Closing is part of the lifecycle the load check vouches for.
                loaded.status = Status.FAIL
                loaded.message = f"It loaded and started, but {closing}."
    report.seconds = time.monotonic() - started
    log.info(
        "conformance.done",
        subject=report.subject,
        ok=report.ok,
        failed=report.failed_ids,
        seconds=round(report.seconds, 3),
    )
    return report


async def _load(
    target: Target, samples: Samples, scratch: Path
) -> tuple[Deliverer | None, CheckResult]:
    started = time.monotonic()

    def result(status: Status, message: str) -> CheckResult:
        return CheckResult(
            "load",
            LOAD_TITLE,
            status,
            message,
            seconds=time.monotonic() - started,
            proves=LOAD_PROVES,
        )

    try:
        connector, ctx = build(target, target.options(samples), scratch / "direct")
    except ConfigError as exc:
        return None, result(Status.FAIL, f"The connector cannot be built: {exc}")
    except Exception as exc:  # a supplier's constructor may raise anything
        return None, result(Status.FAIL, f"The connector's constructor raised {exc!r}.")
    try:
        await connector.start()
    except Exception as exc:
        return None, result(Status.FAIL, f"start() raised {exc!r}.")
    return Deliverer(connector, ctx, samples), result(
        Status.PASS, f"Built as {type(connector).__name__} (connector API 1) and started."
    )


async def _run_check(check: Check, run: Run) -> CheckResult:
    started = time.monotonic()
    try:
        status, message, details = await check.run(run)
    except Exception as exc:
        # A defect in the check or its samples is reported, never allowed to stop the suite.
        log.exception("conformance.check_crashed", check=check.id)
        status, message, details = Status.ERROR, f"The check itself failed: {exc!r}", []
    result = CheckResult(
        check.id,
        check.title,
        status,
        message,
        details=details,
        evidence=run.evidence,
        seconds=time.monotonic() - started,
        proves=check.proves,
    )
    log.info(
        "conformance.check", check=check.id, status=str(status), seconds=round(result.seconds, 3)
    )
    return result


@contextlib.contextmanager
def _scratch(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="gateway-conformance-") as tmp:
        yield Path(tmp)
