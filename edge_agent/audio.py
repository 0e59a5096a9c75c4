"""Audio adapters: the small interfaces the daemon uses, the playback buffer, and file/null devices.

`AudioSource` delivers fixed frames of 16 kHz mono int16 to a callback on the event loop;
`AudioSink` plays agent audio through a `PlaybackBuffer` that honours clear/pause/unpause at
once. The PyAudio implementations live in `pyaudio_io`; this module holds what every device
shares plus the file devices used by the demo and tests:

- `file:PATH.wav` input is played at real-time pace once, then continues as digital silence,
  like a microphone in a quiet room; `loop:PATH.wav` plays it again and again;
- `file:PATH.wav` output writes what the speaker played (agent audio and earcons), at real-time
  pace; `null` output plays into nothing at real-time pace.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import wave
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.errors import AudioError

log = logging.getLogger(__name__)

FrameCallback = Callable[[bytes], None]


class AudioSource(Protocol):
    frames_captured: int
    overruns: int
    last_frame_at: float
    """time.monotonic() of the newest frame delivered (the watchdog watches it)."""

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameCallback) -> None: ...

    def stop(self) -> None: ...


class AudioSink(Protocol):
    buffer: PlaybackBuffer

    def start(self, loop: asyncio.AbstractEventLoop, on_drained: Callable[[], None]) -> None: ...

    def stop(self) -> None: ...


class PlaybackBuffer:
    """Thread-safe queue of agent audio between the event loop and the output device.

    `read` is called from the device's thread (PortAudio callback) or a pacing task; it never
    blocks for long (one short lock) and pads with silence. `clear` drops everything queued, so
    after it the device only has its own small buffer left to play.
    """

    def __init__(self, max_queued_s: float = 120.0) -> None:
        self._chunks: deque[bytes] = deque()
        self._offset = 0
        self._queued = 0
        self._lock = threading.Lock()
        self._max_bytes = int(max_queued_s * SAMPLE_RATE_HZ) * 2
        self.paused = False
        self.dropped_bytes = 0
        self.underruns = 0
        self.played_bytes = 0
        self.cleared_at: float | None = None
        """time.monotonic() of the last clear (the barge-in benchmark reads it)."""
        self.on_write: Callable[[], None] | None = None
        """Called after each write (on the writer's thread): lets an idle sink sleep until audio comes."""

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def write(self, pcm: bytes) -> None:
        if len(pcm) % 2:
            pcm = pcm[:-1]  # an odd trailing byte is half a sample: never let it shift the stream
        if not pcm:
            return
        with self._lock:
            self._chunks.append(pcm)
            self._queued += len(pcm)
            while self._queued > self._max_bytes and len(self._chunks) > 1:
                gone = self._chunks.popleft()
                self._queued -= len(gone) - self._offset
                self.dropped_bytes += len(gone) - self._offset
                self._offset = 0
        if self.on_write is not None:
            self.on_write()

    def control(self, command: str) -> None:
        """'clear', 'pause' or 'unpause', effective for the very next `read`."""
        with self._lock:
            if command == "clear":
                self._chunks.clear()
                self._offset = 0
                self._queued = 0
                self.paused = False
                self.cleared_at = time.monotonic()
            elif command == "pause":
                self.paused = True
            elif command == "unpause":
                self.paused = False

    def read(self, nbytes: int) -> tuple[bytes, bool]:
        """Up to `nbytes` of audio padded with silence; the flag says it drained just now."""
        with self._lock:
            if self.paused or not self._queued:
                return bytes(nbytes), False
            parts = []
            need = nbytes
            while need and self._chunks:
                head = self._chunks[0]
                take = head[self._offset : self._offset + need]
                parts.append(take)
                need -= len(take)
                self._offset += len(take)
                if self._offset >= len(head):
                    self._chunks.popleft()
                    self._offset = 0
            got = nbytes - need
            self._queued -= got
            self.played_bytes += got
            drained = self._queued == 0
            if need:
                parts.append(bytes(need))
                if not drained:
                    self.underruns += 1
            return b"".join(parts), drained


def read_wav_16k_mono(path: str | Path) -> bytes:
    """PCM frames of a 16 kHz mono 16-bit WAV; anything else is an AudioError naming the file."""
    try:
        with wave.open(str(path), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE_HZ, 1, 2):
                raise AudioError(f"{path}: need 16 kHz mono 16-bit WAV, got {w.getframerate()} Hz, {w.getnchannels()} ch, {8 * w.getsampwidth()} bit")
            return w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise AudioError(f"cannot read {path}: {exc}") from None


def write_wav_16k_mono(path: str | Path, pcm: bytes) -> Path:
    """Writes 16 kHz mono 16-bit PCM as a WAV file (recordings for tests, demo, soak)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE_HZ)
        w.writeframes(pcm)
    return Path(path)


class _Paced:
    """A task that runs `step()` every `period_s` of loop time, catching up without drifting."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._task: asyncio.Task[None] | None = None

    def step(self) -> None:
        raise NotImplementedError

    async def until_busy(self) -> bool:
        """Waits while there is nothing to do; True if it waited (the clock then restarts)."""
        return False

    def start_pacing(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            if await self.until_busy():  # slept while idle: restart the clock
                due = loop.time()
            due += self.period_s
            behind = loop.time() - due
            if behind > 1.0:  # the loop was stalled: restart the clock instead of bursting
                due = loop.time()
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                self.step()
            except Exception:  # a device error must not end the pacing task silently
                log.exception("audio step failed")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


class FileSource(_Paced):
    """A recording played once at real-time pace, then digital silence (or again and again
    with `loop`, for demos and soak runs)."""

    def __init__(self, path: str | Path, frame_ms: int, loop: bool = False) -> None:
        super().__init__(frame_ms / 1000.0)
        self._pcm = read_wav_16k_mono(path)
        self._frame_bytes = SAMPLE_RATE_HZ * frame_ms // 1000 * 2
        self._silence = bytes(self._frame_bytes)
        self._pos = 0
        self._loop_file = loop
        self._on_frame: FrameCallback = lambda _f: None
        self.frames_captured = 0
        self.overruns = 0
        self.last_frame_at = time.monotonic()
        self.stalled = False
        """Test hook for the watchdog: when True no frames are delivered, as from a hung device."""

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameCallback) -> None:
        self._on_frame = on_frame  # last_frame_at moves only when a frame is really delivered
        self.start_pacing(loop)

    def step(self) -> None:
        if self.stalled:
            return
        if self._loop_file and self._pos + self._frame_bytes > len(self._pcm):
            self._pos = 0
        if self._pos + self._frame_bytes <= len(self._pcm):
            frame = self._pcm[self._pos : self._pos + self._frame_bytes]
            self._pos += self._frame_bytes
        else:
            frame = self._silence
        self.frames_captured += 1
        self.last_frame_at = time.monotonic()
        self._on_frame(frame)


class FileSink(_Paced):
    """Plays into a WAV file (or nowhere, for `null`) at real-time pace, 10 ms per step."""

    STEP_MS = 10

    def __init__(self, path: str | Path | None) -> None:
        super().__init__(self.STEP_MS / 1000.0)
        self.buffer = PlaybackBuffer()
        self._wav: wave.Wave_write | None = None
        if path is not None:
            try:
                self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed in stop()
            except OSError as exc:
                raise AudioError(f"cannot write {path}: {exc.strerror or exc}") from None
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(SAMPLE_RATE_HZ)
        self._step_bytes = SAMPLE_RATE_HZ * self.STEP_MS // 1000 * 2
        self._on_drained: Callable[[], None] = lambda: None

    def start(self, loop: asyncio.AbstractEventLoop, on_drained: Callable[[], None]) -> None:
        self._on_drained = on_drained
        self._audio_came = asyncio.Event()
        self._loop = loop
        self.buffer.on_write = self._wake
        self.start_pacing(loop)

    def _wake(self) -> None:
        """From PlaybackBuffer.write, on any thread: end an idle sleep."""
        self._loop.call_soon_threadsafe(self._audio_came.set)

    async def until_busy(self) -> bool:
        # no agent audio queued: a speaker that plays nothing sleeps until a write wakes it
        if self.buffer.queued_bytes:
            return False
        self._audio_came.clear()
        if not self.buffer.queued_bytes:
            await self._audio_came.wait()
        return True

    def step(self) -> None:
        if not self.buffer.queued_bytes:
            return
        pcm, drained = self.buffer.read(self._step_bytes)
        if self._wav is not None and not self.buffer.paused:
            self._wav.writeframes(pcm)
        if drained:
            self._on_drained()

    def stop(self) -> None:
        super().stop()
        if self._wav is not None:
            self._wav.close()
            self._wav = None


def open_source(spec: str, frame_ms: int) -> AudioSource:
    """`file:PATH.wav` (once), `loop:PATH.wav` (repeated) or a PyAudio device ("default", a name or an index)."""
    if spec.startswith("file:"):
        return FileSource(spec[5:], frame_ms)
    if spec.startswith("loop:"):
        return FileSource(spec[5:], frame_ms, loop=True)
    from edge_agent.pyaudio_io import PyAudioSource

    return PyAudioSource(spec, frame_ms)


def open_sink(spec: str, buffer_ms: int) -> AudioSink:
    """`file:PATH.wav`, `null`, or a PyAudio device ("default", a name or an index)."""
    if spec == "null":
        return FileSink(None)
    if spec.startswith("file:"):
        return FileSink(spec[5:])
    from edge_agent.pyaudio_io import PyAudioSink

    return PyAudioSink(spec, buffer_ms)
