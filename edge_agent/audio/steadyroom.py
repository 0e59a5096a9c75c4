"""SteadyRoom: is the room's own sound steady noise, with nothing in it that comes and goes?

The cues hold back sound far under the visitor's own level (`CueClassifier.visitor_drop_db`,
`NEAR_VISITOR_DB`): a TV, music, people across the lobby, a fan's upswing, a knock's tail. In a
room whose sound is steady noise (white, pink, a hall's hiss, a hum) there is nothing for those
lines to hold back, and they cut the visitor's own softer speech: a sentence said 12-15 dB softer
than the one before was not sent at all, or only its first second (docs/gate-notes.md: "A steady
room"). There, a SPEECH block clear of the room's level (CLEAR_DB) may lie
REACH_DB further under the visitor's level and still open or hold the gate. It does not make an
opening the visitor's: one that never came near their level is still a stray (talkers.py), so a
person talking across a steady room still makes it a talker room.

Steady: on the blocks the cues called NOISE while the gate was closed, the room's level stays
within STEADY_DB of its running level on average (a running mean over ~3 s of such blocks).
Random noise jitters 0.5-0.8 dB about its level in a 30 ms block of the speech band; hum, brown
noise and HVAC 0.7-2.4 dB (steady at times); a fan's swing, traffic and knocks 1.0-5.4 dB; music,
a TV or a crowd leave almost no NOISE blocks at all. The mean starts at UNSTEADY_DB, so a room
has to show itself steady first (about 6 s of idle noise).
"""

from __future__ import annotations

STEADY_DB = 0.9
"""Mean distance of the idle room's NOISE blocks from its running level, at or under which it is steady."""
UNSTEADY_DB = 3.0
"""Where that mean starts: no room is steady until its NOISE blocks have said so."""
RATE = 0.01
"""Weight of each idle NOISE block in the running mean (about 100 blocks, 3 s)."""
CLEAR_DB = 3.0
"""How far over the room's running level a block must stand to reach further: under 1 in 200 of
steady noise's idle blocks at 5-10 dB do. 6 dB lost parts of the softer sentences again."""
REACH_DB = 6.0
"""How much further under the visitor's level such a block may lie (12 -> 18 dB to open or hold,
6 -> 12 dB for the open gate's hold). 10 dB gave the same cells of the room matrix (measured
before an opening's strays were kept to the strict line)."""


class SteadyRoom:
    """The idle room's mean distance from its running level (`jitter_db`), fed block by block. Of
    the room, not of a visitor: a new conversation keeps it."""

    def __init__(self) -> None:
        self.jitter_db = UNSTEADY_DB

    def update(self, band_db: float, ambient_db: float, idle_noise: bool) -> None:
        """`idle_noise`: the cues called this block NOISE and the gate was closed."""
        if idle_noise:
            self.jitter_db += RATE * (abs(band_db - ambient_db) - self.jitter_db)

    @property
    def steady(self) -> bool:
        return self.jitter_db <= STEADY_DB

    def reach_db(self, band_db: float, ambient_db: float) -> float:
        """How much further under the visitor's level this block may lie and still be theirs."""
        return REACH_DB if self.steady and band_db >= ambient_db + CLEAR_DB else 0.0
