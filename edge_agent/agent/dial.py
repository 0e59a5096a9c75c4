"""Opening the agent's socket: websockets' limits on what a server may send, TLS for `wss://`,
compression, and the small kernel send buffer that makes a congested uplink felt within a second.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from edge_agent.agent.deflate import SilenceDeflateFactory
from edge_agent.agent.wire import BatchingConnection, read_in_small_chunks
from edge_agent.core.config_agent import AgentSettings

MAX_MESSAGE_BYTES = 256 * 1024
"""Largest message the agent may send: 8 s of 16 kHz audio in one chunk, or a JSON event four
times the longest text we keep (protocol.MAX_TEXT_FRAME_CHARS). Anything larger closes the link
(1009) before it is buffered; the official client's chunks are a few KiB."""
MAX_QUEUED_MESSAGES = 8
"""Received messages websockets buffers before it stops reading the socket: with
MAX_MESSAGE_BYTES, at most 2 MiB parked by a server (instead of 16 x 4 MiB)."""
SEND_BUFFER_BYTES = 32 * 1024
"""Kernel send buffer of the agent socket (Linux doubles it): about 1 s of 16 kHz audio. Left to
auto-tuning it grows to megabytes, and a congested uplink would queue minutes of stale speech
before the kiosk noticed; capped, back-pressure reaches our bounded queue within a second."""


def tls_for(endpoint: str) -> dict[str, Any]:
    """`connect`'s TLS argument: a verifying context for a `wss://` endpoint, none at all for a
    `ws://` one. `ssl=None` there made websockets refuse a redirect to `wss://` (a ValueError,
    classified as a fatal "bad endpoint"); without it, it follows with its default context."""
    return {"ssl": ssl.create_default_context()} if endpoint.startswith("wss://") else {}


def dial(settings: AgentSettings) -> connect:
    """The connection to `settings.endpoint`, opened by `async with` (a BatchingConnection)."""
    return connect(
        settings.endpoint,
        **tls_for(settings.endpoint),
        open_timeout=settings.connect_timeout_s,
        ping_interval=None,  # our own JSON ping measures RTT and feeds the dead timer
        close_timeout=1.0,
        max_size=MAX_MESSAGE_BYTES,
        max_queue=MAX_QUEUED_MESSAGES,
        write_limit=4096,  # little buffering in user space either (see SEND_BUFFER_BYTES)
        compression="deflate" if settings.compression else None,
        extensions=[SilenceDeflateFactory()] if settings.compression else None,
        create_connection=BatchingConnection,
    )


def tune(ws: ClientConnection) -> None:
    """The opened socket's kernel send buffer capped (SEND_BUFFER_BYTES), its reads kept small."""
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    read_in_small_chunks(ws.transport)
