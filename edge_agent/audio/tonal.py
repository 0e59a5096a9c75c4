"""Spectral steadiness: how much a 30 ms block's fine structure repeats the block before's (and,
as recurrence, the one a second before's).

Music holds its notes: the partials of a chord or a melody note stay in the same FFT bins from
one block to the next, so the log spectrum's fine structure (the log power minus its local
average over ENVELOPE_BINS bins, which removes the envelope and the level) correlates strongly
with the previous block's. A voice's pitch moves a little all the time, and its harmonics above
a few hundred Hz move by whole bins between blocks 30 ms apart; noise has no fine structure that
lasts. Measured on the seeded rooms (devtools/rooms.py), the median correlation between
consecutive blocks is ~0.9 for the music alone, ~0.04 for the dev recordings' speech, ~0.0 for
white, pink and fan noise (docs/gate-notes.md: "Tonal rooms"). A steady tone (a buzz, a whine)
is as steady, but unlike music it also recurs a second later (RECUR_BLOCKS; docs/gate-notes.md, "Steady tones
are not music").

Pure numpy on rows of spectra, so a batch of blocks read ahead (bandshape.py) gets the same
figures to the bit as blocks one at a time: every step is elementwise, a running sum along a row
or a reduction along it.
"""

from __future__ import annotations

import math

import numpy as np

ENVELOPE_BINS = 7
"""Bins (33 Hz each at 30 ms) of the moving average taken as the spectrum's envelope: about one
harmonic spacing of a voice, so what is left is the harmonics themselves."""
RECUR_BLOCKS = 33
"""How far back (about 1 s) a block's fine structure is also compared with: a steady tone (a
ballast's buzz, a whine, a drone) recurs there as it does in the block before; music has moved on
to other notes and a voice to other sounds."""
POWER_FLOOR = 1e-6
"""Added to each bin's power before the logarithm, so digital silence has no fine structure."""
FLAT_NORM = 1e-6
"""A fine structure smaller than this (a flat spectrum: digital silence, whose sums leave only
rounding) is not scaled up to unit length: its steadiness stays ~0, not the rounding's."""


def fine_structure(squares: np.ndarray) -> np.ndarray:
    """A spectrum's squared (re, im) pairs in (as `pairs * pairs`, bandshape.py has them): one
    block's (1-D) or rows of them; its unit-length fine structure out, the same shape (mean 0; ~0
    for silence). The log of the power, not of the magnitude: twice the same, and the correlation
    does not see the factor. Live blocks go through `LiveFineStructure`, the same steps one row
    at a time (its sums and norm Python floats: math.sqrt and np.sqrt are both correctly rounded)."""
    log_power = np.add(squares[..., ::2], squares[..., 1::2])
    log_power += POWER_FLOOR
    np.log(log_power, out=log_power)
    n, k, half = log_power.shape[-1], ENVELOPE_BINS, ENVELOPE_BINS // 2
    # the moving sum over k bins, bins j + 1 .. j + k for output j (centred on bin j + half + 1;
    # the band's first bin is not used), as the difference of a running sum: one call each
    running = np.add.accumulate(log_power, axis=-1)
    envelope = np.subtract(running[..., k:], running[..., : n - k])
    envelope /= k
    fine: np.ndarray = np.subtract(log_power[..., half + 1 : n - half], envelope, out=envelope)
    fine -= np.add.reduce(fine, axis=-1, keepdims=True) / fine.shape[-1]
    fine /= np.maximum(np.sqrt(np.add.reduce(fine * fine, axis=-1, keepdims=True)), FLAT_NORM)
    return fine


class LiveFineStructure:
    """`fine_structure` of one block at a time, for live audio: the same steps on the same
    contiguous rows, so the same figures to the bit, but into buffers and views made once (a
    live block's cost is numpy's per-call overhead, not the arithmetic: each allocation and
    slice it saves counts)."""

    def __init__(self, squares: np.ndarray) -> None:
        """`squares`: the buffer the caller fills with each block's squared (re, im) pairs."""
        n, k, half = len(squares) // 2, ENVELOPE_BINS, ENVELOPE_BINS // 2
        self._re2, self._im2 = squares[::2], squares[1::2]
        self._log_power = np.empty(n)
        self._running = np.empty(n)
        self._ahead, self._behind = self._running[k:], self._running[: n - k]
        self._centre = self._log_power[half + 1 : n - half]
        self._squared = np.empty(n - k)

    def __call__(self, fine: np.ndarray) -> np.ndarray:
        """The fine structure of what `squares` holds now, into `fine` (a contiguous row of
        len(squares) // 2 - ENVELOPE_BINS). Outputs are passed positionally: numpy parses an
        `out=` keyword on every call."""
        log_power, running = self._log_power, self._running
        np.add(self._re2, self._im2, log_power)
        np.add(log_power, POWER_FLOOR, log_power)
        np.log(log_power, log_power)
        np.add.accumulate(log_power, 0, None, running)
        np.subtract(self._ahead, self._behind, fine)
        np.divide(fine, ENVELOPE_BINS, fine)
        np.subtract(self._centre, fine, fine)
        # Python floats for the scalars: IEEE division and sqrt, as numpy's, without its scalar overhead
        np.subtract(fine, float(np.add.reduce(fine)) / len(fine), fine)
        np.multiply(fine, fine, self._squared)
        np.divide(fine, max(math.sqrt(np.add.reduce(self._squared)), FLAT_NORM), fine)
        return fine


def correlation(fine: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Per row (or of one block's), the correlation (-1..1) of `fine` with `before` (same shapes):
    with the block before, the steadiness; with the block RECUR_BLOCKS before, the recurrence."""
    correlation: np.ndarray = np.add.reduce(fine * before, axis=-1)
    return correlation
