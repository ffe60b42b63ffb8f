"""Envelopes written the way real GovTalk client software writes them, and a reply reader that
uses plain XPath rather than the hub's own parser, so tests check the wire, not the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from lxml import etree

NS = {
    "gt": "http://www.govtalk.gov.uk/CM/envelope",
    "err": "http://www.govtalk.gov.uk/CM/errorresponse",
}


def _keys(keys: dict[str, str]) -> str:
    if not keys:
        return ""
    inner = "".join(f'<Key Type="{escape(t)}">{escape(v)}</Key>' for t, v in keys.items())
    return f"<Keys>{inner}</Keys>"


def sender_details(user: str, password: str | None, method: str = "clear", extra: str = "") -> str:
    """SenderDetails with one Authentication, as clients send on any message."""
    return (
        "<SenderDetails><IDAuthentication>"
        f"<SenderID>{escape(user)}</SenderID>"
        f"<Authentication><Method>{method}</Method><Role>principal</Role>"
        f"<Value>{escape(password or '')}</Value></Authentication>"
        f"{extra}</IDAuthentication></SenderDetails>"
    )


def submission(
    class_: str,
    body: str,
    *,
    user: str | None = None,
    password: str | None = None,
    method: str = "clear",
    keys: dict[str, str] | None = None,
    organisation: str | None = None,
    transaction_id: str | None = "0001",
    correlation_id: str | None = "",
    gateway_test: bool = False,
    gateway_timestamp: str | None = None,
    function: str = "submit",
    qualifier: str = "request",
    extra_sender: str = "",
) -> str:
    sender = "" if user is None else sender_details(user, password, method, extra=extra_sender)
    cid = "" if correlation_id is None else f"<CorrelationID>{correlation_id}</CorrelationID>"
    tid = "" if transaction_id is None else f"<TransactionID>{transaction_id}</TransactionID>"
    target = (
        f"<TargetDetails><Organisation>{organisation}</Organisation></TargetDetails>"
        if organisation
        else ""
    )
    test = "<GatewayTest>1</GatewayTest>" if gateway_test else ""
    if gateway_timestamp is not None:
        test += f"<GatewayTimestamp>{gateway_timestamp}</GatewayTimestamp>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<GovTalkMessage xmlns="http://www.govtalk.gov.uk/CM/envelope">'
        "<EnvelopeVersion>2.0</EnvelopeVersion>"
        "<Header><MessageDetails>"
        f"<Class>{class_}</Class><Qualifier>{qualifier}</Qualifier><Function>{function}</Function>"
        f"{tid}{cid}<Transformation>XML</Transformation>{test}"
        f"</MessageDetails>{sender}</Header>"
        f"<GovTalkDetails>{_keys(keys or {})}{target}"
        "<ChannelRouting><Channel><URI>1234</URI><Product>TestClient</Product><Version>1.0</Version></Channel></ChannelRouting>"
        "</GovTalkDetails>"
        f"<Body>{body}</Body></GovTalkMessage>"
    )


def poll(class_: str, correlation_id: str, *, with_body: bool = False, sender: str = "") -> str:
    body = "<Body></Body>" if with_body else ""
    return (
        '<?xml version="1.0"?>'
        '<GovTalkMessage xmlns="http://www.govtalk.gov.uk/CM/envelope">'
        "<EnvelopeVersion>2.0</EnvelopeVersion><Header><MessageDetails>"
        f"<Class>{class_}</Class><Qualifier>poll</Qualifier><Function>submit</Function>"
        f"<CorrelationID>{correlation_id}</CorrelationID><Transformation>XML</Transformation>"
        f"</MessageDetails>{sender}</Header><GovTalkDetails><Keys/></GovTalkDetails>{body}</GovTalkMessage>"
    )


def delete(
    class_: str, correlation_id: str | None, *, transaction_id: str = "77", sender: str = ""
) -> str:
    cid = "" if correlation_id is None else f"<CorrelationID>{correlation_id}</CorrelationID>"
    return (
        '<?xml version="1.0"?>'
        '<GovTalkMessage xmlns="http://www.govtalk.gov.uk/CM/envelope">'
        "<EnvelopeVersion>2.0</EnvelopeVersion><Header><MessageDetails>"
        f"<Class>{class_}</Class><Qualifier>request</Qualifier><Function>delete</Function>"
        f"<TransactionID>{transaction_id}</TransactionID>{cid}"
        f"</MessageDetails>{sender}</Header><GovTalkDetails><Keys/></GovTalkDetails><Body/></GovTalkMessage>"
    )


def data_request(
    class_: str, user: str, password: str, filters: str = "", *, correlation_id: str = ""
) -> str:
    body = f"<Body>{filters}</Body>" if filters else "<Body/>"
    return (
        '<?xml version="1.0"?>'
        '<GovTalkMessage xmlns="http://www.govtalk.gov.uk/CM/envelope">'
        "<EnvelopeVersion>2.0</EnvelopeVersion><Header><MessageDetails>"
        f"<Class>{class_}</Class><Qualifier>request</Qualifier><Function>list</Function>"
        f"<TransactionID>42</TransactionID><CorrelationID>{correlation_id}</CorrelationID>"
        "</MessageDetails><SenderDetails><IDAuthentication>"
        f"<SenderID>{user}</SenderID><Authentication><Method>clear</Method><Role>principal</Role>"
        f"<Value>{password}</Value></Authentication></IDAuthentication></SenderDetails></Header>"
        f"<GovTalkDetails><Keys/></GovTalkDetails>{body}</GovTalkMessage>"
    )


@dataclass
class Reply:
    """What a real client reads from a reply (reference §9), by XPath."""

    root: etree._Element
    raw: bytes
    errors: list[dict[str, str]] = field(default_factory=list)

    def text(self, path: str) -> str | None:
        found = self.root.xpath(f"string({path})", namespaces=NS)
        return str(found) if found != "" else None

    @property
    def qualifier(self) -> str | None:
        return self.text("/gt:GovTalkMessage/gt:Header/gt:MessageDetails/gt:Qualifier")

    @property
    def function(self) -> str | None:
        return self.text("/gt:GovTalkMessage/gt:Header/gt:MessageDetails/gt:Function")

    @property
    def class_(self) -> str | None:
        return self.text("/gt:GovTalkMessage/gt:Header/gt:MessageDetails/gt:Class")

    @property
    def correlation_id(self) -> str | None:
        return self.text("/gt:GovTalkMessage/gt:Header/gt:MessageDetails/gt:CorrelationID")

    @property
    def transaction_id(self) -> str | None:
        return self.text("/gt:GovTalkMessage/gt:Header/gt:MessageDetails/gt:TransactionID")

    @property
    def endpoint(self) -> str | None:
        return self.text("/gt:GovTalkMessage/gt:Header/gt:MessageDetails/gt:ResponseEndPoint")

    @property
    def poll_interval(self) -> int:
        value = self.text(
            "/gt:GovTalkMessage/gt:Header/gt:MessageDetails/gt:ResponseEndPoint/@PollInterval"
        )
        assert value is not None, "every reply must carry ResponseEndPoint/@PollInterval"
        return int(value)

    @property
    def timestamp(self) -> str | None:
        return self.text("/gt:GovTalkMessage/gt:Header/gt:MessageDetails/gt:GatewayTimestamp")

    @property
    def body(self) -> etree._Element | None:
        found = self.root.xpath("/gt:GovTalkMessage/gt:Body/*", namespaces=NS)
        return found[0] if found else None

    @property
    def error_number(self) -> int | None:
        return int(self.errors[0]["number"]) if self.errors else None


def read(raw: bytes) -> Reply:
    root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True))
    errors = [
        {
            "raised_by": str(e.xpath("string(gt:RaisedBy)", namespaces=NS)),
            "number": str(e.xpath("string(gt:Number)", namespaces=NS)),
            "type": str(e.xpath("string(gt:Type)", namespaces=NS)),
            "text": str(e.xpath("string(gt:Text)", namespaces=NS)),
            "locations": [str(x) for x in e.xpath("gt:Location/text()", namespaces=NS)],
        }
        for e in root.xpath("//gt:GovTalkErrors/gt:Error", namespaces=NS)
    ]
    return Reply(root, raw, errors)
