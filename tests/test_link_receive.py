"""Agent audio is handed on straight from the socket's read (agent/wire.py), in order with
everything else the agent sends.

websockets queues each received message for a task waiting in `recv`: a future, a task step and
one more turn of the loop per 20 ms chunk while the agent talks. A binary message that arrives
whole while nothing is queued goes to the link from the read itself; anything else (text, a
message in fragments, audio behind a queued message) still goes through `recv`, so the events
come out in the order the server sent them. A real AgentLink against a websockets server on
loopback.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from conftest import kiosk_settings
from websockets.asyncio.server import ServerConnection, serve

from edge_agent.agent.link import AgentLink, LinkStats
from edge_agent.core import conversation as c
from edge_agent.core import protocol as p


def _audio(i: int) -> bytes:
    return bytes([i]) * 640  # 20 ms of agent audio, numbered


async def _serve_agent(ws: ServerConnection, heard: asyncio.Queue[object]) -> None:
    """Audio before `onready` (played at it), `onready`, audio one message at a time (each once the
    link has handed the one before on), then a burst mixing audio with text (`clear`) and with
    a message sent in fragments; `onsessionended` last."""
    await ws.recv()  # initiate
    await ws.send(_audio(0))
    await ws.send(json.dumps({"method": "onready", "payload": {"session_id": "s1"}}))
    assert await asyncio.wait_for(heard.get(), 5) == "OnReady"
    assert await asyncio.wait_for(heard.get(), 5) == 0  # the audio that came first, right after it
    for i in range(1, 4):
        await ws.send(_audio(i))
        assert await asyncio.wait_for(heard.get(), 5) == i
    # a burst, written back to back: whatever one read brings in keeps its order
    await ws.send(_audio(4))
    await ws.send(json.dumps({"method": "clear"}))
    await ws.send(_audio(5))
    await ws.send([_audio(6)[:320], _audio(6)[320:]])  # one message in two fragments
    await ws.send(_audio(7))
    await ws.send(json.dumps({"method": "onsessionended"}))
    await ws.wait_closed()


async def _receive_all(tmp_path: Path) -> tuple[list[object], list[bool]]:
    """(what the link emitted: the audio's number or the message's type name; for each audio
    event, whether it was emitted outside any task, i.e. from the socket's read)"""
    got: list[object] = []
    from_read: list[bool] = []
    heard: asyncio.Queue[object] = asyncio.Queue()
    ended = asyncio.Event()

    def emit(event: c.Event) -> None:
        if isinstance(event, c.AgentAudio):
            got.append(event.pcm[0])
            from_read.append(asyncio.current_task() is None)
        elif isinstance(event, c.FromAgent):
            got.append(type(event.message).__name__)
            if isinstance(event.message, p.SessionEnded):
                ended.set()
        else:
            return
        heard.put_nowait(got[-1])

    async with serve(lambda ws: _serve_agent(ws, heard), "127.0.0.1", 0, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        settings = kiosk_settings(tmp_path, f"ws://127.0.0.1:{port}/", agent={"ping_interval_s": 120.0}).agent
        link = AgentLink(settings, 1, emit, LinkStats())
        link.start(None)
        await asyncio.wait_for(ended.wait(), 10)
        link.close()
        await link.wait_closed()
    return got, from_read


def test_agent_audio_is_handed_on_from_the_read_in_the_order_it_was_sent(tmp_path: Path) -> None:
    got, from_read = asyncio.run(_receive_all(tmp_path))
    assert got == ["OnReady", 0, 1, 2, 3, 4, "Clear", 5, 6, 7, "SessionEnded"]  # audio 0 came before onready
    assert from_read[1:4] == [True, True, True], from_read  # audio arriving alone skips the task
