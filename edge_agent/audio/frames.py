"""What a frame classifier says about a frame, and the fixed 30 ms grid the classifiers analyse on.

Shared by gate.py (the gate and its classifiers) and cues.py (the speech-cue classifier), so
neither imports the other's internals.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import numpy as np

from edge_agent import SAMPLE_RATE_HZ

try:  # numpy >= 2: the transform's own ufunc, without np.fft.rfft's per-call argument work
    from numpy.fft._pocketfft_umath import rfft_n_even as _rfft_even
except ImportError:  # pragma: no cover - older numpy (Debian's): np.fft.rfft, same figures
    _rfft_even = None

ANALYSIS_MS = 30
ANALYSIS_SAMPLES = SAMPLE_RATE_HZ * ANALYSIS_MS // 1000
"""Our classifiers always analyse 30 ms blocks, whatever the capture frame size, so their
thresholds mean the same at 10, 20 and 30 ms frames."""

SPEECH, WEAK, NOISE = 2, 1, 0
"""Frame levels: SPEECH may open the gate, WEAK only keeps an open gate open, NOISE neither."""


class BlockFFT:
    """Real FFT of one analysis block into a reused buffer: half the cost of np.fft.rfft on 480
    samples, where numpy's per-call checks weigh as much as the transform. The result is
    overwritten by the next call."""

    def __init__(self, n: int = ANALYSIS_SAMPLES) -> None:
        self._out = np.empty(n // 2 + 1, dtype=np.complex128)
        self._axes = [(0,), (), (0,)]
        self._fast = _rfft_even is not None and n % 2 == 0
        if self._fast:  # a private ufunc: checked once against np.fft.rfft, or not used
            probe = np.cos(np.arange(n) * 0.3) + np.arange(n) / n
            try:
                self._fast = bool(np.allclose(self(probe), np.fft.rfft(probe)))
            except Exception:
                self._fast = False

    @property
    def out(self) -> np.ndarray:
        """The buffer every call's result is in (views of it stay valid, their figures the latest call's)."""
        return self._out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """`x`: n float64 samples, contiguous."""
        if self._fast:
            spec: np.ndarray = _rfft_even(x, 1, axes=self._axes, out=self._out)
            return spec
        self._out[:] = np.fft.rfft(x)
        return self._out


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
        self._blocks_min = math.inf
        """The lowest of `_blocks`, kept as they change (once a block, not every frame)."""
        self._block_min = math.inf
        self._block_count = 0

    def update(self, level_db: float) -> float:
        """Takes one frame's level; returns the floor including it."""
        if level_db < self._block_min:
            self._block_min = level_db
        self._block_count += 1
        if self._block_count >= self._block_frames:
            self._blocks.append(self._block_min)
            self._blocks_min = min(self._blocks)
            self._block_min = math.inf
            self._block_count = 0
        return min(self._blocks_min, self._block_min)
