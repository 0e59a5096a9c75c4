"""The agent simulator's sound (simulator.py): the 20 ms chunks it reads and sends, the level it
takes for a visitor's voice, and the tone it greets and answers with.
"""

from __future__ import annotations

import math
from array import array

from edge_agent import SAMPLE_RATE_HZ

CHUNK_MS = 20
CHUNK_BYTES = SAMPLE_RATE_HZ * CHUNK_MS // 1000 * 2
VOICE_RMS = 120.0
"""Uplink chunks above this RMS count as the visitor's voice (the kiosk sends zeros when gated)."""


def rms(pcm: bytes) -> float:
    a = array("h", pcm)
    return math.sqrt(sum(s * s for s in a) / len(a)) if a else 0.0


def tone(freq_hz: float, ms: int, amplitude: float = 0.25) -> bytes:
    n = SAMPLE_RATE_HZ * ms // 1000
    return array("h", (int(amplitude * 32767 * math.sin(2 * math.pi * freq_hz * i / SAMPLE_RATE_HZ)) for i in range(n))).tobytes()
