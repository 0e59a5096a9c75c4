"""How loud the agent's echo can be at the microphone in one frame, from what the speaker played.

The echo canceller's residual-echo cue (echo.py) marks a frame as the kiosk's own sound when the
canceller took most of it off. In double talk WebRTC's AEC3 also takes 10-25 dB off the visitor's
own words now and then (measured in the simulated rooms: a visitor 20 dB over the echo, cut by
13 dB), and a visitor marked as echo cannot open the gate: their sentence was lost. This module
answers the question the cue could not: is the microphone louder than the agent's echo could be?

`EchoLevel` keeps the reference's energy per 10 ms block for the last second and learns the echo
path's gain (mic level over the reference's envelope) on frames that were mostly echo. A frame
whose mic stands `VISITOR_OVER_ECHO_DB` above the echo it predicts holds something the speaker
did not play. Only asked of frames the canceller took 8 dB or more off while the agent played:
a max over the last second's ~100 block energies.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK_S = 0.01
"""The reference's energy is kept per 10 ms block (the canceller's block)."""
TAIL_S = 0.08
"""The envelope takes in reference played up to this much earlier than the echo's delay says:
the room's early reflections, which carry most of the echo's energy, arrive a few tens of ms
after the direct sound."""
REVERB_DECAY_DB_PER_S = 60.0
"""Beyond TAIL_S the reference still counts, fading by this much per second: the room's late
reverberation (RT60 1 s). A dead room's echo fades faster; counting more echo only keeps a frame
marked as the kiosk's own."""
LEAD_S = 0.02
"""...and up to this much later: the delay estimate's own uncertainty."""
UNKNOWN_LAG_S = (0.0, 0.45)
"""Where the echo may be before the delay is known: what AEC3 follows by itself."""
VISITOR_OVER_ECHO_DB = 6.0
"""A frame this far over the predicted echo holds more than the echo. The gain of single echo
frames scatters by about ±5 dB around the learned mean (kiosk 200 ms room): at 6 dB the agent
alone stayed unsent in the 14 rooms where it was, at 9 dB more of the visitor was lost again
(4 of 64 double-talk runs under 0.98 instead of 1)."""
ECHO_FRAME_DB = 15.0
"""Frames the canceller took this much off are mostly echo: the gain is learned on them."""
LEARN_RATE = 0.05
LEARN_STEP_DB = (-6.0, 3.0)
"""A learning step moves the gain by a share of the difference clipped to this range: a frame
where the canceller also cut a visitor (too loud for echo) pulls the gain up only slowly."""
LEARN_FIRST = 10
"""Frames before the gain is trusted (their median starts it)."""


class EchoLevel:
    """The loudest the echo could be in a frame; learns the echo path's gain as it goes."""

    def __init__(self, max_lag_s: float = 0.8) -> None:
        span = round((max_lag_s + TAIL_S + LEAD_S) / BLOCK_S) + 8
        self._energy = np.zeros(span, dtype=np.float64)
        """Mean square of the reference per block, the newest last."""
        self._fade = 10.0 ** (-REVERB_DECAY_DB_PER_S * BLOCK_S * np.arange(span, dtype=np.float64) / 10.0)
        """The late reverberation's fade per block of age beyond the envelope's window."""
        self.gain_db: float | None = None
        """Mic level over the reference's envelope on frames that were mostly echo."""
        self._first: list[float] = []

    def push(self, n: int, block_energy: np.ndarray | None) -> None:
        """This frame's `n` reference blocks (mean square each, oldest first; None: silence)."""
        self._energy[:-n] = self._energy[n:]
        self._energy[-n:] = 0.0 if block_energy is None else block_energy

    def envelope_db(self, n_blocks: int, lag_s: float | None) -> float:
        """The reference's loudest block (dB of mean square) among those the last `n_blocks` of mic
        can hold the echo of, the echo's delay beyond the alignment being `lag_s` (None: unknown)."""
        lo_s, hi_s = (lag_s - LEAD_S, lag_s + TAIL_S) if lag_s is not None else UNKNOWN_LAG_S
        newest = max(0, math.floor(lo_s / BLOCK_S))  # blocks back from the frame's newest
        oldest = min(len(self._energy) - 1, n_blocks - 1 + math.ceil(hi_s / BLOCK_S))
        if oldest < newest:
            return -math.inf
        end = len(self._energy) - newest
        start = len(self._energy) - 1 - oldest
        peak = float(self._energy[start:end].max())
        if start > 0:  # older audio still rings in the room, fading
            peak = max(peak, float((self._energy[:start][::-1] * self._fade[1 : start + 1]).max()))
        return 10.0 * math.log10(peak) if peak > 0.0 else -math.inf

    def learn(self, mic_db: float, envelope_db: float) -> None:
        """A frame that was mostly echo (see ECHO_FRAME_DB): its gain moves the estimate."""
        if not math.isfinite(envelope_db):
            return
        gain = mic_db - envelope_db
        if self.gain_db is None:
            self._first.append(gain)
            if len(self._first) >= LEARN_FIRST:
                self.gain_db = float(np.median(self._first))
            return
        low, high = LEARN_STEP_DB
        self.gain_db += LEARN_RATE * min(high, max(low, gain - self.gain_db))

    def visitor_over_echo(self, mic_db: float, envelope_db: float) -> bool:
        """The mic is louder than the echo could be: the visitor (or the room) is in this frame."""
        if self.gain_db is None:
            return False
        return mic_db >= envelope_db + self.gain_db + VISITOR_OVER_ECHO_DB
