"""A lost microphone or speaker is reopened off the event loop: a PortAudio reopen scans the
devices, stops the old stream (joining the speaker's drop thread for up to 5 s) and can hang in
the driver. On the loop, the whole kiosk (the link's pings, the uplink, MQTT, the button) waited
for it, every retry of an outage.

The devices here are the file ones with a `start` that blocks until the test lets it go, as a
driver stuck in its open does, and `opens_off_loop` as PyAudio's devices say it; the daemon, its
watches and the agent link are the real ones.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import KioskThread, kiosk_settings, wait_for

from edge_agent.audio.devices import FileSink, FileSource
from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.service import audio_watch


class StuckMic(FileSource):
    """A file microphone whose reopens block in `start` until `release` is set."""

    opens_off_loop = True

    def __init__(self, path: Path) -> None:
        super().__init__(path, 30)
        self.release = threading.Event()
        self.starts: list[str] = []
        self._loop_of: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: Any) -> None:
        self.starts.append(threading.current_thread().name)
        if len(self.starts) == 1:  # the first open, at start
            self._loop_of = loop
            super().start(loop, on_frame)
            return
        self.release.wait(30)
        self.stalled = False
        loop.call_soon_threadsafe(FileSource.start, self, loop, on_frame)  # its timer is the loop's

    def stop(self) -> None:
        if self._loop_of is None or threading.current_thread().name == "kiosk":
            super().stop()
        else:  # its timer is the loop's
            self._loop_of.call_soon_threadsafe(FileSource.stop, self)


class StuckSpeaker(FileSink):
    """The null speaker, gone while `gone` is set, whose reopens block until `release` is set."""

    opens_off_loop = True

    def __init__(self) -> None:
        super().__init__(None)
        self.gone = threading.Event()
        self.release = threading.Event()
        self.starts = 0
        self.stops = 0
        self._loop_of: asyncio.AbstractEventLoop | None = None

    def alive(self, stall_s: float) -> bool:
        return not self.gone.is_set()

    def start(self, loop: asyncio.AbstractEventLoop, on_drained: Any) -> None:
        self.starts += 1
        if self.starts == 1:
            self._loop_of = loop
            super().start(loop, on_drained)
            return
        self.release.wait(30)
        self.gone.clear()
        loop.call_soon_threadsafe(FileSink.start, self, loop, on_drained)  # its play-head is a task on the loop

    def stop(self) -> None:
        self.stops += 1
        if self._loop_of is None or threading.current_thread().name == "kiosk":
            super().stop()
        else:
            self._loop_of.call_soon_threadsafe(FileSink.stop, self)


def _events(k: KioskThread) -> list[str]:
    seen: list[str] = []
    k.kiosk.reporter.event = lambda kind, fields: seen.append(str(fields.get("code", kind)))  # type: ignore[method-assign]
    return seen


def _answers(k: KioskThread, seconds: float) -> int:
    """How often the kiosk's loop answered within 1 s over `seconds` (it did not, while a reopen ran on it)."""
    answered, until = 0, time.monotonic() + seconds
    while time.monotonic() < until:
        k.on_loop(lambda: None, timeout_s=1.0)
        answered += 1
        time.sleep(0.1)
    return answered


def test_a_microphone_whose_reopen_hangs_leaves_the_kiosk_answering(tmp_path: Path, sim: AgentSimulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(audio_watch, "AUDIO_RETRY_S", 0.2)
    monkeypatch.setattr(audio_watch, "REOPEN_HUNG_S", 1.0)
    settings = kiosk_settings(tmp_path, sim.url)
    mic = StuckMic(tmp_path / "mic.wav")
    caplog.set_level(logging.INFO)
    with KioskThread(settings, source=mic) as k:
        events = _events(k)
        mic.stalled = True  # the device stops delivering: AUDIO_STALL_S later the reopen starts, and hangs
        try:
            wait_for(lambda: len(mic.starts) == 2, 10, "the reopen to start")
            assert _answers(k, 2.0) >= 10  # the loop goes on while the driver hangs
            assert len(mic.starts) == 2, mic.starts  # and no second reopen piles onto the hung one
            assert mic.starts[1] != "kiosk", mic.starts  # (the loop's thread is "kiosk")
            wait_for(lambda: any("hung in the driver" in r.getMessage() for r in caplog.records), 5, "the hang to be logged")
        finally:
            mic.release.set()
        wait_for(lambda: "audio_recovered" in events, 10, "the microphone to recover")
        k.press()  # and the kiosk works with it
        k.wait_state(c.LISTENING)
    assert events.count("audio_stalled") == 1, events
    assert sum("hung in the driver" in r.getMessage() for r in caplog.records) == 1


def test_a_speaker_whose_reopen_hangs_leaves_conversations_running(tmp_path: Path, sim: AgentSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio_watch, "AUDIO_RETRY_S", 0.2)
    settings = kiosk_settings(tmp_path, sim.url)
    speaker = StuckSpeaker()
    with KioskThread(settings, sink=speaker) as k:
        events = _events(k)
        speaker.gone.set()  # unplugged: SPEAKER_STALL_S later its reopen starts, and hangs
        try:
            wait_for(lambda: speaker.starts == 2, 10, "the speaker's reopen to start")
            k.press()  # a visitor meanwhile: the kiosk still hears them
            k.wait_state(c.LISTENING, 5)
            assert _answers(k, 1.0) >= 5
            assert speaker.starts == 2
        finally:
            speaker.release.set()
        wait_for(lambda: "speaker_recovered" in events, 10, "the speaker to recover")
    assert events.count("speaker_stalled") == 1, events


def test_a_speaker_reopen_hung_in_the_driver_stops_the_watchdog_pings(tmp_path: Path, sim: AgentSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Off the loop, a hung speaker reopen left the kiosk mute for good: the microphone still
    delivered, so the watchdog kept pinging and systemd never restarted it (on the loop, the
    blocked loop had stopped the pings)."""
    monkeypatch.setattr(audio_watch, "AUDIO_RETRY_S", 0.2)
    monkeypatch.setattr(audio_watch, "REOPEN_HUNG_S", 1.0)
    settings = kiosk_settings(tmp_path, sim.url)
    speaker = StuckSpeaker()
    with KioskThread(settings, sink=speaker) as k:
        pings: list[float] = []
        k.kiosk.notifier.watchdog = lambda now: pings.append(time.monotonic())  # type: ignore[method-assign]
        wait_for(lambda: len(pings) >= 3, 5, "watchdog pings")
        speaker.gone.set()
        try:
            wait_for(lambda: speaker.starts == 2, 10, "the speaker's reopen to start")
            hung_from = time.monotonic() + 2.0  # REOPEN_HUNG_S, a tick and room for a loaded machine's lag
            time.sleep(4.0)
            assert [t for t in pings if t > hung_from] == []
        finally:
            speaker.release.set()
        wait_for(lambda: len(pings) > 0 and pings[-1] > time.monotonic() - 1.0, 10, "the pings to come back once it opened")


def test_a_reopen_hung_at_shutdown_leaves_its_device_alone_and_the_kiosk_stops(tmp_path: Path, sim: AgentSimulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(audio_watch, "AUDIO_RETRY_S", 0.2)
    monkeypatch.setattr(audio_watch, "DEVICE_SETTLE_S", 0.5)
    settings = kiosk_settings(tmp_path, sim.url)
    speaker = StuckSpeaker()
    k = KioskThread(settings, sink=speaker)
    try:
        with k:
            speaker.gone.set()
            wait_for(lambda: speaker.starts == 2, 10, "the speaker's reopen to start")
            stops = speaker.stops  # the reopen's own stop, before its start hung
            started = time.monotonic()
        # the with-block stopped the kiosk: it waited DEVICE_SETTLE_S for the hung reopen, not for good
        assert time.monotonic() - started < 10
        assert k.result == 0
        assert speaker.stops == stops  # not stopped under the driver's hung call
        assert any("left open at exit" in r.getMessage() for r in caplog.records)
    finally:
        speaker.release.set()
