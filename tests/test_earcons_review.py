"""Hostile review of the kiosk's own sounds and the speech gate (earcons): in a hall, the press and
ready earcons' reverberation outlasted the window they were taken out in (0.5 s after their end)
and opened the gate after a silent press."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, KioskThread, kiosk_settings, read_wav, wait_for, watch_gate_openings

from edge_agent.audio.earcons import EarconRemover
from edge_agent.core.config_audio import VadSettings
from edge_agent.devtools.echoroom import EchoPath, Room, RoomMicrophone, RoomSpeaker
from edge_agent.devtools.echoscore import earcon_press
from edge_agent.devtools.simulator import AgentSimulator

SR = 16000
HALL = EchoPath(delay_ms=45, rt60_s=1.0, rir_ms=1000, gain=0.9, reverb=0.2, seed=2)
"""A loud speaker in a hall whose reverberation lasts (RT60 1 s, the impulse response as long)."""
GATE = VadSettings(engine="cues", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90, press_prior_ms=500)


@pytest.mark.parametrize(("echo_cancel", "seed"), [(False, 0), (False, 1), (False, 2), (True, 0)], ids=["shipped-0", "shipped-1", "shipped-2", "echo_cancel_full_duplex-0"])
def test_the_earcons_reverberation_in_a_hall_does_not_open_the_gate_after_a_silent_press(tmp_path: Path, sim: AgentSimulator, echo_cancel: bool, seed: int) -> None:
    """The whole daemon against the simulator, in a hall whose reverberation lasts 1 s (failed in 2
    of 6 runs before). Its room runs on the wall clock: on a machine too loaded for the room to
    keep up, the earcons' timestamps no longer match what the mic hears (the matrix below runs the
    same path on the frames' own clock)."""
    room = Room(replace(HALL, seed=seed))
    speaker = RoomSpeaker(room)
    mic = RoomMicrophone(room, speaker, frame_ms=30, period_ms=60)
    settings = kiosk_settings(tmp_path, sim.url, audio={"echo_cancel": echo_cancel, "earcons": True})
    kiosk = KioskThread(settings, source=mic, sink=speaker)
    gate_opened = watch_gate_openings(kiosk, room)  # the room's mic time of each gate opening
    with kiosk as k:
        # the kiosk idles in the hall (its gate learns the room's noise): 3 s of the room's own
        # clock, not of the wall's (a loaded machine started the kiosk late: 3 s slept were 0.5 s
        # of the hall heard, and the press came before the gate knew the room)
        wait_for(lambda: room.captured / SR >= 3.0, 60, "3 s of the hall heard")
        pressed_at = room.captured / SR
        k.press()
        k.wait_state("listening", 60)
        ready_at = room.captured / SR
        # the press and ready earcons and their reverberation; nobody speaks
        wait_for(lambda: room.captured / SR >= ready_at + 2.5, 60, "2.5 s of the hall after the ready earcon")
        assert gate_opened == [], (pressed_at, gate_opened)
        assert k.state == "listening"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rt60_s", [0.6, 1.0, 1.4])
def test_earcons_in_halls_open_nothing_and_a_visitor_talking_at_once_loses_nothing(rt60_s: float, seed: int) -> None:
    """The daemon's capture path (MicPath, as bench/earcon_rooms.py runs it) in halls whose
    reverberation is not cut at 150 ms: silent presses send nothing; a visitor talking from the
    press is heard as soon as in the shipped rooms and loses nothing. The tail's last dB over the
    room, where the tones no longer dominate a frame, were judged as the visitor's: 24-30 frames
    sent in 4 of these 60 presses (RT60 1-1.4 s). Left: with the ready earcon 250 ms after the
    press, the press earcon still rings under the ready earcon's window in the 1-1.4 s halls and
    opens the gate (not asserted here, in the closing note)."""
    path = EchoPath(delay_ms=45, rt60_s=rt60_s, rir_ms=int(rt60_s * 1000), gain=0.9, reverb=0.2, seed=seed)
    speech = read_wav(DATA / "kiosk_dev_quiet.wav")[2 * int(2.2 * SR) : 2 * int(4.2 * SR)]
    for volume in (0.3, 1.0):
        for ready_after_s in (0.08, 0.25) if rt60_s < 1.0 else (0.08,):
            assert earcon_press(path, GATE, volume, ready_after_s).frames_sent == 0, (volume, ready_after_s)
            heard = earcon_press(path, GATE, volume, ready_after_s, speech=speech)
            assert heard.lost_ms == 0 and heard.opened_s is not None and heard.opened_s <= 0.3, (volume, ready_after_s, heard)


def test_the_room_the_tail_is_judged_against_is_not_the_visitor_or_the_agent() -> None:
    """A frame an earcon is heard in whose rest is no louder than the room is the earcon fading
    (above); the room's level is sampled only while nobody talks. Taken from frames the gate was
    open on (or the agent spoke in), 9 s of a visitor's talk became "the room", and their next
    words under an earcon (the tone's frequencies holding 40 % of them, as a voice's harmonics
    may), at the level they talked at, were taken for its tail."""
    rng = np.random.default_rng(7)
    t = np.arange(480) / SR

    def frame(noise_rms: float, tone_amplitude: float = 0.0) -> bytes:
        x = rng.normal(0.0, noise_rms, 480) + tone_amplitude * np.sin(2 * np.pi * 660.0 * t)
        return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()

    def remover_after(talk_is_room: bool) -> EarconRemover:
        remover, at = EarconRemover(), 0.0
        for _ in range(300):  # 9 s of the room alone
            at += 0.03
            remover.clean(frame(20.0), at, 0.03)
        for _ in range(300):  # 9 s of a visitor talking (the gate open)
            at += 0.03
            remover.clean(frame(200.0), at, 0.03, room=talk_is_room)
        remover.played("ready", at, at + 0.18)
        for _ in range(30):  # the earcon and its window (their tones: not asserted)
            at += 0.03
            remover.clean(frame(20.0), at, 0.03)
        return remover

    fading, words = frame(20.0, 30.0), frame(140.0, 170.0)  # its tail at the room's level; the visitor's words
    at = 1000.0
    remover = remover_after(talk_is_room=False)
    remover._windows[-1] = (at - 1.0, at - 0.9, "ready")
    assert remover.clean(fading, at, 0.03) == (fading, True)  # the tail fading into the room: the earcon's
    assert remover.clean(words, at + 0.03, 0.03) == (words, False)  # the visitor's, as captured
    inflated = remover_after(talk_is_room=True)
    inflated._windows[-1] = (at - 1.0, at - 0.9, "ready")
    assert inflated.clean(words, at + 0.03, 0.03) == (words, True)  # (what sampling the talk did)
