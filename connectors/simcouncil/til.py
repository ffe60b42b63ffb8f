"""Test in live (-TIL): the advisory receipt for a submission checked but not processed."""

from __future__ import annotations

from lxml import etree

from connectors.simcouncil.validation import TIL_NS, BodySpec
from connectors.simcouncil.xmlbody import child, root

SUFFIX = "-TIL"
RECEIPT = BodySpec(TIL_NS, "TestInLiveReceipt", "ctax-til-receipt-v1.xsd")
ADVISORY = "Test in live: checked, not processed"


def receipt(class_: str, account_ref: str) -> etree._Element:
    """The TestInLiveReceipt document; class_ is the base class, the -TIL suffix is added here."""
    reply = root(TIL_NS, RECEIPT.root)
    child(reply, "Class", class_ + SUFFIX)
    child(reply, "AccountRef", account_ref)
    child(reply, "Status", "checked-not-processed")
    child(reply, "Advisory", ADVISORY)
    return reply
