"""TonalRoom: how steady the room's own sound is, and whether it moves on (music) or stays put (a whine).

Part of the cue classifier (cues.py), apart because it is one question: is the room tonal? Per
30 ms block it gets the block's steadiness and recurrence (tonal.py: the fine structure's
correlation with the block before and with the one a second before) and learns the room's own
from them; in a music room, SPEECH about as steady as the room becomes WEAK (`weigh`): a voice
over music makes the blocks less steady, the music alone does not. A room whose steady sound
stays put (a buzz, a whine, a drone) is no music room (`is_steady`; cues.py then keeps the
noise's shape model from learning the visitor's voice over it). docs/gate-notes.md: "Tonal rooms",
"Steady tones are not music", "A steady tone after the visitor's last word", "Music and the
agent's replies".
"""

from __future__ import annotations

from collections import deque

from edge_agent.audio.frames import SPEECH, WEAK
from edge_agent.audio.tonal import RECUR_BLOCKS


class TonalRoom:
    """The room's steadiness (`tonal_room`), how it moves on (`moving_room`), and the latest blocks'."""

    TONAL_RATE = 0.25
    """How fast `tonal` follows the blocks' steadiness (about 4 blocks, 120 ms)."""
    TONAL_ROOM_RATE = 0.02
    """How fast `tonal_room` follows `tonal` (about 1.5 s), while the gate is closed and the block
    is not SPEECH once the cue has spoken (the visitor's voice under a gate that has not opened
    yet must not lower it; SPEECH the cue itself turned WEAK is learned, being about as steady as
    the room); every block at 0.2 in the warm-up. `moving_room` follows at the same rate. Neither
    learns while the kiosk's speaker plays (`far_end`): the gate then hears the canceller's
    output, whose suppressor lets the room's music through in scraps, as unsteady as a voice,
    and a 12 s reply took a music room's `tonal_room` from ~0.7 to under TONAL_ROOM_MIN, so the
    music after it opened the gate (36 music rooms with an agent reply: idle 0.56 -> 0.33 by
    the mean; docs/gate-notes.md, "Music and the agent's replies")."""
    TONAL_ROOM_MIN = 0.5
    """A room is tonal from this `tonal_room` on: music alone ~0.6-0.8, a TV (a talker over
    music) ~0.4-0.55, noise, crowds and halls ~0.0 (docs/gate-notes.md: "Tonal rooms"). 0.35
    also took the TV rooms in, and cut a quiet visitor's speech there (recall 0.965)."""
    TONAL_OPEN_MARGIN = 0.15
    """To open in a tonal room, SPEECH must be at least this much less steady than the room, by
    the median steadiness of the last TONAL_OPEN_BLOCKS blocks."""
    TONAL_OPEN_BLOCKS = 7
    """A melody's note change or a drum hit dips the steadiness for a block or two, and the
    running mean (`tonal`) dipped with it often enough to open the gate on the music; the median
    of 7 blocks (210 ms) does not follow such dips, and follows a voice within 4 blocks (music
    idle at 5-10 dB 0.31-0.53 -> 0.19-0.43; 5 or 9 blocks did less, and 9 lost an onset)."""
    TONAL_HOLD_MARGIN = 0.2
    """To hold the gate open in a tonal room, SPEECH must be this much less steady than the room,
    by the running mean `tonal`: the music between the visitor's words must not hold it (0.15
    held it through most gaps: idle 0.4-0.8), while a reverberant voice, steadier than a dry one,
    must (0.25 closed the gate inside a quiet, reverberant visitor's utterance: recall 0.971)."""
    MOVING_ROOM_MIN = 0.1
    """A tonal room is only music if its steady sound also moves on: its steadiness with the block
    before exceeds that with the block a second before (tonal.py, RECUR_BLOCKS) by this much, as a
    running mean (`moving_room`). A buzz, a whine, a drone recur a second later as they do 30 ms
    later (~0.0: music 0.2-0.45), and the visitor's voice over them stays nearly as steady as they
    are: without this the cue cut that voice (a 120 Hz buzz 5 dB under the visitor: recall
    0.81-0.88; a 1 kHz whine 10 dB under: 0.949; docs/gate-notes.md, "Steady tones are not music")."""
    TONAL_LOUD_DB = 8.0
    """A block this far over the room's usual level opens in a tonal room however steady it is:
    a quiet, reverberant voice at 5 dB under music is nearly as steady as the music (without it
    a held-out room lost 15 % of the visitor's speech). Not a block whose own steadiness (its
    fine structure against the block before's) is as high as the room's, `tonal_room`: that is
    the music striking a new chord at a bar's start (all its notes at once, 8-10 dB over the
    room's running level, which the last chord's decay had pulled down), its partials held from
    this block to the next; a voice, reverberant or not, moves its harmonics between blocks. Of
    the music rooms' openings on music alone (tuning and held-out seeds, 26 rooms), 9 of 17 were
    such chord attacks (docs/gate-notes.md: "A chord's attack is not a loud voice")."""

    NEAR_OVER_MUSIC_DB = 2.0
    NEAR_TONAL_MARGIN = 0.3
    """A block near the visitor's level counts as the visitor (`over_music`) in a music room only
    this far over the room's usual level, or this much less steady than the room by `tonal`. Of
    the music's blocks that restarted the let-go count after the visitor's last word (tuning and
    held-out music 5-10 dB), about a third fail both; of the visitor's, one utterance in 200 has
    no passing block for 0.95 s. 3 dB cut more idle but lost a cheap-microphone room's onset."""

    def __init__(self, warmup_blocks: int) -> None:
        """`warmup_blocks`: the classifier's warm-up, when every block is learned, fast."""
        self.warmup_blocks = warmup_blocks
        self._blocks = 0
        """Blocks weighed so far (the classifier's blocks: it weighs every one)."""
        self.tonal = 0.0
        """Running steadiness of the latest blocks (TONAL_RATE)."""
        self.tonal_room = 0.0
        """Running steadiness of the room's own sound (TONAL_ROOM_RATE)."""
        self.moving_room = 0.0
        """Running (steadiness - recurrence) of the room: how much its steady sound moves on (music)
        rather than staying put (a buzz, a whine, a drone): MOVING_ROOM_MIN. Learned from the
        second second on (the first has no block a second back; 0.2 for the warm-up's blocks then,
        TONAL_ROOM_RATE after), while the gate is closed (every block: a visitor's voice pulls it
        less than it pulls `tonal_room`, to medians of ~0.05 over a tone, ~0.2 over music) and, while it is
        open, on blocks that do not hold it (so music the gate opened on early is told as it
        plays; learned only while closed, two music rooms never were)."""
        self._steadiness: deque[float] = deque([0.0] * self.TONAL_OPEN_BLOCKS, maxlen=self.TONAL_OPEN_BLOCKS)
        """The last TONAL_OPEN_BLOCKS blocks' steadiness (their median decides an opening)."""

    def weigh(self, level: int, band_db: float, ambient_db: float, steadiness: float, recurrence: float, gate_open: bool, far_end: bool) -> int:
        """The cue's `level` for the next block, WEAK for SPEECH about as steady as a music room;
        learns the room's steadiness and how it moves on. `ambient_db`: the room's usual level;
        `far_end`: the kiosk's speaker plays (nothing is learned then)."""
        block = self._blocks
        self._blocks += 1
        self.tonal += self.TONAL_RATE * (steadiness - self.tonal)
        self._steadiness.append(steadiness)
        if level == SPEECH and self.is_music():
            if gate_open:
                as_steady = self.tonal >= self.tonal_room - self.TONAL_HOLD_MARGIN
            else:
                median = sorted(self._steadiness)[self.TONAL_OPEN_BLOCKS // 2]
                loud = band_db >= ambient_db + self.TONAL_LOUD_DB and steadiness < self.tonal_room
                as_steady = not loud and median >= self.tonal_room - self.TONAL_OPEN_MARGIN
            if as_steady:
                level = WEAK
        if far_end:  # the canceller's output, not the room: see TONAL_ROOM_RATE
            return level
        since = block - RECUR_BLOCKS  # before, the block a second back is not there yet
        if since >= 0 and not (gate_open and level == SPEECH):
            self.moving_room += self._room_rate(since) * (steadiness - recurrence - self.moving_room)
        if block < self.warmup_blocks or not (gate_open or level == SPEECH):
            self.tonal_room += self._room_rate(block) * (self.tonal - self.tonal_room)
        return level

    def over_music(self, band_db: float, ambient_db: float) -> bool:
        """May a block near the visitor's level count as the visitor there (restart the let-go
        count, cues.py NEAR_VISITOR_S)? In a music room only if it stands NEAR_OVER_MUSIC_DB over
        the room's usual level (the music's, `ambient_db`), or is NEAR_TONAL_MARGIN less steady
        than the room by the running mean: the visitor at arm's length stands over the music and
        moves its fine structure, the music's own note attacks and drum hits near that level do
        neither (docs/gate-notes.md: "Music near the visitor's level")."""
        if not self.is_music():
            return True
        return band_db >= ambient_db + self.NEAR_OVER_MUSIC_DB or self.tonal <= self.tonal_room - self.NEAR_TONAL_MARGIN

    def is_music(self) -> bool:
        """Is the room's own sound steady and moving on, as music is (TONAL_ROOM_MIN, MOVING_ROOM_MIN)?"""
        return self.tonal_room >= self.TONAL_ROOM_MIN and self.moving_room >= self.MOVING_ROOM_MIN

    def is_steady(self) -> bool:
        """Is the room's own sound steady and staying put, as a whine or a drone is?"""
        return self.tonal_room >= self.TONAL_ROOM_MIN and self.moving_room < self.MOVING_ROOM_MIN

    def _room_rate(self, blocks_learned: int) -> float:
        """How fast `tonal_room` and `moving_room` learn after `blocks_learned` blocks: fast in
        the warm-up's, then TONAL_ROOM_RATE."""
        return 0.2 if blocks_learned < self.warmup_blocks else self.TONAL_ROOM_RATE
