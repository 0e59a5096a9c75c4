"""BandShape: a recording read ahead in batches gives the figures of live audio block by block, to the bit.

The gate's decisions on a file (`edge-agent gate`, the room matrix) come from the batches, the
kiosk's from live blocks: they must not differ, not even in the last bit of a level.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, read_wav

from edge_agent.audio.bandshape import READ_AHEAD_BLOCKS, BandShape
from edge_agent.audio.cues import CueClassifier
from edge_agent.audio.frames import ANALYSIS_SAMPLES
from edge_agent.audio.gate import VadGate
from edge_agent.audio.gatefile import gate_file_intervals
from edge_agent.core.config_audio import VadSettings

BLOCK_BYTES = 2 * ANALYSIS_SAMPLES


def _figures(shape: BandShape, pcm: bytes) -> list[tuple[float, list[float], float, float, float, bytes]]:
    out = []
    for at in range(0, len(pcm) - BLOCK_BYTES + 1, BLOCK_BYTES):
        band_db, bands, flux, steadiness, recurrence = shape(pcm[at : at + BLOCK_BYTES])
        out.append((band_db, list(bands), flux, steadiness, recurrence, shape.spectrum().tobytes()))
    return out


def _noise(seconds: float, seed: int) -> bytes:
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 300).astype(np.int16).tobytes()


@pytest.mark.parametrize(
    "pcm",
    [
        pytest.param(read_wav(DATA / "kiosk_dev_noisy.wav"), id="noisy"),
        pytest.param(read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 20] + b"\x07", id="quiet, odd length"),
        # 40 s of digital silence: the two-block average sinks below the normal floats, where
        # the batch's scaling by powers of two would round; it falls back to the recurrence there
        pytest.param(_noise(2.0, 1) + bytes(32000 * 40) + _noise(2.0, 2), id="digital silence"),
    ],
)
def test_read_ahead_gives_the_live_figures(pcm: bytes) -> None:
    live, ahead = BandShape(CueClassifier.BAND_EDGES_HZ), BandShape(CueClassifier.BAND_EDGES_HZ)
    ahead.read_ahead(pcm)
    assert len(pcm) // BLOCK_BYTES > 2 * READ_AHEAD_BLOCKS  # batch boundaries are crossed
    assert _figures(ahead, pcm) == _figures(live, pcm)
    after = _noise(0.03, 3)  # past the read-ahead: on its own, from the state the batches carried
    assert ahead(after) == live(after)
    assert ahead._smooth == live._smooth


@pytest.mark.parametrize("at", [10, 40])  # before and after the batch's first RECUR_BLOCKS rows
def test_a_block_other_than_the_expected_one_ends_the_read_ahead(at: int) -> None:
    pcm = read_wav(DATA / "kiosk_dev_noisy.wav")[: BLOCK_BYTES * 300]
    other = _noise(0.03, 4)
    live, ahead = BandShape(CueClassifier.BAND_EDGES_HZ), BandShape(CueClassifier.BAND_EDGES_HZ)
    ahead.read_ahead(pcm)
    stream = [pcm[i * BLOCK_BYTES : (i + 1) * BLOCK_BYTES] for i in range(at)] + [other] + [pcm[i * BLOCK_BYTES : (i + 1) * BLOCK_BYTES] for i in range(at, 300)]
    for block in stream:
        assert ahead(block) == live(block)
        assert np.array_equal(ahead.spectrum(), live.spectrum())


@pytest.mark.parametrize(("engine", "frame_ms"), [("cues", 30), ("cues", 10), ("learned", 30)])
def test_the_gate_sends_the_same_from_a_file_as_from_live_frames(monkeypatch: pytest.MonkeyPatch, engine: str, frame_ms: int) -> None:
    pcm = read_wav(DATA / "kiosk_dev_noisy.wav")
    settings = VadSettings(engine=engine, aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90)
    read_ahead = gate_file_intervals(VadGate(settings, frame_ms), pcm)
    monkeypatch.delattr(CueClassifier, "read_ahead")  # block by block, as the kiosk's live audio
    assert read_ahead == gate_file_intervals(VadGate(settings, frame_ms), pcm)
    assert len(read_ahead) > 5
