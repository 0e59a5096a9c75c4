"""The simulator, which stands in for the Millis platform in the daemon's tests, hears a barge-in
once: a visitor who talks over the agent gets one `clear`, however the uplink arrives.

A test of the kiosk (tests/test_echo_daemon.py) counts the simulator's barge-ins; a simulator
that counted one barge-in twice failed it now and then (the uplink's frames arriving in one read
while the cancelled reply had not yet finished).
"""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from edge_agent.core import protocol as p
from edge_agent.devtools.simsound import tone
from edge_agent.devtools.simulator import SAMPLE_RATE_HZ, AgentSimulator


async def _barge_in(url: str, message_ms: int) -> None:
    voice = tone(300, 1000, amplitude=0.2)
    silence = bytes(SAMPLE_RATE_HZ * 2)  # 1 s
    async with connect(url) as ws:
        await ws.send(p.Initiate("pk", "agent-1").to_wire())
        while json.loads(await ws.recv()).get("method") != "onready":
            pass
        await ws.send(voice + silence)  # an utterance: the agent answers it
        while not isinstance(await ws.recv(), bytes):  # the reply's first audio: the agent speaks
            pass
        talk = tone(300, 2000, amplitude=0.2)  # the visitor talks over the agent for 2 s
        step = SAMPLE_RATE_HZ * 2 * message_ms // 1000
        for off in range(0, len(talk), step):
            await ws.send(talk[off : off + step])
        await ws.send(silence)
        await asyncio.sleep(0.5)


def test_a_visitor_talking_over_the_agent_is_one_barge_in_however_the_uplink_arrives(sim: AgentSimulator) -> None:
    for message_ms in (2000, 60, 20):  # all at once (a late read), a capture period, a chunk
        before = len(sim.sessions)
        asyncio.run(_barge_in(sim.url, message_ms))
        session = sim.sessions[before]
        assert session.barge_ins == 1, (message_ms, session.sent)
        assert session.sent.count("clear") == 1
