"""PlaybackBuffer: the agent's audio queued between the event loop and the output device.

The daemon writes the agent's audio and the earcons into it from the event loop; the speaker (a
PortAudio callback, or a file or null speaker's pacing task) reads it from its own thread.
`clear` / `pause` / `unpause` act at once, so after a `clear` only the device's own small buffer
is left to play (README, "The speaker on `clear`"). Apart from devices.py, which keeps the
interfaces and the file devices.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from edge_agent import SAMPLE_RATE_HZ

UNDERRUN_GAP_S = 1.0
"""The agent's audio arriving within this of its reply running dry is the same reply going on
after a gap (an underrun); later, it is the next turn."""


class PlaybackBuffer:
    """Thread-safe queue of agent audio between the event loop and the output device.

    `read` is called from the device's thread (PortAudio callback) or a pacing task; it never
    blocks for long (one short lock) and pads with silence. `clear` drops everything queued, so
    after it the device only has its own small buffer left to play.
    """

    def __init__(self, max_queued_s: float = 120.0) -> None:
        self._chunks: deque[tuple[bytes, bool]] = deque()
        """Queued audio, each chunk with whether it is an earcon (True) or the agent's audio. A
        pause holds the agent's audio only: a `pause` held before `onready` and handed on after it
        froze the ready earcon queued at `onready` (README: it plays there, so the visitor knows
        the agent listens)."""
        self._offset = 0
        self._queued = 0
        self._lock = threading.Lock()
        self._max_bytes = int(max_queued_s * SAMPLE_RATE_HZ) * 2
        self.paused = False
        self.dropped_bytes = 0
        """Audio dropped at the `max_queued_s` bound (the oldest first), in bytes."""
        self.underruns = 0
        """Times the agent's reply ran dry and went on within UNDERRUN_GAP_S (no clear between):
        a gap the visitor heard mid-reply (a stalled network)."""
        self.played_bytes = 0
        self._dry_at: float | None = None  # when the reply last ran dry (None: it did not, or a clear came)
        self._tail_is_reply = False  # the newest audio written is the agent's, not an earcon
        self.cleared_at: float | None = None
        """time.monotonic() of the last clear (the barge-in benchmark reads it)."""
        self.before_change: Callable[[str], None] | None = None
        """Called with "write" or the control command on the caller's thread before the change,
        outside the lock: a clocked sink settles what has played so far (see FileSink)."""
        self.tap: Callable[[bytes, float], None] | None = None
        """The sink calls it (on its own thread) with each block it hands to the speaker and the
        time.monotonic() its first sample is heard: the echo canceller's reference."""
        self.tap_cut: Callable[[float], None] | None = None
        """The sink calls it (on its own thread) when the device dropped what it held: nothing
        handed to the speaker is heard after this time.monotonic() (the reference ends there)."""

    @property
    def queued_bytes(self) -> int:
        return self._queued

    @property
    def playable_bytes(self) -> int:
        """What `read` would take now: everything queued, or while paused the earcons at the front."""
        with self._lock:
            if not self.paused:
                return self._queued
            n = -self._offset
            for chunk, cue in self._chunks:
                if not cue:
                    break
                n += len(chunk)
            return max(n, 0)

    def _held(self) -> bool:
        """Under the lock: a pause holds the front of the queue (the agent's audio is there)."""
        return self.paused and bool(self._chunks) and not self._chunks[0][1]

    def write(self, pcm: bytes, reply: bool = False, cue: bool = False) -> None:
        """Queues `pcm`; `reply`: it is the agent's voice (not an earcon), for `underruns`; `cue`:
        it is an earcon, which plays through a `pause`."""
        if len(pcm) % 2:
            pcm = pcm[:-1]  # an odd trailing byte is half a sample: never let it shift the stream
        if not pcm:
            return
        if self.before_change is not None:
            self.before_change("write")
        with self._lock:
            if reply and not self._queued and self._dry_at is not None and time.monotonic() - self._dry_at < UNDERRUN_GAP_S:
                self.underruns += 1
            self._dry_at = None
            self._tail_is_reply = reply
            self._chunks.append((pcm, cue))
            self._queued += len(pcm)
            while self._queued > self._max_bytes and len(self._chunks) > 1:
                gone, _ = self._chunks.popleft()
                self._queued -= len(gone) - self._offset
                self.dropped_bytes += len(gone) - self._offset
                self._offset = 0

    def control(self, command: str) -> None:
        """'clear', 'pause' or 'unpause', effective for the very next `read` ('pause' holds the
        agent's audio; an earcon at the front of the queue still plays)."""
        if self.before_change is not None:
            self.before_change(command)
        with self._lock:
            if command == "clear":
                self._chunks.clear()
                self._offset = 0
                self._queued = 0
                self.paused = False
                self._dry_at = None
                self.cleared_at = time.monotonic()
            elif command == "pause":
                self.paused = True
            elif command == "unpause":
                self.paused = False

    def discard(self) -> int:
        """Drops everything queued, as `clear` does but without telling the device (a speaker that
        is gone): returns the bytes dropped."""
        with self._lock:
            gone = self._queued
            self._chunks.clear()
            self._offset = 0
            self._queued = 0
        return gone

    def requeue(self, pcm: bytes, since_clear: float | None) -> None:
        """Puts audio the device took but never played back at the front of the queue (a paused
        speaker whose own buffer was dropped plays it after the unpause), unless a clear came
        after `since_clear` (the `cleared_at` when the drop began): a pause and at once a clear
        played 20-55 ms of the cleared reply, put back behind the clear's back."""
        if not pcm:
            return
        with self._lock:
            if self.cleared_at != since_clear:
                return
            if self._offset:
                head, cue = self._chunks[0]
                self._chunks[0] = (head[self._offset :], cue)
                self._offset = 0
            self._chunks.appendleft((pcm, False))  # held by the pause it was taken back for
            self._queued += len(pcm)
            self.played_bytes -= len(pcm)

    def read(self, nbytes: int) -> tuple[bytes, bool]:
        """Up to `nbytes` of audio padded with silence; the flag says it drained just now."""
        with self._lock:
            if not self._queued or self._held():
                return bytes(nbytes), False
            parts = []
            need = nbytes
            while need and self._chunks and not self._held():
                head = self._chunks[0][0]
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
            if drained and self._tail_is_reply:
                self._dry_at = time.monotonic()
            if need:
                parts.append(bytes(need))
            return b"".join(parts), drained
