"""CueClassifier (`vad.engine = "cues"`, experimental): speech cues beyond energy for the gate.

Built for the rooms in devtools/rooms.py (fans, traffic, knocks, music, background talkers), where
the energy-over-floor classifier leaks. It is not the default: on the room matrix it keeps the
idle share of stationary and fluctuating noise and knocks low but loses onsets at SNR 5 dB, and
it does not yet hold music, a TV or babble back (README, gate table).
"""

from __future__ import annotations

import math

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.frames import ANALYSIS_SAMPLES, NOISE, SPEECH, WEAK, BlockClassifier, NoiseFloor


class CueClassifier(BlockClassifier):
    """Tells the visitor's speech from room sound with four cheap cues, all from one real FFT per 30 ms.

    - shape: the speech band (300-4000 Hz) in 8 sub-bands, level removed, against a running model
      of the noise's own shape. Stationary and fluctuating noise (a fan swinging ±6 dB, traffic
      swells) keep their shape when their level moves; speech does not. `shape_db` over the
      noise's usual distance is needed.
    - voicing: the peak of the normalized autocorrelation of the band-limited magnitude spectrum
      at lags of an 80-500 Hz pitch. Knocks, doors, footsteps and trays are not periodic.
    - level over the noise floor (minimum statistics), for the quiet parts of a sentence.
    - the visitor's own level: the running level of confirmed speech in this conversation; sound
      more than `visitor_drop_db` under it cannot open the gate (background talkers, a TV, music
      farther away than the visitor at arm's length).

    A frame is SPEECH when its shape stands out, it is voiced and it is near the visitor's level;
    WEAK when it only stands out from the noise (holds an open gate through consonants and dips).
    """

    BAND_EDGES_HZ = (300.0, 450.0, 650.0, 900.0, 1250.0, 1700.0, 2300.0, 3000.0, 4000.0)
    PITCH_HZ = (80.0, 500.0)

    def __init__(
        self,
        aggressiveness: int = 2,
        shape_db: float = 0.6,
        keep_shape_db: float = 0.5,
        keep_snr_db: float = 6.0,
        voicing: float = 0.26,
        visitor_drop_db: float = 10.0,
        hold_drop_db: float = 4.0,
        floor_window_s: float = 3.0,
    ) -> None:
        super().__init__()
        n = ANALYSIS_SAMPLES
        freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE_HZ)
        edges = np.searchsorted(freqs, self.BAND_EDGES_HZ)
        self._lo, self._hi = int(edges[0]), int(edges[-1])
        self._edges = (edges[:-1] - edges[0]).astype(np.intp)
        self._window = np.hanning(n).astype(np.float32)
        self._mag = np.zeros(len(freqs), dtype=np.float32)
        self._smooth = np.zeros(len(self._edges), dtype=np.float32)
        # autocorrelation of the window: divides out the taper so lags compare fairly
        wac = np.correlate(self._window, self._window, "full")[n - 1 :]
        self._lag_lo, self._lag_hi = int(SAMPLE_RATE_HZ / self.PITCH_HZ[1]), int(SAMPLE_RATE_HZ / self.PITCH_HZ[0])
        self._lag_gain = (wac[0] / wac[self._lag_lo : self._lag_hi]).astype(np.float32)
        self.shape_db = shape_db + 0.25 * (aggressiveness - 2)
        self.keep_shape_db = keep_shape_db
        self.keep_snr_db = keep_snr_db
        self.voicing = voicing + 0.02 * (aggressiveness - 2)
        self.visitor_drop_db = visitor_drop_db
        self.hold_drop_db = hold_drop_db
        self.gate_open = False
        """Set by VadGate: opening needs voiced speech near the visitor's level, holding only its shape."""
        self.far_end = False
        """Set while the kiosk's own speaker plays: more evidence is needed to open."""
        self._noise_shape: np.ndarray | None = None
        self.noise_distance_db = 1.0
        """Usual distance of the noise's own frames from its shape model (estimation jitter)."""
        self._floor = NoiseFloor(floor_window_s)
        self.floor_db = math.inf
        self.band_db = 0.0
        self.visitor_db = -math.inf
        """Running level of the visitor's confirmed speech; -inf until the visitor has spoken."""
        self._run = 0

    def _voiced(self, power: np.ndarray) -> float:
        mag = self._mag
        mag[self._lo : self._hi] = np.sqrt(power)
        r = np.fft.irfft(mag)
        return float((r[self._lag_lo : self._lag_hi] * self._lag_gain).max() / (r[0] + 1e-9))

    def _analyse(self, frame: bytes) -> int:
        x = np.frombuffer(frame, dtype=np.int16).astype(np.float32)
        x *= self._window
        spec = np.fft.rfft(x)[self._lo : self._hi]
        # plain ufuncs, not np.vdot: a BLAS call here wakes OpenBLAS worker threads that then
        # spin between frames, which cost more CPU than the whole gate
        power = np.square(spec.real) + np.square(spec.imag)
        # sub-band powers averaged over two frames: halves the estimation jitter of short frames
        smooth = self._smooth
        smooth += np.add.reduceat(power, self._edges)
        smooth *= 0.5
        bands = np.log10(smooth + 1.0)
        bands *= 10.0
        band_db = 10.0 * math.log10(float(power.sum()) + 1.0)
        self.band_db = band_db
        self.floor_db = floor = self._floor.update(band_db)
        bands -= bands.mean()
        if self._noise_shape is None:
            self._noise_shape = bands
        shape_off = bands - self._noise_shape
        distance = float(np.abs(shape_off).mean())
        excess = distance - self.noise_distance_db
        if excess < self.shape_db:  # noise-shaped: learn the noise (its shape, how much it jitters)
            self._noise_shape += 0.05 * shape_off
            self.noise_distance_db += 0.02 * (distance - self.noise_distance_db)
        else:  # anything that lasts becomes the noise, slowly (a new machine, a changed room)
            self._noise_shape += 0.002 * shape_off
        level = NOISE
        if excess >= self.keep_shape_db or band_db - floor >= self.keep_snr_db:
            level = WEAK
            if self.gate_open:  # holding: speech-shaped is enough (consonants are not voiced)
                if excess >= self.shape_db and band_db >= self.visitor_db - self.visitor_drop_db - self.hold_drop_db:
                    level = SPEECH
            elif excess >= self.shape_db + (1.5 if self.far_end else 0.0) and band_db >= self.visitor_db - self.visitor_drop_db and self._voiced(power) >= self.voicing:
                level = SPEECH
        self._run = self._run + 1 if level == SPEECH else 0
        if self._run >= 6:  # confirmed speech: follow the visitor's level
            if self.visitor_db == -math.inf:
                self.visitor_db = band_db
            # an upper envelope (rises fast, sinks slowly): the visitor's loud syllables, not the
            # background talkers that fill their gaps
            self.visitor_db += (0.1 if band_db > self.visitor_db else 0.005) * (band_db - self.visitor_db)
        else:
            self.visitor_db -= 0.005
        return level
