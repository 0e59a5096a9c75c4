"""Audio adapters: the small interfaces the daemon uses, and file/null devices.

`AudioSource` delivers fixed frames of 16 kHz mono int16 to a callback on the event loop, a
capture period's worth at a time, each with the time its last sample was captured;
`AudioSink` plays agent audio through a `PlaybackBuffer` (playback.py) that honours
clear/pause/unpause at once. The PyAudio implementations live in `pyaudio_io`; this module holds
what every device shares plus the file devices used by the demo and tests:

- `file:PATH.wav` input is played at real-time pace once, then continues as digital silence,
  like a microphone in a quiet room; `loop:PATH.wav` plays it again and again;
- `file:PATH.wav` output writes what the speaker played (agent audio and earcons), at real-time
  pace; `null` output plays into nothing at real-time pace.

The WAV helpers live in `wavfile` (re-exported here) so `edge-agent gate` reads a file without
importing the device machinery (asyncio, threads).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.playback import PlaybackBuffer
from edge_agent.audio.wavfile import convert_hint as convert_hint
from edge_agent.audio.wavfile import open_wav_16k_mono as open_wav_16k_mono
from edge_agent.audio.wavfile import read_wav_16k_mono as read_wav_16k_mono
from edge_agent.audio.wavfile import write_wav_16k_mono as write_wav_16k_mono
from edge_agent.errors import AudioError

log = logging.getLogger(__name__)

FrameCallback = Callable[[bytes, float], None]
"""(frame, captured_at): captured_at is time.monotonic() when the frame's last sample was captured."""

LeadCallback = Callable[[bytes, float], None]
"""(pcm, captured_at): the next part of the frame being filled, in whole LEAD_BLOCK_MS blocks
(from the frame's start on, each part once), captured_at that of its last sample."""

LEAD_BLOCK_MS = 10
"""Leads come in whole blocks of this size: the earcon remover's block (audio/earcons.py)."""
LEAD_BLOCK_BYTES = SAMPLE_RATE_HZ * LEAD_BLOCK_MS // 1000 * 2
"""One such block of 16 kHz int16 audio."""


class AudioSource(Protocol):
    frames_captured: int
    overruns: int
    last_frame_at: float
    """time.monotonic() of the newest frame delivered (the watchdog watches it)."""
    opens_off_loop: bool
    """`stop` and `start` may block (a driver) and are safe on another thread: the daemon
    reopens such a device off the event loop (service/audio_watch.py). False: they use the
    loop's own calls and run on it."""

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameCallback) -> None:
        """Calls `on_frame` on `loop` for every frame, in order, once per capture period."""

    def hurry(self, until: float, on_lead: LeadCallback) -> None:
        """Until time.monotonic() `until`, hands over audio as soon as the device has it: besides
        the whole frames, the part of the frame still being filled goes to `on_lead` (on the loop,
        after the frames before it) as it comes. The press: the visitor's first syllable should
        not wait for the end of its frame, nor for the end of a capture period. A source that
        cannot (a file) ignores it and keeps to its period."""

    def stop(self) -> None: ...


@dataclass(frozen=True)
class SpeakerHealth:
    """What the output device itself tells of its health, for the fleet's metrics.

    None where a device has no such thing (a file or the null speaker has no clock to miss).
    A speaker that underflows often stutters for the visitor; one whose drop is off plays a
    device buffer's worth of the agent after every barge-in.
    """

    underflows: int | None = None
    """Device callbacks PortAudio flagged as output underflow (the device ran dry before them)."""
    errors: int | None = None
    """Exceptions caught in the device callback (each one played a period of silence)."""
    drops: int | None = None
    """Times a clear or pause emptied the device's own buffer."""
    drop_failures: int | None = None
    """Drops that raised (the device kept what it held: the visitor heard it out)."""
    drop_on: bool | None = None
    """False once restarts that missed the device's pace turned dropping off (see `DeviceDrop`)."""

    def as_metrics(self) -> dict[str, int | bool | None]:
        return {"speaker_underflows": self.underflows, "speaker_errors": self.errors, "speaker_drops": self.drops, "speaker_drop_failures": self.drop_failures, "speaker_drop_on": self.drop_on}


class AudioSink(Protocol):
    buffer: PlaybackBuffer
    opens_off_loop: bool
    """As AudioSource.opens_off_loop."""

    def start(self, loop: asyncio.AbstractEventLoop, on_drained: Callable[[], None]) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> SpeakerHealth:
        """The device's own counters (read from the event loop; plain int reads)."""

    def alive(self, stall_s: float) -> bool:
        """The device took audio within `stall_s` (a file or the null speaker always does)."""


class FileSource:
    """A recording played once at real-time pace, then digital silence (or again and again
    with `loop`, for demos and soak runs).

    It reads from the open file as it goes (a microphone holds no minutes of audio in memory),
    and like a sound card it hands over a capture period (`period_ms`, whole frames) at a time:
    one timer callback on the loop per period, no task or future per frame.
    """

    opens_off_loop = False  # its timer is the loop's

    def __init__(self, path: str | Path, frame_ms: int, period_ms: int | None = None, loop: bool = False) -> None:
        self.frame_s = frame_ms / 1000.0
        self.frames_per_period = max(1, (period_ms or frame_ms) // frame_ms)
        self.period_s = self.frame_s * self.frames_per_period
        self._path = path
        self._wav: wave.Wave_read | None = open_wav_16k_mono(path)
        self._samples_per_frame = SAMPLE_RATE_HZ * frame_ms // 1000
        self._silence = bytes(self._samples_per_frame * 2)
        self._loop_file = loop
        self._on_frame: FrameCallback = lambda _f, _at: None
        self._timer: asyncio.TimerHandle | None = None
        self.frames_captured = 0
        self.overruns = 0
        self.last_frame_at = time.monotonic()
        self.stalled = False
        """Test hook for the watchdog: when True no frames are delivered, as from a hung device."""

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameCallback) -> None:
        self._on_frame = on_frame  # last_frame_at moves only when a frame is really delivered
        if self._wav is None:  # reopened after stop(): the recording starts again
            self._wav = open_wav_16k_mono(self._path)
        due = loop.time() + self.period_s
        self._timer = loop.call_at(due, self._tick, loop, due)

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        """One capture period: deliver its frames, book the next period (catching up without
        drifting; after a stall of the whole loop the clock restarts instead of bursting). The
        period's last sample was captured at `due`, however late the loop runs this: a device's
        frames are stamped on its own clock, so a busy loop's wait is in capture -> wire."""
        captured_at = due
        due += self.period_s
        if loop.time() - due > 1.0:
            due = loop.time()
        self._timer = loop.call_at(due, self._tick, loop, due)
        try:
            self.step(captured_at)
        except Exception:  # a callback error must not end the capture
            log.exception("audio step failed")

    def hurry(self, until: float, on_lead: LeadCallback) -> None:
        """A recording has no device to read early from: it keeps to its capture period."""

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    def _read(self) -> bytes:
        w = self._wav
        if w is None:
            return self._silence
        try:
            frame = w.readframes(self._samples_per_frame)
            if len(frame) < len(self._silence) and self._loop_file:
                w.rewind()
                frame = w.readframes(self._samples_per_frame)
        except (OSError, wave.Error, EOFError) as exc:
            log.error("cannot read %s any more, silence from here: %s", self._path, exc)
            frame = b""
        if len(frame) < len(self._silence):  # the end of a recording played once
            return self._silence
        return frame

    def step(self, captured_at: float | None = None) -> None:
        """Delivers one period's frames, stamped as a device would have captured them: the last
        one at `captured_at` (time.monotonic(); default now), each earlier one a frame before."""
        if self.stalled:
            return
        self.last_frame_at = time.monotonic()
        now = self.last_frame_at if captured_at is None else min(captured_at, self.last_frame_at)
        n = self.frames_per_period
        for i in range(n):
            frame = self._read()
            self.frames_captured += 1
            self._on_frame(frame, now - (n - 1 - i) * self.frame_s)


class FileSink:
    """Plays into a WAV file (or nowhere, for `null`) at real-time pace.

    Clocked, not polled: a play-head (loop time) says how far the queued audio has played. The
    sink wakes only when the queue would run dry, and catches up just before every write or
    control, so the WAV holds exactly what a speaker would have played up to a `clear` or
    `pause`, to the sample, without a 100 Hz timer. Buffer changes come from the event loop
    (the daemon's actions); another thread's changes are handed to the loop.
    """

    opens_off_loop = False  # its play-head is a task on the loop

    def __init__(self, path: str | Path | None) -> None:
        self.buffer = PlaybackBuffer()
        self._wav: wave.Wave_write | None = None
        if path is not None:
            try:  # opened first: a `wave` object whose open failed says so again at exit, with a traceback
                Path(path).open("wb").close()
            except OSError as exc:
                raise AudioError(f"cannot write {path}: {exc.strerror or exc}") from None
            self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed in stop()
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(SAMPLE_RATE_HZ)
        self._on_drained: Callable[[], None] = lambda: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._task: asyncio.Task[None] | None = None
        self._head: float | None = None
        """Loop time at which the front of the queue plays; None while nothing plays."""
        self._drained = False

    def health(self) -> SpeakerHealth:
        return SpeakerHealth()

    def alive(self, stall_s: float) -> bool:
        return True

    def start(self, loop: asyncio.AbstractEventLoop, on_drained: Callable[[], None]) -> None:
        self._on_drained = on_drained
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._changed = asyncio.Event()
        self.buffer.before_change = self._before_change
        self._task = loop.create_task(self._run())

    def _before_change(self, what: str) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() != self._loop_thread:  # a test or tool writing from its thread
            loop.call_soon_threadsafe(self._changed.set)
            return
        self._catch_up(loop.time())
        if what != "write" or self._head is None:
            self._changed.set()  # the task re-plans after this change; more audio for a playing
            # speaker only moves the moment it runs dry, and the task finds that when it wakes

    def _catch_up(self, now: float) -> None:
        """Takes from the buffer what has played by `now`."""
        if self._head is None:
            return
        playable = self.buffer.playable_bytes
        if not playable and self.buffer.paused:  # a paused speaker plays no more of the agent: the
            self._head = now  # play-head waits with it (an earcon at the front still plays)
            return
        due = min(int((now - self._head) * SAMPLE_RATE_HZ) * 2, playable)
        if due > 0:
            pcm, drained = self.buffer.read(due)
            if self.buffer.tap is not None:
                self.buffer.tap(pcm, self._head)
            self._head += due / (2 * SAMPLE_RATE_HZ)
            if self._wav is not None:
                self._wav.writeframes(pcm)
            self._drained = self._drained or drained
        if not self.buffer.queued_bytes:
            self._head = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._changed.clear()
            self._catch_up(loop.time())
            if self._drained:
                self._drained = False
                if not self.buffer.queued_bytes:  # not refilled in the meantime
                    try:
                        self._on_drained()
                    except Exception:  # the speaker must keep playing whatever the handler hit
                        log.exception("playback drained handler failed")
            playable = self.buffer.playable_bytes
            if not playable:  # silent until a write or an unpause
                await self._changed.wait()
                continue
            if self._head is None:
                self._head = loop.time()  # audio came to an idle speaker: it starts playing now
            wake = loop.call_at(self._head + playable / (2 * SAMPLE_RATE_HZ), self._changed.set)
            await self._changed.wait()
            wake.cancel()

    def stop(self) -> None:
        if self._loop is not None and threading.get_ident() == self._loop_thread:
            self._catch_up(self._loop.time())  # what played until now belongs in the file
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._wav is not None:
            self._wav.close()
            self._wav = None
