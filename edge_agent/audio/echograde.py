"""EchoGrade: does the echo canceller cope with this room? Learned from the agent's own replies.

In most rooms WebRTC's AEC3 takes 27-40 dB off the agent's voice once converged, and what is left
of it is told apart from the visitor by the residual-echo cue (echo.py). In a hall with the
speaker far from the microphone (a long, strong reverberant tail) it takes only 10-18 dB off, and
what is left opens the gate on the agent's own voice: the agent hears itself and answers itself.
There the gate should take every far-end frame that is not louder than the echo could be
(`EchoLevel`) as the kiosk's own sound, whatever the canceller took off it; a visitor talking over
the agent still gets through when they are louder than its echo. Doing that in an ordinary room
costs double talk (a tenth of a visitor's first sentence over the agent's voice, measured), so a
room must be told apart first.

A reply in which the visitor talked over the agent says nothing of the room (the canceller lets
the visitor through: the figure falls to 5-20 dB in every room), but one the visitor listened to
does. So each reply (the far end audible, until the canceller rests) is graded by its ERLE over
its converged, loud far-end frames not over the echo, and the room is *poor* when the best of its
last few graded replies stays under POOR_ERLE_DB: a visitor cannot talk over every reply, and one
reply that reaches the line clears the room at once. Measured on the simulated echo paths
(`bench/echo_rooms.py`, two 12 s replies each, agent alone): ordinary rooms 20.3-40.0 dB a
reply, the better of the two 30.4 or more; the held-out lobby 17.3 / 20.5, the auditorium 13.1 /
8.4. A 55 s reply the visitor talks over from 6-14 s on: 4.9-19.5 dB in every room.
"""

from __future__ import annotations

import math
from collections import deque

POOR_ERLE_DB = 25.0
"""A room whose best recent reply stayed under this is poor: halfway (in dB) between the lobby's
better reply (20.5) and the worst ordinary room's better one (30.4, USB 380 ms in a noisy room),
and over the best any room gave with the visitor talking over most of a reply (19.5)."""
GRADED_REPLIES = 2
"""Replies graded before the room may be called poor, and ..."""
KEPT_REPLIES = 6
"""... how many of the latest are kept: the best of them decides."""
MIN_GRADED_FRAMES = 100
"""Frames (30 ms: 3 s) of a reply the grade needs, converged and loud; a shorter reply is not graded."""


class EchoGrade:
    """Per reply: mic and cleaned energy of its graded frames; the room: poor or not."""

    def __init__(self) -> None:
        self.replies: deque[float] = deque(maxlen=KEPT_REPLIES)
        """ERLE (dB) of the latest graded replies, oldest first."""
        self._mic = self._out = 0.0
        self._frames = 0

    def frame(self, e_mic: float, e_out: float) -> None:
        """A converged frame of the reply, the speaker loud and the mic not over the echo:
        its energy before (`e_mic`) and after (`e_out`) the canceller."""
        self._mic += e_mic
        self._out += e_out
        self._frames += 1

    def reply_ended(self) -> None:
        """The far end went quiet (the canceller rests): grade the reply if it was long enough."""
        if self._frames >= MIN_GRADED_FRAMES and self._out > 0.0:
            self.replies.append(10.0 * math.log10(self._mic / self._out))
        self._mic = self._out = 0.0
        self._frames = 0

    @property
    def best_db(self) -> float | None:
        """The best ERLE of the latest graded replies (None before the first)."""
        return max(self.replies) if self.replies else None

    @property
    def poor(self) -> bool:
        """The canceller has not coped with this room in any of its latest replies."""
        best = self.best_db
        return len(self.replies) >= GRADED_REPLIES and best is not None and best < POOR_ERLE_DB
