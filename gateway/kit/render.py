"""Text for the report's evidence: what was sent to the connector and what came back."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from lxml import etree

from connectors.protocol import BusinessError, Failed, Response, Retry, Transaction
from gateway.govtalk.errors import GovTalkError
from gateway.kit.subject import Call

# Evidence is for reading: a 100 kB hostile value is shown by its start and its size.
MAX_SHOWN = 3000
MAX_DIFF_LINES = 40


def ms(seconds: float) -> str:
    """A latency for people: milliseconds, with a decimal below ten."""
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def xml_text(data: bytes) -> str:
    """XML bytes for reading: pretty-printed when they parse, as they are otherwise."""
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return data.decode("utf-8", errors="replace")
    return etree.tostring(root, encoding="unicode", pretty_print=True).rstrip()


def show_transaction(tx: Transaction) -> str:
    keys = ", ".join(f"{k}={v}" for k, v in tx.keys.items()) or "none"
    return clip(
        f"{tx.class_} @ {tx.organisation}, CorrelationID {tx.correlation_id}, "
        f"attempt {tx.attempt}\nKeys: {keys}\n{xml_text(tx.body)}"
    )


def show_errors(errors: Sequence[GovTalkError]) -> list[str]:
    lines = []
    for e in errors:
        lines.append(f"{e.number} ({e.type}, raised by {e.raised_by}): {e.text}")
        lines.extend(f"    Location: {loc}" for loc in e.locations)
    return lines


def summary(call: Call) -> str:
    """A few words for a message: what the call produced."""
    if call.error is not None:
        return f"an exception ({type(call.error).__name__}: {clip(str(call.error), 200)})"
    if call.timed_out:
        return f"no answer within {call.seconds:g} s"
    value = call.value
    if isinstance(value, Response):
        return "a Response"
    if isinstance(value, BusinessError):
        numbers = ", ".join(str(e.number) for e in value.errors) or "no errors"
        return f"a BusinessError ({numbers})"
    if isinstance(value, Retry):
        return f"Retry after {value.after:g} s ({value.reason or 'no reason'})"
    if isinstance(value, Failed):
        return f"Failed ({clip(value.reason, 200)}), which the hub answers as 3000"
    return f"{type(value).__name__}, which is not an Outcome"


def show_call(call: Call) -> str:
    """The whole answer, for the report's evidence."""
    if call.error is not None:
        return clip(f"raised {type(call.error).__name__}: {call.error}\n{call.trace}".rstrip())
    if call.timed_out:
        after = (
            "it was still running a second after being cancelled"
            if call.stuck
            else "it stopped when cancelled"
        )
        return f"no answer within the {call.seconds:g} s deadline; {after}"
    value = call.value
    if isinstance(value, Response):
        return clip(f"Response:\n{xml_text(value.body)}")
    if isinstance(value, BusinessError):
        head = f"BusinessError (application {value.application or 'not named'}):"
        return clip("\n".join([head, *("  " + line for line in show_errors(value.errors))]))
    return summary(call)


def fingerprint(call: Call) -> str:
    """What must be identical between two deliveries of one transaction: the answer as sent."""
    value = call.value
    if isinstance(value, Response):
        return value.body.decode("utf-8", errors="replace")
    if isinstance(value, BusinessError):
        return "\n".join([f"BusinessError {value.application}", *show_errors(value.errors)])
    return summary(call)


def diff(first: str, second: str, labels: tuple[str, str]) -> list[str]:
    """A unified diff of two answers, one line per item, shortened for the report."""
    lines = list(
        difflib.unified_diff(
            _lines(first), _lines(second), fromfile=labels[0], tofile=labels[1], lineterm=""
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"… ({len(lines) - MAX_DIFF_LINES} more lines)"]
    return lines


def _lines(text: str) -> list[str]:
    stripped = text.strip()
    if stripped.startswith("<"):
        text = xml_text(stripped.encode("utf-8"))
    return text.splitlines()
