"""VadGate: decides which microphone frames go up to the agent, so only speech leaves the device.

Two layers:
- a *frame classifier* says "speech-like" per fixed frame (10/20/30 ms of 16 kHz int16):
  `CueClassifier` (cues.py, default) = speech cues beyond energy (band shape against the room's
  noise, bangs, voicing, the visitor's own level); the others (the previous default, plain
  webrtcvad as the baseline, optional silero) are in classifiers.py.
- the *gate* adds hysteresis: it opens after `min_speech_ms` of speech-like frames (a lone knock
  is one frame and never opens it), releases the `preroll_ms` ring buffer so no word loses its
  start, and stays open for `hangover_ms` after the last speech-like frame so the agent's
  end-of-turn detection still hears the trailing silence (weak evidence stretches that to at most 1 + 2/3
  hang-overs, bridging a pause in a sentence; 3 while the speaker plays). `far_end(active)` asks for more evidence
  while the kiosk's own speaker plays. Where other people talk (a classifier's `talker_room`, talkers.py) an
  opening is vetted first: its frames are held until the visitor is heard near their own level (VET_MS); so is
  one on a thing struck out of quiet (`struck`, decay.py), until something rises in its tail and is speech.

While closed, the gate emits digital-silence frames so the server's timeline stays continuous;
the pre-roll burst sent at an onset is paid back by skipping as many silence frames later, so
the uplink never runs ahead of real time. The hot path allocates no Python lists per sample.
"""

from __future__ import annotations

from collections import deque

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.classifiers import make_classifier
from edge_agent.audio.crowd import CROWD_LOOKBACK_MS
from edge_agent.audio.frames import ANALYSIS_MS, NOISE, SPEECH, WEAK, FrameClassifier
from edge_agent.audio.soundstretch import NEAR_OPENING_EXTRA_MS, SoundStretch
from edge_agent.core.config_audio import VadSettings
from edge_agent.errors import AudioError

__all__ = ["NOISE", "SPEECH", "WEAK", "FrameClassifier", "VadGate"]

WEAK_STEP = 1.0 / 3.0
"""How fast WEAK frames use up the hang-over, within `WEAK_HOLD_HANGOVERS` of the last SPEECH."""
WEAK_HOLD_HANGOVERS = 1.0
"""For how many hang-overs after the last SPEECH frame WEAK frames slow the countdown; after that they count as
NOISE: the gate closes at most 1 + 2/3 hang-overs (1.0 s) after the visitor's last speech-like frame, not up to 3
(1.8 s) in fans, traffic and music (docs/gate-notes.md, "Closing after speech"). Not while the speaker plays: the canceller's
leftovers take SPEECH from a visitor talking over the agent, and the limit cut ~1 % of that speech in echo rooms."""
FAR_END_EXTRA_MS = 30
"""More speech-like audio needed to open while the kiosk's speaker plays (its echo is speech too);
the pre-roll grows by as much then, so the onset keeps its lead."""
PRESS_PRIOR_SPEECH_MS = 60
"""Speech-like audio that opens the gate under the press prior (`vad.press_prior_ms`), instead of
`min_speech_ms`: one frame less at 30 ms. A single frame was measured to open on a fan's swings
after a quarter of silent presses (README, press -> speech notes; tests/test_gate_press.py)."""
LOOKBACK_EXTRA_MS = 240
"""How much further back than the pre-roll an onset may reach when the classifier says the sound
began earlier (`onset_blocks`): a weak first syllable the gate decided on late (up to ~650 ms
after it; p50 132 ms, p99 486 ms). 200 ms kept 80 of the 100 ms lead of a word decided on 580 ms
late (docs/gate-notes.md: "The look-back's reach"); more sends more of music (+0.01-0.02)."""
VET_MS = 600
"""In a talker room (talkers.py) an opening is vetted: its pre-roll and frames are held until VET_NEAR_BLOCKS
blocks near the visitor's level (`near_blocks`) have come, then go at once (the visitor's speech reaches the
agent that much later, none of it lost); if they have not come within VET_MS (or the hang-over runs out first)
the gate stays closed and silence goes for the held frames. A TV 20 dB under the visitor: idle 0.64 -> 0.29, no
speech lost (docs/gate-notes.md: "Vetting openings where other people talk"). Not while the speaker plays: the
canceller cuts a visitor talking over the agent far under their level (a vetting then opens)."""
VET_NEAR_BLOCKS = 3
"""...three 30 ms blocks (one: a TV's loudest syllables confirmed its openings now and then; the
quiet visitor's TV room 0.60 against 0.39), counted as blocks whatever the frame size.

An opening on the tail of a thing struck out of quiet (the classifier's `struck`: a knock, a
door, a tray) is vetted too, and goes once a SPEECH frame no longer `struck` comes (something rose
in the tail: a vowel after a plosive's burst). A tail that only dies away is NOISE to the vetted
gate: its hang-over runs out, none of it sent (`strikes_held_back`; docs/gate-notes.md: "A strike
out of quiet is vetted"). Not while the speaker plays."""
STRIKE_VET_MS = 1200
"""...for up to this long (a quiet visitor under a tray's tail in a hall rises out of it at 0.7 s)."""
STRIKE_PRESS_MS = 1500
"""Nor this long after a press (which also ends one): the visitor talks over the earcons that use up the press prior."""

class VadGate:
    """Pre-roll / hang-over / minimum-speech hysteresis around a frame classifier."""

    def __init__(self, settings: VadSettings, frame_ms: int, classifier: FrameClassifier | None = None) -> None:
        self.frame_ms = frame_ms
        self.frame_bytes = SAMPLE_RATE_HZ * frame_ms // 1000 * 2
        self.silence = bytes(self.frame_bytes)
        self.classifier = classifier or make_classifier(settings)
        self._preroll_frames = max(1, settings.preroll_ms // frame_ms)
        self._far_extra = max(1, round(FAR_END_EXTRA_MS / frame_ms))
        self._preroll: deque[tuple[bytes, bool]] = deque()
        """(frame, an earcon was playing in it). Cue frames do not use up the pre-roll, so a word
        said under a cue (at the press, at onready) is still there when the gate opens."""
        self._preroll_cues = 0
        self._lookback_extra = LOOKBACK_EXTRA_MS // frame_ms if hasattr(self.classifier, "onset_blocks") else 0
        self._crowd_extra = CROWD_LOOKBACK_MS // frame_ms if self._lookback_extra else 0
        self._preroll_kept = self._preroll_frames + self._far_extra + self._lookback_extra + self._crowd_extra + (NEAR_OPENING_EXTRA_MS // frame_ms if self._lookback_extra else 0)
        """Frames without a cue kept: room for the longer pre-roll used while the far end plays
        (the later decision keeps its lead) and for the look-back of a late onset (in a crowd, or
        on a stretch with a near-opening in it, further: soundstretch.py)."""
        self._preroll_max = self._preroll_kept + max(1, 1000 // frame_ms)
        """A hard bound all the same: at most a second of cues on top."""
        self._min_run_near = max(1, round(settings.min_speech_ms / frame_ms))
        self._min_run = self._min_run_near
        self._min_run_far = self._min_run_near + self._far_extra
        self._far_end = False
        self._tells_classifier = hasattr(self.classifier, "gate_open")
        """Classifiers with `gate_open`/`far_end` attributes (CueClassifier) are told both."""
        self._hang_frames = max(0, settings.hangover_ms // frame_ms)
        self._weak_hold_frames = WEAK_HOLD_HANGOVERS * self._hang_frames
        # the press (new_visitor): a lower bar for a while, or the gate opened before any evidence
        self._prior_frames = settings.press_prior_ms // frame_ms
        self._prior_left = 0  # frames of the press prior left
        self._min_run_prior = min(self._min_run_near, max(1, round(PRESS_PRIOR_SPEECH_MS / frame_ms)))
        self._press_open_frames = settings.press_opens_ms // frame_ms
        self._vet_frames = max(1, VET_MS // frame_ms)
        self._strike_vet_frames = max(1, STRIKE_VET_MS // frame_ms)
        self._strike_press_frames, self._pressed_at = STRIKE_PRESS_MS // frame_ms, -(10**9)
        self._vetting = 0  # frames left to vet an opening in a talker room or on a strike (0: not vetting)
        self._vet_from = 0  # the classifier's `near_blocks` when the vetting began
        self._vet_strike = False  # the opening vetted is on a struck thing's tail (not a talker room's)
        self._vet_pre: list[bytes] = []  # the vetted opening's pre-roll, sent once it is confirmed
        self.openings_held_back = 0
        """Openings vetted in a talker room that the visitor never came near: other people's talk
        kept off the uplink (a fleet metric: a kiosk placed by a TV or a queue)."""
        self.strikes_held_back = 0
        """Openings on a struck thing's tail that nothing rose out of (a fleet metric: a kiosk by a door)."""
        self._unconfirmed = 0  # frames a press-opened gate stays open without speech to confirm it
        self._held: list[tuple[bytes, bool]] = []
        """(frame, cue) held back while the press alone holds the gate open, from the first one an
        earcon was heard in (a word may start under it; the frames after it too, to keep the
        order). Nothing goes for them meanwhile; when speech confirms the opening they go, in order;
        when the gate closes unconfirmed they are closed frames (silence, into the pre-roll: the
        earcons may have left the press too few frames to confirm a visitor who talks)."""
        self._run = 0  # consecutive speech-like frames while closed
        self._sound = SoundStretch(frame_ms, self._preroll_frames + self._lookback_extra)  # where the sound an opening stands on began
        self._quiet = 0.0  # hang-over used up since the last SPEECH frame while open, in frames
        self._since_speech = 0  # frames since the last SPEECH frame while open
        self.is_open = False
        self.frames = 0
        """Frames pushed so far; the index of the next frame."""
        self.open_since = 0
        """Index of the first frame (pre-roll included) of the current or last open stretch."""
        self.debt = 0
        """Frames sent ahead of real time by pre-roll bursts, to be paid back from silence."""
        self.frames_sent = 0
        self.frames_gated = 0

    @property
    def held_frames(self) -> int:
        """Frames held back now (see `_held`: the press's, or an opening being vetted): nothing
        may go ahead of them (MicPath.lead)."""
        return len(self._held)

    def start_went_ahead(self, n_bytes: int) -> None:
        """The first `n_bytes` of the frame just held back already went up ahead of it (the
        daemon's leads, MicPath.lead). Sent with the frames held, it goes whole and the caller
        sends only its rest; should the gate close unconfirmed, it joins the pre-roll with that
        start silent, so an opening on the words after it does not send those bytes again."""
        frame, cue = self._held[-1]
        self._held[-1] = (bytes(n_bytes) + frame[n_bytes:], cue)

    @property
    def talker_room(self) -> bool:
        """The classifier hears other people talking (talkers.py): openings are vetted now."""
        return bool(getattr(self.classifier, "talker_room", False))

    def _set_open(self, is_open: bool) -> None:
        self.is_open = is_open
        if self._tells_classifier:
            self.classifier.gate_open = is_open  # type: ignore[attr-defined]

    def far_end(self, active: bool) -> None:
        """The kiosk's speaker started (True) or stopped (False) playing agent audio or earcons.

        While it plays, the room also holds the kiosk's own voice (whatever the echo canceller
        leaves): opening then needs FAR_END_EXTRA_MS more of speech-like frames (the pre-roll
        grows by as much, so the onset keeps its lead), and a classifier that can (CueClassifier)
        also wants a clearer speech shape. An open gate stays open: the visitor may barge in."""
        self._far_end = active
        self._min_run = self._min_run_far if active else self._min_run_near
        if active and self._vetting:  # no vetting while the speaker plays
            self._vet_opens_next()
        if self._tells_classifier:
            self.classifier.far_end = active  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ the press
    def new_visitor(self) -> None:
        """A conversation starts (a press): the classifier forgets the previous visitor
        (CueClassifier: their voice level, which otherwise held the next, softer visitor's first
        syllables under it for a few hundred ms); what it learned of the room (noise floor and
        shape) is kept. With `press_prior_ms`, PRESS_PRIOR_SPEECH_MS of speech-like frames open the
        gate for that long (the press says the visitor is about to talk); with `press_opens_ms`,
        the gate opens now, with no pre-roll, and closes again after that long unless
        PRESS_PRIOR_SPEECH_MS of speech-like frames came."""
        if hasattr(self.classifier, "new_visitor"):
            self.classifier.new_visitor()
        self._prior_left = self._prior_frames
        self._pressed_at = self.frames
        if self._press_open_frames and self._vetting:  # the press holds what was being vetted now
            self._vetting, self._vet_pre = 0, []
        elif self._vetting and self._vet_strike:  # the strike was most likely the visitor's first word
            self._vet_opens_next()
        if self._press_open_frames and not self.is_open:
            self._set_open(True)
            self._quiet = 0.0
            self._since_speech = 0
            self._run = 0
            self._unconfirmed = self._press_open_frames
            self._forget_preroll()
            self.open_since = self.frames - len(self._held)

    def _needed_run(self) -> int:
        """Speech-like frames in a row that open the gate now, under the press prior: fewer (unless
        the kiosk's speaker plays the agent: its echo is speech too); uses up one frame of it."""
        self._prior_left -= 1
        return self._min_run if self._far_end else self._min_run_prior

    def push(self, frame: bytes, cue: bool = False) -> tuple[bytes, ...]:
        """One captured frame in; the frames to put on the wire now out (maybe none). `cue`: the
        microphone heard one of the kiosk's own earcons in this frame; it is not classified (a cue
        can never open the gate, nor move the noise floor) but joins the pre-roll, on top of
        `preroll_ms`, since a word may start under it; while the press alone holds the gate open,
        it is held back for the same reason, and the frames after it too (`_held`)."""
        if len(frame) != self.frame_bytes:
            raise AudioError(f"gate expects {self.frame_bytes}-byte frames, got {len(frame)}")
        index = self.frames
        self.frames += 1
        # a cue is not classified while closed, nor while the press alone holds the gate open (it
        # cannot confirm a visitor); an open gate classifies it (the visitor may be talking over it)
        level = NOISE if cue and (not self.is_open or self._unconfirmed) else self.classifier.classify(frame)
        self._sound.follow(index, level)
        if self._vetting:
            return self._vet(index, frame, cue, level)
        if self.is_open:
            if self._unconfirmed:  # opened by the press: speech must come as it would open the gate
                self._run = self._run + 1 if level == SPEECH else 0
                self._unconfirmed = 0 if self._run >= self._min_run_prior else self._unconfirmed - 1
                if not self._unconfirmed and self._run < self._min_run_prior:
                    self._set_open(False)
                    self._run = 0
                    held, self._held = self._held, []
                    return tuple(out for f, c in (*held, (frame, cue)) for out in self._closed(f, c))
            elif not self._hang_over(level):
                self._set_open(False)
                self._run = 0
                self._sound.gate_closed(self.frames)
                self._forget_preroll()
            if self.is_open:
                if self._unconfirmed and (cue or self._held):
                    # held open by the press alone: what is left of an earcon taken out of a frame
                    # goes only once the visitor is heard (it may hold their first word's start)
                    self._held.append((frame, cue))
                    return ()
                if not self._held:  # every open frame but those right after a hold: no burst to build
                    self.frames_sent += 1
                    return (frame,)
                burst = (*(f for f, _ in self._held), frame)
                self._held.clear()
                self.frames_sent += len(burst)
                return burst
        else:
            if level != SPEECH and self._run >= self._min_run - ANALYSIS_MS // self.frame_ms:  # a run one 30 ms block short of opening: a word's start, perhaps
                self._sound.near_opening(index - self._run)
            self._run = self._run + 1 if level == SPEECH else 0
            if self._run >= (self._needed_run() if self._prior_left else self._min_run):
                self._prior_left = 0
                if not self._far_end and self.talker_room and not getattr(self.classifier, "near_visitor", True):
                    return self._start_vetting(frame, cue)
                if not self._far_end and getattr(self.classifier, "struck", False) and self.frames - self._pressed_at > self._strike_press_frames:
                    return self._start_vetting(frame, cue, strike=True)
                self._set_open(True)
                self._quiet = 0.0
                self._since_speech = 0
                burst = (*self._preroll_burst(), frame)
                self._forget_preroll()
                self.open_since = index - len(burst) + 1
                self.debt += len(burst) - 1
                self.frames_sent += len(burst)
                return burst
        return self._closed(frame, cue)

    def _hang_over(self, level: int) -> bool:
        """One frame of an open (or vetted) gate against its hang-over: SPEECH restarts it; WEAK
        only slows its countdown, so weak evidence bridges the quiet parts of a sentence but
        cannot hold a gate open for ever. False once the hang-over has run out."""
        if level == SPEECH:
            self._quiet = 0.0
            self._since_speech = 0
            return True
        self._since_speech += 1
        slow = level == WEAK and (self._far_end or self._since_speech <= self._weak_hold_frames)
        self._quiet += WEAK_STEP if slow else 1.0
        return self._quiet <= self._hang_frames

    # ------------------------------------------------------------------ vetting (talker rooms, strikes)
    def _start_vetting(self, frame: bytes, cue: bool, strike: bool = False) -> tuple[bytes, ...]:
        """An opening in a talker room on a frame not near the visitor's level (on one near it
        the gate opens at once: vetting it too cut a soft phrase in a TV room and in white noise),
        or (`strike`) on a struck thing's tail. The classifier hears the gate as open (its holding
        lines); the caller sees a closed gate sending nothing, until `_vet` decides."""
        self._vetting = self._strike_vet_frames if strike else self._vet_frames
        self._vet_strike = strike
        self._vet_from = self._near_blocks()
        self._vet_pre = self._preroll_burst()
        self._quiet = 0.0
        self._since_speech = 0
        if self._tells_classifier:
            self.classifier.gate_open = True  # type: ignore[attr-defined]
        self._held.append((frame, cue))
        return ()

    def _vet(self, index: int, frame: bytes, cue: bool, level: int) -> tuple[bytes, ...]:
        """A frame of an opening being vetted: the visitor near their level confirms it (its
        pre-roll and held frames go now, the gate is open); VET_MS without, or the hang-over run
        out, and the gate stays closed: the held frames join the pre-roll, silence goes for them.
        On a struck thing's tail, SPEECH no longer `struck` confirms it instead (STRIKE_VET_MS)."""
        self._held.append((frame, cue))
        if self._vet_strike:
            confirmed = level == SPEECH and not getattr(self.classifier, "struck", False)
        else:
            confirmed = self._near_blocks() - self._vet_from >= VET_NEAR_BLOCKS  # (an earcon's frame is not classified)
        if confirmed:
            burst = (*self._vet_pre, *(f for f, _ in self._held))
            self.debt += len(self._vet_pre)  # went as silence when they came
            self._held.clear()
            self._vetting, self._vet_pre = 0, []
            self._forget_preroll()
            self._set_open(True)
            self._quiet = 0.0
            self._since_speech = 0
            self.open_since = index - len(burst) + 1
            self.frames_sent += len(burst)
            return burst
        self._vetting -= 1
        if self._hang_over(level) and self._vetting:
            return ()
        self._vetting, self._vet_pre = 0, []
        if self._vet_strike:
            self.strikes_held_back += 1
        else:
            self.openings_held_back += 1
        self._set_open(False)
        self._run = 0
        held, self._held = self._held, []
        return tuple(out for f, c in held for out in self._closed(f, c))

    def _vet_opens_next(self) -> None:
        """The opening being vetted goes with the next frame, as one the visitor confirmed (`_vet`)."""
        self._vet_from, self._vet_strike = -VET_NEAR_BLOCKS, False

    def _near_blocks(self) -> int:
        return int(getattr(self.classifier, "near_blocks", 0))

    def _closed(self, frame: bytes, cue: bool) -> tuple[bytes, ...]:
        """A frame the closed gate keeps back: into the pre-roll; silence, or nothing while a
        pre-roll burst is paid back."""
        self._preroll.append((frame, cue))
        self._preroll_cues += cue
        while len(self._preroll) - self._preroll_cues > self._preroll_kept or len(self._preroll) > self._preroll_max:
            self._preroll_cues -= self._preroll.popleft()[1]
        self.frames_gated += 1
        if self.debt > 0:
            self.debt -= 1
            return ()
        return (self.silence,)

    def _preroll_burst(self) -> list[bytes]:
        """The pre-roll to send at an opening: `preroll_ms` of frames without a cue (FAR_END_EXTRA_MS
        more while the far end plays), with the cue frames among them."""
        keep = self._preroll_frames + (self._far_extra if self._far_end else 0)
        if self._lookback_extra:  # the sound began before the pre-roll (a weak first syllable decided late): reach back to it
            began = self.classifier.onset_blocks * ANALYSIS_MS // self.frame_ms + self._preroll_frames // 5  # type: ignore[attr-defined]
            cap = self._preroll_frames + self._lookback_extra + (self._crowd_extra if getattr(self.classifier, "crowd_rule", False) else 0)
            keep = max(keep, self._sound.look_back(self.frames, began, cap))  # or where the stretch of sound this opening is on began
        held = list(self._preroll)
        plain = len(held) - self._preroll_cues
        start = 0
        while plain > keep:
            plain -= not held[start][1]
            start += 1
        return [frame for frame, _ in held[start:]]

    def forget_heard(self) -> None:
        """The microphone was closed to the conversation (muted under half duplex, a push-to-talk
        button up) and opens again: what the gate kept of that time (its pre-roll, an opening
        being vetted) is not the visitor's to send, and never goes up. Silence went for it."""
        self._forget_preroll()
        if self._vetting:
            self._vetting, self._vet_pre = 0, []
            self._held.clear()
            self._set_open(False)
            self._run = 0

    def _forget_preroll(self) -> None:
        self._preroll.clear()
        self._preroll_cues = 0
