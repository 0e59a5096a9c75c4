"""What a frame classifier says about a frame, and the fixed 30 ms grid the classifiers analyse on.

Shared by gate.py (the gate and its classifiers) and cues.py (the speech-cue classifier), so
neither imports the other's internals.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

from edge_agent import SAMPLE_RATE_HZ

ANALYSIS_MS = 30
ANALYSIS_SAMPLES = SAMPLE_RATE_HZ * ANALYSIS_MS // 1000
"""Our classifiers always analyse 30 ms blocks, whatever the capture frame size, so their
thresholds mean the same at 10, 20 and 30 ms frames."""

SPEECH, WEAK, NOISE = 2, 1, 0
"""Frame levels: SPEECH may open the gate, WEAK only keeps an open gate open, NOISE neither."""


class FrameClassifier(Protocol):
    def classify(self, frame: bytes) -> int:
        """SPEECH, WEAK or NOISE for one frame."""
        ...


class BlockClassifier:
    """Base of the classifiers that analyse 30 ms blocks: frames of 10/20 ms are collected first."""

    def __init__(self) -> None:
        self._block_bytes = 2 * ANALYSIS_SAMPLES
        self._pending = bytearray()
        self._level = NOISE

    def classify(self, frame: bytes) -> int:
        """Level of the newest 30 ms analysis block (frames of 10/20 ms share the 30 ms grid)."""
        if len(frame) == self._block_bytes and not self._pending:
            self._level = self._analyse(frame)
            return self._level
        self._pending += frame
        while len(self._pending) >= self._block_bytes:
            self._level = self._analyse(bytes(self._pending[: self._block_bytes]))
            del self._pending[: self._block_bytes]
        return self._level

    def _analyse(self, block: bytes) -> int:
        raise NotImplementedError


class NoiseFloor:
    """Minimum statistics over `window_s`: the lowest level of the last few 0.25 s blocks, O(1) a frame."""

    def __init__(self, window_s: float) -> None:
        self._block_frames = max(1, int(0.25 * 1000 / ANALYSIS_MS))
        self._blocks: deque[float] = deque(maxlen=max(2, int(window_s * 1000 / ANALYSIS_MS / self._block_frames)))
        self._block_min = math.inf
        self._block_count = 0

    def update(self, level_db: float) -> float:
        """Takes one frame's level; returns the floor including it."""
        if level_db < self._block_min:
            self._block_min = level_db
        self._block_count += 1
        if self._block_count >= self._block_frames:
            self._blocks.append(self._block_min)
            self._block_min = math.inf
            self._block_count = 0
        floor = min(self._blocks) if self._blocks else self._block_min
        return min(floor, self._block_min)
