"""One citizen and another's things, beyond the refusals in the corpus: what each may see.

The corpus holds the refusals (another's mail, enrolment, journey, payment: 404; guessed
CorrelationIDs: 2000). These are the listings, and the poll, whose answer the protocol itself
decides: reference §4, "Poll and delete need no credentials (the CorrelationID is the
capability); clients may still send them, and the gateway ignores them."
"""

from __future__ import annotations

import time
from xml.sax.saxutils import escape

from tests.hostile.corpus import MOV, Context, as_citizen
from tests.hostile.harness import SED, SUN, VIEW, ThreadedHub, view_submission
from tests.hub import wire


def sender_details(citizen: object) -> str:
    user_id, password = citizen.user_id, citizen.password  # type: ignore[attr-defined]
    return (
        "<SenderDetails><IDAuthentication>"
        f"<SenderID>{escape(user_id)}</SenderID>"
        "<Authentication><Method>clear</Method><Role>principal</Role>"
        f"<Value>{escape(password)}</Value></Authentication>"
        "</IDAuthentication></SenderDetails>"
    )


def final_answer(hub: ThreadedHub, correlation_id: str, *, sender: str = "") -> wire.Reply:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        reply = hub.dsp(wire.poll(VIEW, correlation_id, sender=sender), "/poll")
        if reply.qualifier != "acknowledgement":
            return reply
        time.sleep(0.05)
    raise AssertionError("no final answer")


def listed(hub: ThreadedHub, citizen: object) -> set[str]:
    user_id, password = citizen.user_id, citizen.password  # type: ignore[attr-defined]
    reply = hub.dsp(wire.data_request(VIEW, user_id, password))
    assert reply.qualifier == "response", reply.errors
    return {
        str(c)
        for c in reply.root.xpath(
            "//*[local-name()='StatusRecord']/*[local-name()='CorrelationID']/text()"
        )
    }


def test_a_data_request_lists_only_the_senders_own_submissions(corpus_hub: ThreadedHub) -> None:
    suns = corpus_hub.dsp(view_submission(SUN, transaction_id="A1"))
    seds = corpus_hub.dsp(view_submission(SED, transaction_id="B1"))
    assert suns.correlation_id and seds.correlation_id
    assert suns.correlation_id in listed(corpus_hub, SUN)
    assert seds.correlation_id not in listed(corpus_hub, SUN)
    assert suns.correlation_id not in listed(corpus_hub, SED)
    assert seds.correlation_id in listed(corpus_hub, SED)


def test_a_poll_is_answered_by_correlation_id_alone_as_the_protocol_says(
    corpus_hub: ThreadedHub,
) -> None:
    """Another citizen's credentials on a poll are ignored, as the Gateway ignored them: the
    CorrelationID (128 bits from a CSPRNG) is the capability. Guessing one is the corpus's
    `guessed_correlation_id_*` (2000). Holding one is holding the answer; see the report."""
    ack = corpus_hub.dsp(view_submission(SUN, transaction_id="A2"))
    assert ack.correlation_id
    owner = final_answer(corpus_hub, ack.correlation_id, sender=sender_details(SUN))
    assert owner.qualifier == "response", owner.errors
    other = final_answer(corpus_hub, ack.correlation_id, sender=sender_details(SED))
    anonymous = final_answer(corpus_hub, ack.correlation_id)
    assert other.qualifier == anonymous.qualifier == "response"
    assert wire.etree.tostring(other.body) == wire.etree.tostring(owner.body)
    assert wire.etree.tostring(anonymous.body) == wire.etree.tostring(owner.body)


def test_mailboxes_and_enrolments_show_only_their_owners(ctx: Context) -> None:
    hub = ctx.hub
    for_sed = ctx.mail_to(SED)
    for_sun = ctx.mail_to(SUN)
    boxes = {
        c.user_id: hub.request("GET", "/api/mail", headers=as_citizen(c)).json()
        for c in (SUN, SED, MOV)
    }
    assert for_sun in {m["id"] for m in boxes[SUN.user_id]["messages"]}
    assert for_sed not in {m["id"] for m in boxes[SUN.user_id]["messages"]}
    assert for_sed in {m["id"] for m in boxes[SED.user_id]["messages"]}
    assert not {for_sun, for_sed} & {m["id"] for m in boxes[MOV.user_id]["messages"]}
    notes = hub.request("GET", "/api/notifications", headers=as_citizen(SUN))
    assert notes.status == 200 and for_sed not in notes.body.decode()

    suns, seds = ctx.enrolment_ids(SUN), ctx.enrolment_ids(SED)
    assert suns and seds and not set(suns) & set(seds)
    listing = hub.request("GET", "/api/enrolments", headers=as_citizen(SUN)).body.decode()
    assert all(e.account_ref not in listing for e in SED.enrolments)
