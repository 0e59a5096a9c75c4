"""The agent link writes the frames it has ready in one socket write (agent/wire.py).

The microphone hands over a capture period (two 30 ms frames) at a time; each frame is still its
own binary message, byte for byte what websockets sends for one `send`, but both go out in one
`send` syscall. A real AgentLink talks to a plain websockets server on loopback; the client
socket's writes are counted at the socket class (what asyncio's transport calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import kiosk_settings
from websockets.asyncio.server import ServerConnection, serve

from edge_agent.agent.link import AgentLink, LinkStats
from edge_agent.agent.outbox import BATCH_FRAMES
from edge_agent.agent.wire import QUIET_BATCH_FRAMES
from edge_agent.core import conversation as c

SPEECH = bytes(range(1, 256)) * 3 + bytes(range(1, 196))  # 30 ms, not silence: sent uncompressed
SILENCE = bytes(960)  # the gate's silence: deflated when compression is on


@contextlib.contextmanager
def counted_writes(link: AgentLink) -> Iterator[list[int]]:
    """The bytes of each socket write `link` makes meanwhile (counted at the socket class, which
    asyncio's transport calls)."""
    assert link._ws is not None
    port = link._ws.transport.get_extra_info("sockname")[1]
    writes: list[int] = []
    real_send = socket.socket.send

    def counting_send(sock: socket.socket, data: Any, *args: Any) -> int:
        if sock.getsockname()[1] == port:
            writes.append(len(data))
        return real_send(sock, data, *args)

    socket.socket.send = counting_send  # type: ignore[method-assign]
    try:
        yield writes
    finally:
        socket.socket.send = real_send  # type: ignore[method-assign]


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

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        settings = kiosk_settings(tmp_path, f"ws://127.0.0.1:{port}/", agent={"ping_interval_s": 120.0, "compression": compression}).agent
        link = AgentLink(settings, 1, emit, LinkStats())
        link.start(None)
        await asyncio.wait_for(ready.wait(), 10)
        with counted_writes(link) as writes:
            link.send_held(held)
            for frame in frames:
                link.send_audio(frame)
            await asyncio.wait_for(done.wait(), 10)
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
                held_back = held_back or (link.outbox.serving is not None and not link.outbox.serving.takes_now)
            await asyncio.wait_for(done.wait(), 20)
            link.close()
            await link.wait_closed()
            return held_back, link.stats.frames_dropped

    held_back, dropped = asyncio.run(main())
    assert held_back, "the socket never filled: the test did not exercise flow control"
    assert got == sorted(got) and len(set(got)) == len(got) and got[-1] == total - 1
    assert dropped > 0, "back-pressure never reached the bounded queue: audio piled up in user space"
    assert len(got) + dropped == total, (len(got), dropped)


def test_long_silence_goes_out_a_batch_at_a_time_and_sound_at_once(tmp_path: Path) -> None:
    """After `quiet_settle_s` of all-zero frames (the gate closed: the visitor silent, or the agent
    talking over a closed microphone), silence is written QUIET_BATCH_FRAMES at a time instead of
    once per capture period; the first frame with sound goes out at once, with the silence before
    it, and the server gets every frame in order. Held silence is not timed as live audio."""
    got: list[bytes] = []
    sent = [SPEECH] + [SILENCE] * 40 + [SPEECH[::-1]]

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"method": "onready", "payload": {"session_id": "s1"}}))
        async for msg in ws:
            if isinstance(msg, bytes):
                got.append(msg)

    async def main() -> tuple[list[int], int, LinkStats]:
        ready = asyncio.Event()
        async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            settings = kiosk_settings(tmp_path, f"ws://127.0.0.1:{port}/", agent={"ping_interval_s": 120.0, "compression": False}).agent
            stats = LinkStats()
            link = AgentLink(settings, 1, lambda e: ready.set() if isinstance(e, c.FromAgent) else None, stats, quiet_settle_s=0.3)
            link.start(None)
            await asyncio.wait_for(ready.wait(), 10)
            with counted_writes(link) as writes:
                for frame in sent[:-1]:  # one 30 ms frame per capture period
                    link.send_audio(frame, time.monotonic())
                    await asyncio.sleep(0.03)
                before_sound = len(writes)
                link.send_audio(sent[-1], time.monotonic())
                await asyncio.sleep(0)  # the flush booked by the sound frame runs
                sound_write = writes[before_sound:]
                for _ in range(200):
                    if len(got) == len(sent):
                        break
                    await asyncio.sleep(0.01)
            link.close()
            await link.wait_closed()
            return writes, len(sound_write) and sound_write[0], stats

    writes, sound_write_bytes, stats = asyncio.run(main())
    assert got == sent
    # live: the first sound frame and ~10 frames (0.3 s) of silence; then 30 frames in batches of 8
    assert len(writes) <= 18, (len(writes), writes)
    assert QUIET_BATCH_FRAMES == 8
    assert sound_write_bytes > 2 * len(SILENCE), "the sound frame did not take the silence held before it"
    timed = len(stats.capture_to_wire_ms)  # the sound frames and the silence of the first 0.3 s
    assert 2 <= timed <= 14, f"{timed} of {len(sent)} frames timed as live: held silence must not be"


def test_the_stream_starts_live_at_onready_with_nothing_held(tmp_path: Path) -> None:
    """At `onready` the stream starts (the kiosk sends a frame of silence at once: Uplink.start_stream)
    and its first second goes out live. With nothing held (`audio.backlog_ms = 0`, or an agent
    ready before a frame was captured) the settle clock was left where `initiate` set it: an agent
    slower than that to say `onready` had the stream's first frames wait for a batch of eight."""

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await asyncio.sleep(0.5)  # a server slow to start the session: longer than the settle time
        await ws.send(json.dumps({"method": "onready", "payload": {"session_id": "s1"}}))
        async for _ in ws:
            pass

    async def main() -> tuple[list[int], float | None]:
        ready = asyncio.Event()
        async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            settings = kiosk_settings(tmp_path, f"ws://127.0.0.1:{port}/", agent={"ping_interval_s": 120.0, "compression": False}).agent
            link = AgentLink(settings, 1, lambda e: ready.set() if isinstance(e, c.FromAgent) else None, LinkStats(), quiet_settle_s=0.3)
            link.start(None)
            await asyncio.wait_for(ready.wait(), 10)
            with counted_writes(link) as writes:
                link.send_held([])  # what the daemon does at onready with an empty backlog
                link.send_audio(SILENCE)  # Uplink.start_stream's frame
                for _ in range(3):
                    await asyncio.sleep(0)  # the flush it booked runs
            first = link.first_audio_sent_at
            link.close()
            await link.wait_closed()
            return writes, first

    writes, first = asyncio.run(main())
    assert first is not None and len(writes) == 1, "the stream's first frame waited for a batch"
