"""Spectral steadiness: how much a 30 ms block's fine structure repeats the block before's.

Music holds its notes: the partials of a chord or a melody note stay in the same FFT bins from
one block to the next, so the log spectrum's fine structure (the log magnitude minus its local
average over ENVELOPE_BINS bins, which removes the envelope and the level) correlates strongly
with the previous block's. A voice's pitch moves a little all the time, and its harmonics above
a few hundred Hz move by whole bins between blocks 30 ms apart; noise has no fine structure that
lasts. Measured on the seeded rooms (devtools/rooms.py), the median correlation between
consecutive blocks is ~0.9 for the music alone, ~0.04 for the dev recordings' speech, ~0.0 for
white, pink and fan noise (README, gate notes: "Tonal rooms").

Pure numpy on rows of spectra, so a batch of blocks read ahead (bandshape.py) gets the same
figures to the bit as blocks one at a time: every step is elementwise or a reduction along a row.
"""

from __future__ import annotations

import numpy as np

ENVELOPE_BINS = 7
"""Bins (33 Hz each at 30 ms) of the moving average taken as the spectrum's envelope: about one
harmonic spacing of a voice, so what is left is the harmonics themselves."""
MAG_FLOOR = 1e-3
"""Added to the magnitudes before the logarithm, so digital silence has no fine structure."""
FLAT_NORM = 1e-6
"""A fine structure smaller than this (a flat spectrum: digital silence, whose running sums leave
only rounding) is not scaled up to unit length: its steadiness stays ~0, not the rounding's."""


def fine_structure(spectra: np.ndarray) -> np.ndarray:
    """Rows of complex spectra in, rows of unit-length fine structure out (mean 0; ~0 for silence)."""
    log_mag = np.log(np.abs(np.ascontiguousarray(spectra)) + MAG_FLOOR)
    k, half = ENVELOPE_BINS, ENVELOPE_BINS // 2
    sums = np.cumsum(log_mag, axis=-1)
    fine: np.ndarray = log_mag[:, half + 1 : log_mag.shape[1] - half] - (sums[:, k:] - sums[:, :-k]) / k
    fine -= np.add.reduce(fine, axis=-1, keepdims=True) / fine.shape[1]
    fine /= np.maximum(np.sqrt(np.add.reduce(fine * fine, axis=-1, keepdims=True)), FLAT_NORM)
    return fine


def steadiness(fine: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Per row, the correlation (-1..1) of `fine`'s row with `before`'s (same shapes)."""
    correlation: np.ndarray = np.add.reduce(fine * before, axis=-1)
    return correlation
