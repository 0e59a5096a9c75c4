"""Spectral steadiness (audio/tonal.py): held notes repeat their fine structure block to block, a voice and noise do not."""

from __future__ import annotations

import numpy as np
from conftest import DATA, read_wav

from edge_agent.audio.bandshape import BandShape
from edge_agent.audio.cues import CueClassifier
from edge_agent.audio.frames import ANALYSIS_SAMPLES
from edge_agent.devtools import noises

RATE = 16000


def _steadiness(pcm: np.ndarray) -> np.ndarray:
    shape = BandShape(CueClassifier.BAND_EDGES_HZ)
    out = []
    for at in range(0, len(pcm) - ANALYSIS_SAMPLES + 1, ANALYSIS_SAMPLES):
        out.append(shape(pcm[at : at + ANALYSIS_SAMPLES].astype(np.int16).tobytes())[3])
    return np.array(out[1:])


def test_a_held_chord_is_steady() -> None:
    t = np.arange(2 * RATE) / RATE
    chord = sum(np.sin(2 * np.pi * f * k * t) / k for f in (220.0, 277.2, 329.6) for k in range(1, 7))
    assert np.median(_steadiness(3000 * chord)) > 0.8


def test_noise_and_silence_are_not() -> None:
    rng = np.random.default_rng(1)
    assert abs(np.median(_steadiness(noises.unit(noises.colored(rng, 2 * RATE, 1.0)) * 3000))) < 0.1
    assert np.abs(_steadiness(np.zeros(RATE))).max() < 1e-6


def test_a_voice_is_far_less_steady_than_music() -> None:
    voice = np.frombuffer(read_wav(DATA / "kiosk_dev_quiet.wav"), dtype=np.int16)[: 20 * RATE]
    music = noises.unit(noises.music(np.random.default_rng(2), 20 * RATE)) * 3000
    assert np.median(_steadiness(voice.astype(np.float64))) < 0.2
    assert np.median(_steadiness(music)) > 0.6
