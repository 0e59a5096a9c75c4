"""A review of the capture -> gate -> uplink path, through the real kiosk and the agent simulator:
the fleet's metrics say what went up."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import DATA, KioskThread, kiosk_settings, read_wav, wait_for

from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import SimulatorThread
from edge_agent.devtools.visitor import VisitorMic

SPEECH = read_wav(DATA / "kiosk_dev_quiet.wav")[2 * int(2.2 * 16000) : 2 * int(4.2 * 16000)]
"""Two seconds of continuous speech (as tests/test_first_words.py)."""


def test_frames_sent_counts_the_microphone_s_frames_not_the_silence_sent_for_a_closed_gate(tmp_path: Path) -> None:
    """A visitor presses and says nothing: the gate stays closed and only digital silence goes up.
    `frames_sent` is "of the microphone's frames, those that went up to the agent" (README,
    metrics); it counted every silence frame sent for a closed gate too, so a fleet admin saw a
    kiosk whose visitors never spoke send as much of the room as one whose visitors talked all
    the time (and frames_sent + frames_gated came to the captured plus the whole conversation)."""
    with SimulatorThread() as sim:
        mic = VisitorMic()
        with KioskThread(kiosk_settings(tmp_path, sim.url), source=mic) as k:
            time.sleep(1.0)  # the gate learns the room first
            k.press()
            k.wait_state(c.LISTENING, 10)
            sess = wait_for(lambda: sim.sessions[-1] if sim.sessions else None, 10, "a session")
            wait_for(lambda: len(sess.uplink) > 2 * 32000, 15, "two seconds of uplink")
            sent = k.kiosk.metrics()["frames_sent"]
            time.sleep(0.5)  # what it counted has reached the agent
            uplink = bytes(sess.uplink)
            fb = k.kiosk.gate.frame_bytes
            silence = bytes(fb)
            room = sum(uplink[i : i + fb] != silence for i in range(0, len(uplink) - fb + 1, fb))
            assert k.kiosk.gate.frames_sent == room == 0, "the gate opened on room tone: the test needs a quieter room"
            assert sent == 0


def test_pre_roll_the_gate_released_before_the_press_is_not_paid_back_from_the_visitor_s_stream(tmp_path: Path) -> None:
    """Someone talks by the kiosk, then presses (the gate still open on their words, or just
    closed): the pre-roll burst of that opening never went anywhere (no conversation), yet the
    gate paid it back in the conversation by sending nothing for as many frames (README, the
    gate: "the pre-roll burst sent at an onset is paid back by skipping as many silence frames
    later"). The agent's stream then ran behind the visitor by that pre-roll (0.5 s by default,
    more with the look-back): the silence that ends their first turn reached it that much later,
    and so did the answer."""
    with SimulatorThread() as sim:
        mic = VisitorMic()
        with KioskThread(kiosk_settings(tmp_path, sim.url, vad={"preroll_ms": 1200}), source=mic) as k:  # a pre-roll of 40 frames
            time.sleep(1.0)  # the gate learns the room first
            mic.speak(SPEECH, time.monotonic())
            time.sleep(len(SPEECH) / 32000 - 0.1)  # the gate opened on it, with its pre-roll
            assert k.kiosk.gate.is_open
            before = k.kiosk.counters["frames_captured"]
            k.press()
            k.wait_state(c.LISTENING, 10)
            sess = wait_for(lambda: sim.sessions[-1] if sim.sessions else None, 10, "a session")
            time.sleep(3.0)  # the gate closed in the conversation, the stream is in silence
            on_wire = len(sess.uplink) // k.kiosk.gate.frame_bytes
            captured = k.kiosk.counters["frames_captured"] - before
            assert on_wire >= captured - 12  # a capture period before the press, a quiet batch and a period in flight


def test_a_pre_roll_burst_replaced_by_silence_is_not_paid_back_from_the_visitor_s_stream(tmp_path: Path) -> None:
    """Push-to-talk: the button is up, the microphone closed to the conversation, and someone in
    the room talks; the gate opens on it, with its pre-roll burst, but one frame of silence goes
    in its place (nothing heard while the button is up goes up). The gate still counted the burst
    as sent ahead and paid it back from the stream's next silence, once the visitor held the
    button again: the agent's stream ran behind the visitor by a pre-roll each time (so the end of
    their turn, and the answer, came that much later). The same when the echo hold keeps an
    opening back."""
    with SimulatorThread() as sim:
        mic = VisitorMic()
        settings = kiosk_settings(tmp_path, sim.url, button={"mode": "hold"}, vad={"preroll_ms": 1200})  # a pre-roll of 40 frames
        with KioskThread(settings, source=mic) as k:
            time.sleep(1.0)  # the gate learns the room first
            before = k.kiosk.counters["frames_captured"]
            k.send(c.Talk(True))
            k.wait_state(c.LISTENING, 10)
            sess = wait_for(lambda: sim.sessions[-1] if sim.sessions else None, 10, "a session")
            k.send(c.Talk(False))  # a short release: the conversation goes on, the microphone closed
            time.sleep(0.5)
            mic.speak(SPEECH, time.monotonic())  # someone else in the room
            time.sleep(len(SPEECH) / 32000 - 0.1)
            assert k.kiosk.gate.is_open
            k.send(c.Talk(True))  # the visitor's turn again, the gate still open on the other's words
            time.sleep(3.0)  # the gate closed, the stream is in silence
            on_wire = len(sess.uplink) // k.kiosk.gate.frame_bytes
            captured = k.kiosk.counters["frames_captured"] - before
            assert on_wire >= captured - 12  # a capture period before the press, a quiet batch and a period in flight
