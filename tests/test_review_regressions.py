"""A hostile review of the day's changes: regressions they introduced, through the real code."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import AlsaFiles

from edge_agent.audio.microphone import PyAudioSource
from edge_agent.audio.playback import PlaybackBuffer
from edge_agent.audio.pyaudio_io import PyAudioSink
from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.events import Play, Playback
from edge_agent.core.timing import Timing
from edge_agent.service.audio_watch import ReopenThread, SpeakerWatch


def _ramp(seconds: float) -> bytes:
    n = int(seconds * 16000)
    return ((np.arange(n) % 30000) + 1).astype("<i2").tobytes()


def test_a_speaker_closed_for_the_microphones_scan_is_not_taken_for_gone(alsa: AlsaFiles) -> None:
    """The microphone's reopen (on its thread) closes the healthy speaker for the scan when ALSA's
    files changed (audio/rescan.py). The daemon's tick, on the loop meanwhile, asked the speaker
    `alive`: no stream, so gone: the reply queued for it was discarded, the conversation told it
    drained, and `speaker_stalled` reported, for a speaker that was playing."""
    rc = Path(os.environ["HOME"]) / ".asoundrc"
    before = rc.read_text()
    alsa.mic(_ramp(60.0))
    events: list[tuple[str, dict[str, Any]]] = []
    drained: list[float] = []
    dropped: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        mic = PyAudioSource("default", 30, max_queued_frames=100_000)
        sink = PyAudioSink("default", 20)
        watch = SpeakerWatch(sink, "default", lambda kind, fields: events.append((kind, fields)), lambda: drained.append(time.monotonic()))
        watch.start(loop)
        mic.start(loop, lambda _frame, _at: None)
        try:
            sink.buffer.write(_ramp(20.0), reply=True)  # a long reply, playing
            await asyncio.sleep(0.2)
            assert sink.alive(3.0)
            drained.clear()  # the empty speaker's before the reply
            rc.write_text(before + "# edited\n")  # ALSA's configuration changed: the next open rescans

            def reopen_mic() -> None:  # the audio watch's reopen of the microphone, on its thread
                mic.stop()
                mic.start(loop, lambda _frame, _at: None)

            t = ReopenThread(reopen_mic, "audio input")
            t.start()
            while t.is_alive():  # the daemon's tick, on the loop meanwhile
                watch.check(time.monotonic(), True)
                await asyncio.sleep(0.0005)
            t.join()
            if watch.watch._job is not None:
                watch.watch._job.join(10)
            watch.check(time.monotonic(), True)
        finally:
            job = watch.watch._job
            if job is not None:
                job.join(10)
            sink.stop()
            mic.stop()
            rc.write_text(before)
            dropped.append(watch.dropped_bytes)

    asyncio.run(main())
    assert watch_ok(events, dropped[0])


def watch_ok(events: list[tuple[str, dict[str, Any]]], dropped_bytes: int) -> bool:
    """The watch neither reported the speaker gone nor threw its reply away (the file device plays
    far faster than real time, so the reply itself may run out meanwhile: that drained is no fault)."""
    assert not [e for e in events if e[0] == "error"], events
    assert not dropped_bytes, "the reply was dropped as if the speaker were gone"
    return True


# ---------------------------------------------------------------- the agent link: before onready


def _held_then_ready(tmp_path: Path, before: list[str]) -> tuple[list[object], PlaybackBuffer]:
    """A real AgentLink against a server that sends `before` (messages), `onready` and a reply;
    what it emits goes through a real Conversation to a real PlaybackBuffer."""
    from test_protocol_conformance import _method, _onready, _run_link
    from websockets.asyncio.server import ServerConnection

    async def script(ws: ServerConnection) -> None:
        for name in before:
            await ws.send(_method(name))
        await ws.send(_onready("s1"))
        await ws.send(b"\x02\x02" * 320)  # the reply after onready

    got = asyncio.run(_run_link(tmp_path, script))
    conv = c.Conversation(Timing(), rng=random.Random(1))
    buffer = PlaybackBuffer()
    conv.handle(c.Press(), 0.0)
    for i, item in enumerate(got):
        if isinstance(item, bytes):
            acts = conv.handle(c.AgentAudio(conv.link_id, item), 1.0 + i / 100)
        else:
            msg = {"OnReady": p.OnReady("s1"), "Pause": p.Pause(), "Unpause": p.Unpause(), "Clear": p.Clear(), "StartAnswering": p.StartAnswering()}.get(str(item))
            if msg is None:
                continue
            acts = conv.handle(c.FromAgent(conv.link_id, msg), 1.0 + i / 100)
        for a in acts:
            if isinstance(a, Playback):
                buffer.control(a.command)
            elif isinstance(a, Play):
                buffer.write(a.pcm, reply=True)
    return got, buffer


def test_a_clear_before_onready_also_ends_a_pause_held_before_it(tmp_path: Path) -> None:
    """`clear` drops every queued sample and ends a pause (PlaybackBuffer.control, Turns): before
    `onready` the link now drops the clear (a3fcae8) but still hands on the `pause` held before it,
    so after `onready` the speaker stayed paused: the reply queued and never played."""
    got, buffer = _held_then_ready(tmp_path, ["pause", "clear"])
    assert not buffer.paused, f"the speaker is left paused by a pause its clear ended: {[x if isinstance(x, str) else len(x) for x in got]}"
    pcm, _ = buffer.read(640)
    assert pcm == b"\x02\x02" * 320


# ---------------------------------------------------------------- doctor: the badge reader


def test_doctor_passes_a_reader_that_ends_scans_with_keypad_enter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kiosk takes keypad Enter as `terminator = "enter"` (hardware/badge.py: KEY_ENTER or
    KEY_KPENTER); the doctor's new badge check wanted KEY_ENTER only, and FAILed (exit 1) a reader
    the kiosk reads fine. evdev's InputDevice stands in for the reader (no input node here)."""
    import evdev
    from conftest import kiosk_settings
    from evdev import ecodes

    from edge_agent.service.doctor import Doctor

    class Reader:
        name = "USB RFID keypad reader"

        def __init__(self, path: str) -> None:
            self.path = path

        def capabilities(self) -> dict[int, list[int]]:
            return {ecodes.EV_KEY: [*range(ecodes.KEY_1, ecodes.KEY_0 + 1), ecodes.KEY_KPENTER]}

        def close(self) -> None:
            pass

    monkeypatch.setattr(evdev, "InputDevice", Reader)
    secret = tmp_path / "secret"
    secret.write_bytes(os.urandom(32))
    settings = kiosk_settings(tmp_path, "ws://127.0.0.1:9/", badge={"device": "/dev/null", "secret_file": str(secret)})
    lines: list[str] = []
    doctor = Doctor(settings, out=lines.append)
    doctor.check("badge reader", doctor.badge_reader)
    assert doctor.failed == 0, lines


# ---------------------------------------------------------------- the store: written back from memory
