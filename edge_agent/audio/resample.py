"""Streaming sample-rate and channel conversion, for devices that cannot open 16 kHz mono.

A Raspberry Pi USB microphone often refuses 16 kHz (PortAudio `Invalid sample rate`, -9997):
we open its native rate and convert with a windowed-sinc polyphase filter (rational L/M,
anti-aliasing low-pass at the lower Nyquist), never by dropping samples. The state (filter
history and phase) carries across blocks, so block boundaries leave no clicks.
"""

from __future__ import annotations

from math import gcd

import numpy as np


class Resampler:
    """Converts int16 mono blocks from `in_rate_hz` to `out_rate_hz`, block by block."""

    def __init__(self, in_rate_hz: int, out_rate_hz: int, taps_per_phase: int = 32) -> None:
        g = gcd(in_rate_hz, out_rate_hz)
        self.up = out_rate_hz // g
        self.down = in_rate_hz // g
        self.identity = self.up == self.down
        k = taps_per_phase
        n = k * self.up
        cutoff = 0.5 / max(self.up, self.down) * 0.92  # of the upsampled rate, with a guard band
        t = np.arange(n) - (n - 1) / 2.0
        h = 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(n, 8.0)
        h *= self.up / h.sum()
        # phases[p][j] multiplies x[base - j]; tap index = p + j * up
        self._phases = h.reshape(k, self.up).T[:, :].astype(np.float64)
        self._k = k
        self._hist = np.zeros(k - 1, dtype=np.float64)
        self._pos = 0  # position of the next output sample, in upsampled units, relative to block start

    def process(self, block: np.ndarray) -> np.ndarray:
        """int16 (or float) samples in, int16 samples out (length varies by block)."""
        if self.identity:
            same: np.ndarray = block.astype(np.int16, copy=False)
            return same
        x = np.concatenate((self._hist, block.astype(np.float64)))
        offset = self._k - 1  # index in x of the block's first sample
        total_up = len(block) * self.up
        n_out = max(0, -(-(total_up - self._pos) // self.down))
        idx = self._pos + self.down * np.arange(n_out)
        base = idx // self.up + offset
        phase = idx % self.up
        windows = np.lib.stride_tricks.sliding_window_view(x, self._k)[base - (self._k - 1)][:, ::-1]
        y = np.einsum("ij,ij->i", windows, self._phases[phase])
        self._pos = int(self._pos + self.down * n_out - total_up)
        self._hist = x[-(self._k - 1) :]
        out: np.ndarray = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
        return out


def to_mono(interleaved: np.ndarray, channels: int, pick: int = 0) -> np.ndarray:
    """One channel out of interleaved int16 (a 2-mic HAT's left mic, say); no mixing of phases."""
    if channels == 1:
        return interleaved
    return interleaved[pick::channels]


def to_channels(mono: np.ndarray, channels: int) -> np.ndarray:
    """Duplicate mono into `channels` interleaved channels for a stereo-only DAC."""
    if channels == 1:
        return mono
    return np.repeat(mono, channels)
