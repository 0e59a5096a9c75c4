"""A simulated room for echo tests: what the kiosk's speaker plays comes back into its microphone.

`Room` models the path speaker -> air -> microphone: the speaker's soft clipping (a small
speaker driven hard), a room impulse response (direct sound plus an exponentially decaying
reverberant tail), a delay, the two devices' clock drift (the speaker's crystal runs `drift_ppm`
fast), plus the visitor's speech and background noise at the microphone. It keeps the echo and
the visitor's part apart, so a benchmark knows what was echo and what was the visitor.

`simulate` runs it offline over whole tracks (echoscore.py scores what the kiosk would send of
them); `RoomSpeaker` / `RoomMicrophone` are an AudioSink and AudioSource pair on one clock, so
the whole daemon can run in the room against the agent simulator: the microphone's period timer
advances the speaker too, reports what the speaker played (with the time it was heard) to the
playback buffer's tap, and captures the room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.devices import FrameCallback, SpeakerHealth
from edge_agent.audio.playback import PlaybackBuffer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EchoPath:
    """One speaker/room/microphone set-up."""

    delay_ms: float = 45.0
    """Air plus device latency the kiosk's timestamps do not see."""
    rt60_s: float = 0.25
    rir_ms: int = 150
    reverb: float = 0.05
    """Amplitude of the diffuse tail against the direct sound (1.0); 0.05 is a speaker 10-50 cm
    from the mic in an ordinary room (direct sound about as loud as all the reverberation)."""
    gain: float = 0.5
    """Echo level at the mic relative to the speaker signal (a speaker 10-50 cm away is loud)."""
    drive: float = 1.5
    """Soft clipping: tanh(drive * x) / drive; 1.5 takes full-scale peaks down by about 2 dB."""
    drift_ppm: float = 0.0
    """How much faster the speaker's sample clock runs than the microphone's."""
    noise_rms: float = 20.0
    seed: int = 0


def make_rir(rt60_s: float, length_ms: int, seed: int, reverb: float = 0.05) -> np.ndarray:
    """Direct sound, a couple of early reflections and a decaying diffuse tail; unit energy."""
    rng = np.random.default_rng(seed)
    n = max(1, SAMPLE_RATE_HZ * length_ms // 1000)
    t = np.arange(n) / SAMPLE_RATE_HZ
    h = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s) * reverb
    h[0] += 1.0
    for _ in range(3):
        k = int(rng.integers(SAMPLE_RATE_HZ // 500, max(SAMPLE_RATE_HZ // 500 + 1, n // 4)))
        h[k] += float(rng.uniform(-0.5, 0.5))
    out: np.ndarray = h / np.sqrt(np.square(h).sum())
    return out


class Room:
    """The acoustic path; `play` what the speaker plays, `capture` what the microphone hears."""

    def __init__(self, path: EchoPath, rir: np.ndarray | None = None, keep_tracks: bool = False) -> None:
        self.path = path
        self.rir = make_rir(path.rt60_s, path.rir_ms, path.seed, path.reverb) if rir is None else rir
        self._hist = np.zeros(len(self.rir) - 1)
        self._air = np.zeros(0)
        self._air_base = 0
        """Speaker-clock index of `_air[0]`; `_air` is the speaker's sound as it reaches the mic."""
        self.played = 0
        self.captured = 0
        self._rng = np.random.default_rng(path.seed + 1)
        self._near: list[tuple[int, np.ndarray]] = []
        self.keep_tracks = keep_tracks
        self.echo_track: list[np.ndarray] = []
        self.near_track: list[np.ndarray] = []

    def play(self, far: np.ndarray) -> None:
        """Samples the speaker played (on its own clock), in order."""
        x = far.astype(np.float64) / 32768.0
        d = self.path.drive
        x = np.tanh(d * x) / d * 32768.0
        y = np.convolve(np.concatenate((self._hist, x)), self.rir, mode="valid") * self.path.gain
        if len(self._hist):
            self._hist = np.concatenate((self._hist, x))[-len(self._hist) :]
        self._air = np.concatenate((self._air, y))
        self.played += len(far)

    def talk(self, pcm: bytes, at_s: float | None = None) -> None:
        """The visitor says `pcm`, starting at `at_s` of mic time (now when None)."""
        at = self.captured if at_s is None else int(at_s * SAMPLE_RATE_HZ)
        self._near.append((at, np.frombuffer(pcm, dtype="<i2").astype(np.float64)))

    def capture(self, n: int) -> np.ndarray:
        """The next `n` microphone samples: echo + visitor + noise, int16."""
        p = self.path
        j = np.arange(self.captured, self.captured + n, dtype=np.float64)
        pos = (j - p.delay_ms * SAMPLE_RATE_HZ / 1000.0) * (1.0 + p.drift_ppm * 1e-6) - self._air_base
        echo = np.interp(pos, np.arange(len(self._air)), self._air, left=0.0, right=0.0) if len(self._air) else np.zeros(n)
        near = np.zeros(n)
        for at, speech in self._near:
            lo, hi = max(at, self.captured), min(at + len(speech), self.captured + n)
            if hi > lo:
                near[lo - self.captured : hi - self.captured] += speech[lo - at : hi - at]
        self._near = [(at, s) for at, s in self._near if at + len(s) > self.captured + n]
        self.captured += n
        keep_from = int(pos[0]) - SAMPLE_RATE_HZ // 10 if len(pos) else 0
        if keep_from > 0:  # what the mic can no longer hear is dropped
            self._air = self._air[keep_from:]
            self._air_base += keep_from
        if self.keep_tracks:
            self.echo_track.append(echo.copy())
            self.near_track.append(near.copy())
        mic = echo + near + self._rng.standard_normal(n) * p.noise_rms
        out: np.ndarray = np.clip(np.rint(mic), -32768, 32767).astype(np.int16)
        return out

    def track(self, which: str) -> np.ndarray:
        """The echo or near (visitor) part of everything captured so far (keep_tracks=True)."""
        parts = self.echo_track if which == "echo" else self.near_track
        return np.concatenate(parts) if parts else np.zeros(0)


def simulate(far: bytes, path: EchoPath, near: bytes | None = None, near_at_s: float = 0.0, block_ms: int = 10) -> tuple[bytes, Room]:
    """The microphone track of a room where the speaker plays `far` (and the visitor says `near`
    from `near_at_s`), as long as `far`; the Room keeps the echo and visitor parts apart."""
    room = Room(path, keep_tracks=True)
    if near:
        room.talk(near, near_at_s)
    x = np.frombuffer(far, dtype="<i2")
    n = SAMPLE_RATE_HZ * block_ms // 1000
    out = []
    ratio = 1.0 + path.drift_ppm * 1e-6
    for start in range(0, len(x) // n * n, n):
        due = min(len(x), int((start + n) * ratio) + n)  # the speaker runs ahead by a block
        if due > room.played:
            room.play(x[room.played : due])
        out.append(room.capture(n))
    return np.concatenate(out).astype("<i2").tobytes(), room


class RoomSpeaker:
    """An AudioSink playing into a Room; the paired RoomMicrophone's clock drives it."""

    opens_off_loop = False

    def __init__(self, room: Room, block_ms: int = 20) -> None:
        self.room = room
        self.buffer = PlaybackBuffer()
        self.block = SAMPLE_RATE_HZ * block_ms // 1000
        self._t0: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_drained: Callable[[], None] = lambda: None

    def start(self, loop: asyncio.AbstractEventLoop, on_drained: Callable[[], None]) -> None:
        self._loop, self._on_drained = loop, on_drained

    def health(self) -> SpeakerHealth:
        return SpeakerHealth()

    def alive(self, stall_s: float) -> bool:
        return True

    def sync(self, t0: float) -> None:
        """Speaker and microphone start together (the Room counts both from the same instant)."""
        if self._t0 is None:
            self._t0 = t0

    def advance(self, now: float) -> None:
        """Plays what the speaker's (drifting) clock says is due by `now`, block by block."""
        ratio = 1.0 + self.room.path.drift_ppm * 1e-6
        if self._t0 is None:
            self._t0 = now
        rate = SAMPLE_RATE_HZ * ratio
        drained = False
        while (now - self._t0) * rate + self.block - self.room.played >= self.block:  # a block ahead
            played_at = self._t0 + self.room.played / rate
            pcm, d = self.buffer.read(2 * self.block)
            drained = drained or d
            tap = self.buffer.tap
            if tap is not None:
                tap(pcm, played_at)
            self.room.play(np.frombuffer(pcm, dtype="<i2"))
        if drained and self._loop is not None:
            self._loop.call_soon(self._on_drained)

    def stop(self) -> None:
        pass


class RoomMicrophone:
    """An AudioSource capturing a Room, a capture period at a time, paced by the loop's clock."""

    opens_off_loop = False  # its timer is the loop's

    def __init__(self, room: Room, speaker: RoomSpeaker, frame_ms: int = 30, period_ms: int = 60) -> None:
        self.room = room
        self.speaker = speaker
        self.frame = SAMPLE_RATE_HZ * frame_ms // 1000
        self.period_s = period_ms / 1000.0
        self.frames_captured = 0
        self.overruns = 0
        self.last_frame_at = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._t0 = 0.0
        self._on_frame: FrameCallback = lambda _f, _at: None

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameCallback) -> None:
        self._on_frame = on_frame
        self._t0 = loop.time() - self.room.captured / SAMPLE_RATE_HZ
        self.speaker.sync(self._t0)
        self._timer = loop.call_at(loop.time() + self.period_s, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self._timer = loop.call_at(now + self.period_s, self._tick, loop)
        try:
            self.step(now)
        except Exception:  # a callback error must not end the capture
            log.exception("room step failed")

    def step(self, now: float) -> None:
        """The speaker plays and the microphone captures what is due by `now` (loop time, or a
        made-up clock for faster-than-real-time runs after `start_at`)."""
        self.speaker.advance(now)
        while (now - self._t0) * SAMPLE_RATE_HZ - self.room.captured >= self.frame:
            pcm = self.room.capture(self.frame).tobytes()
            self.frames_captured += 1
            self.last_frame_at = time.monotonic()
            self._on_frame(pcm, self._t0 + (self.room.captured - 1) / SAMPLE_RATE_HZ)

    def start_at(self, t0: float, on_frame: FrameCallback) -> None:
        """Starts without a loop: the caller drives `step` with its own clock."""
        self._on_frame, self._t0 = on_frame, t0
        self.speaker.sync(t0)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
