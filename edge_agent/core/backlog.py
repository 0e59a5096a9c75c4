"""Backlog: the visitor's audio held while the agent link is being opened, so no first word is lost.

From the press (and through a reconnect) until `onready`, there is no session to send audio to,
yet the visitor is already talking. The kiosk keeps what the gate would have sent (speech, the
gate's silence, pre-roll bursts: the gate decides on this audio as on any other) here, in
capture order, and hands it all to the link at `onready`, ahead of the live stream. Bounded: past
`max_ms` the oldest frame goes (the newest speech is the one worth keeping) and is counted in
`dropped`. The Conversation decides when audio is held, sent or thrown away; this only keeps it.
Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque


class Backlog:
    """A bounded FIFO of uplink frames of `frame_ms` each, at most `max_ms` of audio."""

    def __init__(self, max_ms: int, frame_ms: int) -> None:
        self.frame_ms = frame_ms
        self.max_frames = max(0, max_ms // frame_ms)
        """0 holds nothing: every frame is dropped (and counted), as before this existed."""
        self._frames: deque[bytes] = deque()
        self.dropped = 0
        """Frames that did not fit (the oldest go first), over the whole run: a metric."""
        self.held = 0
        """Frames that went into the backlog over the whole run."""

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def held_ms(self) -> int:
        """Audio held right now, in ms."""
        return len(self._frames) * self.frame_ms

    def add(self, frames: tuple[bytes, ...] | list[bytes]) -> None:
        """Appends frames in order; beyond the bound the oldest are dropped and counted."""
        for frame in frames:
            self.held += 1
            if len(self._frames) >= self.max_frames:
                if not self._frames:
                    self.dropped += 1
                    continue
                self._frames.popleft()
                self.dropped += 1
            self._frames.append(frame)

    def take(self) -> list[bytes]:
        """Everything held, oldest first; the backlog is empty afterwards."""
        frames = list(self._frames)
        self._frames.clear()
        return frames
