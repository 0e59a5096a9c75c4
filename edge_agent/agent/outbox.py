"""Outbox: the uplink audio of one agent link, from the capture to the socket.

Part of `AgentLink` (agent/link.py), which owns the socket. Frames wait in a bounded queue: when
the network is slower than the microphone the oldest frame is dropped and counted, because late
speech is worth less than current speech. The audio held since the press (`send_held`) goes
first, bounded by its own backlog. A capture period's frames are written together, straight
from the loop callback that queued them when the socket takes them (agent/wire.py's
BatchingConnection), else by the sender task (`serve`) when flow control lets it, in order.
Long silence waits for a batch's worth (agent/wire.py QuietBatch).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from edge_agent.agent.health import LinkStats
from edge_agent.agent.wire import QUIET_BATCH_FRAMES, BatchingConnection, QuietBatch

BATCH_FRAMES = 8
"""Most uplink frames handed to the socket in one write (see agent/wire.py): a capture
period's frames go out together; a backlog goes out 240 ms at a time, flow control in between."""


class Outbox:
    """One link's uplink audio; `serve` sends it once the link's stream may flow."""

    def __init__(self, stats: LinkStats, max_queued_frames: int, quiet_settle_s: float) -> None:
        """`max_queued_frames`: live frames waiting for the socket; `quiet_settle_s`: silence
        after sound that still goes out live."""
        self.stats = stats
        self._queue: deque[tuple[bytes, float | None]] = deque(maxlen=max_queued_frames)
        self._held: deque[bytes] = deque()
        """Audio held while connecting (see `send_held`): goes out before anything queued."""
        self._wake = asyncio.Event()
        self._flush_booked = False
        self._quiet = QuietBatch(quiet_settle_s)
        self._sender_busy = False
        """The sender task has a batch in flight (waiting for the socket): later audio waits for it."""
        self.serving: BatchingConnection | None = None
        """The open link's connection, once the stream may flow (`initiate` sent)."""
        self.closed = False
        self.first_audio_sent_at: float | None = None
        """time.monotonic() at which the first frame went to the socket."""

    def close(self) -> None:
        """Nothing more is queued or sent; the sender task ends."""
        self.closed = True
        self._wake.set()

    def take_unsent(self) -> list[bytes]:
        """What never went to the socket (held audio, then the live queue), in order; the outbox
        keeps none of it. For a link that died: its conversation holds it for the next link."""
        frames = [*self._held, *(frame for frame, _ in self._queue)]
        self._held.clear()
        self._queue.clear()
        return frames

    @property
    def queued(self) -> bool:
        """Uplink audio is waiting for the socket."""
        return bool(self._held or self._queue)

    def send_audio(self, frame: bytes, captured_at: float | None = None) -> None:
        """Queue one uplink frame; never blocks. When full, the oldest frame is dropped.
        `captured_at` (time.monotonic()) marks a live frame for the capture-to-wire figure."""
        if self.closed:
            return
        if len(self._queue) == self._queue.maxlen:
            self.stats.frames_dropped += 1
        if self._quiet.live(frame):
            self._queue.append((frame, captured_at))
        else:  # long silence: waits for a batch's worth (not live, so not timed as such)
            self._queue.append((frame, None))
            if len(self._queue) < QUIET_BATCH_FRAMES and not self._held:
                return
        self._book_flush()

    def send_held(self, frames: list[bytes]) -> None:
        """Queue the audio held since the press, in order, ahead of the live stream. It is bounded
        by its own backlog, so it bypasses the live queue's one-second bound. Called at `onready`,
        held audio or none: the stream starts here, and its first `quiet_settle_s` go out live."""
        if self.closed:
            return
        self._quiet.restart()
        if not frames:
            return
        self._held.extend(frames)
        self._book_flush()

    def _book_flush(self) -> None:
        """The frames queued in this loop callback (a capture period's) go out together once it
        returns: one `call_soon` per callback, no task woken (see `_flush`)."""
        if not self._flush_booked:
            self._flush_booked = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Writes what is queued at once where the socket takes it; otherwise (connecting, flow
        control, a batch already waiting) the sender task sends it when it can, in order."""
        self._flush_booked = False
        ws = self.serving
        while self.queued and not self.closed and not self._sender_busy and ws is not None and ws.takes_now:
            batch = self._next_batch()
            ws.send_binaries_now([frame for frame, _ in batch])
            self._sent(batch)
        if self.queued:
            self._wake.set()

    async def serve(self, ws: BatchingConnection) -> None:
        """The sender task: from `initiate` on, sends what the flush could not, until closed."""
        self.serving = ws
        self._quiet.restart()  # the stream's first second goes out live
        while not self.closed:
            while self.queued and not self.closed:
                batch = self._next_batch()
                self._sender_busy = True
                try:
                    await ws.send_binaries([frame for frame, _ in batch])
                finally:
                    self._sender_busy = False
                self._sent(batch)
            self._wake.clear()
            if not self.closed:
                await self._wake.wait()

    def _sent(self, batch: list[tuple[bytes, float | None]]) -> None:
        """Counts a batch handed to the socket (the capture-to-wire figure for live frames)."""
        sent_at = time.monotonic()
        for frame, captured_at in batch:
            if self.stats.uplink_tap is not None:
                self.stats.uplink_tap(frame, sent_at)
            if captured_at is not None:
                self.stats.capture_to_wire_ms.append((sent_at - captured_at) * 1000.0)
            self.stats.bytes_up += len(frame)
        if self.first_audio_sent_at is None:
            self.first_audio_sent_at = sent_at
        self.stats.frames_sent += len(batch)

    def _next_batch(self) -> list[tuple[bytes, float | None]]:
        """Up to BATCH_FRAMES frames, held audio first, then the live queue, in order."""
        batch: list[tuple[bytes, float | None]] = []
        while self._held and len(batch) < BATCH_FRAMES:
            batch.append((self._held.popleft(), None))
        while self._queue and len(batch) < BATCH_FRAMES:
            batch.append(self._queue.popleft())
        return batch
