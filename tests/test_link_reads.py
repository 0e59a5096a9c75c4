"""The agent link reads its socket in small pieces, over plain TCP and TLS.

asyncio reads up to 256 KiB at a time and allocates that much for every read, however little
arrived; with agent audio coming as ~50 small messages a second that allocation (fresh pages
mapped and unmapped each time) was a quarter of the kiosk's CPU. The test watches the peak of
Python's allocations while a real AgentLink receives many small messages from a plain
websockets server on loopback, with and without TLS.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import tracemalloc
from pathlib import Path

import pytest
from conftest import kiosk_settings, make_certs
from websockets.asyncio.server import ServerConnection, serve

from edge_agent.agent.link import AgentLink, LinkStats
from edge_agent.core import conversation as c

MESSAGES = 200
CHUNK = bytes(range(256)) * 2 + bytes(128)  # 640 bytes: 20 ms of agent audio
PEAK_LIMIT_BYTES = 128 * 1024
"""Half of asyncio's default read size: one default read during the burst exceeds it."""


async def _burst(ws: ServerConnection) -> None:
    """Waits for `initiate` and the link's first ping (so the server reads nothing more), then
    sends `onready` and MESSAGES small binary messages, a few milliseconds apart."""
    await ws.recv()
    await ws.recv()
    await ws.send(json.dumps({"method": "onready", "payload": {"session_id": "s1"}}))
    await asyncio.sleep(0.05)
    for _ in range(MESSAGES):
        await ws.send(CHUNK)
        await asyncio.sleep(0.002)
    await ws.wait_closed()


async def _peak_while_receiving(tmp_path: Path, endpoint: str, server_ssl: ssl.SSLContext | None) -> tuple[int, int]:
    """(peak bytes allocated above the start while the burst arrived, audio messages received)"""
    audio = 0  # counted, not kept: the messages themselves would fill the peak
    ready = asyncio.Event()

    def emit(event: c.Event) -> None:
        nonlocal audio
        audio += isinstance(event, c.AgentAudio)
        if isinstance(event, c.FromAgent):
            ready.set()

    async with serve(_burst, "127.0.0.1", 0, ssl=server_ssl, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        settings = kiosk_settings(tmp_path, endpoint.format(port=port), agent={"ping_interval_s": 120.0}).agent
        link = AgentLink(settings, 1, emit, LinkStats())
        link.start(None)
        await asyncio.wait_for(ready.wait(), 10)
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(500):
            if audio >= MESSAGES:
                break
            await asyncio.sleep(0.01)
        _, peak = tracemalloc.get_traced_memory()
        link.close()
        await link.wait_closed()
    return peak - start, audio


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_agent_audio_is_read_without_a_large_buffer_per_message(tls: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server_ssl = None
    if tls:
        certs = make_certs(tmp_path)
        server_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ssl.load_cert_chain(certs["server.crt"], certs["server.key"])
        monkeypatch.setenv("SSL_CERT_FILE", str(certs["ca.crt"]))  # the link trusts the system store
    tracemalloc.start()
    try:
        grown, received = asyncio.run(_peak_while_receiving(tmp_path, "wss://127.0.0.1:{port}/" if tls else "ws://127.0.0.1:{port}/", server_ssl))
    finally:
        tracemalloc.stop()
    assert received == MESSAGES
    assert grown < PEAK_LIMIT_BYTES, f"allocations peaked {grown} bytes above the start"
