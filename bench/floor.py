"""The floor: the least a Python aiohttp server must do to answer GovTalk — read the body, parse it
with lxml, answer a canned reply. Whatever the hub adds (authentication, storage, audit, routing)
is measured as its distance from this.

    python -m bench.floor --port 9000

It deliberately imports nothing from `gateway`: its cost and memory are aiohttp's and lxml's only.
"""

from __future__ import annotations

import argparse
import itertools
import os

from aiohttp import web
from lxml import etree

NS = "{http://www.govtalk.gov.uk/CM/envelope}"
DETAILS = f"{NS}Header/{NS}MessageDetails"

# The hardening a reasonable GovTalk server applies anyway; the hub's parser does at least this.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<GovTalkMessage xmlns="http://www.govtalk.gov.uk/CM/envelope">'
    "<EnvelopeVersion>2.0</EnvelopeVersion><Header><MessageDetails>"
    "<Class>{class_}</Class><Qualifier>{qualifier}</Qualifier><Function>{function}</Function>"
    "<TransactionID>{tid}</TransactionID><CorrelationID>{cid}</CorrelationID>"
    '<ResponseEndPoint PollInterval="1">{endpoint}</ResponseEndPoint>'
    "<GatewayTimestamp>2026-01-01T00:00:00.000</GatewayTimestamp>"
    "</MessageDetails></Header>"
)
ACK = _HEAD + "<GovTalkDetails><Keys/></GovTalkDetails></GovTalkMessage>"
# A body of the size a council's View Council Tax answer has, so the floor sends comparable bytes.
RESPONSE = (
    _HEAD + "<GovTalkDetails><Keys/></GovTalkDetails><Body>"
    '<CTaxViewResponse xmlns="urn:govtalk-hub:la:ctax:view:v1"><AccountRef>SUN00000000</AccountRef>'
    "<Council><Code>E08000024</Code><Name>Sunderland City Council</Name></Council>"
    "<FinancialYear>2026-27</FinancialYear><Property><Address><PAON>1</PAON>"
    "<Street>High Street</Street><Town>Sunderland</Town><PostCode>SR1 1AA</PostCode></Address>"
    "<Band>B</Band></Property><AnnualCharge>1650.00</AnnualCharge><Balance>0.00</Balance>"
    "</CTaxViewResponse></Body></GovTalkMessage>"
)
ERROR = (
    _HEAD + "<GovTalkDetails><Keys/><GovTalkErrors><Error><RaisedBy>Gateway</RaisedBy>"
    "<Number>1001</Number><Type>fatal</Type><Text>The document is not well-formed</Text>"
    "</Error></GovTalkErrors></GovTalkDetails></GovTalkMessage>"
)

_serial = itertools.count(1)
# Unique per process run, so that correlation IDs from two floor runs never collide.
_PREFIX = os.urandom(8).hex().upper()


def _reply(text: str) -> web.Response:
    return web.Response(body=text.encode("utf-8"), content_type="text/xml", charset="utf-8")


async def govtalk(request: web.Request) -> web.Response:
    raw = await request.read()
    endpoint = f"{request.scheme}://{request.host}"
    try:
        root = etree.fromstring(raw, PARSER)
    except etree.XMLSyntaxError:
        fields = {"class_": "UndefinedClass", "qualifier": "error", "function": "submit"}
        return _reply(ERROR.format(tid="", cid="", endpoint=f"{endpoint}/submission", **fields))
    details = root.find(DETAILS)
    if details is None:
        fields = {"class_": "UndefinedClass", "qualifier": "error", "function": "submit"}
        return _reply(ERROR.format(tid="", cid="", endpoint=f"{endpoint}/submission", **fields))
    class_ = details.findtext(f"{NS}Class") or ""
    qualifier = details.findtext(f"{NS}Qualifier") or ""
    function = details.findtext(f"{NS}Function") or "submit"
    tid = details.findtext(f"{NS}TransactionID") or ""
    cid = details.findtext(f"{NS}CorrelationID") or ""
    common = {"class_": class_, "function": function, "tid": tid}
    if qualifier == "poll":
        text = RESPONSE.format(qualifier="response", cid=cid, endpoint=f"{endpoint}/poll", **common)
    elif function == "delete":
        text = ACK.format(
            qualifier="response", cid=cid, endpoint=f"{endpoint}/submission", **common
        )
    else:
        new = f"{_PREFIX}{next(_serial):016X}"
        text = ACK.format(
            qualifier="acknowledgement", cid=new, endpoint=f"{endpoint}/poll", **common
        )
    return _reply(text)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "pid": os.getpid()})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/submission", govtalk)
    app.router.add_post("/poll", govtalk)
    app.router.add_get("/health", health)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # No access log: the hub runs without one too (gateway.web.server).
    web.run_app(create_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
