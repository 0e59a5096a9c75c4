"""Earcons: short cues generated in code (no asset files), played through the agent's speaker.

press: the press was heard; ready: the agent is listening; ended: the conversation is over;
reconnecting: the network dropped and we are getting the conversation back; error: it failed.
"""

from __future__ import annotations

import numpy as np

from edge_agent import SAMPLE_RATE_HZ

# name -> sequence of (frequency Hz, duration ms); 0 Hz is a pause
_SHAPES: dict[str, tuple[tuple[float, int], ...]] = {
    "press": ((880.0, 60),),
    "ready": ((660.0, 70), (0.0, 20), (990.0, 90)),
    "ended": ((990.0, 70), (0.0, 20), (660.0, 110)),
    "reconnecting": ((520.0, 60), (0.0, 60), (520.0, 60)),
    "error": ((220.0, 150), (0.0, 60), (220.0, 150)),
}
NAMES = tuple(_SHAPES)


def render(name: str, volume: float) -> bytes:
    """16 kHz mono int16 PCM for earcon `name` at `volume` (0..1), with 5 ms fades (no clicks)."""
    parts = []
    fade = SAMPLE_RATE_HZ * 5 // 1000
    for freq, ms in _SHAPES[name]:
        n = SAMPLE_RATE_HZ * ms // 1000
        if freq <= 0:
            parts.append(np.zeros(n, np.float32))
            continue
        wave = np.sin(2 * np.pi * freq * np.arange(n) / SAMPLE_RATE_HZ).astype(np.float32)
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
        parts.append(wave)
    pcm = np.concatenate(parts) * (volume * 32767.0)
    return bytes(np.clip(pcm, -32768, 32767).astype("<i2").tobytes())


class Earcons:
    """Pre-rendered earcons; `get` returns b"" when earcons are off or the name is unknown."""

    def __init__(self, enabled: bool, volume: float) -> None:
        self._pcm = {name: render(name, volume) for name in NAMES} if enabled and volume > 0 else {}

    def get(self, name: str) -> bytes:
        return self._pcm.get(name, b"")
