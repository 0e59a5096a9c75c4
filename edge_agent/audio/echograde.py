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
the visitor through: the figure falls far in every room), but one the visitor listened to
does. So each reply (the far end audible, until the canceller rests) is graded by its ERLE over
its converged, loud far-end frames not over the echo, the room's own noise taken out of both
sides (it passes the canceller: graded with it, a noisy ordinary room read as low as a hall),
and the room is *poor* when the best of its last few graded replies stays under POOR_ERLE_DB:
a visitor cannot talk over every reply, and one reply that reaches the line clears the room.
Measured (`bench/echo_rooms.py`, each path's agent twice, 12 s, after 2.5 s of its room): the 14
ordinary paths 37.7-60 dB a reply; the held-out lobby 16.4 / 19.3, the auditorium 11.3 / 10.6;
24 more halls (RT60 0.7-1.2 s, the speaker far) 1.7-27.1, the better reply at most 27.1.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np

POOR_ERLE_DB = 30.0
"""A room whose best recent reply stayed under this is poor: issue 13's own goal for the
canceller, and between the halls' best reply (27.1) and the ordinary rooms' worst (37.7)."""
GRADED_REPLIES = 2
"""Replies graded before the room may be called poor, and ..."""
KEPT_REPLIES = 6
"""... how many of the latest are kept: the best of them decides."""
MAX_ERLE_DB = 60.0
"""A reply whose echo left is lost in the room's noise grades this (a canceller that copes); a
grade lies within +-MAX_ERLE_DB."""
NOISE_RISE = 10.0 ** (0.02 / 10.0)
"""The room-noise floor's rise per 30 ms frame the speaker is silent in: 0.02 dB (0.7 dB a second)."""
MIN_GRADED_FRAMES = 100
"""Frames (30 ms: 3 s) of a reply the grade needs, converged and loud; a shorter reply is not graded."""


class EchoGrade:
    """Per reply: mic and cleaned energy of its graded frames; the room: poor or not."""

    def __init__(self) -> None:
        self.replies: deque[float] = deque(maxlen=KEPT_REPLIES)
        """ERLE (dB) of the latest graded replies, oldest first."""
        self._mic = self._out = self._noise = 0.0
        self._frames = 0
        self.graded = 0
        """Replies graded since start (restored ones not counted): a change means a new grade to keep."""
        self.noise_ms = math.inf
        """The room's noise at the mic, mean square (`hear_room`; inf: none heard yet)."""
        self.poor = False
        """The canceller has not coped with this room in any of its latest replies (two graded,
        the best under POOR_ERLE_DB); decided as each reply ends, read every frame."""

    def hear_room(self, x: np.ndarray) -> None:
        """A frame the speaker is silent in (float samples, the mic's DC offset taken off: it is
        no noise the echo left passes with, see `frame`): the room's noise at the mic follows a
        quieter frame at once and a louder one slowly (NOISE_RISE a frame), so the visitor's
        words, said while the agent is silent, hardly move it."""
        ms = float(np.dot(x, x)) / len(x)
        self.noise_ms = ms if ms < self.noise_ms else self.noise_ms * NOISE_RISE

    def noise_energy(self, samples: int) -> float:
        """The room's noise in that many samples of the mic (0 before any was heard)."""
        return self.noise_ms * samples if self.noise_ms < math.inf else 0.0

    def frame(self, e_mic: float, e_out: float, e_noise: float) -> None:
        """A converged frame of the reply, the speaker loud and the mic not over the echo: its
        energy before (`e_mic`) and after (`e_out`) the canceller, and the room's own noise
        (`e_noise`, the same length of the mic while the speaker is silent), which passes the
        canceller: the grade is of the echo left, so a noisy room is not taken for a hall. The
        mic's DC offset is out of `e_mic` and `e_noise` (the canceller's high-pass takes it off:
        counted, a mic 300 off zero graded a hall 60 dB, a room that copes)."""
        self._mic += e_mic
        self._out += e_out
        self._noise += e_noise
        self._frames += 1

    def reply_ended(self) -> None:
        """The far end went quiet (the canceller rests): grade the reply if it was long enough.
        Echo in, echo left: the frames' energy less the room's noise (the echo left counted at
        least MAX_ERLE_DB under the echo, where the canceller left no more than the noise)."""
        echo = self._mic - self._noise
        if self._frames >= MIN_GRADED_FRAMES and echo > 0.0:
            left = max(self._out - self._noise, echo * 10.0 ** (-MAX_ERLE_DB / 10.0))
            self.replies.append(max(-MAX_ERLE_DB, 10.0 * math.log10(echo / left)))
            self.graded += 1
            self._judge()
        self._mic = self._out = self._noise = 0.0
        self._frames = 0

    def restore(self, replies_erle_db: Iterable[float]) -> None:
        """The grades kept from before a restart (oldest first; service/roomgrade.py keeps them), so
        a hall's first replies after a reboot do not reach the agent while it learns the room again."""
        self.replies.clear()
        self.replies.extend(replies_erle_db)
        self._judge()

    def _judge(self) -> None:
        self.poor = len(self.replies) >= GRADED_REPLIES and max(self.replies) < POOR_ERLE_DB

    @property
    def best_db(self) -> float | None:
        """The best ERLE of the latest graded replies (None before the first)."""
        return max(self.replies) if self.replies else None
