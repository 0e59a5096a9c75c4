"""The default speech gate run over the seeded test rooms (devtools/rooms.py), shared by the tests
that hold its figures there: its settings, the speech bank (read once a session), what it sends
of a recording, and its score in a room. Not a test module itself."""

from __future__ import annotations

from functools import cache

import numpy as np
from conftest import DATA

from edge_agent.audio.frames import FrameClassifier
from edge_agent.audio.gate import VadGate, gate_file_intervals
from edge_agent.audio.gatescore import GateScore, score
from edge_agent.core.config_audio import VadSettings
from edge_agent.devtools import rooms
from edge_agent.devtools.rooms import Room, SpeechBank

GATE = VadSettings(engine="cues", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90)
"""The default gate: the cues engine, 500 ms of pre-roll, 600 ms of hang-over; run on 30 ms blocks."""
RATE = 16000


@cache
def bank() -> SpeechBank:
    """The dev recording's and the rendered talkers' utterances (tests/data)."""
    return SpeechBank(DATA)


def sent(pcm: np.ndarray) -> list[tuple[float, float]]:
    """What the default gate sends of float samples (rounded, clipped to int16), in seconds."""
    data = np.clip(np.round(pcm), -32768, 32767).astype("<i2").tobytes()
    return gate_file_intervals(VadGate(GATE, 30), data)


def gated(room: Room, classifier: FrameClassifier | None = None) -> GateScore:
    """The default gate's score in `room`; with `classifier` (to look into after), the gate's own
    otherwise."""
    pcm, labels = rooms.make_room(bank(), room)
    return score(gate_file_intervals(VadGate(GATE, 30, classifier), pcm.tobytes()), labels)
