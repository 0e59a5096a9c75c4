"""The real PyAudio path on an ALSA `file`-plugin device the tests configure (no sound card).

The device is not paced (the null slave returns data as fast as asked), so nothing here depends
on wall-clock pacing: assertions are about samples, order, accounting and device callbacks.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyaudio
import pytest
from conftest import DATA, REPO, AlsaFiles, assert_leads_start_their_frames, read_wav, wait_for

from edge_agent.audio.microphone import PyAudioSource
from edge_agent.audio.pyaudio_io import PyAudioSink
from edge_agent.audio.resample import Resampler


def _run_source(source: PyAudioSource, seconds: float, stamps: list[float] | None = None, until_frames: int = 0) -> list[bytes]:
    """Capture for `seconds`, and on a slow machine on until `until_frames` have arrived (≤ 20 s)."""
    got: list[bytes] = []

    def on_frame(frame: bytes, captured_at: float) -> None:
        got.append(frame)
        if stamps is not None:
            stamps.append(captured_at)

    async def main() -> None:
        source.start(asyncio.get_running_loop(), on_frame)
        await asyncio.sleep(seconds)
        deadline = time.monotonic() + 20
        while len(got) < until_frames and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        source.stop()
        await asyncio.sleep(0.05)  # let scheduled drains run

    asyncio.run(main())
    return got


@pytest.mark.parametrize("period_ms", [30, 60, 90])
def test_capture_delivers_the_recording_bit_exact_and_in_order(alsa: AlsaFiles, period_ms: int) -> None:
    recording = read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3]
    alsa.mic(recording)
    source = PyAudioSource("default", 30, period_ms, max_queued_frames=200_000)
    stamps: list[float] = []
    n = len(recording) // 960
    got = _run_source(source, 0.3, stamps, until_frames=n)
    assert len(got) >= n
    assert got[:n] == [recording[i * 960 : (i + 1) * 960] for i in range(n)]
    assert source.frames_captured == len(got) and source.frames_dropped == 0
    # a device period holds period_ms / 30 frames, stamped 30 ms apart (the last one newest)
    per = period_ms // 30
    steps = [round((b - a) * 1000, 3) for a, b in pairwise(stamps)]
    within = [steps[i] for i in range(len(steps)) if (i + 1) % per]
    assert within == [30.0] * len(within)


def test_hurrying_a_microphone_that_is_not_open_does_nothing(alsa: AlsaFiles) -> None:
    """A press while the microphone is gone (never found at boot, or unplugged and not yet back):
    the press's other actions must still run, so `hurry` must not raise."""
    source = PyAudioSource("default", 30, 60, block_ms=10)
    source.hurry(time.monotonic() + 1.0, lambda pcm, at: None)
    assert source.leads == 0


def test_a_press_on_a_stalled_microphone_is_no_sign_of_life(alsa: AlsaFiles) -> None:
    """A press drains the microphone at once (`hurry`); the drain marked the device alive even
    when it handed over nothing, so a press on a stalled microphone fed the watchdog and could
    report it recovered (found by an attacker). Only audio is a sign of life."""
    alsa.mic(read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3])
    source = PyAudioSource("default", 30, 60, max_queued_frames=200_000, block_ms=10)
    got: list[bytes] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        source.start(loop, lambda f, _at: got.append(f))
        deadline = time.monotonic() + 20
        while len(got) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        source._stream.stop_stream()  # the device stalls: PortAudio calls back no more
        source.hurry(time.monotonic() + 1.0, lambda pcm, _at: None)  # what it had captured goes
        await asyncio.sleep(0.1)
        source.last_frame_at = stalled_at = time.monotonic() - 5.0
        source.hurry(time.monotonic() + 1.0, lambda pcm, _at: None)
        await asyncio.sleep(0.2)
        source.stop()
        return stalled_at

    stalled_at = asyncio.run(main())
    assert len(got) >= 5 and source.last_frame_at == stalled_at


def test_a_hurried_capture_hands_over_each_frame_s_start_ahead_of_it_and_nothing_twice(alsa: AlsaFiles) -> None:
    """`hurry` (a press): the part of the frame being filled goes to on_lead as the device hands
    it over, in whole 10 ms blocks, before the frame; the frames themselves are unchanged. Every
    lead is a prefix piece of the frame after it, and leads plus the rest of each frame are the
    recording, byte for byte (the daemon sends a frame's rest after its leads)."""
    recording = read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3]
    alsa.mic(recording)
    source = PyAudioSource("default", 30, 60, max_queued_frames=200_000, block_ms=10)
    events: list[tuple[str, bytes]] = []
    n = len(recording) // 960

    async def main() -> None:
        loop = asyncio.get_running_loop()
        source.start(loop, lambda f, _at: events.append(("frame", f)))
        source.hurry(time.monotonic() + 60.0, lambda pcm, _at: events.append(("lead", pcm)))
        deadline = time.monotonic() + 20
        while sum(kind == "frame" for kind, _ in events) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        source.stop()
        await asyncio.sleep(0.05)

    asyncio.run(main())
    frames = [f for kind, f in events if kind == "frame"]
    assert frames[:n] == [recording[i * 960 : (i + 1) * 960] for i in range(n)]
    leads = [pcm for kind, pcm in events if kind == "lead"]
    assert leads and source.leads == len(leads) and all(len(pcm) % 320 == 0 and 0 < len(pcm) < 960 for pcm in leads)
    sent, ahead = bytearray(), 0
    for kind, pcm in events:
        if kind == "lead":
            sent += pcm
            ahead += len(pcm)
        else:
            assert ahead < 960
            sent += pcm[ahead:]
            ahead = 0
    assert bytes(sent[: len(recording)]) == recording[: len(sent)]


def test_a_stalled_loop_never_drops_a_frame_whose_start_went_ahead(alsa: AlsaFiles) -> None:
    """Hurried, the start of the frame being filled went to on_lead; then the loop stalls and the
    queue overflows. The daemon sends a frame's rest after its start (`CaptureFeed.frame`), so the
    frame after a lead must be the frame that lead is the start of: a later frame in its place
    would lose its own start and the lead's frame its rest. Another frame is dropped instead."""
    recording = read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3]
    alsa.mic(recording)
    source = PyAudioSource("default", 30, 60, max_queued_frames=4, block_ms=10)
    events: list[tuple[str, bytes]] = []

    async def main() -> None:
        source.start(asyncio.get_running_loop(), lambda f, _at: events.append(("frame", f)))
        await asyncio.sleep(0.2)
        source.hurry(time.monotonic() + 60.0, lambda pcm, _at: events.append(("lead", pcm)))
        deadline = time.monotonic() + 20
        while not (events and events[-1][0] == "lead") and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        cut = source.frames_cut
        while source.frames_cut < cut + 20 and time.monotonic() < deadline:  # the loop stalls
            time.sleep(0.01)
        await asyncio.sleep(0.2)
        source.stop()
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert source.frames_dropped > 0
    assert_leads_start_their_frames(events)


def test_capture_with_a_small_queue_drops_oldest_and_counts_every_frame(alsa: AlsaFiles) -> None:
    recording = read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3]
    alsa.mic(recording)
    source = PyAudioSource("default", 30, max_queued_frames=4)
    got: list[bytes] = []

    async def main() -> None:
        source.start(asyncio.get_running_loop(), lambda frame, _at: got.append(frame))
        # hold the loop (as a stalled kiosk would) until the device has cut far more frames than
        # the queue holds: the drops do not depend on how the machine schedules the two threads
        deadline = time.monotonic() + 20
        while source.frames_cut < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        await asyncio.sleep(0.1)
        source.stop()
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert source.frames_cut >= 40, source.frames_cut
    assert source.frames_dropped > 0 and source.overruns >= source.frames_dropped
    # what arrives is still whole frames of the recording, in order (the file device repeats
    # its last period after the end of the file, so the tail is left out)
    index = {recording[i : i + 960]: i for i in range(0, len(recording) - 959, 960)}
    positions = [index[f] for f in got if index.get(f, len(recording)) < len(recording) - 8 * 960]
    assert positions == sorted(positions)
    # every frame cut from the device was either delivered or counted as dropped
    assert source.frames_captured + source.frames_dropped == source.frames_cut == len(got) + source.frames_dropped


def test_capture_falls_back_to_the_native_rate_and_resamples(alsa: AlsaFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    """A USB mic that refuses 16 kHz (PortAudio -9997): we open 44.1 kHz and convert properly."""
    speech = np.frombuffer(read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 4], dtype=np.int16)
    up = Resampler(16000, 44100).process(speech)
    alsa.mic(up.astype("<i2").tobytes())
    real_open = pyaudio.PyAudio.open

    def refuse_16k(self: object, *args: object, **kw: object) -> object:
        if kw.get("rate") == 16000:
            raise OSError(-9997, "Invalid sample rate")
        return real_open(self, *args, **kw)

    monkeypatch.setattr(pyaudio.PyAudio, "open", refuse_16k)
    source = PyAudioSource("default", 30, max_queued_frames=200_000)
    got = np.frombuffer(b"".join(_run_source(source, 0.3, until_frames=len(speech) // 480 + 1)), dtype=np.int16)[: len(speech)].astype(np.float64)
    assert len(got) == len(speech)
    ref = speech.astype(np.float64)
    # the two filters' group delay, in 16 kHz samples: not a whole number, so shift by FFT
    r1, r2 = Resampler(16000, 44100), Resampler(44100, 16000)
    lag = 16000 * sum((r._k * r.up - 1) / 2 / (rate * r.up) for r, rate in ((r1, 16000), (r2, 44100)))
    freqs = np.fft.rfftfreq(len(ref))
    aligned = np.fft.irfft(np.fft.rfft(ref) * np.exp(-2j * np.pi * freqs * lag), len(ref))
    err = got[8000:-8000] - aligned[8000:-8000]
    snr_db = 10 * np.log10(np.mean(aligned[8000:-8000] ** 2) / np.mean(err**2))
    assert snr_db > 30, snr_db  # dropping samples instead of filtering gives well under 20 dB


def _ramp(seconds: float) -> bytes:
    """Audio whose every sample says where it is (1..30000, never zero)."""
    n = int(seconds * 16000)
    return ((np.arange(n) % 30000) + 1).astype("<i2").tobytes()


def _run_sink(sink: PyAudioSink, body: object) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        drained = asyncio.Event()
        sink.start(loop, drained.set)
        try:
            await body(sink, drained)  # type: ignore[operator]
        finally:
            sink.stop()

    asyncio.run(main())


def test_playback_writes_agent_audio_bit_exact(alsa: AlsaFiles) -> None:
    audio = _ramp(1.0)

    async def body(sink: PyAudioSink, drained: asyncio.Event) -> None:
        sink.buffer.write(audio)
        await asyncio.wait_for(drained.wait(), 5)

    sink = PyAudioSink("default", 20)
    _run_sink(sink, body)
    assert audio in alsa.played()


def test_clear_silences_the_speaker_within_one_device_buffer(alsa: AlsaFiles) -> None:
    """After clear, no more agent audio reaches the device than the one 20 ms callback that may
    have been running: nothing queued, nothing converted, nothing hidden in our stack."""
    audio = _ramp(30.0)
    state: dict[str, int] = {}
    per_callback = 16000 * 20 // 1000

    async def body(sink: PyAudioSink, drained: asyncio.Event) -> None:
        sink.buffer.write(audio)
        await asyncio.to_thread(wait_for, lambda: sink.buffer.played_bytes > 32000 // 5, 5)
        state["callbacks_at_clear"] = sink.callbacks
        state["played_at_clear"] = sink.buffer.played_bytes // 2
        sink.buffer.control("clear")
        await asyncio.to_thread(wait_for, lambda: sink.callbacks > state["callbacks_at_clear"] + 20, 5)

    sink = PyAudioSink("default", 20)
    _run_sink(sink, body)
    assert sink.clear_took_effect_at is not None
    assert sink.clear_took_effect_at <= state["callbacks_at_clear"] + 1  # the very next callback
    played = np.frombuffer(alsa.played(), dtype=np.int16)
    audible = int(np.count_nonzero(played))  # the ramp is never zero: non-zero = agent audio
    assert state["played_at_clear"] <= audible <= state["played_at_clear"] + per_callback
    assert audible < len(audio) // 2 and sink.buffer.queued_bytes == 0
    # and that audio is the start of what was queued, in order, without gaps
    start = int(np.flatnonzero(played)[0])
    assert played[start : start + audible].tobytes() == audio[: 2 * audible]


def test_pause_holds_and_unpause_resumes_without_losing_audio(alsa: AlsaFiles) -> None:
    audio = _ramp(2.0)

    async def body(sink: PyAudioSink, drained: asyncio.Event) -> None:
        sink.buffer.control("pause")
        sink.buffer.write(audio)
        await asyncio.sleep(0.1)
        assert sink.buffer.played_bytes == 0 and sink.callbacks > 0
        sink.buffer.control("unpause")
        await asyncio.wait_for(drained.wait(), 5)

    sink = PyAudioSink("default", 20)
    _run_sink(sink, body)
    assert audio in alsa.played()


def test_devices_command_lists_and_marks_the_chosen_ones(alsa: AlsaFiles, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "edge_agent", "devices"], capture_output=True, text=True, cwd=REPO, env={**os.environ, "HOME": str(alsa.root)}, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    default = [line for line in lines if line.rstrip().endswith(" default")]
    assert default and default[0].startswith("IO"), out.stdout
    assert any("fakemic" in line for line in lines)


def test_unknown_device_is_one_clear_error(alsa: AlsaFiles) -> None:
    from edge_agent.errors import AudioError

    source = PyAudioSource("no-such-mic", 30)
    with pytest.raises(AudioError, match="no-such-mic"):
        _run_source(source, 0.01)
    time.sleep(0)


@pytest.mark.parametrize("fails", ["open", "start"])
@pytest.mark.parametrize("kind", ["mic", "speaker"])
def test_a_device_found_that_will_not_open_is_one_clear_error_and_portaudio_is_let_go(alsa: AlsaFiles, monkeypatch: pytest.MonkeyPatch, kind: str, fails: str) -> None:
    """A device busy in another process or unplugged between the scan and the open (PortAudio
    -9985): one AudioError naming it, and nothing of PortAudio left running (a PortAudio left
    initialised keeps its stale device list for every later stream in the process)."""
    from edge_agent.errors import AudioError

    busy = OSError(-9985, "Device unavailable")
    alive: list[object] = []
    real_init, real_terminate = pyaudio.PyAudio.__init__, pyaudio.PyAudio.terminate

    def init(self: object) -> None:
        real_init(self)
        alive.append(self)

    def terminate(self: object) -> None:
        alive.remove(self)
        real_terminate(self)

    def refuse(*args: object, **kw: object) -> object:
        raise busy

    monkeypatch.setattr(pyaudio.PyAudio, "__init__", init)
    monkeypatch.setattr(pyaudio.PyAudio, "terminate", terminate)
    monkeypatch.setattr(pyaudio.PyAudio, "open", refuse) if fails == "open" else monkeypatch.setattr(pyaudio.PyAudio.Stream, "start_stream", refuse)
    device = PyAudioSource("default", 30) if kind == "mic" else PyAudioSink("default", 20)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if isinstance(device, PyAudioSource):
            device.start(loop, lambda frame, at: None)
        else:
            device.start(loop, lambda: None)

    with pytest.raises(AudioError, match="Device unavailable") as err:
        asyncio.run(main())
    assert "default" in str(err.value) or "fake" in str(err.value), err.value
    assert alive == [], "PortAudio left initialised"
    device.stop()  # the daemon's clean-up after a failed start stays harmless


def test_playback_reports_what_it_played_and_when_for_the_echo_canceller(alsa: AlsaFiles) -> None:
    audio = _ramp(0.5)
    tapped: list[tuple[bytes, float]] = []

    async def body(sink: PyAudioSink, drained: asyncio.Event) -> None:
        sink.buffer.tap = lambda pcm, at: tapped.append((pcm, at))
        sink.buffer.write(audio)
        await asyncio.wait_for(drained.wait(), 5)

    t0 = time.monotonic()
    _run_sink(PyAudioSink("default", 20), body)
    played = b"".join(p for p, _ in tapped)
    assert audio in played  # every sample handed to the device reached the tap, in order
    # heard no earlier than handed over (this device is not paced, so callbacks come faster than
    # real time and only this bound holds, not the spacing)
    assert all(at >= t0 for _, at in tapped)
