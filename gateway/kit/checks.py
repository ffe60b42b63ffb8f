"""The conformance checks: each sends real transactions and judges the answers as the hub would.

A check returns one CheckResult with a one-sentence message, its findings and the evidence (every
exchange it made). Checks run in the order of CHECKS against one connector instance; the
deadline check comes last because it also judges every delivery the others made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from connectors.protocol import (
    BusinessError,
    KnownFactsChecker,
    KnownFactsRequest,
    KnownFactsResult,
    Response,
)
from connectors.sdk import BodyError, ConnectorConfigError, load_schema, parse_body, schema_errors
from gateway.govtalk.replies import new_correlation_id
from gateway.kit import render
from gateway.kit.hub import GatewayHub, HubAnswer, HubRoute, start_hub
from gateway.kit.locations import resolves
from gateway.kit.malformed import malformed_cases
from gateway.kit.results import Evidence, Status
from gateway.kit.samples import Sample, Samples
from gateway.kit.subject import Call, Deliverer, Delivery, Target, transaction
from gateway.routing.outcomes import is_business

# A connector answering in more than this share of the deadline is reported as close to it.
NEAR_DEADLINE = 0.5


@dataclass(slots=True)
class Run:
    """What the checks share: the target, its samples, the connector and a scratch directory."""

    target: Target
    samples: Samples
    deliverer: Deliverer
    workdir: Path
    evidence: list[Evidence] = field(default_factory=list)

    async def send(
        self,
        label: str,
        sample: Sample,
        *,
        correlation_id: str | None = None,
        received_at: datetime | None = None,
        attempt: int = 1,
    ) -> Delivery:
        """Deliver one transaction built from sample; its exchange becomes evidence."""
        tx = transaction(
            sample,
            self.samples,
            correlation_id=correlation_id,
            received_at=received_at,
            attempt=attempt,
        )
        delivery = await self.deliverer.deliver(label, tx)
        self.evidence.append(_evidence(delivery))
        return delivery


CheckFunction = Callable[[Run], Awaitable[tuple[Status, str, list[str]]]]


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    title: str
    proves: str  # what passing it means, for the documentation and the HTML report
    run: CheckFunction


# -- response ---------------------------------------------------------------------------------


async def response(run: Run) -> tuple[Status, str, list[str]]:
    samples = run.samples
    sample_problems = _schema_problems(samples.request_schema, samples.valid.body)
    if sample_problems:
        return (
            Status.ERROR,
            "The [valid] sample request is not valid against the request schema; fix the samples.",
            sample_problems,
        )
    delivery = await run.send("a valid request", samples.valid)
    outcome = delivery.outcome
    if not isinstance(outcome, Response):
        return Status.FAIL, f"A valid request must get a Response; it got {_got(delivery)}.", []
    try:
        root = parse_body(outcome.body)
    except BodyError as exc:
        return (
            Status.FAIL,
            f"The Response body is not XML the hub can embed ({exc}): the hub answers 3000.",
            [],
        )
    problems = _schema_problems(samples.response_schema, outcome.body)
    if problems:
        name = samples.response_schema.name if samples.response_schema else ""
        return Status.FAIL, f"The Response is not valid against {name}.", problems
    size = len(outcome.body)
    what = _element_name(root)
    if samples.response_schema is None:
        return (
            Status.PASS,
            f"A valid request got a well-formed Response ({what}, {size} bytes).",
            ["No response schema was given, so only well-formedness was checked."],
        )
    return (
        Status.PASS,
        f"A valid request got a Response ({what}, {size} bytes), valid against "
        f"{samples.response_schema.name}.",
        [],
    )


# -- business error ---------------------------------------------------------------------------


async def business_error(run: Run) -> tuple[Status, str, list[str]]:
    samples = run.samples
    delivery = await run.send("a request for an unknown account", samples.unknown)
    outcome = delivery.outcome
    if not isinstance(outcome, BusinessError):
        return (
            Status.FAIL,
            f"A request for an unknown account must get a BusinessError (3001); it got "
            f"{_got(delivery)}.",
            [],
        )
    if not outcome.errors:
        return Status.FAIL, "The BusinessError carries no errors: the hub answers 3000.", []
    rules = [e for e in outcome.errors if e.number == 3001]
    if not rules:
        numbers = ", ".join(str(e.number) for e in outcome.errors)
        return Status.FAIL, f"No error is numbered 3001 (got {numbers}).", []
    problems: list[str] = []
    for error in rules:
        if not error.text.strip():
            problems.append("an error 3001 has no text")
        if not error.locations:
            problems.append(f"error 3001 '{render.clip(error.text, 80)}' has no Location")
        problems.extend(
            f"Location {loc} does not point at an element or attribute of the request"
            for loc in error.locations
            if not resolves(loc, samples.unknown.body)
        )
    given = {loc for e in rules for loc in e.locations}
    problems.extend(
        f"expected a Location {loc} (from the samples)"
        for loc in samples.unknown_locations
        if loc not in given
    )
    if problems:
        return (
            Status.FAIL,
            "The business error's Locations do not point into the request.",
            problems,
        )
    return (
        Status.PASS,
        f"An unknown account got 3001 with Location(s) {', '.join(sorted(given))} in the request.",
        [],
    )


# -- known facts ------------------------------------------------------------------------------


async def known_facts(run: Run) -> tuple[Status, str, list[str]]:
    connector, samples = run.deliverer.connector, run.samples
    if not isinstance(connector, KnownFactsChecker):
        return (
            Status.SKIP,
            "The connector does not check known facts (no KnownFactsChecker), so citizens "
            "cannot enrol for its services through the hub.",
            [],
        )
    if samples.known_facts is None:
        return (
            Status.SKIP,
            "The connector checks known facts but the samples give no [known_facts].",
            [],
        )
    right, right_call = await _facts(run, "the right known facts", samples.known_facts.right)
    wrong, wrong_call = await _facts(run, "wrong known facts", samples.known_facts.wrong)
    problems: list[str] = []
    if right is None:
        problems.append(f"the right facts got {render.summary(right_call)}")
    elif not right.match:
        problems.append(f"the right facts were refused: {right.reason or 'no reason given'}")
    else:
        if not right.identifiers:
            problems.append("a match gave no identifiers (they become the enrolment's Keys)")
        if not right.address:
            problems.append("a match gave no address (the activation PIN is posted there)")
    if wrong is None:
        problems.append(f"the wrong facts got {render.summary(wrong_call)}")
    elif wrong.match:
        problems.append("the wrong facts were accepted")
    else:
        problems.extend(
            _telling(wrong.reason, samples.known_facts.right, samples.known_facts.wrong)
        )
    if problems:
        return Status.FAIL, "Known facts are not checked as enrolment needs.", problems
    return Status.PASS, "The right facts were accepted with Keys and an address; wrong refused.", []


async def _facts(
    run: Run, label: str, facts: Mapping[str, str]
) -> tuple[KnownFactsResult | None, Call]:
    connector = run.deliverer.connector
    assert isinstance(connector, KnownFactsChecker)
    request = KnownFactsRequest(
        class_=run.samples.class_,
        organisation=run.samples.organisation,
        facts=dict(facts),
    )
    call = await run.deliverer.guarded(connector.check_known_facts(request, run.deliverer.ctx))
    result = call.value if isinstance(call.value, KnownFactsResult) else None
    shown = (
        f"match={result.match} identifiers={dict(result.identifiers)} "
        f"address={list(result.address)} reason={result.reason!r}"
        if result is not None
        else render.show_call(call)
    )
    sent = ", ".join(f"{k}={v}" for k, v in request.facts.items())
    run.evidence.append(Evidence(label, f"known facts: {sent}", shown, call.seconds))
    return result, call


def _telling(reason: str, right: Mapping[str, str], wrong: Mapping[str, str]) -> list[str]:
    """The refusal must not say which fact was wrong: it is shown to whoever is guessing."""
    said = reason.casefold()
    found = []
    for name, value in wrong.items():
        if right.get(name) == value:
            continue
        for word in (name, value, right.get(name) or ""):
            if word and word.casefold() in said:
                found.append(f"the refusal reason names the wrong fact ({word!r}): {reason!r}")
                break
    return found


# -- idempotency ------------------------------------------------------------------------------


async def idempotency(run: Run) -> tuple[Status, str, list[str]]:
    samples = run.samples
    request = samples.idempotent or samples.valid
    read_back = samples.read_back
    correlation_id, received_at = new_correlation_id(), datetime.now(UTC)
    before = await run.send("read-back before", read_back) if read_back else None
    first = await run.send(
        "first delivery", request, correlation_id=correlation_id, received_at=received_at
    )
    middle = await run.send("read-back after the first delivery", read_back) if read_back else None
    second = await run.send(
        "redelivery (same CorrelationID, attempt 2)",
        request,
        correlation_id=correlation_id,
        received_at=received_at,
        attempt=2,
    )
    after = await run.send("read-back after the redelivery", read_back) if read_back else None
    if not _final(first.call):
        return (
            Status.ERROR,
            f"The first delivery got {_got(first)}, so a redelivery cannot be judged.",
            [],
        )
    if not _final(second.call):
        return Status.FAIL, f"The redelivery got {_got(second)}, not the first answer.", []
    changed = render.diff(
        render.fingerprint(first.call),
        render.fingerprint(second.call),
        ("first delivery", "redelivery"),
    )
    if changed:
        return (
            Status.FAIL,
            "The redelivered transaction got a different answer from the first delivery.",
            changed,
        )
    if before is None or middle is None or after is None:
        return Status.PASS, "The redelivery got the same answer, byte for byte.", []
    if not all(_final(d.call) for d in (before, middle, after)):
        return Status.ERROR, "A read-back request got no final answer; fix the samples.", []
    applied_again = render.diff(
        render.fingerprint(middle.call),
        render.fingerprint(after.call),
        ("read-back after the first delivery", "read-back after the redelivery"),
    )
    if applied_again:
        return (
            Status.FAIL,
            "The redelivery was applied again: the read-back changed after it.",
            applied_again,
        )
    notes = []
    if render.fingerprint(before.call) == render.fingerprint(middle.call):
        notes.append(
            "The read-back did not change after the first delivery either: is the "
            "[idempotency] request one that changes state?"
        )
    return (
        Status.PASS,
        "The redelivery got the same answer, byte for byte, and left the state unchanged.",
        notes,
    )


# -- deadline ---------------------------------------------------------------------------------


async def deadline(run: Run) -> tuple[Status, str, list[str]]:
    samples = run.samples
    delivery = await run.send("the deadline request", samples.deadline or samples.valid)
    limit = samples.timeout
    late = [d for d in run.deliverer.deliveries if d.call.timed_out]
    if late:
        details = [f"{d.label}: no answer within {limit:g} s" for d in late]
        details.extend(
            f"{d.label}: still running a second after it was cancelled"
            for d in late
            if d.call.stuck
        )
        return (
            Status.FAIL,
            f"{len(late)} deliver{'y' if len(late) == 1 else 'ies'} got no answer within the "
            f"route's {limit:g} s deadline: the hub abandons such a call, retries it, and then "
            "answers the client 2005.",
            details,
        )
    if delivery.call.error is not None:
        return (
            Status.FAIL,
            f"The deadline request got {_got(delivery)}: the hub retries, then answers 3000.",
            [],
        )
    timings = [d.call.seconds for d in run.deliverer.deliveries]
    slowest = max(timings)
    notes = [
        f"Measured over {len(timings)} deliveries: slowest {render.ms(slowest)}, "
        f"median {render.ms(sorted(timings)[len(timings) // 2])}."
    ]
    if slowest > limit * NEAR_DEADLINE:
        notes.append(f"The slowest answer took more than half the {limit:g} s deadline.")
    return (
        Status.PASS,
        f"Answered in {render.ms(delivery.call.seconds)}, within the route's {limit:g} s deadline.",
        notes,
    )


# -- malformed input --------------------------------------------------------------------------


async def malformed_input(run: Run) -> tuple[Status, str, list[str]]:
    try:
        cases = malformed_cases(run.samples)
    except ConnectorConfigError as exc:
        return Status.ERROR, f"The request schema cannot be used: {exc}", []
    findings: list[str] = []
    refused = 0
    for case in cases:
        delivery = await run.send(f"malformed: {case.name}", case)
        problem = _refusal_problem(delivery)
        if problem is None:
            refused += 1
            outcome = delivery.outcome
            assert isinstance(outcome, BusinessError)
            findings.append(f"{case.name}: refused with {outcome.errors[0].number}")
        else:
            findings.append(f"{case.name}: {problem}")
    if refused < len(cases):
        return (
            Status.FAIL,
            f"{len(cases) - refused} of {len(cases)} malformed or hostile bodies were not "
            "refused with 3001/4xxx.",
            [f for f in findings if "refused with" not in f],
        )
    return (
        Status.PASS,
        f"All {len(cases)} malformed or hostile bodies were refused with 3001/4xxx.",
        findings,
    )


def _refusal_problem(delivery: Delivery) -> str | None:
    outcome = delivery.outcome
    if isinstance(outcome, BusinessError) and outcome.errors:
        number = outcome.errors[0].number
        if number == 3001 or 4000 <= number < 5000:
            return None
        return f"refused with {number}, not 3001 or 4xxx"
    return f"got {_got(delivery)}"


# -- through a real hub -----------------------------------------------------------------------


async def hub_roundtrip(run: Run) -> tuple[Status, str, list[str]]:
    samples, target = run.samples, run.target
    route = HubRoute(
        connector=target.connector_type,
        class_=samples.class_,
        organisation=samples.organisation,
        options=target.options(samples),
        timeout=samples.timeout,
    )
    async with start_hub(route, run.workdir / "hub") as hub:
        valid = await _submit(run, hub, "through the hub: a valid request", samples.valid)
        unknown = await _submit(run, hub, "through the hub: an unknown account", samples.unknown)
    # What each answer must contain is judged by the checks above; this one judges the path:
    # a client polling the hub gets the connector's Response, and its 3001 as a business error.
    problems: list[str] = []
    if not valid.ok or valid.body is None:
        problems.append(f"the valid request got {_answer(valid)}")
    if unknown.qualifier != "error" or 3001 not in unknown.numbers:
        problems.append(f"the unknown account got {_answer(unknown)}, not 3001")
    elif not is_business(list(unknown.errors)) or unknown.body is None:
        problems.append("the client got 3001 without the ErrorResponse body")
    if problems:
        return (
            Status.FAIL,
            "Through a real hub, the client does not get the connector's answers.",
            problems,
        )
    where = ", ".join(unknown.locations) or "no Location"
    return (
        Status.PASS,
        "Through a real hub, a GovTalk client got the Response, and the 3001 business error "
        f"({where}).",
        [],
    )


async def _submit(run: Run, hub: GatewayHub, label: str, sample: Sample) -> HubAnswer:
    """One sample through the hub as a GovTalk client; the conversation becomes evidence."""
    answer = await hub.submit(sample.body, keys=sample.keys, class_=sample.class_)
    sent = answer.cycle.exchanges[0].sent
    final = next(
        (
            x.received
            for x in reversed(answer.cycle.exchanges)
            if x.reply.message.function != "delete"
        ),
        b"",
    )
    run.evidence.append(
        Evidence(label, render.clip(render.xml_text(sent)), render.clip(render.xml_text(final)))
    )
    return answer


def _answer(answer: HubAnswer) -> str:
    if answer.qualifier == "acknowledgement":
        return "no final answer (still acknowledged when the client stopped polling)"
    if answer.errors:
        return f"error {', '.join(str(n) for n in answer.numbers)}: {answer.errors[0].text}"
    return answer.qualifier


# -- shared -----------------------------------------------------------------------------------


def _element_name(root: etree._Element) -> str:
    name = etree.QName(root)
    return f"{name.localname} in {name.namespace}" if name.namespace else name.localname


def _final(call: Call) -> bool:
    return isinstance(call.value, Response | BusinessError)


def _got(delivery: Delivery) -> str:
    return render.summary(delivery.call)


def _schema_problems(schema: Path | None, body: bytes) -> list[str]:
    if schema is None:
        return []
    errors = schema_errors(load_schema(schema), parse_body(body))
    return [
        f"{e.text}" + (f" (at {', '.join(e.locations)})" if e.locations else "") for e in errors
    ]


def _evidence(delivery: Delivery) -> Evidence:
    return Evidence(
        delivery.label,
        render.show_transaction(delivery.tx),
        render.show_call(delivery.call),
        delivery.call.seconds,
    )


CHECKS: Sequence[Check] = (
    Check(
        "response",
        "A valid request gets a well-formed, schema-valid Response",
        "The connector answers the class's request with a business reply the hub can embed in "
        "a GovTalk response, valid against the response schema when there is one.",
        response,
    ),
    Check(
        "business-error",
        "An unknown account gets 3001 with Locations into the request",
        "A business rule failure is a BusinessError numbered 3001 whose Locations are XPaths "
        "that point at the offending element of the request.",
        business_error,
    ),
    Check(
        "known-facts",
        "Known facts: the right ones accepted, wrong ones refused",
        "Enrolment works: right facts match with Keys and a postal address for the PIN; wrong "
        "facts are refused without saying which fact was wrong.",
        known_facts,
    ),
    Check(
        "idempotency",
        "A redelivered transaction gets the same answer and is applied once",
        "Delivery is at least once: the same CorrelationID delivered again gets the first "
        "answer, byte for byte, and (with a read-back request) changes nothing.",
        idempotency,
    ),
    Check(
        "malformed-input",
        "Malformed and hostile bodies are refused with 3001/4xxx, never an exception",
        "Bodies that are not what the class expects — wrong root or namespace, empty, hostile "
        "or oversized values, deep nesting — are business or schema errors, not crashes.",
        malformed_input,
    ),
    Check(
        "hub-roundtrip",
        "Through a real hub, a GovTalk client gets the answers",
        "Routed in a real hub, a GovTalk client's submission, polls and delete carry the "
        "connector's Response and its 3001 business error to the client.",
        hub_roundtrip,
    ),
    Check(
        "deadline",
        "Every answer comes within the route's deadline",
        "No delivery outlasts the route timeout (past it the hub retries and answers 2005); "
        "the measured latencies are reported.",
        deadline,
    ),
)
