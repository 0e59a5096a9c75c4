"""The agent link writes the frames it has ready in one socket write (agent/wire.py).

The microphone hands over a capture period (two 30 ms frames) at a time; each frame is still its
own binary message, byte for byte what websockets sends for one `send`, but both go out in one
`send` syscall. A real AgentLink talks to a plain websockets server on loopback; the client
socket's writes are counted at the socket class (what asyncio's transport calls).
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import kiosk_settings
from websockets.asyncio.server import ServerConnection, serve

from edge_agent.agent.link import BATCH_FRAMES, AgentLink, LinkStats
from edge_agent.core import conversation as c

SPEECH = bytes(range(1, 256)) * 3 + bytes(range(1, 196))  # 30 ms, not silence: sent uncompressed
SILENCE = bytes(960)  # the gate's silence: deflated when compression is on


async def _session(tmp_path: Path, compression: bool, frames: list[bytes], held: list[bytes]) -> tuple[list[bytes], list[int]]:
    """(binary messages the server received, bytes of each socket write the link made after
    onready) for `held` then `frames` queued in one go, as the daemon does per capture period."""
    got: list[bytes] = []
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # initiate
        await ws.send(json.dumps({"method": "onready", "payload": {"session_id": "s1"}}))
        async for msg in ws:
            if isinstance(msg, bytes):
                got.append(msg)
                if len(got) == len(frames) + len(held):
                    done.set()

    ready = asyncio.Event()

    def emit(event: c.Event) -> None:
        if isinstance(event, c.FromAgent):
            ready.set()

    writes: list[int] = []
    real_send = socket.socket.send
    link_port: list[int] = []

    def counting_send(sock: socket.socket, data: Any, *args: Any) -> int:
        if link_port and sock.getsockname()[1] == link_port[0]:
            writes.append(len(data))
        return real_send(sock, data, *args)

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        settings = kiosk_settings(tmp_path, f"ws://127.0.0.1:{port}/", agent={"ping_interval_s": 120.0, "compression": compression}).agent
        link = AgentLink(settings, 1, emit, LinkStats())
        link.start(None)
        await asyncio.wait_for(ready.wait(), 10)
        assert link._ws is not None
        link_port.append(link._ws.transport.get_extra_info("sockname")[1])
        socket.socket.send = counting_send  # type: ignore[method-assign]
        try:
            link.send_held(held)
            for frame in frames:
                link.send_audio(frame)
            await asyncio.wait_for(done.wait(), 10)
        finally:
            socket.socket.send = real_send  # type: ignore[method-assign]
        link.close()
        await link.wait_closed()
    return got, writes


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
def test_a_capture_periods_frames_go_out_as_separate_messages_in_one_write(compression: bool, tmp_path: Path) -> None:
    got, writes = asyncio.run(_session(tmp_path, compression, [SPEECH, SILENCE], []))
    assert got == [SPEECH, SILENCE]
    assert len(writes) == 1, writes


def test_held_audio_goes_out_in_order_a_batch_at_a_time(tmp_path: Path) -> None:
    held = [bytes([i]) * 960 for i in range(1, 2 * BATCH_FRAMES + 2)]
    got, writes = asyncio.run(_session(tmp_path, False, [SPEECH], held))
    assert got == [*held, SPEECH]
    assert len(writes) == 3, writes  # 2 x BATCH_FRAMES, then the last held frame with the live one


def test_audio_waits_in_order_while_the_socket_cannot_take_it(tmp_path: Path) -> None:
    """A server that stops reading fills the socket: flow control holds the connection back, the
    sender task takes over (the queue drops its oldest, counted), and once the server reads
    again what was kept arrives in order, the newest frame last."""
    got: list[int] = []
    done = asyncio.Event()
    total = 300

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"method": "onready", "payload": {"session_id": "s1"}}))
        await asyncio.sleep(1.5)  # not reading: the kiosk's socket fills
        async for msg in ws:
            if isinstance(msg, bytes):
                got.append(int.from_bytes(msg[:2], "big"))
                if got[-1] == total - 1:
                    done.set()

    async def main() -> tuple[bool, int]:
        ready = asyncio.Event()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the accepted socket inherits it
        listener.bind(("127.0.0.1", 0))
        async with serve(handler, sock=listener, ping_interval=None, max_size=None):
            settings = kiosk_settings(tmp_path, f"ws://127.0.0.1:{listener.getsockname()[1]}/", agent={"ping_interval_s": 120.0}).agent
            link = AgentLink(settings, 1, lambda e: ready.set() if isinstance(e, c.FromAgent) else None, LinkStats())
            link.start(None)
            await asyncio.wait_for(ready.wait(), 10)
            held_back = False
            for i in range(0, total, 2):  # a capture period of two frames every 5 ms
                for k in (i, i + 1):
                    link.send_audio(k.to_bytes(2, "big") + bytes(range(1, 255)) * 3 + bytes(196))
                await asyncio.sleep(0.005)
                held_back = held_back or (link._serving is not None and not link._serving.takes_now)
            await asyncio.wait_for(done.wait(), 20)
            link.close()
            await link.wait_closed()
            return held_back, link.stats.frames_dropped

    held_back, dropped = asyncio.run(main())
    assert held_back, "the socket never filled: the test did not exercise flow control"
    assert got == sorted(got) and len(set(got)) == len(got) and got[-1] == total - 1
    assert dropped > 0, "back-pressure never reached the bounded queue: audio piled up in user space"
    assert len(got) + dropped == total, (len(got), dropped)
