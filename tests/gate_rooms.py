"""The default speech gate run over the seeded test rooms (devtools/rooms.py), shared by the tests
that hold its figures there: its settings, the speech bank (read once a session), what it sends
of a recording, and its score in a room. Not a test module itself."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
from conftest import DATA

from edge_agent.audio.frames import FrameClassifier
from edge_agent.audio.gate import VadGate
from edge_agent.audio.gatefile import gate_file_intervals
from edge_agent.audio.gatescore import GateScore, Labels, score
from edge_agent.core.config_audio import VadSettings
from edge_agent.devtools import noises, rooms
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


def gated_figures(room: Room) -> tuple[float, float, float]:
    """`gated`'s speech recall, onsets kept and idle share in `room`, in that order."""
    sc = gated(room)
    return sc.speech_recall, sc.onset_ok, sc.idle_share


def struck_after_words(seed: int, peak_db: float, strike: Callable[[np.random.Generator], np.ndarray], count: int, rest_s: float = 1.5) -> tuple[np.ndarray, Labels]:
    """Four dev utterances over a quiet pink bed (RMS 60 on int16's scale); 0.2-0.5 s after each
    one's last word, `count` strikes (`strike(rng)`, peak 1.0: a footstep, a tray) 0.45-0.6 s
    apart, peaking `peak_db` from the utterance's peak; `rest_s` after the last one's start, the
    next utterance. The labels are the utterances' speech."""
    rng = np.random.default_rng(seed)
    parts, speech, strikes, t = [np.zeros(RATE)], [], [], 1.0
    for i in rng.permutation(len(bank().dev))[:4]:
        u = bank().dev[i]
        parts.append(u.pcm)
        speech += [(t + a, t + b) for a, b in u.speech]
        at = t + u.speech[-1][1] + rng.uniform(0.2, 0.5)
        t += len(u.pcm) / RATE
        for _ in range(count):
            strikes.append((int(at * RATE), np.abs(u.pcm).max() * 10 ** (peak_db / 20)))
            at += rng.uniform(0.45, 0.6)
        gap = int((at + rest_s - t) * RATE)
        parts.append(np.zeros(gap))
        t += gap / RATE
    pcm = np.concatenate(parts)
    pcm += noises.colored(rng, len(pcm), 1.0) * 60.0
    for at, peak in strikes:
        noises.place(pcm, strike(rng) * peak, at)
    return pcm, Labels(len(pcm) / RATE, speech)
