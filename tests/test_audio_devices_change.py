"""Hostile tests of the PyAudio device path, on ALSA `file`-plugin devices (no sound card)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import AlsaFiles

from edge_agent.audio import rescan
from edge_agent.audio.microphone import PyAudioSource
from edge_agent.audio.pyaudio_io import PyAudioSink
from edge_agent.errors import AudioError


def _ramp(seconds: float) -> bytes:
    n = int(seconds * 16000)
    return ((np.arange(n) % 30000) + 1).astype("<i2").tobytes()


def test_a_speaker_plugged_in_while_the_microphone_runs_is_found_at_its_retry(alsa: AlsaFiles) -> None:
    """PortAudio scans its devices only when nobody holds it: with the microphone's stream open,
    the speaker's retries saw the list made when the microphone opened, and a speaker that was
    missing at start (or came back under another card) was never found."""
    rc = Path(os.environ["HOME"]) / ".asoundrc"
    before = rc.read_text()
    late = alsa.root / "late-speaker.raw"
    alsa.mic(_ramp(60.0))
    audio = _ramp(0.5)
    frames: list[bytes] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        mic = PyAudioSource("default", 30, max_queued_frames=100_000)
        mic.start(loop, lambda frame, _at: frames.append(frame))
        sink = PyAudioSink("latespk", 20)
        try:
            await asyncio.sleep(0.1)
            assert frames, "the microphone delivers"
            with pytest.raises(AudioError, match="latespk"):
                sink.start(loop, lambda: None)  # not plugged in yet
            rc.write_text(before + f'pcm.latespk {{ type file slave.pcm "null" file "{late}" format "raw" }}\n')
            drained = asyncio.Event()
            await loop.run_in_executor(None, sink.start, loop, drained.set)  # the speaker watch's retry
            sink.buffer.write(audio)
            await asyncio.wait_for(drained.wait(), 10)
            seen = len(frames)
            for _ in range(100):  # the microphone, closed for the scan, delivers again
                await asyncio.sleep(0.05)
                if len(frames) > seen:
                    break
            assert len(frames) > seen
        finally:
            sink.stop()
            mic.stop()
            rc.write_text(before)

    asyncio.run(main())
    assert audio in late.read_bytes()


def test_a_device_named_exactly_is_chosen_over_one_listed_before_it_whose_name_holds_it(alsa: AlsaFiles) -> None:
    """`audio.output = "kioskspk"` with ALSA devices `kioskspk_old` (listed first) and `kioskspk`:
    the substring match took the first one listed, the old speaker, and the kiosk played there."""
    rc = Path(os.environ["HOME"]) / ".asoundrc"
    before = rc.read_text()
    old, wanted = alsa.root / "old-speaker.raw", alsa.root / "kiosk-speaker.raw"
    rc.write_text(before + f'pcm.kioskspk_old {{ type file slave.pcm "null" file "{old}" format "raw" }}\n' + f'pcm.kioskspk {{ type file slave.pcm "null" file "{wanted}" format "raw" }}\n')
    audio = _ramp(0.3)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        drained = asyncio.Event()
        sink = PyAudioSink("kioskspk", 20)
        sink.start(loop, drained.set)
        try:
            sink.buffer.write(audio)
            await asyncio.wait_for(drained.wait(), 10)
        finally:
            sink.stop()

    try:
        asyncio.run(main())
    finally:
        rc.write_text(before)
    assert wanted.exists() and audio in wanted.read_bytes()
    assert not old.exists() or audio not in old.read_bytes()


@pytest.mark.parametrize("spec", ["²", "¹"])
def test_a_device_spec_of_digit_like_characters_is_one_clear_error_not_a_crash(alsa: AlsaFiles, spec: str) -> None:
    """`str.isdigit` holds for superscripts, which `int` refuses: the ValueError went past the
    AudioError every caller handles (the daemon's start, `edge-agent devices`)."""

    async def main() -> None:
        sink = PyAudioSink(spec, 20)
        with pytest.raises(AudioError, match="no output device"):
            sink.start(asyncio.get_running_loop(), lambda: None)
        source = PyAudioSource(spec, 30)
        with pytest.raises(AudioError, match="no input device"):
            source.start(asyncio.get_running_loop(), lambda _f, _at: None)

    asyncio.run(main())


class _Device:
    """A stand-in for an open PyAudio device as rescan.py sees it (the scan's bookkeeping is the
    unit here: which device it closes and opens again)."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def pause_for_scan(self) -> None:
        self.log.append(f"pause {self.name}")
        rescan.closed(self)

    def resume_after_scan(self) -> None:
        self.log.append(f"resume {self.name}")
        rescan.opened(self)


@pytest.fixture
def fresh_scan_state(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_open", "_paused", "_stuck"):
        monkeypatch.setattr(rescan, name, [])
    monkeypatch.setattr(rescan, "_scanned_state", ("an older list",))


def test_a_device_stopped_while_closed_for_a_scan_is_not_opened_again_by_it(fresh_scan_state: None) -> None:
    """The kiosk's stop (or the microphone's own watch) stopping a device while another device's
    scan had it closed: the scan opened it again after the stop (a microphone running after the
    kiosk stopped, or two streams on one device after the watch's reopen)."""
    log: list[str] = []
    mic, other, speaker = _Device("mic", log), _Device("other", log), _Device("speaker", log)
    rescan.opened(mic)
    rescan.opened(other)

    def open_speaker() -> None:  # meanwhile, on another thread: the kiosk stops the microphone
        stopper = threading.Thread(target=rescan.closed, args=(mic,))
        stopper.start()
        stopper.join(5)
        log.append("speaker opened")

    rescan.open_with_scan(speaker, open_speaker)
    assert log == ["pause mic", "pause other", "speaker opened", "resume other"], log


def test_no_device_is_closed_for_a_scan_that_cannot_be_fresh(fresh_scan_state: None) -> None:
    """A speaker whose drop thread is stuck in PortAudio keeps it initialised: no scan can be
    fresh, so closing the microphone for one only made it deaf for nothing, at every retry."""
    log: list[str] = []
    mic, speaker = _Device("mic", log), _Device("speaker", log)
    rescan.opened(mic)
    rescan.closed(speaker, let_go=False)
    rescan.open_with_scan(speaker, lambda: log.append("speaker opened"))
    assert log == ["speaker opened"], log
