"""DecayRun: is the sound in a bang's tail dying away, block after block, as a struck thing's does?

A knock, a door or a dropped tray in a hall rings on for most of a second: reverberation, or the
object's own partials. Its tail is often voiced enough (an autocorrelation peak of 0.2-0.3 at a
pitch lag) and its spectrum moves enough (partials and reflections die at different rates) to
pass the speech cues, and three such blocks opened the gate. What such a tail does not do is come
back: after its strike, its level falls from each block to the next until it is gone. A voice
does not fall for long before the gate has heard it: a syllable rises again with its vowel, and
a sentence moves up and down.

So, in a bang's tail: FALL_DB or more down from the block before counts a fall, a rise of more
than RISE_DB ends the run for the rest of the bang (something new came: maybe the visitor), and
anything between changes nothing (a fall of 0.1 dB is the noise bed). From the DYING_BLOCKS-th
fall on, the tail is dying, and CueClassifier does not let it open the gate (an open gate still
holds on it: closing and reopening there sends a new pre-roll each time).

Measured on the gate's rooms (docs/gate-notes.md: "Tails that die away"): 2 falls cost visitors'
onsets in white, pink and fan rooms (a plosive's burst, then the vowel's first blocks falling, the
opening three blocks later past the look-back's reach); 3 cost none, there and on seeds never
tuned on.

But a struck thing steps down: its strike's block holds the direct sound, the next one only what
rings on and the room's reflections, STRIKE_STEP_DB or more lower (a knock in a hall: 3-7 dB). A
vowel after its burst holds its level for a while and falls 1-2 dB a block. So a tail whose first
fall is such a step is dying from its second fall on: in a hall, the strike and the two blocks
after it no longer open the gate before the third fall (docs/gate-notes.md: "A strike's step").

And a thing struck out of the room's quiet, while the gate is closed, is `struck` for as long as
its tail has not risen (the raps of one knock, each from quiet again, too). Once the visitor has
been heard (CueClassifier.struck), an opening on such a tail is vetted (VadGate): nothing goes
until something rises in it and is speech (the visitor's vowel after a plosive's burst: held back
for a few blocks, then sent whole); a tail that only
dies away is NOISE for the vetted gate, so its hang-over runs out and it is never sent. A bang
that is not out of quiet (a syllable after a syllable, music) is not struck: a short word whose
syllables strike and fall would otherwise be held back whole (docs/gate-notes.md: "A strike out of
quiet is vetted").

A dropped tray does not always die away block after block: its partials beat against each other,
so its level moves up and down for most of a second and the tail above counts a rise. What it
does hold is its spectrum: the same partials in the same FFT bins from one block to the next
(tonal.py's steadiness: 0.6-0.9 on a tray's ring, ~0.04 in the median for a voice). So, within
RING_BLOCKS of a bang struck out of quiet, a block as steady as RING_STEADY, the block before it
too (but for the first blocks, RING_CLICK_BLOCKS), with a flux under RING_FLUX_DB, `rings` and does
not open the gate. Not if the room was
already steady before the strike (RING_ROOM_MAX: music or a TV, whose steadiness is theirs, not a
ring's, and a voice over them reads as steady too), nor after a rise of RING_RISE_DB (something
new: the visitor), nor once the spectrum moves (a voice under the ring). docs/gate-notes.md: "A
ring holds still". A bang out of the room's quiet with the gate open may ring too (`bang(ring=True)`):
a tray dropped after the visitor's last word held an open gate for as long as it rang, and its
ringing blocks no longer restart the hang-over (CueClassifier; docs/gate-notes.md, "A ring in the hang-over").

An open gate's hang-over was restarted by whatever struck in it: footsteps at two a second after
the visitor's last word held the gate open for as long as they went on. So a bang struck out of
the room's quiet while the gate is open (`bang(hang_over=True)`, CueClassifier says when) is
`struck` too, and `in_hang_over` on its own block and, once it has stepped down by STRIKE_STEP_DB,
until something rises in its tail: such blocks do not restart the hang-over (docs/gate-notes.md:
"Footsteps after the last word").
"""

from __future__ import annotations

FALL_DB = 0.3
"""A block at least this much lower than the one before is a fall..."""
RISE_DB = 0.5
"""...and one more than this higher ends the run."""
DYING_BLOCKS = 3
"""Falls in a row (since the bang) from which its tail is dying..."""
STRIKE_STEP_DB = 4.0
"""...or from the second, if the first fall after the bang was at least this big (the strike's
step). On the matrix's bang tails that reached a second fall with the gate closed: the median
first fall 2.1 dB in the visitor's speech, 13.5 dB outside it. On the knocks rooms, 3 dB lowered
one more fresh cell than 4 (nearer the speech's own falls), 5 dB only half of what 4 did."""


RING_STEADY = 0.5
"""Steadiness (tonal.py: fine structure correlated with the block before's) of a ringing block and the one before it..."""
RING_CLICK_BLOCKS = 2
"""...(up to this many blocks after the strike's own, the block before is the strike's click or
its attack across the block edge, which says nothing of a ring: there this block's steadiness
alone counts. Asking both, a tray whose attack spilled into the next block opened the gate on
its first three blocks, before its ring could count)..."""
RING_BLOCKS = 33
"""...within this many blocks (~1 s, a tray's ring) of a bang struck out of quiet..."""
RING_RISE_DB = 3.0
"""...with no rise this big since its first two blocks (the strike's own attack may rise)..."""
RING_FLUX_DB = 2.0
"""...and a flux under this (dB, the sub-bands' mean move): a voice under the ring moves them more..."""
RING_ROOM_MAX = 0.2
"""...struck where the room's steadiness just before (TonalRoom.tonal: a running mean over ~4 blocks) was under this."""

HANG_STRIKE_VOICING = 0.3
"""A bang in an open gate's hang-over (`DecayRun.in_hang_over`) has its own block's voicing under
this (CueClassifier asks). Of such bangs on the matrix that stepped down by STRIKE_STEP_DB, 97 %
of those in knocks rooms outside the visitor's speech are under it (footsteps, knocks, trays,
doors), 61 % of the visitor's words struck out of a pause."""

RING_FALL_DB = 3.0
"""A ring (CueClassifier's `_rings`, `lag_rings`): in a bang's tail, from its second block on (the
first is the bang's click), the pitch lag the same to the sample as the block before's and the
level no higher and at most RING_FALL_DB lower. A dropped tray's fixed partials hold their lag as
they die away; a voice's pitch moves. Only a closed gate asks (docs/gate-notes.md, "Rings")."""


def lag_rings(lag: int, prev_lag: int, change_db: float) -> bool:
    """The pitch lag held to the sample while the level fell by at most RING_FALL_DB (`change_db` from the block before)."""
    return lag == prev_lag and -RING_FALL_DB <= change_db <= 0.0


class DecayRun:
    """Falls since the latest bang began, or -1 once something rose in its tail (or no bang yet)."""

    def __init__(self) -> None:
        self.falls = -1
        self.first_fall_db = 0.0
        """The first fall after the bang, in dB (positive); 0 until there is one."""
        self._from_quiet = False
        self.was_struck = False
        """`struck` before the latest `step`: a bang on this block may carry it on (`bang`)."""
        self._ring_age = -1
        """Blocks since the latest bang struck out of quiet, while it may ring (`rings`); -1: none."""
        self._steadiness = (0.0, 0.0)
        """This block's steadiness and the one before's."""
        self.age = 0
        """Blocks since the latest bang began (0 on its own block)."""
        self.hang_over = False
        """The latest bang was struck in an open gate's hang-over (`bang`)."""

    @property
    def struck(self) -> bool:
        """In the tail of a bang struck out of quiet with the gate closed (or in its hang-over), nothing risen since."""
        return self.falls >= 0 and self._from_quiet

    @property
    def in_hang_over(self) -> bool:
        """A bang struck in the hang-over, nothing risen since: its own block, or a tail that stepped down."""
        return self.struck and self.hang_over and (self.age == 0 or self.first_fall_db >= STRIKE_STEP_DB)

    def bang(self, struck: bool = False, room_steadiness: float = 0.0, hang_over: bool = False, ring: bool = False) -> None:
        """A bang begins (or its attack goes on across a block edge): count from here. `struck`:
        out of the room's quiet with the gate closed, or carrying on a struck one (`was_struck`);
        `room_steadiness`: the room's just before this block (TonalRoom.tonal, RING_ROOM_MAX);
        `hang_over`: struck out of quiet while the gate is open (or carrying on such a bang);
        `ring`: out of the room's quiet, the gate open or not: it may ring (`rings`)."""
        self.hang_over = hang_over
        self.age = 0
        self.falls = 0
        self.first_fall_db = 0.0
        self._from_quiet = struck
        if struck or ring:  # a ring's steadiness comes with its strike: the room's before it is not a ring's
            self._ring_age = 0 if room_steadiness < RING_ROOM_MAX else -1

    def step(self, rise_db: float, steadiness: float = 0.0) -> None:
        """The level moved by `rise_db` from the block before (negative: it fell); `steadiness`:
        this block's (tonal.py), for `rings`."""
        self.was_struck = self.struck
        self.age += 1
        self._steadiness = (steadiness, self._steadiness[0])
        if self._ring_age >= 0:
            self._ring_age += 1
            if self._ring_age > RING_BLOCKS or (self._ring_age >= 2 and rise_db >= RING_RISE_DB):
                self._ring_age = -1
        if self.falls < 0:
            return
        if rise_db <= -FALL_DB:
            self.falls += 1
            if self.falls == 1:
                self.first_fall_db = -rise_db
        elif rise_db > RISE_DB:
            self.falls = -1

    def dying(self) -> bool:
        """Has the tail fallen DYING_BLOCKS times since its bang, with nothing rising between
        (or twice, the first a strike's step)?"""
        return self.falls >= DYING_BLOCKS or (self.falls >= 2 and self.first_fall_db >= STRIKE_STEP_DB)

    def rings(self, flux_db: float) -> bool:
        """Is this block a struck thing's ring holding its partials still (RING_STEADY, module
        docstring)? `flux_db`: its sub-bands' move from the block before."""
        steadiness = min(self._steadiness) if self._ring_age > RING_CLICK_BLOCKS else self._steadiness[0]
        return self._ring_age >= 0 and steadiness >= RING_STEADY and flux_db < RING_FLUX_DB
