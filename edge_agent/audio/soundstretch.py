"""SoundStretch: where the stretch of sound a gate opening stands on began, for VadGate's look-back.

The gate decides on a word's start up to ~650 ms after it (a weak first syllable, a word that
rises like a knock and is watched first). The pre-roll alone then no longer keeps the 100 ms
lead before the word, so the gate reaches back to where the sound began, as its own levels saw
it: a stretch of frames that are not NOISE, from its first SPEECH frame, moved back over the
WEAK frames right before it, plus a lead (docs/gate-notes.md: "Onsets that lose their lead",
"The look-back's reach", "Through other microphones"). VadGate caps the reach
(`LOOKBACK_EXTRA_MS`); a stretch with a near-opening in it (a run of SPEECH one 30 ms block short
of opening the gate) may reach further, and an opening right after the gate closed sends all of the
gap since ("Every level after the first, and the gaps around an opening").
"""

from __future__ import annotations

from edge_agent.audio.frames import NOISE, SPEECH

SOUND_GAP_MS = 120
"""Quiet gaps of up to this long inside a stretch are bridged (the classifier's `onset_blocks`
starts again at such a gap, measured to cost a weak word its lead; 90 ms cut a weak word's first
syllable off at the 120 ms closure after it)."""
SOUND_LEAD_MS = 210
"""The stretch reaches this much before its start: the labelled start of a word lies up to ~100 ms
before its first SPEECH frame (its weak first sound shows only as WEAK frames), and the lead
wanted is 100 ms; 180 ms left such a word 80 ms."""
SOUND_WEAK_MS = 150
"""The WEAK frames right before the first SPEECH frame, up to this long, count as the stretch's
start: a word whose soft first sound a dull microphone takes under a fan shows as WEAK for
150-200 ms before its vowel, and a word that rises like a knock is decided on ~300 ms after it.
WEAK frames further back, or across a NOISE frame, do not count: they are as often the noise
swelling (following whole stretches from their first WEAK frame sent more of a traffic room;
240 ms kept no more onsets than 150 and sent a little more of music and the TV)."""


NEAR_OPENING_EXTRA_MS = 240
"""How much further than the gate's cap a stretch may reach when a near-opening (a run of SPEECH one
30 ms block short of opening the gate) came in it, within the cap of the opening (a word that rose
like a knock, watched and decided on ~600 ms after its first SPEECH: a quiet visitor under a TV lost
60 ms of its start; docs/gate-notes.md: "Every level after the first, and the gaps around an opening")."""


class SoundStretch:
    """Fed every frame's level, the gate's closes and its near-openings; says how many frames back
    an opening reaches (`look_back`): where the current stretch of sound began, or the last close."""

    def __init__(self, frame_ms: int, bridge_frames: int = 0) -> None:
        self._bridge_frames = bridge_frames  # an opening this close after the gate closed sends the gap
        self._near_extra = NEAR_OPENING_EXTRA_MS // frame_ms
        self._closed_at = -(10**9)  # frames pushed when the gate last closed
        self._near_at = -(10**9)  # the first frame of the latest run of SPEECH one 30 ms block short of opening
        self._gap_frames = max(1, SOUND_GAP_MS // frame_ms)
        self._lead_frames = SOUND_LEAD_MS // frame_ms
        self._weak_frames = SOUND_WEAK_MS // frame_ms
        self._start: int | None = None  # where the current stretch began (its first SPEECH frame, moved back)
        self._quiet = self._gap_frames + 1  # NOISE frames in a row since the stretch's last frame
        self._weak_run = 0  # WEAK frames in a row just before this one

    def follow(self, index: int, level: int) -> None:
        """Frame `index` had `level` (NOISE, WEAK, SPEECH)."""
        if level == NOISE:
            self._quiet += 1
            self._weak_run = 0
            return
        if self._quiet > self._gap_frames:
            self._start = None  # a new stretch
        self._quiet = 0
        if self._start is None and level == SPEECH:
            self._start = index - min(self._weak_run, self._weak_frames)
        self._weak_run = 0 if level == SPEECH else self._weak_run + 1

    def reach(self, frames: int) -> int | None:
        """Frames to reach back from the next frame (`frames` pushed so far) to keep the stretch's
        lead; None with no stretch begun on SPEECH."""
        return None if self._start is None else frames - 1 - self._start + self._lead_frames

    def gate_closed(self, frames: int) -> None:
        """The gate closed with `frames` pushed."""
        self._closed_at = frames

    def near_opening(self, index: int) -> None:
        """A run of SPEECH one 30 ms block short of opening the gate began at frame `index`."""
        self._near_at = index

    def look_back(self, frames: int, began: int, cap: int) -> int:
        """Frames an opening (the next frame is `frames`) reaches back: to where the classifier says
        the sound `began`, the stretch's start, or the close just before it (all of the gap), at most
        `cap`; the stretch's start up to NEAR_OPENING_EXTRA_MS further when a near-opening came in
        the stretch no more than `cap` frames before this opening."""
        if frames - self._closed_at <= self._bridge_frames:
            began = max(began, frames - self._closed_at)
        reach = self.reach(frames)
        if reach is None or self._start is None:  # no stretch begun on SPEECH
            return min(began, cap)
        began = min(max(began, reach), cap)
        if self._near_at >= self._start and frames - self._near_at <= cap:
            began = max(began, min(reach, cap + self._near_extra))
        return began
