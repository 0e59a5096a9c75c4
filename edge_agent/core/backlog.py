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

from edge_agent import BYTES_PER_S


class Backlog:
    """A bounded FIFO of uplink audio (frames of `frame_ms`, and the parts of frames a press sent
    ahead of them), at most `max_ms` of audio."""

    def __init__(self, max_ms: int, frame_ms: int) -> None:
        self.frame_ms = frame_ms
        self.max_bytes = max(0, max_ms) * 32  # 16 kHz, 2 bytes a sample
        """0 holds nothing: every frame is dropped (and counted), as before this existed."""
        self._frames: deque[bytes] = deque()
        self._bytes = 0
        self.dropped = 0
        """Frames (or parts) that did not fit (the oldest go first), over the whole run: a metric."""
        self.held = 0
        """Frames (or parts) that went into the backlog over the whole run."""

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def held_ms(self) -> int:
        """Audio held right now, in ms."""
        return self._bytes * 1000 // BYTES_PER_S

    def add(self, frames: tuple[bytes, ...] | list[bytes]) -> None:
        """Appends frames in order; beyond the bound the oldest are dropped and counted."""
        for frame in frames:
            self.held += 1
            if len(frame) > self.max_bytes:
                self.dropped += 1
                continue
            while self._bytes + len(frame) > self.max_bytes:
                self._bytes -= len(self._frames.popleft())
                self.dropped += 1
            self._frames.append(frame)
            self._bytes += len(frame)

    def put_back(self, frames: list[bytes]) -> None:
        """Audio a dead link never handed to its socket (captured before what is held now): held
        again ahead of it, for the link that replaces it; the bound applies (oldest dropped, counted)."""
        if not frames:
            return
        rest = self.take()
        self.held -= len(rest)  # already counted once when they came
        self.add([*frames, *rest])

    def take(self) -> list[bytes]:
        """Everything held, oldest first; the backlog is empty afterwards."""
        frames = list(self._frames)
        self._frames.clear()
        self._bytes = 0
        return frames
