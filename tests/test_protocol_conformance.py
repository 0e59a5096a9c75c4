"""The kiosk's link against the Millis protocol as documented (docs/millis-protocol.md, taken
from the vendor's own client, and the session-continuation page): a helper's audit, 2026-12-06.

Each test runs a real AgentLink over a real socket on loopback, against the simulator (made as
strict as the documented server) or a scripted server playing what the protocol allows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import KioskThread, SimulatorThread, kiosk_settings
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from edge_agent.agent.link import AgentLink, LinkStats
from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.devtools.simulator import AgentSimulator

Script = Callable[[ServerConnection], Awaitable[None]]


def _onready(session_id: str) -> str:
    return json.dumps({"method": "onready", "payload": {"session_id": session_id}})


def _method(name: str) -> str:
    return json.dumps({"method": name})


async def _run_link(tmp_path: Path, script: Script) -> list[object]:
    """What one AgentLink emits against `script` (the server's side of one socket), until the
    link is down: audio as bytes, messages by their type name."""
    got: list[object] = []
    down = asyncio.Event()

    def emit(event: c.Event) -> None:
        if isinstance(event, c.AgentAudio):
            got.append(event.pcm)
        elif isinstance(event, c.FromAgent):
            got.append(type(event.message).__name__)
        elif isinstance(event, c.LinkDown):
            down.set()

    async def handle(ws: ServerConnection) -> None:
        json.loads(await ws.recv())  # initiate
        await script(ws)
        await ws.send(_method("onsessionended"))
        await asyncio.wait_for(ws.wait_closed(), 5)  # the kiosk closes on it

    async with serve(handle, "127.0.0.1", 0, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        settings = kiosk_settings(tmp_path, f"ws://127.0.0.1:{port}/", agent={"ping_interval_s": 120.0}).agent
        link = AgentLink(settings, 1, emit, LinkStats())
        link.start(None)
        await asyncio.wait_for(down.wait(), 10)
        await link.wait_closed()
    return got


def _shown(got: list[object]) -> list[object]:
    return [f"<{len(x)} bytes of {x[:2].hex()}>" if isinstance(x, bytes) else x for x in got]


def _audio_after(got: list[object], name: str) -> bytes:
    """The agent audio emitted after the last `name` message."""
    i = len(got) - 1 - got[::-1].index(name)
    return b"".join(x for x in got[i + 1 :] if isinstance(x, bytes))


# ---------------------------------------------------------------- clear: every queued sample goes


def test_clear_before_onready_drops_the_greeting_held_for_it(tmp_path: Path) -> None:
    """"Audio may arrive before `onready`", and `clear` means "drop every queued agent sample
    now" (docs/millis-protocol.md, Server to client). The link held the early audio and played it
    at `onready` even when a `clear` had come in between: the conversation ignores messages before
    `onready`, so the clear reached nobody and the cleared greeting played."""

    async def script(ws: ServerConnection) -> None:
        await ws.send(b"\x01\x01" * 320)  # a greeting the agent then clears
        await ws.send(_method("clear"))
        await ws.send(b"\x02\x02" * 320)  # what it says after the clear
        await ws.send(_onready("s1"))

    got = asyncio.run(_run_link(tmp_path, script))
    played = b"".join(x for x in got if isinstance(x, bytes))
    assert played == b"\x02\x02" * 320, f"{played.count(1)} bytes of the cleared greeting played: {_shown(got)}"


def test_a_clear_before_onready_is_not_handed_on_after_it(tmp_path: Path) -> None:
    """A `clear` before `onready` drops the greeting the link holds, and that is all it has to
    clear: handed on after `onready` with the rest, it reached the conversation right after the
    ready earcon was queued and emptied the speaker of it (the visitor never heard they may talk)."""

    async def script(ws: ServerConnection) -> None:
        await ws.send(b"\x01\x01" * 320)
        await ws.send(_method("clear"))
        await ws.send(_onready("s1"))
        await ws.send(b"\x02\x02" * 320)

    got = asyncio.run(_run_link(tmp_path, script))
    assert "Clear" not in got and got[:2] == ["OnReady", b"\x02\x02" * 320], _shown(got)


def test_clear_drops_the_half_sample_of_the_cleared_reply(tmp_path: Path) -> None:
    """Agent audio is PCM "of any chunk size"; the link carries an odd message's last byte over
    to the next message (tests/test_link_frames.py). After a `clear` that byte belongs to audio
    that was dropped: carried into the next reply, every sample of it played byte-swapped (noise)."""

    async def script(ws: ServerConnection) -> None:
        await ws.send(_onready("s1"))
        await ws.send((b"\x34\x12" * 400)[:641])  # cut mid-sample, then cleared
        await ws.send(_method("clear"))
        await ws.send(b"\x78\x56" * 320)  # the next reply, whole samples of 0x5678

    got = asyncio.run(_run_link(tmp_path, script))
    after = _audio_after(got, "Clear")
    assert after == b"\x78\x56" * 320, f"the reply after the clear starts {after[:6].hex()} ({len(after)} bytes)"


def test_pause_before_onready_holds_the_greeting_that_follows_it(tmp_path: Path) -> None:
    """`pause` holds agent playback, whenever it comes (docs/millis-protocol.md). One before
    `onready` reached the conversation before it listened, was ignored there, and the greeting
    that followed played at `onready`. The agent's messages before `onready` now follow it, in
    the order sent, ahead of the audio that came after them."""

    async def script(ws: ServerConnection) -> None:
        await ws.send(_method("start_answering"))
        await ws.send(_method("pause"))
        await ws.send(b"\x03\x03" * 320)
        await ws.send(_onready("s1"))
        await ws.send(_method("unpause"))

    got = asyncio.run(_run_link(tmp_path, script))
    assert got[:5] == ["OnReady", "StartAnswering", "Pause", b"\x03\x03" * 320, "Unpause"], _shown(got)


# ---------------------------------------------------------------- the simulator as strict as the docs

BAD_INITIATES: dict[str, dict[str, Any]] = {
    "no agent": {"public_key": "k"},
    "agent without id or config": {"public_key": "k", "agent": {}},
    "agent id not a string": {"public_key": "k", "agent": {"agent_id": 7}},
    "agent config not an object": {"public_key": "k", "agent": {"agent_config": "prompt"}},
    "no public key": {"agent": {"agent_id": "a"}},
    "metadata not an object": {"public_key": "k", "agent": {"agent_id": "a"}, "metadata": "lobby"},
    "include_metadata_in_prompt a string": {"public_key": "k", "agent": {"agent_id": "a"}, "metadata": {"x": 1}, "include_metadata_in_prompt": "true"},
    "continuation as a bare id": {"public_key": "k", "agent": {"agent_id": "a"}, "session_continuation": "prev"},
    "continuation without session_id": {"public_key": "k", "agent": {"agent_id": "a"}, "session_continuation": {"id": "prev"}},
}


@pytest.mark.parametrize("name", list(BAD_INITIATES))
def test_the_simulator_refuses_an_initiate_the_documented_shape_has_no_place_for(name: str) -> None:
    """The simulator coerced or ignored a malformed field (an `include_metadata_in_prompt` of
    "true" taken as true, a `session_continuation` of a bare string taken as a fresh session, an
    `agent` with neither id nor config): a kiosk making that mistake passed every test here and
    failed against the platform. Now it closes 1008 and lists what was wrong."""

    async def run() -> tuple[int | None, list[str]]:
        sim = AgentSimulator()
        await sim.start()
        try:
            async with connect(sim.url) as ws:
                await ws.send(json.dumps({"method": "initiate", "data": BAD_INITIATES[name]}))
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
            return closed.value.rcvd.code if closed.value.rcvd else None, sim.violations
        finally:
            await sim.stop()

    code, violations = asyncio.run(run())
    assert code == 1008 and len(violations) == 1 and "initiate" in violations[0], (code, violations)


@pytest.mark.parametrize(
    "agent",
    [
        {"agent_id": "agent-1"},
        {"agent_id": "agent-1", "metadata": {"site": "lobby"}, "include_metadata_in_prompt": True},
        {"agent_id": "", "config": {"prompt": "be brief", "language": "en"}},
        {"agent_id": "agent-1", "config": {"first_message": "hi"}, "metadata": {"site": "lobby"}},
    ],
    ids=["agent id", "metadata in prompt", "inline config", "both"],
)
def test_the_kiosk_speaks_the_documented_protocol_to_the_strict_simulator(tmp_path: Path, agent: dict[str, Any]) -> None:
    """A real link, continuing a session, with pings every 0.2 s: the strict simulator takes its
    `initiate` (the continuation as the docs give it), says `onready`, answers its pings, and
    finds nothing outside the documented protocol."""

    async def run() -> tuple[AgentSimulator, list[object]]:
        sim = AgentSimulator()
        await sim.start()
        got: list[object] = []
        settings = kiosk_settings(tmp_path, sim.url, agent={"ping_interval_s": 0.5, **agent}).agent
        if not settings.agent_id:
            from dataclasses import replace

            settings = replace(settings, agent_id=None)
        stats = LinkStats()
        link = AgentLink(settings, 1, lambda e: got.append(e), stats)
        link.start("previous-session")
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if sim.sessions and sim.sessions[-1].pings >= 2 and stats.rtt_ms is not None:
                    break
        finally:
            link.close()
            await link.wait_closed()
            await sim.stop()
        return sim, got

    sim, got = asyncio.run(run())
    assert sim.violations == [] and len(sim.sessions) == 1, sim.violations
    sent = sim.sessions[0].initiate["data"]
    assert sent["session_continuation"] == {"session_id": "previous-session"}
    assert any(isinstance(e, c.FromAgent) and isinstance(e.message, p.OnReady) for e in got)
    assert sim.sessions[0].pings >= 2


def test_the_simulator_lists_text_that_is_no_documented_ping() -> None:
    """The client's only text after `initiate` is its ping, `{"method":"ping","data":"<ms>"}`
    (docs/millis-protocol.md, Client to server). The simulator answered any text containing
    "ping" and ignored the rest: a kiosk sending its clock as a number, or another message, went
    unseen. Now each is listed (a pong still echoes what a ping carried)."""

    async def run() -> tuple[list[str], list[str]]:
        sim = AgentSimulator()
        await sim.start()
        try:
            async with connect(sim.url) as ws:
                await ws.send(json.dumps({"method": "initiate", "data": {"public_key": "k", "agent": {"agent_id": "a"}}}))
                pongs = [json.loads(await ws.recv())["method"]]  # onready
                for text in ('{"method":"ping","data":"1700000000000"}', '{"method":"ping","data":1700000000000}', '{"method":"hello"}', "not json"):
                    await ws.send(text)
                for _ in range(2):
                    pongs.append(json.dumps(json.loads(await asyncio.wait_for(ws.recv(), 5))))
            return pongs, sim.violations
        finally:
            await sim.stop()

    pongs, violations = asyncio.run(run())
    assert pongs == ["onready", '{"method": "pong", "data": "1700000000000"}', '{"method": "pong", "data": 1700000000000}'], pongs
    assert len(violations) == 3 and "1700000000000" in violations[0] and "hello" in violations[1] and "not json" in violations[2], violations


def test_a_base64_session_id_is_a_session_and_is_continued(tmp_path: Path) -> None:
    """The protocol documents no format for `payload.session_id`. The kiosk took letters, digits
    and `._:-` only, so a platform handing out base64 ids (`+`, `/`, `=`) failed every session
    (`onready` refused) and a fleet pointer naming one was dropped. Now they pass; a newline, a
    space or a control character is still refused."""
    from edge_agent.fleet.pointer import Pointer

    sid = "Zm9v+YmFy/cXV4LnNlc3Npb24="
    with SimulatorThread(bad_session_id=sid) as sim, KioskThread(kiosk_settings(tmp_path, sim.url)) as k:
        k.press()
        k.wait_state(c.LISTENING)
        k.press()
        k.wait_state(c.IDLE)
        k.press()
        k.wait_state(c.LISTENING)
        assert sim.sessions[-1].initiate["data"].get("session_continuation") == {"session_id": sid}
    assert Pointer.from_wire(Pointer(sid, 1.0, None, None, "k").to_wire(), 2.0).session_id == sid
    for bad in ("a b", "a\nb", "a\x00b"):
        with pytest.raises(p.ProtocolError):
            p.parse_server_text(json.dumps({"method": "onready", "payload": {"session_id": bad}}))
