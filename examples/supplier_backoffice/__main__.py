"""Run the example supplier back office: python -m examples.supplier_backoffice --port 8081."""

from __future__ import annotations

import argparse

from aiohttp import web

from examples.supplier_backoffice.app import make_app


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m examples.supplier_backoffice")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to bind (default 8081)")
    args = parser.parse_args(argv)
    web.run_app(make_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
