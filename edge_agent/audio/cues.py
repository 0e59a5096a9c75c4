"""CueClassifier (`vad.engine = "cues"`, the default): tells the visitor's speech from room sound.

Energy over a noise floor passes whatever is louder than the floor: a fan on its upswing, a car
going by, a knock, music. This classifier asks more of a sound before it opens the gate, with
cues that cost one real FFT per 30 ms and a handful of operations on 8 numbers (measured in
bench: about the cost of the webrtcvad-based classifier). Developed on the seeded rooms of
devtools/rooms.py; README's gate table has the whole matrix, held-out rooms apart, and what it
does not hold back yet (a TV, a crowd before the visitor has spoken; music only in part, since
the tonal-room cue).
"""

from __future__ import annotations

import math
import operator

from edge_agent.audio.bandshape import BandShape
from edge_agent.audio.crowd import CrowdRoom
from edge_agent.audio.decay import HANG_STRIKE_VOICING, DecayRun, lag_rings
from edge_agent.audio.frames import ANALYSIS_MS, NOISE, SPEECH, WEAK, BlockClassifier, NoiseFloor
from edge_agent.audio.speechlike import SpeechLikeness, SpeechModel
from edge_agent.audio.steadyroom import SteadyRoom
from edge_agent.audio.talkers import TalkerRoom
from edge_agent.audio.tonalroom import TonalRoom
from edge_agent.audio.voicing import BlockPitch


class CueClassifier(BlockClassifier):
    """Speech cues on a fixed 30 ms grid, told whether the gate is open (VadGate sets `gate_open`).

    - shape: the speech band (300-4000 Hz) in 8 sub-bands averaged over two frames, level
      removed, against a running model of the noise's own shape. Stationary and fluctuating noise
      (a fan swinging ±6 dB, traffic swells, HVAC drift) keep their shape when their level moves;
      speech does not. A frame must stand `shape_db` beyond the noise's usual distance.
    - bangs: a jump of `bang_rise_db` starts a bang (knock, door, footstep, dropped tray); while
      the sound stays under the bang's decaying tail only voiced frames (peak of the band-limited
      magnitude spectrum's inverse transform at 80-500 Hz pitch lags) whose spectrum moves count.
      A syllable rises again and ends the bang, but for an unvoiced rise on the block after the
      bang's first (its attack across the block edge). To open the gate, a tail block whose pitch
      lag holds still as it dies (a tray ringing out, `_rings`) does not count, nor one of a tail
      that has only fallen since its bang, three times or twice after a strike's step (a knock's
      reverberation), nor any block that holds its fine spectrum still within a second of a bang struck
      out of quiet (a tray's beating partials, `DecayRun.rings`; all in decay.py). A bang struck
      out of quiet is `struck` until something rises in its tail: VadGate vets an opening there;
      in an open gate's hang-over, its stepped-down tail (footsteps) or its ring does not restart it.
    - the room's usual level: opening needs `rise_db` over the room's running level.
    - the visitor's own level: an upper envelope of confirmed speech in this conversation, never
      much further under the loudest syllable of the opening it follows than `visitor_drop_db` (the
      confirming run may be a soft word's tail; a crowd pulls it down); sound more than that under it neither opens nor holds the gate
      (background talkers and a TV are farther away than the visitor). And an open gate lets go after
      `NEAR_VISITOR_S` without a SPEECH block within `NEAR_VISITOR_DB` of it: the visitor's
      stressed syllables come back near, the music or TV holding the gate on does not. In a
      room of steady noise, both lines reach further (steadyroom.py): no one else is there.
    - tonal rooms (music, tonalroom.py): where the room's own sound holds its notes and moves on
      to others, SPEECH about as steady as the room becomes WEAK: a voice over music makes the
      blocks less steady, the music alone does not. Where the steady sound stays put instead (a
      whine, a drone), the noise's shape model does not learn the open gate's blocks
      (SLOW_SHAPE_RATE).
    - where the sound began: `onset_blocks` counts the blocks since the room was last at its usual
      level; VadGate reaches back there when it decided late on a weak first syllable.
    - other talkers (talkers.py): where the gate opened on sound that never came near the
      visitor's level, `talker_room` is set, and VadGate then vets openings on `near_visitor`; in a
      crowd, near needs the visitor's own swing (crowd.py).

    - busy rooms (`vad.engine = "learned"` only): where SPEECH has filled more than `busy_share` of
      the last ~6 s (music, a TV, a crowd), a SPEECH block must also look like the visitor to the
      learned speech-likeness (speechlike.py): probability `open_p` to open, `hold_p` to hold;
      otherwise it is WEAK.

    SPEECH opens and holds the gate; WEAK (speech-ish shape, or 6 dB over the noise floor) only
    slows the hang-over, so consonants and short pauses do not close it. `aggressiveness` 0..3
    moves the shape and voicing thresholds. The first 0.5 s only learns the room.
    """

    BAND_EDGES_HZ = (300.0, 450.0, 650.0, 900.0, 1250.0, 1700.0, 2300.0, 3000.0, 4000.0)
    PITCH_HZ = (80.0, 500.0)
    VOICED_WITHIN_FRAMES = 5
    VISITOR_RISE = 0.05
    CONFIRM_FRAMES = 6
    FAR_END_SHAPE_DB = 0.25
    """Extra shape needed to open while the kiosk's own speaker plays."""
    WARMUP_FRAMES = 16
    """About 0.5 s to learn the room before the gate may open (the pre-roll still keeps it)."""
    VISITOR_SINK = 0.005
    VISITOR_FORGET_DB = 0.005
    TAIL_FLUX_DB = 0.5
    BANG_MARGIN_DB = 3.0
    ONSET_RISE_DB = 3.0
    ONSET_QUIET_BLOCKS = 3
    """Where an onset's sound began: after the last ONSET_QUIET_BLOCKS blocks under the room's usual
    level + ONSET_RISE_DB (VadGate reaches back there when it decided late on a weak first syllable)."""
    BUSY_RATE = 0.005
    """How fast `busy` follows the share of SPEECH blocks (a running mean over ~6 s)."""
    SLOW_SHAPE_RATE = 0.002
    """How fast the noise's shape model follows a block unlike the noise (about 15 s): anything
    that lasts becomes the noise, slowly. Not while the gate is open in a steady tonal room (a
    whine) for blocks near the visitor's level: the model drifted toward the visitor's voice and
    the tone then held the gate open for good (docs/gate-notes.md: "A steady tone after the
    visitor's last word")."""
    NEAR_VISITOR_DB = 6.0
    """An open gate is held only while, within the last NEAR_VISITOR_S, a SPEECH block came within
    this much of the visitor's level; after that its blocks are NOISE. The visitor comes back near
    their level with every stressed syllable; music, a TV or a crowd 10-20 dB under them held the
    gate on for as long as they played (docs/gate-notes.md: "Letting go of a hold the visitor no
    longer carries"). 5 dB lost words in soft phrases (traffic, hall); 7 dB gave less."""
    NEAR_VISITOR_S = 1.0
    """...and 0.8 s lost a music room's onset, 1.5 s gave half the gain. Not while the kiosk's
    speaker plays (`far_end`): the canceller cuts a visitor who talks over the agent by 10-25 dB
    at times, far under their own level (with the rule on there too, the kiosk 150 ms loud echo
    room lost 14 % of the visitor talking over the agent from 6 s)."""
    BANG_DECAY_DB = 0.6
    """A bang's tail is assumed to fall by at least this much per 30 ms (20 dB/s: RT60 3 s)."""
    def __init__(
        self,
        aggressiveness: int = 2,
        shape_db: float = 0.6,
        keep_shape_db: float = 0.5,
        keep_snr_db: float = 6.0,
        voicing: float = 0.22,
        visitor_drop_db: float = 12.0,
        rise_db: float = 2.0,
        bang_rise_db: float = 10.0,
        floor_window_s: float = 3.0,
        speech_model: SpeechModel | None = None,
        open_p: float = 0.3,
        hold_p: float = 0.5,
        busy_share: float = 0.65,
        features: bool = False,
    ) -> None:
        super().__init__()
        self._shape = BandShape(self.BAND_EDGES_HZ)
        self._pitch_of = BlockPitch(self._shape, self.PITCH_HZ)  # this block's voicing and pitch lag, once a block (voicing.py)
        self.shape_db = shape_db + 0.25 * (aggressiveness - 2)
        self.keep_shape_db = keep_shape_db
        self.keep_snr_db = keep_snr_db
        self.voicing = voicing + 0.02 * (aggressiveness - 2)
        self.visitor_drop_db = visitor_drop_db
        self.rise_db = rise_db
        self.bang_rise_db = bang_rise_db
        self._bang_db = -math.inf
        """Upper bound of the latest bang's decaying tail, in dB."""
        self._bang_began = False
        """The block before started a bang: a rise now without pitch is still its attack (`_track_bang`)."""
        self._prev_db = 0.0
        self._decay = DecayRun()  # is the bang's tail dying away? then it does not open the gate
        self._tail_lag = -1
        """Pitch lag of this block if `_rings` asked for it, else -1 (a ring's partials hold still)."""
        self.gate_open = False
        """Set by VadGate: opening needs voiced speech near the visitor's level, holding only its shape."""
        self.far_end = False
        """Set while the kiosk's own speaker plays: more evidence is needed to open."""
        self._noise_shape: list[float] = []
        self.noise_distance_db = 1.0
        """Usual distance of the noise's own frames from its shape model (estimation jitter)."""
        self._floor = NoiseFloor(floor_window_s)
        self.floor_db, self.band_db = math.inf, 0.0
        self.ambient_db = 0.0
        """Running mean level of the room while the gate is closed (about 1 s)."""
        self.visitor_db = -math.inf
        """Running level of the visitor's confirmed speech; -inf until the visitor has spoken."""
        self._run = 0
        self._opening_peak_db = -math.inf  # the loudest SPEECH block since the gate opened (not while the speaker plays)
        self._near_within = round(self.NEAR_VISITOR_S * 1000 / ANALYSIS_MS)
        self._since_near = 0
        """Blocks since the last SPEECH block within NEAR_VISITOR_DB of the visitor's level. An
        opening does not restart it: once let go, a gate the music opens again holds for its
        hang-over only (restarting it at each opening: music 10 dB 0.202 -> 0.239, no speech gained)."""
        self.onset_blocks = 0
        """30 ms blocks since the sound began (see ONSET_QUIET_BLOCKS): VadGate's look-back at an onset."""
        self._quiet_blocks, self._frame, self._voiced_at = 0, 0, -1000
        self.likeness = SpeechLikeness(speech_model, self._pitch_of.lag_lo) if speech_model is not None or features else None
        """The learned speech-likeness (speechlike.py): its features with `features`, and a veto on
        SPEECH in a busy room when it has a model (`vad.engine = "learned"`)."""
        self.open_p, self.hold_p, self.busy_share = open_p, hold_p, busy_share
        self.busy = 0.0
        """Share of the recent blocks (~6 s) the cues called SPEECH: high in a room of music, a TV, a crowd."""
        self.room_tone = TonalRoom(self.WARMUP_FRAMES)  # the room's steadiness and how it moves (music, a whine)
        self.talkers = TalkerRoom(ANALYSIS_MS)
        self.steady_room = SteadyRoom()  # steady noise? then the visitor's softer speech reaches further
        self.crowd = CrowdRoom(ANALYSIS_MS)  # does the room fluctuate as a crowd does, and the last 0.6 s as the visitor?
        self.near_visitor = False
        """The last block was not NOISE and within NEAR_VISITOR_DB of the visitor's level (or the
        level is not known yet): what VadGate vets an opening on in a talker room..."""
        self.near_blocks = 0
        """...and how many blocks were, so far (a 10 or 20 ms frame may repeat its block's word)."""

    @property
    def crowd_rule(self) -> bool:
        """Near the visitor needs their swing (crowd.py); VadGate's openings reach further back."""
        return self.crowd.rules()

    @property
    def struck(self) -> bool:
        """In the tail of a thing struck out of quiet, nothing risen since, the visitor heard: VadGate vets an opening here."""
        return self._decay.struck and self.visitor_db > -math.inf

    @property
    def talker_room(self) -> bool:
        """The gate opened on talk that never came near the visitor's level, lately (talkers.py)."""
        return self.talkers.active(self._frame)

    def new_visitor(self) -> None:
        """A new conversation: forget the previous visitor's level (the next one may speak softer,
        and would otherwise count as a background talker under it), and the loudest syllable of an
        opening still open from before the press (the new one's level would be floored by it); the room model is kept."""
        self.visitor_db = self._opening_peak_db = -math.inf
        self._run = 0
        self._since_near = 0

    def _voiced_recently(self) -> bool:
        """A voiced frame among the last few (syllables often start unvoiced); computed lazily."""
        if self._frame - self._voiced_at > self.VOICED_WITHIN_FRAMES and self._pitch_of()[0] >= self.voicing:
            self._voiced_at = self._frame
        return self._frame - self._voiced_at <= self.VOICED_WITHIN_FRAMES

    def _track_bang(self, band_db: float, steadiness: float) -> bool:
        """A jump of `bang_rise_db` starts a bang; its tail may then only fall by BANG_DECAY_DB a
        frame. True on the block that starts one, and on the block after it if the bang's attack
        goes on there.

        A rise of BANG_MARGIN_DB ends the bang: a syllable rises again with its voiced vowel. But
        an impulse that strikes late in one block peaks in the next (the window's taper, a room's
        first reflections), so the block right after a bang's first one may rise further without
        being a syllable: there a rise ends the bang only if that block is voiced; unvoiced, it is
        the same bang, its line raised to it (docs/gate-notes.md: knocks). Not while the far end
        plays: a visitor talking over the agent's leftover echo starts with an unvoiced consonant,
        which this took for the attack (double talk, kiosk 70 ms from 11 s: 0.9986 -> 0.9678)."""
        rise = band_db - self._prev_db
        self._prev_db = band_db
        self._decay.step(rise, steadiness)
        began, self._bang_began = self._bang_began, False
        carry = began and self._decay.was_struck and self._decay.hang_over  # struck in the hang-over: its attack may go on
        if rise >= self.bang_rise_db and band_db >= self.ambient_db + self.bang_rise_db:
            self._bang_began = True  # struck out of the room's quiet (the block before was), or a rap of a struck knock
            # out of quiet: the block before was, or began the sound out of it (an attack across a block edge)
            out_of_quiet, hang_over = self._quiet_blocks > 0 or self.onset_blocks == 1, self._struck_in_hang_over() or carry
            return self._bang_from(band_db, ((not self.gate_open or self._decay.was_struck) and out_of_quiet) or hang_over, hang_over, out_of_quiet)
        if rise >= self.BANG_MARGIN_DB:
            if began and not self.far_end and self._pitch_of()[0] < self.voicing:  # the bang's attack, across the block edge
                return self._bang_from(band_db, self._decay.was_struck, carry)
            self._bang_db = -math.inf  # rising again: a syllable, not a bang's tail
        else:
            self._bang_db -= self.BANG_DECAY_DB
        return False

    def _bang_from(self, band_db: float, struck: bool, hang_over: bool = False, ring: bool = False) -> bool:
        """A bang's tail lies under this block's level + BANG_MARGIN_DB, and dies away from here."""
        self._bang_db = band_db + self.BANG_MARGIN_DB
        self._decay.bang(struck, self.room_tone.tonal, hang_over, ring)  # the room's steadiness up to the block before (weigh comes later)
        return True

    def _struck_in_hang_over(self) -> bool:
        """The gate open, the room back at its level (`onset_blocks`: but for a block), an unvoiced bang: a footstep after the last word?"""
        return self.gate_open and not self.far_end and not self._decay.was_struck and self.onset_blocks <= 1 and self._pitch_of()[0] < HANG_STRIKE_VOICING

    def _tail_speech(self, flux: float, band_db: float, prev_db: float, prev_lag: int, bang: bool) -> bool:
        """In a bang's tail: voiced sound whose spectrum moves, and (to open) neither dying away nor a ring."""
        if not self.gate_open and self._decay.dying():
            return False
        return flux >= self.TAIL_FLUX_DB and self._voiced_recently() and (self.gate_open or not self._rings(band_db, prev_db, prev_lag, bang))

    def _rings(self, band_db: float, prev_db: float, prev_lag: int, bang: bool) -> bool:
        """Is this block of a bang's tail a ring dying away (decay.RING_FALL_DB)? `prev_lag`: the pitch
        lag of the block before if it was asked too, else -1; `bang`: this block started one."""
        self._tail_lag = -1 if bang else self._pitch_of()[1]  # the bang's own block: its click says nothing of a pitch
        return not bang and lag_rings(self._tail_lag, prev_lag, band_db - prev_db)

    def _shape_excess(self, bands: list[float]) -> float:
        """How far the level-free band shape is from the noise's, beyond the noise's own jitter; learns the noise."""
        model = self._noise_shape or bands
        shape_off: list[float] = list(map(operator.sub, bands, model))
        distance = sum(map(abs, shape_off)) / len(bands)
        excess = distance - self.noise_distance_db
        if excess < self.shape_db or self._frame < self.WARMUP_FRAMES:  # noise-shaped: learn the noise (its shape, how much it jitters)
            rate = 0.05
            self.noise_distance_db += 0.02 * (distance - self.noise_distance_db)
        elif self.gate_open and self.room_tone.is_steady() and self.band_db >= self.visitor_db - self.visitor_drop_db:
            return excess  # the visitor, most likely, over a steady tone: SLOW_SHAPE_RATE
        else:  # anything that lasts becomes the noise, slowly (a new machine, a changed room)
            rate = self.SLOW_SHAPE_RATE
        self._noise_shape = [m + rate * o for m, o in zip(model, shape_off, strict=True)]
        return excess

    def _carried(self, level: int, band_db: float, reach_db: float) -> int:
        """NOISE for an open gate's block once the visitor has not come near their own level for
        NEAR_VISITOR_S (not while the far end plays); else `level`. In a steady room, a block
        `reach_db` further under holds too, but does not make an opening the visitor's (talkers.py)."""
        near = band_db >= self.visitor_db - self.NEAR_VISITOR_DB
        if near and not self.far_end:
            self.crowd.heard_near()
        near = near and self.crowd.swings(self.visitor_db - band_db)  # in a crowd, as the visitor swings (crowd.py)
        self.near_visitor = near and level != NOISE
        self.near_blocks += self.near_visitor
        if level == SPEECH and near and self.room_tone.over_music(band_db, self.ambient_db):
            self._since_near = 0
            if self.gate_open:
                self.talkers.heard_visitor()
            return level
        self._since_near = 0 if level == SPEECH and reach_db and band_db >= self.visitor_db - self.NEAR_VISITOR_DB - reach_db else self._since_near + 1
        if self.gate_open and not self.far_end and self._since_near > self._near_within:
            return NOISE
        return level

    def _follow_visitor(self, level: int, band_db: float, bang: bool = False) -> None:
        self._run = self._run + 1 if level == SPEECH else 0
        if not self.gate_open:
            self._opening_peak_db = -math.inf
        elif level == SPEECH and not self.far_end and not (bang and self.visitor_db > -math.inf):  # a footstep's strike does not floor a known level
            self._opening_peak_db = max(self._opening_peak_db, band_db)
        if self._run >= self.CONFIRM_FRAMES:  # confirmed speech: follow the visitor's level
            # at most visitor_drop_db under this opening's loudest syllable (docs/gate-notes.md: "The visitor's first level", "Every level after the first")
            self.visitor_db = max(band_db if self.visitor_db == -math.inf else self.visitor_db, self._opening_peak_db - self.visitor_drop_db)
            # an upper envelope (rises fast, sinks slowly): the visitor's loud syllables, not the
            # background talkers that fill their gaps
            self.visitor_db += (self.VISITOR_RISE if band_db > self.visitor_db else self.VISITOR_SINK) * (band_db - self.visitor_db)
        else:
            self.visitor_db -= self.VISITOR_FORGET_DB

    def _weigh_likeness(self, likeness: SpeechLikeness, level: int, cue_level: int, band_db: float, flux: float, excess: float, floor: float, bands: list[float]) -> int:
        """Feeds the speech-likeness its block; in a busy room, SPEECH it finds unlike the visitor becomes WEAK."""
        likeness.update(
            self._pitch_of() if level != NOISE else None,
            band_db,
            flux,
            excess,
            band_db - floor,
            band_db - self.ambient_db,
            self.visitor_db - band_db if self.visitor_db > -math.inf else None,
            band_db <= self._bang_db,
            sum(bands[:4]) - sum(bands[4:]),
        )
        self.busy += self.BUSY_RATE * (float(cue_level == SPEECH) - self.busy)  # before the tonal cue: music is busy
        if level == SPEECH and likeness.model is not None and self.busy >= self.busy_share and likeness.speech_probability() < (self.hold_p if self.gate_open else self.open_p):
            return WEAK
        return level

    def read_ahead(self, pcm: bytes) -> None:
        """`pcm` is what `classify` gets next, frame by frame (a recording): its audio-only analysis is then batched, same figures (BandShape)."""
        self._shape.read_ahead(pcm)

    def _analyse(self, frame: bytes) -> int:
        band_db, bands, flux, steadiness, recurrence = self._shape(frame)
        self.talkers.watch(self._frame, self.gate_open, self.visitor_db > -math.inf)
        if self._frame == 0:
            self.ambient_db = band_db
        self.band_db = band_db
        self.crowd.update(band_db, not self.far_end)
        self.floor_db = floor = self._floor.update(band_db)
        excess = self._shape_excess(bands)
        prev_db = self._prev_db
        self._pitch_of.new_block()  # before `_track_bang`, which may ask this block's pitch
        bang = self._track_bang(band_db, steadiness)
        level = NOISE
        reach_db = self.steady_room.reach_db(band_db, self.ambient_db)  # once a block: the lines below and the hold
        prev_lag, self._tail_lag = self._tail_lag, -1
        if self._frame < self.WARMUP_FRAMES:  # the noise model is still forming: nothing opens yet
            pass
        elif excess >= self.keep_shape_db or band_db - floor >= self.keep_snr_db:
            level = WEAK
            # holding needs speech shape near the visitor's level (consonants are not voiced);
            # opening also a rise over the room's usual level
            need_db = self.shape_db if self.gate_open else self.shape_db + (self.FAR_END_SHAPE_DB if self.far_end else 0.0)
            loud_db = self.visitor_db - self.visitor_drop_db - reach_db
            loud_db = loud_db if self.gate_open else max(loud_db, self.ambient_db + self.rise_db)
            # in the tail of a bang (a knock, a door, a dropped tray) only voiced sound whose
            # spectrum moves counts, as bangs have no pitch and a ringing tray holds still
            if excess >= need_db and band_db >= loud_db and (band_db > self._bang_db or self._tail_speech(flux, band_db, prev_db, prev_lag, bang)):
                level = SPEECH if self.gate_open or not self._decay.rings(flux) else WEAK
        cue_level, level = level, self.room_tone.weigh(level, band_db, self.ambient_db, steadiness, recurrence, self.gate_open, self.far_end)
        if self.likeness is not None:
            level = self._weigh_likeness(self.likeness, level, cue_level, band_db, flux, excess, floor, bands)
        level = self._carried(level, band_db, reach_db)
        # the sound began after the last stretch of ONSET_QUIET_BLOCKS blocks at the room's usual level
        self._quiet_blocks = 0 if band_db - self.ambient_db >= self.ONSET_RISE_DB else self._quiet_blocks + 1
        self.onset_blocks = 0 if self._quiet_blocks >= self.ONSET_QUIET_BLOCKS else self.onset_blocks + 1
        if not self.gate_open:
            self.ambient_db += 0.03 * (band_db - self.ambient_db)
        self.steady_room.update(band_db, self.ambient_db, not self.gate_open and level == NOISE)
        self._frame += 1
        self._follow_visitor(level, band_db, bang)
        if self.gate_open and self.struck and self._decay.dying() and band_db <= self._bang_db:
            return NOISE  # a struck thing's tail dying away: the hang-over runs out on it (vetted or not)
        if level == SPEECH and self.gate_open and (self._decay.in_hang_over or (not self.far_end and self._decay.rings(flux))):
            return WEAK  # struck in the hang-over, or a ring: it does not restart it (the bookkeeping above heard SPEECH)
        return level
