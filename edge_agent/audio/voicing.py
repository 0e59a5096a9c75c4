"""BlockPitch: how voiced each 30 ms block is and at which pitch lag, worked out once a block and only when a cue asks.

CueClassifier (cues.py) asks it for voicing (a syllable's vowel, a bang's tail that is speech) and
for the lag (a ring holds its pitch still, decay.py); the learned speech-likeness (speechlike.py)
gets its features from the same figures. One inverse FFT of the band-limited magnitude spectrum
(BandShape's) a block, at most.
"""

from __future__ import annotations

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.bandshape import BandShape
from edge_agent.audio.frames import ANALYSIS_SAMPLES


class BlockPitch:
    """Voicing (peak of the band-limited magnitude spectrum's inverse transform at pitch lags,
    over lag 0) and its lag (from the shortest pitch lag) of `shape`'s current block; `new_block`
    before each block, then call it as often as needed."""

    def __init__(self, shape: BandShape, pitch_hz: tuple[float, float]) -> None:
        n = ANALYSIS_SAMPLES
        self._shape = shape
        self._mag = np.zeros(n // 2 + 1)
        # autocorrelation of the window: divides out the taper so lags compare fairly
        window = shape.window
        wac = np.correlate(window, window, "full")[n - 1 :]
        self.lag_lo, self.lag_hi = int(SAMPLE_RATE_HZ / pitch_hz[1]), int(SAMPLE_RATE_HZ / pitch_hz[0])
        self._lag_gain = (wac[0] / wac[self.lag_lo : self.lag_hi]).astype(np.float32)
        self._pitch: tuple[float, int] | None = None

    def new_block(self) -> None:
        """A new block was analysed: its pitch is worked out at the first call."""
        self._pitch = None

    def __call__(self) -> tuple[float, int]:
        if self._pitch is None:
            mag = self._mag
            mag[self._shape.lo : self._shape.hi] = np.abs(self._shape.spectrum())
            self._pitch = pitch_of(np.fft.irfft(mag), self._lag_gain, self.lag_lo, self.lag_hi)
        return self._pitch


def pitch_of(r: np.ndarray, lag_gain: np.ndarray, lag_lo: int, lag_hi: int) -> tuple[float, int]:
    """Voicing peak (autocorrelation at pitch lags over lag 0) and its lag index from `lag_lo`."""
    scaled = r[lag_lo:lag_hi] * lag_gain
    i = int(scaled.argmax())
    return float(scaled[i] / (r[0] + 1e-9)), i
