"""A speaker that goes away mid-conversation (a USB speaker unplugged, its sound server gone) and
comes back: through the real stack (PyAudio, ALSA's pulse plugin, a throw-away PulseAudio that is
killed and started again), judged on the events the fleet gets, the log and what the monitor heard.

Killing the server is what an unplug does to the ALSA device under PortAudio: the callbacks stop
(PortAudio's thread ends with the stream's error) and the device is gone from the list until it is
back. Before the kiosk watched its speaker, nothing noticed: no event, no log line, no reopen, and
the first `clear` after it left the drop thread hung in Pa_StartStream for good.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import KioskThread, kiosk_settings, pulse_server, wait_for

from edge_agent.audio.pyaudio_io import PyAudioSink
from edge_agent.core import conversation as c
from edge_agent.devtools.pulse import PulseServer
from edge_agent.devtools.simulator import SimulatorThread

SAWTOOTH = bytes(range(256)) * 125
"""1 s of full-scale 125 Hz sawtooth without a zero sample: the agent's voice."""

pytestmark = pytest.mark.slow  # a PulseAudio stream takes up to 2 s to start, the outage seconds


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[PulseServer]:
    with pulse_server(tmp_path / "pulse") as server:  # killed and started again by the tests
        yield server


def _agent_ms(pcm: np.ndarray) -> int:
    """Milliseconds of sawtooth in a monitor recording (8 ms periods peaking near full scale)."""
    w = len(pcm) // 128 * 128
    return 8 * int((np.abs(pcm[:w].astype(np.int32)).reshape(-1, 128).max(axis=1) > 20000).sum())


def _events(k: KioskThread) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    k.kiosk.reporter.event = lambda kind, fields: events.append((fields.get("code", kind), fields))  # type: ignore[method-assign]
    return events


def _say(sim_thread: SimulatorThread, pcm: bytes) -> None:
    asyncio.run_coroutine_threadsafe(sim_thread.sim.say(pcm), sim_thread.loop).result(5)


def test_a_speaker_lost_mid_reply_is_reported_once_reopened_and_speaks_again(
    pulse: PulseServer, tmp_path: Path, sim_thread: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sink = PyAudioSink("pulse", 20)
    settings = kiosk_settings(tmp_path, sim_thread.sim.url, audio={"earcons": False, "output": "pulse"})
    k = KioskThread(settings, sink=sink)
    events = _events(k)
    with k:
        k.press()
        wait_for(lambda: k.state == c.LISTENING, 10, "the conversation")
        wait_for(lambda: sink.callbacks > 60, 15, "the pulse stream to run")
        _say(sim_thread, SAWTOOTH * 10)  # 10 s: the reply the speaker is lost in
        wait_for(lambda: sink.buffer.played_bytes > 16000, 20, "the agent to be playing")
        pulse.kill()
        wait_for(lambda: any(code == "speaker_stalled" for code, _ in events), 10, "a speaker_stalled error event")
        # the reply that can no longer be heard is dropped: the conversation goes on listening
        wait_for(lambda: k.state == c.LISTENING, 5, "the conversation to listen again")
        # the agent's clear and pause on the dead device: no traceback, nothing hangs
        for command in ("clear", "pause", "unpause", "clear"):
            k.on_loop(lambda command=command: sink.buffer.control(command))
        _say(sim_thread, SAWTOOTH)  # a reply while the speaker is gone: dropped too
        retries = lambda: sum("audio output still unavailable" in r.getMessage() for r in caplog.records)  # noqa: E731
        wait_for(lambda: retries() >= 2, 15, "the reopen to be retried")
        pulse.start()  # the speaker is plugged in again
        wait_for(lambda: any(code == "speaker_recovered" for code, _ in events), 15, "a speaker_recovered event")
        monitor = pulse.record_monitor()
        try:
            monitor.wait_started()
            wait_for(lambda: k.state == c.LISTENING, 5, "the conversation to listen")
            _say(sim_thread, SAWTOOTH)  # 1 s after the speaker is back: heard whole
            wait_for(lambda: _agent_ms(monitor.samples()[0]) >= 900, 15, "the agent to be heard again")
        finally:
            monitor.stop()
        metrics = k.on_loop(k.kiosk.metrics)
    codes = [code for code, _ in events]
    assert codes.count("speaker_stalled") == 1 and codes.count("speaker_recovered") == 1, codes
    recovered = next(f for code, f in events if code == "speaker_recovered")
    # what was queued went, counted: the 10 s reply but what played before the loss, and the 1 s one
    assert recovered["down_s"] > 0 and 9000 <= recovered["dropped_ms"] <= 10500, recovered
    assert metrics["speaker_errors"] == 0, metrics
    assert [r for r in caplog.records if r.exc_info] == [], "a traceback in the log"
    # the outage in the log: the event's line, the first retries (3 at most), the recovery's line
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING or "speaker_" in r.getMessage() or "audio output" in r.getMessage()]
    assert 3 <= len(lines) <= 6, lines


def test_a_speaker_missing_at_start_is_retried_until_it_appears(pulse: PulseServer, tmp_path: Path, sim_thread: SimulatorThread) -> None:
    pulse.kill()
    sink = PyAudioSink("pulse", 20)
    settings = kiosk_settings(tmp_path, sim_thread.sim.url, audio={"earcons": False, "output": "pulse"})
    k = KioskThread(settings, sink=sink)
    events = _events(k)
    with k:
        wait_for(lambda: any(code == "speaker_stalled" for code, _ in events), 10, "a speaker_stalled error event")
        pulse.start()
        wait_for(lambda: any(code == "speaker_recovered" for code, _ in events), 15, "a speaker_recovered event")
        wait_for(lambda: sink.callbacks > 20, 10, "the speaker to play")


def test_clear_and_pause_on_a_device_that_went_away_leave_it_alone(pulse: PulseServer, caplog: pytest.LogCaptureFixture) -> None:
    """Before the speaker is reported lost, the agent's clear and pause still reach its drop thread:
    Pa_StartStream on the dead stream never returned, the thread hung, and the close at the next
    reopen or shutdown aborted the process (PaUnixMutex_Terminate's assertion)."""
    caplog.set_level(logging.INFO)
    sink = PyAudioSink("pulse", 20)
    seen: dict[str, int] = {}

    async def main() -> None:
        sink.start(asyncio.get_running_loop(), lambda: None)
        try:
            await asyncio.to_thread(wait_for, lambda: sink.callbacks > 60, 15, "the pulse stream to run")
            sink.buffer.write(SAWTOOTH * 5)
            await asyncio.to_thread(wait_for, lambda: sink.buffer.played_bytes > 16000, 20, "the agent to be playing")
            pulse.kill()
            await asyncio.to_thread(wait_for, lambda: not sink.alive(0.5), 10, "the callbacks to stop")
            for command in ("clear", "pause", "unpause", "clear"):
                sink.buffer.control(command)
            assert sink.drop is not None
            await asyncio.to_thread(wait_for, lambda: not sink.drop.pending, 5, "the drop thread to serve them")  # type: ignore[union-attr]
            seen.update(skipped=sink.drop.skipped, failures=sink.drop.failures, drops=sink.drop.drops)
        finally:
            sink.stop()  # closes the dead stream (the process would abort here with a stuck drop thread)

    asyncio.run(main())
    assert seen["skipped"] >= 1 and seen["failures"] == 0 == seen["drops"], seen  # (requests waiting together are served as one)
    assert sink.drop is not None and sink.drop.enabled and sink.drop.bad_restarts == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
