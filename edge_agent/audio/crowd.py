"""CrowdRoom: does the room's own sound move as a crowd's does, and does the last 0.6 s swing as the
visitor's own talk does?

A crowd of other people talking 10 dB under the visitor held the gate open for good (idle sent
0.96-1.00): its loudest blocks come within `CueClassifier.NEAR_VISITOR_DB` of the visitor's
level (which the crowd's own confirmed runs pull down) often enough that an open gate never lets
go. What the crowd lacks is the visitor's swing: seven voices fill each other's gaps, so over
0.6 s the speech band's level moves ~6 dB (90th less 10th percentile of 20 blocks, `range_db`),
while the visitor at arm's length, syllable against the crowd between them, moves 10 dB and
more. Asking every block that counts as the visitor near their level to stand in a window of
RANGE_NEAR_DB brought the crowd down, but stationary noise 5 dB under the visitor fills the
visitor's dips as well, and there the rule cut up to a quarter of the visitor (docs/gate-notes.md:
"How the sound moves, once more"). So the rule holds only where all of these do:
- a *crowd room*, told from the room's own sound: between the visitor's utterances the windows
  hold the room alone, and a crowd's are never calm, neither smooth from block to block nor
  narrow. Stationary noise (white, pink, brown, HVAC, the hall) is smooth (mean step 0.8-1.4 dB
  a block) and narrow (range 1-3 dB); a fan swings ±6 dB but slowly (steps 0.8-1.0 dB); music
  steps 1.0-1.6 dB; a mains hum steps more (its period against the block) but stays narrow; a
  crowd steps 1.9-2.1 dB and swings ~6 dB. A crowd room: under CALM_SHARE of the windows of the
  last ROOM_S calm, and under WIDE_SHARE of them wide (RANGE_NEAR_DB): a TV (a talker over
  music) swings 13-17 dB by itself, and is left as it was;
- a visitor who does swing over it (`visitor_swings`, SWING_SHARE): of the blocks near the
  visitor's level, 31-53 % stand in a wide window with the crowd 10 dB under the visitor, 14-21 %
  with the crowd 5 dB under, where the visitor's own syllables do not swing 10 dB over a crowd
  that close and the rule cut a fifth of their speech (that crowd has no idle goal).
Where it holds, an opening may also reach further back (CROWD_LOOKBACK_MS, VadGate): the gate
closes between the visitor's utterances now, and a weak first word over the crowd was decided
on up to 0.9 s after it began, past the look-back's usual reach.

Not learned while the kiosk's speaker plays: the canceller's leftovers come and go like talk.
Per block: one insertion into a sorted list of 20 and a few sums (no numpy).
"""

from __future__ import annotations

import bisect
from collections import deque

RANGE_BLOCKS = 20
"""The window `range_db` is taken over: 20 blocks of 30 ms, 0.6 s (a syllable and its neighbours)."""
RANGE_LOW, RANGE_HIGH = 2, 17
"""The window's sorted blocks whose difference is `range_db`: about its 10th and 90th percentile."""
CALM_STEP_DB = 1.4
"""A window is calm if its level moves less than this from block to block, by the mean..."""
CALM_RANGE_DB = 3.0
"""...or its `range_db` is under this."""
ROOM_S = 20.0
"""A crowd room: under CALM_SHARE of the windows of the last ROOM_S calm and under WIDE_SHARE
wide (the visitor's pauses show the room alone), once ROOM_MIN_BLOCKS windows have been heard."""
CALM_SHARE = 0.1
ROOM_MIN_BLOCKS = 100
RANGE_NEAR_DB = 10.0
"""In a crowd room, a block counts as the visitor near their level only in a window that swings
this much (8 dB: the crowd 10 dB under the visitor 0.52-0.72 against 0.53-0.65, and an onset and
recall lost in the crowd 5 dB under)..."""
FREE_DB = 2.0
"""...or within this much of the visitor's level (the crowd's blocks seldom reach it; 3 dB: the
crowd 10 dB under the visitor 0.65-0.90 against 0.53-0.85; 0 dB: an onset lost outside the matrix)."""
WIDE_SHARE = 0.5
SWING_SHARE = 0.25
"""The rule holds once `visitor_swings` reaches this."""
SWING_RATE = 0.01
"""How fast `visitor_swings` follows the blocks near the visitor's level (about 100 of them)."""
CROWD_LOOKBACK_MS = 240
"""How much further back than usual (gate.py, LOOKBACK_EXTRA_MS) an opening may reach where the
rule holds (without it, a weak first word lost its lead in 4 of the 60 crowd rooms 10 dB under
the visitor, seeds 1-9 and 101-102)."""


class CrowdRoom:
    """The speech band's level range over the last RANGE_BLOCKS blocks, whether the room's own
    windows are calm or wide, and whether the visitor swings over them."""

    def __init__(self, block_ms: int) -> None:
        self._window: deque[float] = deque()
        self._sorted: list[float] = []
        self._steps: deque[float] = deque()
        self._steps_db = 0.0
        self._calm: deque[int] = deque()
        self._calm_blocks = 0
        self._wide_blocks = 0
        self._room_blocks = round(ROOM_S * 1000 / block_ms)
        self.visitor_swings = 0.0
        """Share of the recent blocks near the visitor's level that stood in a wide window."""
        self.range_db = 0.0
        """90th less 10th percentile (about) of the speech band's level over the last 0.6 s, in dB."""

    def update(self, band_db: float, learn: bool = True) -> None:
        """One block's speech-band level, in dB; `learn`: the block is the room's (not while the
        kiosk's speaker plays)."""
        window, ordered, steps = self._window, self._sorted, self._steps
        if window:
            step = abs(band_db - window[-1])
            steps.append(step)
            self._steps_db += step
        window.append(band_db)
        bisect.insort(ordered, band_db)
        if len(window) > RANGE_BLOCKS:
            del ordered[bisect.bisect_left(ordered, window.popleft())]
            self._steps_db -= steps.popleft()
        if len(window) < RANGE_BLOCKS:
            return
        self.range_db = ordered[RANGE_HIGH] - ordered[RANGE_LOW]
        if not learn:
            return
        calm = self.range_db < CALM_RANGE_DB or self._steps_db < CALM_STEP_DB * len(steps)
        wide = self.range_db >= RANGE_NEAR_DB
        self._calm.append(calm + 2 * wide)
        self._calm_blocks += calm
        self._wide_blocks += wide
        if len(self._calm) > self._room_blocks:
            old = self._calm.popleft()
            self._calm_blocks -= old & 1
            self._wide_blocks -= old >> 1

    def is_crowd(self) -> bool:
        """Are the room's own windows seldom calm and seldom wide, as a crowd's (CALM_SHARE, WIDE_SHARE)?"""
        heard = len(self._calm)
        return heard >= ROOM_MIN_BLOCKS and self._calm_blocks < CALM_SHARE * heard and self._wide_blocks < WIDE_SHARE * heard

    def heard_near(self) -> None:
        """A block within `CueClassifier.NEAR_VISITOR_DB` of the visitor's level (SWING_RATE)."""
        self.visitor_swings += SWING_RATE * ((self.range_db >= RANGE_NEAR_DB) - self.visitor_swings)

    def rules(self) -> bool:
        """Does the rule hold: a crowd room, and a visitor who swings over it (SWING_SHARE)?"""
        return self.is_crowd() and self.visitor_swings >= SWING_SHARE

    def swings(self, under_visitor_db: float) -> bool:
        """May a block `under_visitor_db` under the visitor's level count as the visitor near it:
        where the rule does not hold always; where it does, in a window that swings
        RANGE_NEAR_DB, or within FREE_DB of that level."""
        return under_visitor_db <= FREE_DB or self.range_db >= RANGE_NEAR_DB or not self.rules()
