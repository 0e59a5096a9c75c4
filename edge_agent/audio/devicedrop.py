"""DeviceDrop: empties a PortAudio output device on `clear` and `pause`, so the visitor stops
hearing the agent at once and not a device buffer later.

Stopping the feed is not enough: what PortAudio, ALSA and a sound server already hold (40-60 ms
with 20 ms periods) still plays. Pa_AbortStream drops it (ALSA snd_pcm_drop; through ALSA's
pulse plugin the server's stream is corked and flushed) and the stream starts again at once.
Both run on a thread of this module's own: never on the event loop (they wait for the sound
server), never in the PortAudio callback (which cannot stop its own stream).

A restart that does not come back at the device's pace (measured through PulseAudio: a stream
that stalls for a second and more, or one that underruns again and again and pulls seconds of
audio at once) counts as a bad restart; after `MAX_BAD_RESTARTS` the speaker stops dropping its
device buffer for good, with one warning, and `clear` only stops feeding it, as before.

A stream whose device went away (unplugged; its sound server gone) is left alone: its callback
thread has ended, Pa_StartStream on it never returns (ALSA's pulse plugin), and a thread stuck
there makes Pa_Terminate abort the process. There is nothing left to drop on it either; the
daemon's SpeakerWatch notices the device and reopens it. A drop that raises is logged without a
traceback, the first few of them, then one per 10 minutes (a clear per reply on a broken device).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from edge_agent.audio.playback import PlaybackBuffer
from edge_agent.core.ratelimit import LogThrottle, left_out_note

log = logging.getLogger(__name__)

CHECK_AFTER_S = 0.5
"""A restart's pace is checked this long after it (a stall shows at the first callback after)."""
PACE_RANGE = (0.5, 1.5)
"""Audio handed to the device per second of wall time after a restart that counts as sound."""
MIN_JUDGE_S = 0.2
"""A new drop before the last restart was checked judges it then, if it is at least this old."""
MAX_BAD_RESTARTS = 2
FAILURE_LOG_FIRST, FAILURE_LOG_EVERY_S = 3, 600.0


class DroppingSink(Protocol):
    buffer: PlaybackBuffer

    def dropped(self, at: float) -> bytes:
        """While the stream is stopped: nothing handed to the device is heard after `at`; returns
        the agent audio handed over but not heard (16 kHz), oldest first."""


class DeviceDrop:
    """The sink's device-emptying thread and its bookkeeping.

    From a request until the restart the callback hands the device silence and takes nothing
    from the buffer (`pending`), so audio queued after a clear (an earcon) is not dropped with
    the rest. A paused speaker gets back what the device held, so the unpause resumes where the
    visitor stopped hearing it.
    """

    def __init__(self, sink: DroppingSink, played_s: Callable[[], float]) -> None:
        """`played_s`: seconds of audio the sink has handed the device so far."""
        self.sink = sink
        self._played_s = played_s
        self.enabled = True
        self.drops = 0
        """Times the device was emptied."""
        self.failures = 0
        self.skipped = 0
        """Requests on a stream that was no longer running (its device gone): nothing to drop."""
        self.bad_restarts = 0
        self.check_at: float | None = None
        """time.monotonic() from which the callback checks the last restart's pace (then None)."""
        self._restart: tuple[float, float] = (0.0, 0.0)
        self._requested = 0
        self._served = 0
        self._cleared = False
        """A clear among the pending requests: what the device held is not worth keeping."""
        self._wake = threading.Condition()
        self._judging = threading.Lock()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure_log = LogThrottle(FAILURE_LOG_FIRST, FAILURE_LOG_EVERY_S)

    @property
    def pending(self) -> bool:
        return self._requested != self._served

    def start(self, stream: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Serves `stream` (again after `stop`: the sink reopened its device)."""
        self._stream, self._loop = stream, loop
        self._closing, self.check_at = False, None
        self._served = self._requested
        self._thread = threading.Thread(target=self._run, name="speaker-drop", daemon=True)
        self._thread.start()

    def request(self, what: str) -> None:
        """PlaybackBuffer.before_change: runs on the caller's thread before the change."""
        if what in ("clear", "pause") and self.enabled:
            with self._wake:
                self._requested += 1
                self._cleared = self._cleared or what == "clear"
                self._wake.notify()

    def check_pace(self, played_s: float) -> None:
        """From the callback: after CHECK_AFTER_S, did the restarted stream keep the device's pace?"""
        now = time.monotonic()
        if self.check_at is None or now < self.check_at:
            return
        self._judge(now, played_s)

    def _judge(self, now: float, played_s: float) -> None:
        with self._judging:  # the callback and the drop thread may both come to judge
            if self.check_at is None:
                return
            self.check_at = None
        at, played_then = self._restart
        pace = (played_s - played_then) / max(now - at, 1e-3)
        if PACE_RANGE[0] <= pace <= PACE_RANGE[1]:
            return
        self.bad_restarts += 1
        if self.bad_restarts >= MAX_BAD_RESTARTS and self.enabled:
            self.enabled = False
            if self._loop is not None:
                why = "the speaker's device did not restart cleanly %d times (%.1fx its pace after the last): clear and pause no longer drop its buffer"
                self._loop.call_soon_threadsafe(log.warning, why, self.bad_restarts, pace)

    def _run(self) -> None:
        import pyaudio._portaudio as pa

        while True:
            with self._wake:
                while not self.pending and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                target, cleared, self._cleared = self._requested, self._cleared, False
                since = self.sink.buffer.cleared_at  # a clear after this takes what the device held too
            try:  # PyAudio's Stream has no abort: its PortAudio handle goes to the module's own call
                # (the Stream keeps believing it runs, which it does again right after)
                if not pa.is_stream_active(self._stream._stream):  # its device is gone: see above
                    self.skipped += 1  # (and not a bad restart: the device did not come back at all)
                    continue
                if self.check_at is not None and time.monotonic() - self._restart[0] >= MIN_JUDGE_S:
                    self._judge(time.monotonic(), self._played_s())  # a stalled stream has no callback to do it
                if not self.enabled:
                    continue
                pa.abort_stream(self._stream._stream)
                at = time.monotonic()
                unheard = self.sink.dropped(at)
                if not cleared:  # a pause: the unpause plays what the device did not
                    self.sink.buffer.requeue(unheard, since)
                cut = self.sink.buffer.tap_cut
                if cut is not None:
                    cut(at)
                pa.start_stream(self._stream._stream)
                self.drops += 1
                self._restart = (time.monotonic(), self._played_s())
                self.check_at = self._restart[0] + CHECK_AFTER_S
            except Exception as exc:  # the stream errored or closed under us: the speaker stays as it was
                self.failures += 1
                left_out = self._failure_log.allow(time.monotonic())
                if left_out is not None:
                    more = left_out_note(left_out, "more")
                    log.warning("could not empty the speaker's device buffer: %s%s", exc, more)
            finally:
                self._served = target

    def stop(self) -> bool:
        """Ends the thread; False if it did not end within 5 s (stuck in PortAudio)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(5)
            return not self._thread.is_alive()
        return True
