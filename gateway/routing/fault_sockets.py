"""Real sockets for the connection faults: a listener that resets, a port that refuses.

Each lives for one diverted call, so nothing outlasts the call (or the hub) and concurrent calls
never share one. Loopback only: no other host ever sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

_HOST = "127.0.0.1"
# How long the resetting listener waits for the request to start before resetting anyway.
_READ_GRACE = 1.0


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Read the first bytes so the client has sent its request and is waiting for an answer:
    # the reset then lands where real ones do, on the read of the reply.
    with contextlib.suppress(TimeoutError, OSError):
        await asyncio.wait_for(reader.read(1), _READ_GRACE)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER on with a zero timeout: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.asynccontextmanager
async def resetting_listener() -> AsyncIterator[str]:
    """An http:// URL whose listener accepts, reads the request start and resets the connection."""
    server = await asyncio.start_server(_reset, _HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{_HOST}:{port}/"
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def refusing_port() -> AsyncIterator[str]:
    """An http:// URL on a port with nothing listening: connections to it are refused.

    The port stays bound (never listening) meanwhile, so no other program can take it and
    answer instead.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((_HOST, 0))
        port = sock.getsockname()[1]
        yield f"http://{_HOST}:{port}/"
    finally:
        sock.close()
