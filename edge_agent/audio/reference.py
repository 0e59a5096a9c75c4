"""The echo canceller's reference: what the speaker really played, and when, lined up with the mic.

The speaker's device thread reports each block it hands to the hardware with the time.monotonic()
its first sample is heard (`ReferenceRing.write`); the ring keeps the last seconds of it on one
sample timeline, padding gaps (an idle speaker plays silence) and following the speaker's clock
slowly, so scheduling jitter of the callbacks does not shake the timeline.

`Alignment` hands the canceller, for every captured mic frame, the reference samples heard over
the same stretch of time, shifted by the echo path's bulk delay. Two sound cards (a USB mic and a
USB speaker) run on two crystals: their sample clocks drift apart by tens of ppm, i.e. a few ms
per minute. The alignment keeps a read position that advances one frame per frame and is pulled
gently (a first-order loop) towards where the timestamps say it should be, so drift is followed
sample by sample while jitter is averaged out; a big jump (a restart, a stall) re-syncs at once,
and a small step that stays (capture the mic lost to an input overflow) a few frames later (STEP_S).
"""

from __future__ import annotations

import threading

import numpy as np

from edge_agent import SAMPLE_RATE_HZ

GAP_S = 0.005
"""A block that starts this much later than the previous one ended leaves silence in between."""
FOLLOW = 0.05
"""Share of a block's timing error the ring's timeline takes on (jitter out, drift followed)."""
STEP_S = 0.002
"""`Alignment` re-syncs when its error stays past this, on the same side, for STEP_FRAMES frames in a
row: a step (the mic lost a device block or two, 10-20 ms, to an input overflow), which FOLLOW
pulled over at 5 % a frame, sliding the reference under AEC3 for seconds (ERLE over the next 4 s
31.9 -> 16.2 dB; a review's find, tests/test_echo_review.py). A frame or two stamped late by the
loop's scheduling does not last that long: jitter is still only averaged."""
STEP_FRAMES = 4


class ReferenceRing:
    """The last `capacity_s` of speaker output on one sample timeline, thread-safe.

    Sample `i` of the timeline (counted since start) is heard at `time_of(i)`. `write` comes from
    the speaker's thread, `read` / `index_at` from the event loop; one short lock between them.
    """

    def __init__(self, capacity_s: float = 4.0) -> None:
        self._cap = int(capacity_s * SAMPLE_RATE_HZ)
        self._buf = np.zeros(self._cap, dtype=np.int16)
        self._end = 0
        """Timeline index one past the newest sample written."""
        self._end_at: float | None = None
        """time.monotonic() at which sample `_end` will be heard (None before the first write)."""
        self._lock = threading.Lock()
        self.gaps = 0
        self.blocks = 0

    def write(self, pcm: bytes, played_at: float) -> None:
        """One block handed to the speaker; `played_at`: when its first sample is heard."""
        x = np.frombuffer(pcm, dtype="<i2")
        n = len(x)
        if not n:
            return
        with self._lock:
            self.blocks += 1
            if self._end_at is None or played_at - self._end_at > GAP_S or self._end_at - played_at > 0.25:
                if self._end_at is not None and played_at > self._end_at:  # silence in between
                    self.gaps += 1
                    self._put(np.zeros(min(self._cap, round((played_at - self._end_at) * SAMPLE_RATE_HZ)), dtype=np.int16))
                self._end_at = played_at
            else:  # contiguous: follow the device's clock, not each callback's jitter
                self._end_at += FOLLOW * (played_at - self._end_at)
            self._put(x)
            self._end_at += n / SAMPLE_RATE_HZ

    def cut(self, at: float) -> None:
        """The speaker dropped what it held: what was to be heard from time.monotonic() `at` on
        never was. The timeline ends there, so the next block lands where it is really heard."""
        with self._lock:
            if self._end_at is None or at >= self._end_at:
                return
            unheard = min(self._end, round((self._end_at - at) * SAMPLE_RATE_HZ))
            self._end -= unheard
            self._end_at -= unheard / SAMPLE_RATE_HZ

    def _put(self, x: np.ndarray) -> None:
        if len(x) > self._cap:
            x = x[-self._cap :]
        start = self._end % self._cap
        first = min(len(x), self._cap - start)
        self._buf[start : start + first] = x[:first]
        if first < len(x):  # wrapped round
            self._buf[: len(x) - first] = x[first:]
        self._end += len(x)

    def index_at(self, t: float) -> float | None:
        """Timeline position of the sample heard at time.monotonic() `t` (None: nothing played yet)."""
        with self._lock:
            if self._end_at is None:
                return None
            return self._end - (self._end_at - t) * SAMPLE_RATE_HZ

    def read(self, start: int, n: int) -> np.ndarray:
        """Samples [start, start + n) of the timeline; zeros where nothing was played or kept
        (before the ring's memory, or not yet played: the speaker is silent there)."""
        with self._lock:
            lo = max(start, self._end - self._cap, 0)
            hi = min(start + n, self._end)
            if hi > lo:  # at most two slices of the ring (it wraps once at most)
                at, count = lo % self._cap, hi - lo
                first = min(count, self._cap - at)
                if first == n:  # all of it, in one piece: most reads
                    return self._buf[at : at + n].copy()
                out = np.zeros(n, dtype=np.int16)
                out[lo - start : lo - start + first] = self._buf[at : at + first]
                out[lo - start + first : hi - start] = self._buf[: count - first]
                return out
        return np.zeros(n, dtype=np.int16)


class Alignment:
    """Picks, for each mic frame, the reference heard `delay_s` before it (drift followed, jitter
    smoothed); `delay_s` is the part of the echo path the timestamps cannot see (the air, and
    buffering a device does not report)."""

    def __init__(self, ring: ReferenceRing, delay_s: float, follow: float = 0.05, resync_s: float = 0.03) -> None:
        self.ring = ring
        self.delay_s = delay_s
        self.follow = follow
        self.resync = resync_s * SAMPLE_RATE_HZ
        self.pos: float | None = None
        self.resyncs = 0
        self._off = 0
        """Frames in a row the error stayed past STEP_S on one side (signed: + ahead, - behind)."""
        self.rate = 0.0
        """Seconds `delay_s` gains per second of capture time: the echo path's drift that the
        timestamps do not see (fitted by the canceller, echodrift.py), followed between estimates."""
        self._last_at: float | None = None

    def take(self, n: int, first_sample_at: float) -> np.ndarray:
        """Reference for a frame of `n` samples whose first sample was captured at `first_sample_at`."""
        if self.rate and self._last_at is not None:
            self.delay_s = max(0.0, self.delay_s + self.rate * (first_sample_at - self._last_at))
        self._last_at = first_sample_at
        target = self.ring.index_at(first_sample_at - self.delay_s)
        if target is None:
            return np.zeros(n, dtype=np.int16)
        err = 0.0 if self.pos is None else target - self.pos
        side = (err > STEP_S * SAMPLE_RATE_HZ) - (err < -STEP_S * SAMPLE_RATE_HZ)
        self._off = self._off + side if self._off * side > 0 else side  # a run on one side, or a new one (or none)
        if self.pos is None or abs(err) > self.resync or abs(self._off) >= STEP_FRAMES:
            self.pos = target
            self.resyncs += 1
            self._off = 0
        else:
            self.pos += self.follow * err
        start = round(self.pos)
        self.pos += n
        return self.ring.read(start, n)

    def shift(self, delay_s: float) -> None:
        """A new bulk delay (from the delay estimator): the next frame re-syncs to it."""
        self.delay_s = delay_s
        self.pos = None
