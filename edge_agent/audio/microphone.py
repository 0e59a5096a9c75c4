"""PyAudioSource: the microphone through PyAudio (PortAudio) in callback mode.

The callback runs on PortAudio's thread and never blocks: it converts the device's buffer with
numpy (channel pick, polyphase resampling when the device cannot do 16 kHz mono), cuts it into
fixed frames into a bounded deque (overruns counted) and schedules one drain on the event loop
with call_soon_threadsafe once a capture period's frames are in. After a press it can hand over
the frame still being filled (`hurry`, see AudioSource.hurry). Devices are opened as the
speaker's are (audio/pyaudio_io.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio import rescan
from edge_agent.audio.alsascan import want_device
from edge_agent.audio.devices import LEAD_BLOCK_BYTES, FrameCallback, LeadCallback
from edge_agent.audio.pyaudio_io import _close, _find_or_release, _new_pa, _open_and_start, _pyaudio
from edge_agent.audio.resample import Resampler, to_mono


class PyAudioSource:
    """A microphone; frames of `frame_ms` reach `on_frame` on the event loop, `period_ms` of
    them at a time. The device hands over `block_ms` buffers; the callback collects them
    (resampled, cut into frames) and wakes the loop once a period's frames are in, or at every
    block while `hurry` asks for the frame being filled."""

    opens_off_loop = True  # PortAudio's scan and open may take seconds, or hang in the driver

    def __init__(self, spec: str, frame_ms: int, period_ms: int | None = None, max_queued_frames: int = 50, block_ms: int = 0) -> None:
        """`max_queued_frames` bounds what waits for the event loop (50 x 30 ms = 1.5 s);
        `block_ms`: the device's buffer (0: the period; see AudioSettings.capture_block_ms)."""
        self.spec = spec
        want_device(spec)
        self.frame_bytes = SAMPLE_RATE_HZ * frame_ms // 1000 * 2
        self.frame_ms = frame_ms
        self._frame_s = frame_ms / 1000.0
        self.period_ms = max(frame_ms, period_ms or frame_ms)
        self.block_ms = min(self.period_ms, block_ms or self.period_ms)
        self._frames_per_period = self.period_ms // frame_ms
        self._frames: deque[tuple[bytes, float]] = deque(maxlen=max_queued_frames)
        self._pending = bytearray()
        self._pending_at = 0.0  # time.monotonic() of the newest sample in _pending
        self._cut_bytes = 0  # bytes of all frames cut so far: where _pending starts in the stream
        self._lead_upto = 0  # stream position up to which the frame being filled went to on_lead
        self._head_led = False  # the oldest queued frame is one whose start went to on_lead
        self._hurry_until = 0.0
        self._on_lead: LeadCallback | None = None
        self._scheduled = False
        self._lock = threading.Lock()
        self.frames_captured = 0
        self.overruns = 0
        """Frames lost: PortAudio input overflows plus frames dropped because the loop lagged."""
        self.frames_dropped = 0
        self.frames_cut = 0
        """Frames cut from the device's audio; each is either delivered or counted as dropped."""
        self.leads = 0
        """Parts of frames handed over early (`hurry`)."""
        self.callback_errors = 0
        self.last_frame_at = time.monotonic()
        self._pa: Any = None
        self._stream: Any = None

    def start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameCallback) -> None:
        """Opens and starts the device; again after `stop` (the audio watch's reopen, maybe minutes
        later, in another visitor's conversation): what the device had captured before and never
        handed over (less than a capture period) is old audio by then, and goes, counted as dropped.
        Devices open in the meantime may close for the scan (audio/rescan.py)."""
        rescan.open_with_scan(self, lambda: self._start(loop, on_frame))

    def pause_for_scan(self) -> None:
        self.stop()

    def resume_after_scan(self) -> None:
        self.start(self._loop, self._on_frame)

    def _start(self, loop: asyncio.AbstractEventLoop, on_frame: FrameCallback) -> None:
        with self._lock:
            self.frames_dropped += len(self._frames)
            self._frames.clear()
            self._head_led = False
            self._cut_bytes += len(self._pending)  # the part of a frame being filled goes too: the
            self._lead_upto = max(self._lead_upto, self._cut_bytes)  # stream positions move past it
            self._pending.clear()
            self._hurry_until = 0.0
        pyaudio = _pyaudio()
        info = _find_or_release(pa := _new_pa(pyaudio, hide=True), self.spec, want_input=True)
        self._loop, self._on_frame = loop, on_frame
        self._continue, self._overflow = pyaudio.paContinue, pyaudio.paInputOverflow
        self._stream = _open_and_start(pa, info, True, self.block_ms, self._callback, self._prepare)
        self._pa = pa
        rescan.opened(self)

    def hurry(self, until: float, on_lead: LeadCallback) -> None:
        """See AudioSource.hurry: until `until` the loop wakes at every device block (a
        microphone that is not open, gone or never found, has nothing to hand over)."""
        if self._stream is None:
            return
        with self._lock:
            self._on_lead, self._hurry_until = on_lead, until
            self._lead_upto = max(self._lead_upto, self._cut_bytes)
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:  # what the device handed over since the last period goes now, not a block later
            self._loop.call_soon(self._drain)

    def _prepare(self, stream: Any, rate: int, channels: int) -> None:
        """Before the stream starts (its callbacks may come during the start): the device's format."""
        self._channels = channels
        self._resampler = Resampler(rate, SAMPLE_RATE_HZ)

    def _callback(self, in_data: bytes | None, frame_count: int, time_info: Any, status: int) -> tuple[None, int]:
        try:
            if status & self._overflow:
                self.overruns += 1
            if in_data:
                mono = to_mono(np.frombuffer(in_data, dtype="<i2"), self._channels)
                resampled = self._resampler.process(mono).tobytes()
                fb = self.frame_bytes
                now = time.monotonic()
                with self._lock:
                    self._pending += resampled
                    self._pending_at = now
                    while len(self._pending) >= fb:
                        if len(self._frames) == self._frames.maxlen:
                            self.overruns += 1  # the loop is behind: the oldest frame goes
                            self.frames_dropped += 1
                            if self._head_led and len(self._frames) > 1:
                                del self._frames[1]  # ...unless its start went ahead: it must follow its start
                            else:
                                self._frames.popleft()
                                self._head_led = False
                        elif not self._frames:  # a frame the on_lead parts were the start of
                            self._head_led = self._lead_upto > self._cut_bytes
                        # stamped as captured: a frame that leaves more audio behind it is older
                        captured_at = now - (len(self._pending) - fb) / (2 * SAMPLE_RATE_HZ)
                        self._frames.append((bytes(self._pending[:fb]), captured_at))
                        self.frames_cut += 1
                        self._cut_bytes += fb
                        del self._pending[:fb]
                    due = len(self._frames) >= self._frames_per_period or (bool(self._frames or self._pending) and now < self._hurry_until)
                    schedule = due and not self._scheduled
                    self._scheduled = self._scheduled or schedule
                if schedule:
                    self._loop.call_soon_threadsafe(self._drain)
        except Exception:  # never let an exception kill PortAudio's thread
            self.callback_errors += 1
        return None, self._continue

    def _drain(self) -> None:
        with self._lock:
            frames = list(self._frames)
            self._frames.clear()
            self._head_led = False
            self._scheduled = False
            lead, lead_at = self._take_lead() if self._on_lead is not None and self._pending_at < self._hurry_until else (b"", 0.0)
        if frames or lead:  # a press's drain of a stalled device hands over nothing: no sign of life
            self.last_frame_at = time.monotonic()
        for frame, captured_at in frames:
            self.frames_captured += 1
            self._on_frame(frame, captured_at)
        if lead and self._on_lead is not None:
            self.leads += 1
            self._on_lead(lead, lead_at)

    def _take_lead(self) -> tuple[bytes, float]:
        """(the part of the frame being filled not yet handed over, in whole LEAD_BLOCK_MS blocks;
        when its last sample was captured). Under the lock."""
        block = LEAD_BLOCK_BYTES
        start = max(self._lead_upto, self._cut_bytes) - self._cut_bytes
        end = len(self._pending) // block * block
        if end <= start:
            return b"", 0.0
        self._lead_upto = self._cut_bytes + end
        return bytes(self._pending[start:end]), self._pending_at - (len(self._pending) - end) / (2 * SAMPLE_RATE_HZ)

    def stop(self) -> None:
        rescan.closed(self)
        with self._lock:  # taken once: a scan's close and the kiosk's stop on two threads closed it twice
            stream, pa, self._stream, self._pa = self._stream, self._pa, None, None
        _close(stream, pa)  # (not under the lock: the callback takes it, and the close waits for the callback)
