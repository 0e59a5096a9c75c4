"""BandShape: what the cue classifier sees of a 30 ms block that depends on the audio alone.

Per block: the speech band's level (dB); its level-free shape, the power of 8 sub-bands averaged
over two blocks, in dB, their mean removed; how far that shape moved since the previous block
(flux, dB); the band's spectrum, for the voicing cue (cues.py asks for it rarely); and its
steadiness and recurrence, how much its fine structure repeats the previous block's and the one
a second before's (tonal.py: music holds its notes and moves on, a buzz never moves on).

Live audio comes one block at a time (`__call__`). A recording run through the gate is known in
advance (`read_ahead`): its blocks are then analysed READ_AHEAD_BLOCKS at a time, the window,
FFT, sums of squares, averages and differences as a few numpy calls on the whole batch, about a
third of the cost of doing them block by block. Both ways give the same figures to the bit
(tests/test_bandshape.py compares them), which is why the batch is built the way it is:
- numpy transforms and reduces each row of a batch as it does a single block;
- additions, products and differences are correctly rounded wherever they are done;
- the sums over the 8 sub-bands and the logarithms stay Python's own `sum` and `math.log10`
  (numpy's sum adds in another order, its log10 may round differently);
- the fine structure (tonal.py) is numpy's own `log`, elementwise, a running sum along each row
  (`np.add.accumulate`, in order) and row reductions
  (`np.add.reduce(..., axis=-1)`), on rows of the same length both ways: one row live, 256 in a
  batch, each reduced as that single row would be;
- the two-block average is a recurrence, s[k] = 0.5 * (s[k-1] + p[k]); scaled by 2**k it becomes
  a running sum, v[k] = v[k-1] + 2**(k-1) * p[k] (np.cumsum adds in order), and scaling by powers
  of two rounds nothing while the figures are normal floats. Only half a minute of digital
  silence takes the average below them (it halves every block), where it may differ in its last
  bits from block-by-block halving; but there it is lost in the + 1.0 of the level and in any
  non-zero power that follows (> 1e-30), so the figures handed out are the same all the same.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio import tonal
from edge_agent.audio.frames import ANALYSIS_SAMPLES, BlockFFT

READ_AHEAD_BLOCKS = 256
"""Blocks analysed together when the audio is known in advance: 7.7 s, about 1 MB of spectra."""


class BandShape:
    """Band level, sub-band shape, flux, steadiness and recurrence of consecutive 30 ms blocks (see the module's docstring)."""

    def __init__(self, edges_hz: tuple[float, ...]) -> None:
        """`edges_hz`: where the sub-bands start, then where the last one ends."""
        n = ANALYSIS_SAMPLES
        freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE_HZ)
        edges = np.searchsorted(freqs, edges_hz)
        self.lo, self.hi = int(edges[0]), int(edges[-1])
        """FFT bins of the speech band: the spectrum is bins lo..hi-1."""
        self.window = np.hanning(n)
        self._fft = BlockFFT(n)
        self._pair_edges = 2 * (edges[:-1] - edges[0]).astype(np.intp)
        """Sub-band starts in the (re, im) pairs of the band's spectrum."""
        self._count = len(edges) - 1
        self._smooth = [0.0] * self._count
        self._prev = [0.0] * self._count
        self._band = self._fft.out[self.lo : self.hi]
        """The live block's spectrum over the speech band: a view of the FFT's own buffer."""
        self._spectrum = np.zeros(self.hi - self.lo, dtype=np.complex128)
        self._samples = np.empty(n)
        self._block = np.empty(n, dtype=np.int16)
        self._block_bytes = self._block.data.cast("B")
        self._squares = np.empty(2 * (self.hi - self.lo))
        """The live block's windowed samples and its spectrum's squared (re, im) pairs: buffers reused block after block."""
        self._pairs = self._band.view(np.float64)
        self._fine = tonal.LiveFineStructure(self._squares)
        self._products = np.empty((2, self.hi - self.lo - tonal.ENVELOPE_BINS))
        self._ahead: bytes | None = None
        self._ahead_at = 0
        """Byte offset in the read-ahead audio of the next block expected."""
        self._spectra = np.zeros((0, self.hi - self.lo), dtype=np.complex128)
        self._smooths = np.zeros((0, self._count))
        self._history = np.zeros((2 * tonal.RECUR_BLOCKS, self.hi - self.lo - tonal.ENVELOPE_BINS))
        """The last RECUR_BLOCKS blocks' fine structure (tonal.py), a ring held twice over (row i
        and i + RECUR_BLOCKS the same): row `_history_at` is the oldest, and rows `_history_at` ..
        `_history_at + RECUR_BLOCKS` are all of them in order, the block before's and the oldest
        one next to each other (one call correlates a block with both)."""
        self._history_at = 0
        self._history_views()
        self._chain = self._history[: tonal.RECUR_BLOCKS]
        """The current batch's fine structure, after the RECUR_BLOCKS blocks before it (read only
        once a batch exists; until then a placeholder)."""
        self._rows: list[tuple[float, list[float], float, float, float]] = []
        self._row = 0
        """Rows of the batch handed out so far."""

    def spectrum(self) -> np.ndarray:
        """The latest block's spectrum over the speech band (valid until the next block)."""
        spec: np.ndarray = self._spectra[self._row - 1] if self._row else self._spectrum
        return spec

    def read_ahead(self, pcm: bytes) -> None:
        """`pcm` is what the next calls get, block by block from its start. A block that is not
        the expected one ends the read-ahead (it and the rest are then analysed one by one)."""
        self._leave_batch()
        self._ahead, self._ahead_at = pcm, 0

    def __call__(self, block: bytes) -> tuple[float, list[float], float, float, float]:
        """One 30 ms block: (band level dB, sub-band shape dB, flux dB, steadiness and recurrence
        -1..1: its fine structure's correlation with the block before's and with the one
        RECUR_BLOCKS before's, tonal.py)."""
        ahead = self._ahead
        if ahead is not None:
            at = self._ahead_at
            if len(block) == 2 * ANALYSIS_SAMPLES and ahead[at : at + len(block)] == block:
                if self._row == len(self._rows):
                    self._read_batch(ahead, at)
                self._ahead_at = at + len(block)
                self._row += 1
                return self._rows[self._row - 1]
            self._leave_batch()
            self._ahead = None
        # the same steps as a batch's, into buffers and views made once (numpy's per-call cost,
        # not the arithmetic, is what a live block pays for)
        self._block_bytes[:] = block
        self._fft(np.multiply(self._block, self.window, self._samples))
        self._spectrum = self._band
        # power per sub-band straight from the (re, im) pairs; plain ufuncs, not np.vdot: a BLAS
        # call here wakes OpenBLAS worker threads that then spin between frames
        squares = np.multiply(self._pairs, self._pairs, self._squares)
        band_power: list[float] = np.add.reduceat(squares, self._pair_edges).tolist()
        # the fine structure straight into the history's row of the oldest block: its twin, row
        # oldest + RECUR_BLOCKS, still holds that block for the recurrence
        oldest = self._history_at
        fine = self._fine(self._history_rows[oldest])
        products = np.multiply(self._neighbours[oldest], fine, self._products)  # tonal.correlation's, row by row
        steadiness, recurrence = np.add.reduce(products, -1).tolist()
        self._history[oldest + tonal.RECUR_BLOCKS] = fine
        self._history_at = (oldest + 1) % tonal.RECUR_BLOCKS
        band_db = 10.0 * math.log10(sum(band_power) + 1.0)
        # the shape work is on 8 numbers: plain Python beats numpy's per-call overhead there.
        # Sub-band powers are averaged over two blocks, halving the jitter of short frames.
        log10 = math.log10
        self._smooth = smooth = [0.5 * (a + b) for a, b in zip(self._smooth, band_power, strict=True)]
        bands = [10.0 * log10(v + 1.0) for v in smooth]
        mean = sum(bands) / len(bands)
        bands = [v - mean for v in bands]
        flux = sum(map(abs, map(operator.sub, bands, self._prev))) / len(bands)
        self._prev = bands
        return band_db, bands, flux, steadiness, recurrence

    def _leave_batch(self) -> None:
        """Carries the state of the last block handed out of a batch over to what comes next."""
        if self._row:
            self._smooth = self._smooths[self._row - 1].tolist()
            self._prev = self._rows[self._row - 1][1]
            self._spectrum = self._spectra[self._row - 1].copy()
            recent = self._chain[self._row : self._row + tonal.RECUR_BLOCKS]
            self._history, self._history_at = np.concatenate((recent, recent)), 0
            self._history_views()
        self._rows, self._row = [], 0

    def _history_views(self) -> None:
        """For each `_history_at`, its row and the rows a live block is correlated with: the block before's and the oldest."""
        lag = tonal.RECUR_BLOCKS
        self._history_rows = list(self._history[:lag])
        self._neighbours = [self._history[at + lag - 1 : at + lag + 1] for at in range(lag)]

    def _read_batch(self, pcm: bytes, at: int) -> None:
        self._leave_batch()
        n, count = ANALYSIS_SAMPLES, min(READ_AHEAD_BLOCKS, (len(pcm) - at) // (2 * ANALYSIS_SAMPLES))
        blocks = np.frombuffer(pcm, dtype=np.int16, count=count * n, offset=at).reshape(count, n)
        self._spectra = np.fft.rfft(np.multiply(blocks, self.window), axis=1)[:, self.lo : self.hi]
        pairs = self._spectra.view(np.float64)
        squares = pairs * pairs
        power = np.add.reduceat(squares, self._pair_edges, axis=1)
        fine = tonal.fine_structure(squares)
        lag = tonal.RECUR_BLOCKS
        self._chain = chain = np.concatenate((self._history[self._history_at : self._history_at + lag], fine))
        steadiness: list[float] = tonal.correlation(fine, chain[lag - 1 : lag - 1 + count]).tolist()
        recurrence: list[float] = tonal.correlation(fine, chain[:count]).tolist()
        rows: list[list[float]] = power.tolist()
        log10 = math.log10
        band_db = [10.0 * log10(total + 1.0) for total in map(sum, rows)]
        self._smooths = smooth = self._two_block_average(power)
        bands: np.ndarray = np.fromiter(map(log10, (smooth + 1.0).ravel().tolist()), dtype=np.float64, count=smooth.size).reshape(smooth.shape)
        bands *= 10.0
        means = np.fromiter(map(sum, bands.tolist()), dtype=np.float64, count=count)
        means /= self._count
        bands -= means[:, np.newaxis]
        moved: list[list[float]] = np.abs(np.diff(bands, axis=0, prepend=np.asarray([self._prev]))).tolist()
        flux = [total / self._count for total in map(sum, moved)]
        shapes: list[list[float]] = bands.tolist()
        self._rows = list(zip(band_db, shapes, flux, steadiness, recurrence, strict=True))

    def _two_block_average(self, power: np.ndarray) -> np.ndarray:
        """s[k] = 0.5 * (s[k-1] + power[k]) for every row, s[-1] the carried state (module docstring)."""
        count = len(power)
        scale = np.ldexp(1.0, np.arange(-1, count - 1))  # 2**(k-1)
        terms = np.empty((count + 1, self._count))
        terms[0] = self._smooth
        terms[0] *= 0.5
        np.multiply(power, scale[:, np.newaxis], out=terms[1:])
        smooth = np.cumsum(terms, axis=0)[1:]
        smooth /= 2.0 * scale[:, np.newaxis]
        return smooth
