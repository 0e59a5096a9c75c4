"""VisitorMic: a microphone in which a visitor starts talking at the very instant of the press.

For the tests and benchmarks of the first seconds of a conversation. It hears room tone (quiet
noise, never digital silence, so the gate's noise floor is real) until `speak(pcm)` is called
with a time, then that speech from that exact sample on (mid-frame, as a real mouth would), then
room tone again. With `listen_to(buffer)` it also hears the kiosk's speaker (no echo cancellation,
no delay): earcons and agent audio land in the microphone when they play. Like a sound card it hands over a capture period of frames at a time, each
stamped with the time its last sample was captured (and, hurried by a press, the frame being
filled block by block). What carries speech is remembered (`has_speech`), so an uplink tap can
tell when the first byte of speech left the kiosk.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.devices import LEAD_BLOCK_BYTES, FrameCallback, LeadCallback
from edge_agent.audio.playback import PlaybackBuffer

ROOM_RMS = 60.0
"""Room tone level (int16 RMS): a quiet lobby through a USB microphone."""


def room_tone(seconds: float, seed: int = 7) -> bytes:
    """Deterministic quiet noise, 16 kHz mono int16."""
    rng = np.random.default_rng(seed)
    return bytes(np.clip(rng.normal(0.0, ROOM_RMS, int(seconds * SAMPLE_RATE_HZ)), -32768, 32767).astype("<i2").tobytes())


class VisitorMic:
    """An AudioSource of room tone into which `speak` drops speech at a given instant.

    Frames lie on a fixed grid from `start` (frame k ends frame_ms after frame k-1); a capture
    period's frames come at once, like a sound card's. `hurry` behaves as PyAudioSource's: every
    `block_ms` (the device's buffer; 0: the period) the part of the frame captured so far goes
    to `on_lead`."""

    opens_off_loop = False  # its timer is the loop's

    def __init__(self, frame_ms: int = 30, period_ms: int = 60, block_ms: int = 0) -> None:
        self.frame_s = frame_ms / 1000.0
        self.frame_bytes = SAMPLE_RATE_HZ * frame_ms // 1000 * 2
        self.frames_per_period = max(1, period_ms // frame_ms)
        self.period_s = self.frame_s * self.frames_per_period
        self.block_s = min(self.period_s, (block_ms or period_ms) / 1000.0)
        self._room = room_tone(2.0)
        self._room_at = 0
        self._lock = threading.Lock()
        self._speech = b""
        self._speech_at: float | None = None
        self._speech_pos = 0
        self.speech_frames: set[bytes] = set()
        """Frames (as delivered) that carry some of the visitor's speech."""
        self.speech_leads: set[bytes] = set()
        """Leads (`hurry`) that carry some of it."""
        self.frames_captured = 0
        self.overruns = 0
        self.leads = 0
        """Parts of frames handed over early (`hurry`)."""
        self.last_frame_at = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._hurry_timer: asyncio.TimerHandle | None = None
        self._on_frame: FrameCallback = lambda _f, _at: None
        self._on_lead: LeadCallback | None = None
        self._hurry_until = 0.0
        self._grid0 = 0.0  # loop time at which frame 0 starts
        self._delivered = 0  # frames handed over so far: the index of the frame being filled
        self._filling: tuple[int, bytes, int] | None = None  # (index, frame, first speech byte or -1)
        self._lead_sent = 0  # bytes of the frame being filled handed to on_lead
        self._sounds: list[tuple[float, np.ndarray]] = []
        """What the speaker plays (time.monotonic() of its first sample, int16 samples)."""

    def listen_to(self, buffer: PlaybackBuffer) -> None:
        """Everything written to `buffer` reaches this microphone as it plays (queued audio first)."""
        write = buffer.write

        def write_and_hear(pcm: bytes, reply: bool = False, cue: bool = False) -> None:
            write(pcm, reply, cue)
            at = time.monotonic() + (buffer.queued_bytes - len(pcm)) / (2 * SAMPLE_RATE_HZ)
            self._sounds.append((at, np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2")))

        setattr(buffer, "write", write_and_hear)  # noqa: B010 - the room taps this one buffer

    def speak(self, pcm: bytes, at: float) -> None:
        """The visitor says `pcm` starting at time.monotonic() `at` (not in the past of what was
        already delivered: the frame holding `at` is still to come; one that `hurry` has begun
        to hand over is made already, and the speech then starts with the next frame)."""
        with self._lock:
            self._speech, self._speech_at, self._speech_pos = pcm[: len(pcm) // 2 * 2], at, 0
            self.speech_frames = set()
            self.speech_leads = set()

    @property
    def speaking(self) -> bool:
        return self._speech_at is not None

    def has_speech(self, chunk: bytes) -> bool:
        """Whether `chunk`, as the uplink sent it, carries some of the speech: a frame with speech,
        a lead with speech, or what is left of a frame with speech after its leads went."""
        return bool(chunk) and (chunk in self.speech_frames or chunk in self.speech_leads or any(f.endswith(chunk) for f in self.speech_frames))

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameCallback) -> None:
        self._on_frame = on_frame
        self._complete_filling()
        self._grid0 = loop.time()
        self._delivered = 0
        due = self._grid0 + self.period_s
        self._timer = loop.call_at(due, self._tick, loop, due)

    def hurry(self, until: float, on_lead: LeadCallback) -> None:
        """See AudioSource.hurry (on the loop; a stopped microphone has nothing to hand over)."""
        if self._timer is None:
            return
        loop = asyncio.get_running_loop()
        self._on_lead, self._hurry_until = on_lead, until
        last = self._grid0 + int((loop.time() - self._grid0) / self.block_s) * self.block_s
        self._deliver(last)  # the device's latest block is in already: it goes now
        if self._hurry_timer is None:
            at = last + self.block_s
            self._hurry_timer = loop.call_at(at, self._hurry_tick, loop, at)

    def stop(self) -> None:
        for timer in (self._timer, self._hurry_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._hurry_timer = None

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if loop.time() - due > 1.0:  # the loop stalled: the grid starts again rather than burst
            self._complete_filling()  # a frame whose start went ahead comes first
            self._grid0, self._delivered, self._filling, self._lead_sent, due = loop.time() - self.period_s, 0, None, 0, loop.time()
        self._timer = loop.call_at(due + self.period_s, self._tick, loop, due + self.period_s)
        self._deliver(due)

    def _hurry_tick(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        self._hurry_timer = None
        self._deliver(at)
        if at + self.block_s < self._hurry_until:
            self._hurry_timer = loop.call_at(at + self.block_s, self._hurry_tick, loop, at + self.block_s)

    def _complete_filling(self) -> None:
        """Before the grid starts again (a stall, a restart): the frame being filled, if its start
        went to on_lead, is handed over whole, as a device's next frame would be (its rest must
        follow its start: the daemon sends only that)."""
        if self._lead_sent:
            self._deliver(self._grid0 + (self._delivered + 1) * self.frame_s)

    def _deliver(self, upto: float) -> None:
        """Hands over every frame captured by loop time `upto` (and, hurried, the part since)."""
        self.last_frame_at = time.monotonic()
        while self._grid0 + (self._delivered + 1) * self.frame_s <= upto + 1e-6:
            frame, speech_from = self._frame_at(self._delivered)
            frame = self._mix(frame, self._grid0 + (self._delivered + 1) * self.frame_s)
            if speech_from >= 0:
                self.speech_frames.add(frame)
            self._delivered += 1
            self._filling, self._lead_sent = None, 0
            self.frames_captured += 1
            self._on_frame(frame, self._grid0 + self._delivered * self.frame_s)
        if self._on_lead is None or upto >= self._hurry_until:
            return
        block = LEAD_BLOCK_BYTES
        start_s = self._grid0 + self._delivered * self.frame_s
        have = min(self.frame_bytes, round((upto - start_s) * SAMPLE_RATE_HZ) * 2) // block * block
        if have <= self._lead_sent:
            return
        frame, speech_from = self._frame_at(self._delivered)
        # what the speaker played so far is in it (a sound that starts later is not yet: it
        # cannot reach back into what was captured before it was written)
        lead = self._mix(frame, start_s + self.frame_s)[self._lead_sent : have]
        if 0 <= speech_from < have:
            self.speech_leads.add(lead)
        self._lead_sent = have
        self.leads += 1
        self._on_lead(lead, start_s + have / (2 * SAMPLE_RATE_HZ))

    def _frame_at(self, index: int) -> tuple[bytes, int]:
        """Frame `index` of the grid as the visitor and the room make it (made once, when first
        needed; without the speaker) and its first speech byte (-1: none)."""
        if self._filling is None or self._filling[0] != index:
            self._filling = (index, *self._frame(self._grid0 + (index + 1) * self.frame_s))
        return self._filling[1], self._filling[2]

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
        return np.clip(x, -32768, 32767).astype("<i2").tobytes()

    def _room_bytes(self, nbytes: int) -> bytes:
        out = bytearray()
        while len(out) < nbytes:
            take = self._room[self._room_at : self._room_at + nbytes - len(out)]
            out += take
            self._room_at = (self._room_at + len(take)) % len(self._room)
        return bytes(out)

    def _frame(self, stamp: float) -> tuple[bytes, int]:
        """The frame whose last sample is captured at `stamp`, and the offset of its first byte
        of speech (-1: none)."""
        with self._lock:
            at, speech = self._speech_at, self._speech
            if at is None or stamp <= at:
                return self._room_bytes(self.frame_bytes), -1
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
            return frame, len(head) if body else -1


def lost_ms(speech: bytes, uplink: bytes, chunk_ms: int = 10) -> int:
    """How much of `speech` is not in `uplink`, in `chunk_ms` pieces: each piece of the speech
    (real speech never repeats itself to the byte) is searched for in what the agent received."""
    n = SAMPLE_RATE_HZ * chunk_ms // 1000 * 2
    return sum(chunk_ms for off in range(0, len(speech) - n + 1, n) if speech[off : off + n] not in uplink)
