"""VisitorMic: a microphone in which a visitor starts talking at the very instant of the press.

For the tests and benchmarks of the first seconds of a conversation. It hears room tone (quiet
noise, never digital silence, so the gate's noise floor is real) until `speak(pcm)` is called
with a time, then that speech from that exact sample on (mid-frame, as a real mouth would), then
room tone again. With `listen_to(buffer)` it also hears the kiosk's speaker (no echo cancellation,
no delay): earcons and agent audio land in the microphone when they play. Like a sound card it hands over a capture period of frames at a time, each
stamped with the time its last sample was captured. Frames that carry speech are remembered in
`speech_frames`, so an uplink tap can tell when the first byte of speech left the kiosk.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.devices import FrameCallback, PlaybackBuffer

ROOM_RMS = 60.0
"""Room tone level (int16 RMS): a quiet lobby through a USB microphone."""


def room_tone(seconds: float, seed: int = 7) -> bytes:
    """Deterministic quiet noise, 16 kHz mono int16."""
    rng = np.random.default_rng(seed)
    return bytes(np.clip(rng.normal(0.0, ROOM_RMS, int(seconds * SAMPLE_RATE_HZ)), -32768, 32767).astype("<i2").tobytes())


class VisitorMic:
    """An AudioSource of room tone into which `speak` drops speech at a given instant."""

    def __init__(self, frame_ms: int = 30, period_ms: int = 60) -> None:
        self.frame_s = frame_ms / 1000.0
        self.frame_bytes = SAMPLE_RATE_HZ * frame_ms // 1000 * 2
        self.frames_per_period = max(1, period_ms // frame_ms)
        self.period_s = self.frame_s * self.frames_per_period
        self._room = room_tone(2.0)
        self._room_at = 0
        self._lock = threading.Lock()
        self._speech = b""
        self._speech_at: float | None = None
        self._speech_pos = 0
        self.speech_frames: set[bytes] = set()
        self.frames_captured = 0
        self.overruns = 0
        self.last_frame_at = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._on_frame: FrameCallback = lambda _f, _at: None
        self._sounds: list[tuple[float, np.ndarray]] = []
        """What the speaker plays (time.monotonic() of its first sample, int16 samples)."""

    def listen_to(self, buffer: PlaybackBuffer) -> None:
        """Everything written to `buffer` reaches this microphone as it plays (queued audio first)."""
        write = buffer.write

        def write_and_hear(pcm: bytes) -> None:
            write(pcm)
            at = time.monotonic() + (buffer.queued_bytes - len(pcm)) / (2 * SAMPLE_RATE_HZ)
            self._sounds.append((at, np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2")))

        setattr(buffer, "write", write_and_hear)  # noqa: B010 - the room taps this one buffer

    def speak(self, pcm: bytes, at: float) -> None:
        """The visitor says `pcm` starting at time.monotonic() `at` (not in the past of what was
        already delivered: the frame holding `at` is still to come)."""
        with self._lock:
            self._speech, self._speech_at, self._speech_pos = pcm[: len(pcm) // 2 * 2], at, 0
            self.speech_frames = set()

    @property
    def speaking(self) -> bool:
        return self._speech_at is not None

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameCallback) -> None:
        self._on_frame = on_frame
        due = loop.time() + self.period_s
        self._last_stamp = time.monotonic()
        self._timer = loop.call_at(due, self._tick, loop, due)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        due += self.period_s
        if loop.time() - due > 1.0:
            due = loop.time()
        self._timer = loop.call_at(due, self._tick, loop, due)
        now = self.last_frame_at = time.monotonic()
        n = self.frames_per_period
        for i in range(n):
            stamp = now - (n - 1 - i) * self.frame_s
            frame = self._mix(self._frame(stamp), stamp)
            self.frames_captured += 1
            self._on_frame(frame, stamp)

    def _mix(self, frame: bytes, stamp: float) -> bytes:
        """Adds what the speaker played during this frame."""
        if not self._sounds:
            return frame
        x = np.frombuffer(frame, "<i2").astype(np.int32)
        n = len(x)
        first = stamp - self.frame_s
        for sound in list(self._sounds):
            at, pcm = sound
            off = round((first - at) * SAMPLE_RATE_HZ)  # index in the sound of the frame's first sample
            if off >= len(pcm):
                self._sounds.remove(sound)
            elif off + n > 0:
                lo, hi = max(0, off), min(len(pcm), off + n)
                x[lo - off : hi - off] += pcm[lo:hi]
        mixed = np.clip(x, -32768, 32767).astype("<i2").tobytes()
        if frame in self.speech_frames:
            self.speech_frames.add(mixed)
        return mixed

    def _room_bytes(self, nbytes: int) -> bytes:
        out = bytearray()
        while len(out) < nbytes:
            take = self._room[self._room_at : self._room_at + nbytes - len(out)]
            out += take
            self._room_at = (self._room_at + len(take)) % len(self._room)
        return bytes(out)

    def _frame(self, stamp: float) -> bytes:
        """The frame whose last sample is captured at `stamp`."""
        with self._lock:
            at, speech = self._speech_at, self._speech
            if at is None or stamp <= at:
                return self._room_bytes(self.frame_bytes)
            head = b""
            if self._speech_pos == 0:  # the frame in which the visitor starts: room tone first
                start_s = stamp - self.frame_s
                head_samples = min(self.frame_bytes // 2, max(0, round((at - start_s) * SAMPLE_RATE_HZ)))
                head = self._room_bytes(2 * head_samples)
            body = speech[self._speech_pos : self._speech_pos + self.frame_bytes - len(head)]
            self._speech_pos += len(body)
            if self._speech_pos >= len(speech):
                self._speech_at = None
            frame = head + body + self._room_bytes(self.frame_bytes - len(head) - len(body))
            if body:
                self.speech_frames.add(frame)
            return frame


def lost_ms(speech: bytes, uplink: bytes, chunk_ms: int = 10) -> int:
    """How much of `speech` is not in `uplink`, in `chunk_ms` pieces: each piece of the speech
    (real speech never repeats itself to the byte) is searched for in what the agent received."""
    n = SAMPLE_RATE_HZ * chunk_ms // 1000 * 2
    return sum(chunk_ms for off in range(0, len(speech) - n + 1, n) if speech[off : off + n] not in uplink)
