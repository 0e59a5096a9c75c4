"""CleanOnset: a sound that begins after the room has been quiet for a second is taken as the visitor's, softer voice and all.

The visitor-level line (cues.py: `visitor_drop_db` under an upper envelope of their loud
syllables, and `NEAR_VISITOR_DB` for holding and vetting) is what keeps a TV, a crowd or music off
the uplink: they fill the gaps between the visitor's words at a lower level. It also cut a
visitor's later utterance said 6-8 dB softer than their first: its first half second stayed under
the line, or its syllables never came near enough to hold the gate (fresh seeds, quiet room with
the quiet visitor: 0.978 of the speech sent; a dull microphone in traffic: 0.889). Where the room
has stayed within `CALM_DB` of its noise floor for `QUIET_S`, nobody else was talking, so the next
sound is measured against lines `RELIEF_DB` lower, until the gate closes after it. A TV or a crowd
leaves no such second, so nothing changes there (README, gate notes: "A softer utterance after a
quiet pause").
"""

from __future__ import annotations

QUIET_S = 1.0
"""How long the room must stay at its floor (0.6 s also took a TV's sentence gaps for quiet: TV
20 dB idle 0.23 -> 0.31)."""
CALM_DB = 4.0
"""A block within this much of the noise floor is the room alone."""
RELIEF_DB = 10.0
"""How much lower the visitor's lines lie for a sound out of a quiet room: a sentence said 9 dB
softer than the visitor's first, whose loud syllables stand 14-18 dB under the envelope of the
first's, goes whole (6 dB kept 0.42-0.88 of some; tests/test_clean_onset.py)."""
KEEP_DB = 6.0
"""...but the opening line never comes closer than this to the room's usual level: at a low SNR
that line is what keeps the noise's swells out (without it, white 10 dB idle 0.018 -> 0.045)."""


class CleanOnset:
    """Is the sound now one that began out of a quiet room? Fed every 30 ms block by CueClassifier."""

    def __init__(self, block_ms: int) -> None:
        self._quiet_blocks = round(QUIET_S * 1000 / block_ms)
        self._calm = 0
        self._was_open = False
        self.clean = False
        """The room was quiet for QUIET_S before this sound, and the gate has not closed after it since."""

    def update(self, band_db: float, floor_db: float, gate_open: bool, far_end: bool) -> None:
        """One block: its level, the room's noise floor, and the gate as it stands. While the
        kiosk's own speaker plays the room is not quiet (the agent's echo is a sound too)."""
        if gate_open:
            self._was_open = True
            return
        if self._was_open or far_end:  # the gate closed after the sound: the next one needs quiet again
            self._was_open = False
            self._calm = 0
            self.clean = False
            if far_end:
                return
        if band_db < floor_db + CALM_DB:
            self._calm += 1
            if self._calm >= self._quiet_blocks:
                self.clean = True
        else:
            self._calm = 0

    def relief_db(self, line_over_room_db: float, in_bang: bool) -> float:
        """How much lower the visitor's lines lie now: RELIEF_DB for a clean onset, less where the
        opening line (`line_over_room_db` over the room's usual level) would come within KEEP_DB of
        the room; nothing for a block under a bang's tail line (`in_bang`: a knock out of a quiet
        room is no visitor; a block over it, as a syllable's rise, is measured as any other)."""
        if not self.clean or in_bang:
            return 0.0
        return min(RELIEF_DB, max(0.0, line_over_room_db - KEEP_DB))
