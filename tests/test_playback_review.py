"""Attacks on the playback path (2026-12-06, a helper's review; each failed before its fix): the
real Downlink, and the simulator and an in-process kiosk, as tests/test_playback_attacks.py does."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import numpy as np
from conftest import KioskThread, kiosk_settings, wait_for

from edge_agent.agent.downlink import EARLY_AUDIO_BYTES, Downlink
from edge_agent.audio.earcons import Earcons
from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import SimulatorThread


def _stream(n_samples: int) -> bytes:
    """The agent's reply as the server sends it: a ramp, so any byte shift shows as a jump."""
    return ((np.arange(n_samples) % 20000) + 1).astype("<i2").tobytes()


def _shifted(pcm: bytes) -> int:
    """Samples of `pcm` that do not follow their neighbour on the ramp (a splice is one)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    step = np.diff(x)
    return int(np.count_nonzero((step != 1) & (step != -19999)))


def test_the_greeting_after_onready_is_not_shifted_by_an_odd_early_message_that_was_dropped() -> None:
    """A long greeting streamed before `onready` in chunks of any size (the protocol allows it):
    past EARLY_AUDIO_BYTES a message is dropped, and so is the rest before `onready`, but the
    greeting goes on streaming after it. When the bytes dropped added up to an odd count, the
    first audio after `onready` began half-way into a sample, and the link kept it as if it began
    on one: every sample of the rest of the greeting was made of two neighbours' bytes, so the
    visitor heard loud noise until the agent's next `clear`."""
    for held_odd in (False, True):
        stream = _stream(EARLY_AUDIO_BYTES)  # 20 s
        played: list[bytes] = []
        down = Downlink(played.append, lambda msg: None, lambda what, level: None)
        held = EARLY_AUDIO_BYTES - 1000 + (1 if held_odd else 0)
        cuts = [0, held, held + 1001, held + 1001 + 778, len(stream)]  # held, dropped (1779 bytes: odd), after onready
        parts = [stream[a:b] for a, b in itertools.pairwise(cuts)]
        for part in parts[:3]:
            down.audio(part)
        down.ready_now()
        down.audio(parts[3])
        after = b"".join(played)
        assert len(after) % 2 == 0
        # the splice where audio was dropped (and at most the one sample made of the bytes either
        # side of it), and nothing else out of its place
        assert _shifted(after) <= 2, f"held odd: {held_odd}: {_shifted(after)} samples out of place after the drop"


def test_a_pause_held_before_onready_does_not_hold_the_ready_earcon(tmp_path: Path, sim_thread: SimulatorThread) -> None:
    """The agent sends `pause` and a greeting before `onready` (a slow server): both are held and
    handed on right after it, and the pause holds the greeting, as the protocol says. But the
    kiosk queues the ready earcon at `onready`, before them, and the pause held that too: the
    visitor heard the press earcon and then nothing (the README: the ready earcon plays at
    `onready`, so the visitor knows the agent is listening) until the agent's `unpause`, and never
    when a `clear` came instead. A pause holds the agent's audio, not the kiosk's own cues."""
    sim_thread.sim.onready_delay_s = 1.0
    settings = kiosk_settings(tmp_path, sim_thread.sim.url)  # earcons on, the null speaker (paced)
    run = lambda coro: asyncio.run_coroutine_threadsafe(coro, sim_thread.loop).result(5)  # noqa: E731
    greeting = _stream(16000)
    try:
        with KioskThread(settings) as k:
            k.press()
            wait_for(lambda: sim_thread.sim.sessions, 5, "the session")
            run(sim_thread.sim.control("pause"))
            run(sim_thread.sim.say(greeting))
            wait_for(lambda: k.state in (c.LISTENING, c.SPEAKING), 10, "onready")
            time.sleep(1.0)  # the earcons take 60 + 180 ms
            buf = k.kiosk.sink.buffer
            queued, played, paused = buf.queued_bytes, buf.played_bytes, buf.paused
    finally:
        sim_thread.sim.onready_delay_s = 0.0
    earcons = Earcons(settings.audio.earcons, settings.audio.earcon_volume)
    assert paused and queued >= len(greeting), "the greeting was not held: the test proves nothing"
    assert queued == len(greeting), f"{(queued - len(greeting)) / 32:.0f} ms of the ready earcon held by the agent's pause"
    assert played == len(earcons.get("press")) + len(earcons.get("ready"))  # and none of the greeting
