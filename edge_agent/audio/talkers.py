"""TalkerRoom: does the gate open on talk that never comes near the visitor's own level?

A TV, a radio or people talking across the lobby make sound the speech cues call SPEECH (it is
speech), so the gate opens on it between the visitor's words, and every such opening sends its
pre-roll and hang-over to the agent: a TV 20 dB under the visitor had 0.64 of the idle audio
sent. The visitor stands at arm's length, so they come back near their own level
(`CueClassifier.visitor_db`) with every stressed syllable; a talker across the room does not.
An opening that closes again with no SPEECH block within `CueClassifier.NEAR_VISITOR_DB` of the
visitor's level is a *stray* one, and a room that had a stray opening in the last
`TALKER_ROOM_S` is a talker room: there VadGate vets each opening (it holds the frames until the
visitor is heard near their level, and sends silence for them if not; gate.py, VET_MS).

Measured (docs/gate-notes.md: "Vetting openings where other people talk"): one stray in 60 s,
not two in 30 s (the TV 20 dB rooms need the room known early); no room of the matrix or of
the 444 outside it lost speech to it.
"""

from __future__ import annotations

from collections import deque

TALKER_ROOM_S = 60.0
"""A stray opening makes the room a talker room for this long."""


class TalkerRoom:
    """Stray openings of the last TALKER_ROOM_S, on the classifier's block clock. Of the room, not
    of a visitor: a new conversation keeps them (the TV is still on), but until the new visitor's
    level is known every block that is not NOISE is near it, so nothing is vetted yet."""

    def __init__(self, block_ms: int) -> None:
        self._window_blocks = round(TALKER_ROOM_S * 1000 / block_ms)
        self._strays: deque[int] = deque()  # block index of each stray opening's close
        self._was_open = False
        self._heard_visitor = False

    def watch(self, block: int, gate_open: bool, visitor_known: bool) -> None:
        """Each block, before it is classified: the gate as it stands after the block before.
        An opening that closes without `heard_visitor` is a stray one (once the visitor's level
        is known: before that there is nothing to be near)."""
        if gate_open and not self._was_open:
            self._heard_visitor = False
        elif self._was_open and not gate_open and not self._heard_visitor and visitor_known:
            self._strays.append(block)
        self._was_open = gate_open

    def heard_visitor(self) -> None:
        """A SPEECH block near the visitor's level while the gate is open: the opening was theirs."""
        self._heard_visitor = True

    def active(self, block: int) -> bool:
        """A stray opening came within TALKER_ROOM_S before `block`."""
        while self._strays and self._strays[0] <= block - self._window_blocks:
            self._strays.popleft()
        return bool(self._strays)
