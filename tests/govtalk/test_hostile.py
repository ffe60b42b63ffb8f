"""Hostile and broken inputs: every one must become a clean GovTalkFault 1001."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.govtalk.errors import GovTalkFault
from gateway.govtalk.parse import parse, parse_xml

from .samples import ENV_NS, envelope

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

PASSWD = Path("/etc/passwd")


def fault_of(data: bytes, **kw: int) -> GovTalkFault:
    with pytest.raises(GovTalkFault) as info:
        parse(data, **kw)
    fault = info.value
    assert [e.number for e in fault.errors][:1] == [1001]
    return fault


def everything_said(fault: GovTalkFault) -> str:
    return " ".join(
        [
            str(fault),
            *(e.text for e in fault.errors),
            *(loc for e in fault.errors for loc in e.locations),
        ]
    )


def nested(depth: int) -> str:
    return "<n>" * depth + "x" + "</n>" * depth


# -- DTDs and entities -------------------------------------------------------------------------


def test_doctype_is_refused():
    fault = fault_of(envelope(prolog='<?xml version="1.0"?>\n<!DOCTYPE GovTalkMessage>\n'))
    assert "DOCTYPE" in fault.first.text
    assert fault.class_ is None


def test_external_entity_does_not_leak_a_local_file():
    assert PASSWD.exists()
    secret_line = PASSWD.read_text().splitlines()[0]
    prolog = f'<!DOCTYPE GovTalkMessage [<!ENTITY xxe SYSTEM "file://{PASSWD}">]>\n'
    for data in (
        envelope(prolog=prolog, class_="&xxe;"),
        envelope(prolog=prolog, body="<Body><Leak>&xxe;</Leak></Body>"),
    ):
        fault = fault_of(data)
        assert secret_line not in everything_said(fault)
        assert "root:" not in everything_said(fault)


def test_doctype_hidden_behind_a_prolog_comment_is_caught_by_the_tree_check():
    # The raw scan stops at the "<a" inside the comment; the docinfo check must still refuse it.
    prolog = f'<!-- <a --><!DOCTYPE GovTalkMessage [<!ENTITY xxe SYSTEM "file://{PASSWD}">]>\n'
    fault = fault_of(envelope(prolog=prolog, class_="&xxe;"))
    assert "DOCTYPE" in fault.first.text
    assert "root:" not in everything_said(fault)


def test_utf16_doctype_is_refused():
    text = envelope(prolog='<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE GovTalkMessage>')
    fault = fault_of(text.decode("utf-8").encode("utf-16"))
    assert "DOCTYPE" in fault.first.text


def test_billion_laughs():
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    ]
    prolog = "<!DOCTYPE GovTalkMessage [" + "".join(entities) + "]>\n"
    fault = fault_of(envelope(prolog=prolog, body="<Body><Laugh>&lol9;</Laugh></Body>"))
    assert "DOCTYPE" in fault.first.text


def test_doctype_text_inside_cdata_in_the_body_is_just_data():
    body = "<Body><Note><![CDATA[<!DOCTYPE html><p>hello</p>]]></Note></Body>"
    env = parse(envelope(body=body))
    assert env.body is not None and env.body.text == "<!DOCTYPE html><p>hello</p>"


# -- depth -------------------------------------------------------------------------------------


def test_300_deep_inside_body():
    fault = fault_of(envelope(body=f"<Body>{nested(300)}</Body>"))
    assert "depth" in fault.first.text.lower()


def test_10000_deep():
    fault_of(nested(10000).encode())


def test_depth_cap_below_the_parser_limit():
    fault = fault_of(envelope(body=f"<Body>{nested(100)}</Body>"))
    assert "nested deeper than 64" in fault.first.text
    assert fault.first.locations[0].startswith("/GovTalkMessage/Body/n/n/")


def test_depth_cap_counts_elements_exactly() -> None:
    # The envelope puts Body at depth 2: n elements inside it reach depth n + 2.
    assert parse(envelope(body=f"<Body>{nested(18)}</Body>"), max_depth=20).body is not None
    fault = fault_of(envelope(body=f"<Body>{nested(19)}</Body>"), max_depth=20)
    assert fault.first.locations[0] == "/GovTalkMessage/Body" + "/n" * 19
    # A comment inside the deepest element is not an element: it does not count.
    commented = "<n>" * 18 + "<!-- note -->" + "</n>" * 18
    assert parse(envelope(body=f"<Body>{commented}</Body>"), max_depth=20).body is not None


def test_depth_cap_is_configurable():
    data = envelope(body=f"<Body>{nested(30)}</Body>")
    assert parse(data).body is not None
    fault_of(data, max_depth=20)


# -- encoding, well-formedness, shape -------------------------------------------------------------


def test_invalid_utf8():
    data = envelope(class_="LA-CTAX-VIEW").replace(b"100023336956</Key>", b"\xff\xfe\xc3</Key>")
    fault = fault_of(data)
    assert "not well-formed" in fault.first.text
    assert "line" in fault.first.text


def test_not_xml_at_all():
    fault = fault_of(b"class=LA-CTAX-VIEW&qualifier=request")
    assert "not well-formed" in fault.first.text


@pytest.mark.parametrize("data", [b"", b"   \n\t "])
def test_empty(data):
    fault = fault_of(data)
    assert "empty" in fault.first.text


def test_truncated_document():
    data = envelope()
    fault = fault_of(data[: len(data) // 2])
    assert "not well-formed" in fault.first.text


def test_wrong_namespace():
    fault = fault_of(envelope(root_open='<GovTalkMessage xmlns="http://example.org/other">'))
    assert "namespace" in fault.first.text
    assert "http://example.org/other" in fault.first.text
    assert fault.class_ is None


def test_missing_namespace():
    fault = fault_of(envelope(root_open="<GovTalkMessage>"))
    assert "no namespace" in fault.first.text
    assert ENV_NS in fault.first.text


def test_wrong_root_element():
    fault = fault_of(envelope(root_open=f'<Message xmlns="{ENV_NS}">', root_close="</Message>"))
    assert "GovTalkMessage" in fault.first.text


def test_two_body_children():
    body = "<Body><A xmlns='urn:a'/><B xmlns='urn:b'/></Body>"
    fault = fault_of(envelope(body=body))
    assert "single payload element" in fault.first.text
    assert fault.first.locations == ("/GovTalkMessage/Body",)
    assert fault.class_ == "LA-CTAX-VIEW"


def test_text_in_body_instead_of_an_element():
    fault_of(envelope(body="<Body>just some text</Body>"))


def test_two_bodies():
    fault_of(envelope(body="<Body><A/></Body><Body><B/></Body>"))


def test_parse_xml_shares_the_hardening():
    with pytest.raises(GovTalkFault) as info:
        parse_xml(b'<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>')
    assert info.value.first.number == 1001
    assert parse_xml(b"<r><s/></r>").getroot().tag == "r"


def test_comments_at_the_depth_cap_are_not_counted_as_elements():
    # 62 elements under Body reach depth 64; a comment inside the deepest is still fine.
    inner = "<n>" * 62 + "<!-- note -->" + "</n>" * 62
    assert parse(envelope(body=f"<Body>{inner}</Body>")).body is not None
    fault_of(envelope(body=f"<Body>{'<n>' * 63}{'</n>' * 63}</Body>"))
