"""The whole daemon in a simulated room (its speaker's sound comes back into its microphone) with
echo cancellation on, against the agent simulator: the agent's echo and the earcons do not open
the gate, the visitor talking over the agent does, and the simulator's `clear` stops the speaker."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from conftest import DATA, KioskThread, kiosk_settings, read_wav, wait_for, watch_gate_openings

from edge_agent.devtools.echoroom import EchoPath, Room, RoomMicrophone, RoomSpeaker
from edge_agent.devtools.simsound import CHUNK_BYTES, VOICE_RMS
from edge_agent.devtools.simulator import AgentSimulator

SR = 16000
SPEECH = read_wav(DATA / "kiosk_dev_quiet.wav")


def _voiced_chunks(uplink: bytes) -> int:
    x = np.frombuffer(uplink[: len(uplink) // CHUNK_BYTES * CHUNK_BYTES], dtype="<i2").astype(np.float64).reshape(-1, CHUNK_BYTES // 2)
    return int((np.sqrt(np.square(x).mean(axis=1)) > VOICE_RMS).sum())


def test_visitor_barges_in_over_the_agent_and_echo_alone_never_opens_the_gate(tmp_path: Path, sim: AgentSimulator) -> None:
    room = Room(EchoPath(delay_ms=70, rt60_s=0.3, drift_ppm=90, seed=11))
    speaker = RoomSpeaker(room)
    mic = RoomMicrophone(room, speaker, frame_ms=30, period_ms=60)
    settings = kiosk_settings(tmp_path, sim.url, audio={"echo_cancel": True, "earcons": True})
    assert settings.audio.duplex == "full"

    def talk(start_s: float, end_s: float) -> None:
        k.loop.call_soon_threadsafe(room.talk, SPEECH[int(start_s * SR) * 2 : int(end_s * SR) * 2])

    kiosk = KioskThread(settings, source=mic, sink=speaker)
    gate_opened = watch_gate_openings(kiosk, room)  # the room's mic time of each gate opening
    with kiosk as k:
        k.press()
        k.wait_state("listening")
        time.sleep(1.0)  # the ready earcon, and the uplink's wait after it (the canceller is new)
        assert gate_opened == []  # the press and ready earcons (fresh canceller) did not open it
        talk(2.1, 8.9)  # 6.8 s: the first utterance
        wait_for(lambda: k.state == "speaking", 20, "the agent's first reply")
        session = sim.sessions[0]
        reply_from = len(session.uplink)
        # the agent's reply (5.3 s) plays into the room alone; the canceller converges on it
        wait_for(lambda: k.state == "listening", 20, "the first reply to end")
        # its echo did not interrupt it, and what leaked up stays within the bench's goal (2 % of
        # the time, measured there: residual echo at a loud onset can open the gate for a moment)
        assert "clear" not in session.sent and session.barge_ins == 0
        reply = bytes(session.uplink[reply_from:])
        assert _voiced_chunks(reply) <= 0.02 * len(reply) / CHUNK_BYTES + 3
        assert k.kiosk.echo.converged
        talk(18.1, 23.1)  # the second utterance, 5 s
        wait_for(lambda: k.state == "speaking", 20, "the agent's second reply")
        time.sleep(1.0)
        talk(11.3, 14.0)  # the visitor talks over the agent
        wait_for(lambda: "clear" in session.sent, 20, "the simulator to hear the visitor and send clear")
        wait_for(lambda: k.kiosk.sink.buffer.cleared_at is not None and k.kiosk.sink.buffer.queued_bytes == 0, 10, "clear to empty the speaker")
        assert session.barge_ins == 1
        arrived, emptied = k.kiosk.stats.clear_arrived_at, k.kiosk.sink.buffer.cleared_at
        assert arrived is not None and emptied is not None and emptied >= arrived  # the kiosk's clear emptied it
        # the visitor has finished; the press ends the conversation: the `ended` earcon plays with
        # a converged canceller and must not open the gate either
        wait_for(lambda: not k.kiosk.gate.is_open, 10, "the visitor's gate to close")
        opened_before = len(gate_opened)
        k.press()
        wait_for(lambda: k.state == "idle", 10, "the conversation to end")
        time.sleep(1.5)  # the earcon and its echo in the room
        assert len(gate_opened) == opened_before, gate_opened
