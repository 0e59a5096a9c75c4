"""The gate at the start of a conversation: what it carries from one visitor to the next (the
room, not the previous visitor's voice)."""

from __future__ import annotations

import numpy as np
from conftest import DATA, read_wav

from edge_agent.audio.gate import VadGate
from edge_agent.core.config import VadSettings
from edge_agent.devtools.visitor import room_tone

SETTINGS = VadSettings(engine="cues", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90)
FB = 960
SPEECH = read_wav(DATA / "kiosk_dev_quiet.wav")[2 * int(2.2 * 16000) : 2 * int(3.2 * 16000)]
"""One second of continuous speech, starting on a word (the benchmark's press -> speech clip)."""


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FB] for i in range(0, len(pcm) - FB + 1, FB)]


def louder(pcm: bytes, gain: float) -> bytes:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) * gain
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def frames_to_open(gate: VadGate, speech: bytes) -> int | None:
    """Frames of `speech` (in room tone) pushed until the gate opens; None: it never did."""
    for i, f in enumerate(frames(speech + room_tone(1.0, seed=3))):
        gate.push(f)
        if gate.is_open:
            return i + 1
    return None


def test_a_new_conversation_forgets_the_previous_visitors_voice_but_not_the_room() -> None:
    """A loud visitor, then (a press later) a softer one: the gate used to hold the second one's
    first syllables under the first one's level (12 dB under it counts as a background talker),
    which made press -> speech ~300 ms longer in one press out of five with earcons off."""
    fresh = VadGate(SETTINGS, 30)
    for f in frames(room_tone(1.0)):
        fresh.push(f)
    baseline = frames_to_open(fresh, SPEECH)
    assert baseline is not None

    gate = VadGate(SETTINGS, 30)
    for f in frames(room_tone(1.0)) + frames(louder(SPEECH, 6.0)) + frames(room_tone(1.5, seed=5)):
        gate.push(f)
    assert not gate.is_open
    noise_shape = list(gate.classifier._noise_shape)  # type: ignore[attr-defined]
    gate.new_visitor()
    assert frames_to_open(gate, SPEECH) == baseline
    assert noise_shape and gate.classifier._noise_shape != []  # type: ignore[attr-defined]


def test_without_a_new_conversation_the_previous_voice_holds_the_next_visitor_back() -> None:
    """The same two visitors in one conversation: the louder voice is the visitor, and the softer
    one counts as a talker in the background (the behaviour `new_visitor` scopes to a conversation)."""
    gate = VadGate(SETTINGS, 30)
    for f in frames(room_tone(1.0)) + frames(louder(SPEECH, 6.0)) + frames(room_tone(1.5, seed=5)):
        gate.push(f)
    fresh = VadGate(SETTINGS, 30)
    for f in frames(room_tone(1.0)):
        fresh.push(f)
    baseline = frames_to_open(fresh, SPEECH)
    later = frames_to_open(gate, SPEECH)
    assert baseline is not None and (later is None or later > baseline)
