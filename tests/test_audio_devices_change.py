"""Hostile tests of the PyAudio device path, on ALSA `file`-plugin devices (no sound card)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import AlsaFiles

pytest.importorskip("pyaudio")

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
