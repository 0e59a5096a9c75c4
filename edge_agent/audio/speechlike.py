"""SpeechLikeness: a small learned model of how much the last half second sounds like a visitor talking.

CueClassifier's cues (band shape against the room's noise, level, bangs) cannot tell music, a TV,
a crowd or a door's rattle from the visitor: all are louder than the room and shaped unlike its
noise. What tells them apart is how the sound moves: speech is voiced in short runs whose pitch
glides and whose level swings at the syllable rate (2-8 Hz); music holds steady pitches, a crowd
of overlapping talkers swings little, a bang has no pitch and only decays. The features below
follow those, per 30 ms block, with running means over ~0.3 s; a tiny MLP over them
(weights in speechlike.json, trained by devtools/train_speechlike.py on the tuning rooms only)
says how likely the block is the visitor's speech. CueClassifier uses it, in busy rooms only, as
a veto on opening and on holding the gate (`vad.engine = "learned"`, not the default: README's
gate section has its matrix; it gains idle only in music so far).

Cost: the pitch part (one inverse FFT) runs only on blocks the cues already find speech-like, the
model only on SPEECH blocks of a busy room; other blocks only move the running means (~12 µs a
block in all: the whole `edge-agent gate` process ran at ~1 100x real time with it, ~1 650x
without, in the same runs on the bench machine, 2026-12-01).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from edge_agent.errors import AudioError

MODEL_PATH = Path(__file__).with_name("speechlike.json")
FEATURES = (
    "voicing",
    "voicing_mean",
    "steady_pitch",
    "gliding_pitch",
    "level_swing",
    "rise_mean",
    "flux_mean",
    "shape_excess",
    "over_floor",
    "over_room",
    "under_visitor",
    "visitor_known",
    "in_bang",
    "tilt",
    "candidate_mean",
)
"""Inputs of the model, in its weights' order (the training script and the shipped weights agree on it)."""
MEAN_RATE = 0.1
"""Running means over about 0.3 s (10 blocks of 30 ms)."""
SLOW_RATE = 0.03
"""The level's slow mean (about 1 s), that the syllable-rate swing is measured against."""
VOICED = 0.3
STEADY_LOG_LAG = 0.012
"""Pitch holds still (a note) when its lag moves less than ~1.2 % from block to block."""
GLIDE_LOG_LAG = 0.12


class SpeechModel:
    """A tiny MLP (FEATURES -> `hidden` tanh units -> logit); `mean`/`scale` standardise the features."""

    def __init__(self, mean: list[float], scale: list[float], hidden_w: list[list[float]], hidden_b: list[float], out_w: list[float], out_b: float) -> None:
        w1 = np.asarray(hidden_w, dtype=np.float64)
        if w1.ndim != 2 or w1.shape[0] != len(FEATURES) or not (len(mean) == len(scale) == len(FEATURES)) or not (w1.shape[1] == len(hidden_b) == len(out_w)):
            raise AudioError(f"speech model: weights of shape {w1.shape} do not fit {len(FEATURES)} features")
        self.raw = {"mean": list(mean), "scale": list(scale), "hidden_w": w1.tolist(), "hidden_b": list(hidden_b), "out_w": list(out_w), "out_b": out_b}
        # fold the standardisation into the first layer once: two small products per block
        scale_a = np.asarray(scale, dtype=np.float64)
        self._w1 = w1 / scale_a[:, None]
        self._b1 = np.asarray(hidden_b, dtype=np.float64) - (np.asarray(mean) / scale_a) @ w1
        self._w2 = np.asarray(out_w, dtype=np.float64)
        self._b2 = float(out_b)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> SpeechModel:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(data["mean"], data["scale"], data["hidden_w"], data["hidden_b"], data["out_w"], float(data["out_b"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AudioError(f"cannot load the speech model {path}: {exc}") from None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"features": list(FEATURES), **self.raw}) + "\n", encoding="utf-8")

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Logits of many blocks at once (rows of FEATURES)."""
        out: np.ndarray = np.tanh(features @ self._w1 + self._b1) @ self._w2 + self._b2
        return out

    def probability(self, features: list[float]) -> float:
        z = float(np.tanh(np.dot(features, self._w1) + self._b1).dot(self._w2)) + self._b2
        return 1.0 / (1.0 + math.exp(-min(max(z, -30.0), 30.0)))


class SpeechLikeness:
    """Per-block features (FEATURES) and the model's probability that the block is the visitor's speech."""

    def __init__(self, model: SpeechModel | None, lag_lo: int) -> None:
        self.model = model
        self._lag_lo = lag_lo
        self._prev_lag = 0
        self._voicing_mean = 0.0
        self._steady = 0.0
        self._gliding = 0.0
        self._slow_db = 0.0
        self._swing = 0.0
        self._rise = 0.0
        self._flux = 0.0
        self._candidate = 0.0
        self._prev_db = 0.0
        self._started = False
        self.features: list[float] = [0.0] * len(FEATURES)
        self.probability = 0.0

    def update(
        self, pitch: tuple[float, int] | None, band_db: float, flux: float, excess: float, over_floor_db: float, over_room_db: float, under_visitor_db: float | None, in_bang: bool, tilt: float
    ) -> None:
        """One block: `pitch` (voicing peak, lag) where the cues found the block speech-like, else None."""
        rate = MEAN_RATE
        if not self._started:
            self._slow_db = self._prev_db = band_db
            self._started = True
        voicing = 0.0
        steady = gliding = 0.0
        if pitch is not None:
            voicing, lag = pitch
            if voicing >= VOICED and self._prev_lag:
                move = abs(math.log((lag + self._lag_lo) / (self._prev_lag + self._lag_lo)))
                steady = float(move < STEADY_LOG_LAG)
                gliding = float(STEADY_LOG_LAG <= move < GLIDE_LOG_LAG)
            self._prev_lag = lag if voicing >= VOICED else 0
        else:
            self._prev_lag = 0
        self._voicing_mean += rate * (voicing - self._voicing_mean)
        self._steady += rate * (steady - self._steady)
        self._gliding += rate * (gliding - self._gliding)
        self._slow_db += SLOW_RATE * (band_db - self._slow_db)
        self._swing += rate * (min(abs(band_db - self._slow_db), 20.0) - self._swing)
        self._rise += rate * (min(max(band_db - self._prev_db, 0.0), 15.0) - self._rise)
        self._prev_db = band_db
        self._flux += rate * (min(flux, 6.0) - self._flux)
        self._candidate += rate * (float(pitch is not None) - self._candidate)
        known = under_visitor_db is not None
        f = self.features
        f[0] = voicing
        f[1] = self._voicing_mean
        f[2] = self._steady
        f[3] = self._gliding
        f[4] = self._swing
        f[5] = self._rise
        f[6] = self._flux
        f[7] = min(max(excess, -2.0), 6.0)
        f[8] = min(max(over_floor_db, 0.0), 40.0)
        f[9] = min(max(over_room_db, -10.0), 30.0)
        f[10] = min(max(under_visitor_db, -10.0), 30.0) if under_visitor_db is not None else 0.0
        f[11] = float(known)
        f[12] = float(in_bang)
        f[13] = min(max(tilt, -20.0), 20.0)
        f[14] = self._candidate

    def speech_probability(self) -> float:
        """The model's probability that the latest block is the visitor's speech (asked only when needed)."""
        self.probability = self.model.probability(self.features) if self.model is not None else 0.0
        return self.probability
