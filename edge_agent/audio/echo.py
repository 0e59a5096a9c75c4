"""Acoustic echo cancellation in the capture path, so a kiosk with a plain USB mic and speaker can
run full duplex and the visitor can talk over the agent.

`EchoCanceller` sits between the microphone and the speech gate. For every captured frame it takes
the speaker audio heard over the same stretch of time (`reference.Alignment` over the
`ReferenceRing` the speaker fills), feeds both, 10 ms at a time, to the backend and returns the
cleaned frame. It also
- estimates the echo path's delay (GCC-PHAT over the last seconds of far-end audio) and moves the
  reference when the delay falls outside what the backend tracks by itself, and at the rate the
  delay drifts (clocks the timestamps do not see: echodrift.py), so the path stays still for it;
- says whether the far end (agent audio or an earcon) is audible at the mic right now
  (`far_active`, with a hold for the room's reverberation), which the daemon tells the gate;
- says whether a frame is the canceller's leftover of the agent's voice rather than the visitor
  (`residual_echo`: the far end plays, the canceller took most of the frame off, and what is left
  still stands out of its usual floor, as at a loud onset after a pause, and the mic is not louder
  than the echo could be: echolevel.py), which the daemon hands the gate as one of the kiosk's own
  sounds, so residual echo cannot open it; in a room where it does not cope (a hall, the speaker
  far: echograde.py grades each reply), every far-end frame not louder than the echo could be;
- rests while the speaker has been silent for `idle_after_s`: the backend then costs nothing and
  the mic passes unchanged (a kiosk is idle most of the day).

Backend (echobackend.py): WebRTC's AEC3 (through LiveKit's `livekit` package, the `aec` extra), chosen over
speexdsp's MDF canceller by measurement (see README, "Echo cancellation"). `NullBackend` passes the
mic through; with it the daemon still learns when the far end is audible.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.echobackend import BLOCK as BLOCK
from edge_agent.audio.echobackend import EchoBackend, NullBackend
from edge_agent.audio.echobackend import make_backend as make_backend
from edge_agent.audio.echodelay import DECIMATE, estimate_delay, speaker_share
from edge_agent.audio.echodrift import DriftFit
from edge_agent.audio.echograde import EchoGrade
from edge_agent.audio.echolevel import ECHO_FRAME_DB, EchoLevel
from edge_agent.audio.reference import Alignment, ReferenceRing
from edge_agent.errors import AudioError

FAR_RMS = 30.0
"""Reference blocks above this RMS (about -60 dBFS) count as the far end playing."""
FAR_ENERGY = FAR_RMS * FAR_RMS * BLOCK
"""The same bar on a block's sum of squares."""
DC_FOLLOW = 0.002
"""Share of a frame's mean the mic's DC offset estimate takes on (~15 s; the first frame's mean to
start from): a cheap USB mic sits some way off zero, which the backend's high-pass takes off and
which counted as echo taken off (a hall graded as a room that copes; a review's find,
tests/test_echo_review.py). Followed slowly, not
taken per frame: a 30 ms frame's own mean holds the room's lowest sound (a hall's reverberation),
and taking that off too changed what the residual check saw (held-out lobby idle 0.171 -> 0.233)."""
CONVERGE_BLOCKS = 300
"""The canceller counts as converged after 3 s of far-end audio (measured: AEC3 takes 25-35 dB
off after 2-3 s; an energy test instead would be fooled by the visitor talking meanwhile)."""
MOVE_BEYOND_S = 0.35
"""AEC3 finds echo delays up to about 450 ms by itself (measured: 10-450 ms fine, 520 ms lost);
past this the reference moves. Moving costs a re-convergence, so smaller delays are left to AEC3."""
MOVE_UNLESS_ERLE_DB = 10.0
"""...and it moves only when the canceller is not cancelling (ERLE over the far-end frames since
the estimate before, below this for both agreeing estimates, or for the newest alone when the
one before could not tell: a visitor was talking): AEC3 was seen to take 20-55 dB off
at 380 ms (and 0-3 dB where it lost the echo, at 520 ms and more); a move there only cost a
re-convergence and a second half-duplex stretch."""
MOVE_SPEAKER_SHARE = 0.5
"""...and the later of the two was judged while the mic was mostly the speaker (`speaker_share` at
the delay found: 0.7-0.9 with the agent alone, 0.03-0.35 with a visitor talking over it): in
double talk the ERLE says nothing of the echo (the visitor passes the canceller, as they should).
Nor does it move at a delay the canceller was seen cancelling at since the last move. Both used
to be missed: at 380 ms in a noisy room (held out) a visitor talking over the agent made the
canceller look as if it were not cancelling, the reference moved and their first sentence was
partly lost (recall 0.93)."""
RESIDUAL_CANCELLED_DB = 8.0
"""A frame the canceller took at least this much off (mic energy over cleaned energy) while the
far end played is mostly echo: a visitor talking over the agent keeps the cleaned frame within a
few dB of the mic unless the echo drowns them by more than this, or AEC3's suppressor cuts them
too (it does, in double talk, by 10-25 dB at times): hence the echo-level check (echolevel.py)."""
RESIDUAL_OVER_FLOOR_DB = 6.0
"""...and what is left of it stands this far above the quietest cleaned frame of the last
`RESIDUAL_FLOOR_S`: a residual burst the gate could take for speech. (Frames at the floor are
left to the gate: marking them would only lengthen its pre-roll.)"""
RESIDUAL_FLOOR_S = 2.0
CUE_TAIL_S = 0.5
"""How long after an earcon ends its echo may still reach the mic: the delay AEC3 covers (about
400 ms, beyond it the reference moves) plus a short tail."""
CUES_KEPT = 64
"""Earcon windows kept: they are let go as mic frames pass them, and a mic that delivers none (a
dead device for days, presses from the fleet still playing earcons) must not grow the list."""


@dataclass
class EchoStats:
    frames: int = 0
    frames_processed: int = 0
    """Frames the backend ran on (the rest passed through while the speaker was silent)."""
    delay_estimates: int = 0
    delay_moves: int = 0


class EchoCanceller:
    """The capture path's echo canceller: alignment, backend, delay estimator, far-end activity."""

    def __init__(
        self,
        backend: EchoBackend,
        ring: ReferenceRing | None = None,
        delay_ms: float = 0.0,
        hold_ms: float = 300.0,
        idle_after_s: float = 2.0,
        estimate_every_s: float = 2.0,
        holding_tail_ms: float = 900.0,
        max_lag_s: float = 0.8,
    ) -> None:
        """`delay_ms`: first guess of the delay the timestamps do not see (the estimator refines it);
        `hold_ms`: the far end counts as audible this long after the reference goes quiet;
        `holding_tail_ms`: before convergence, the uplink waits this long after the far end (the
        room's tail plus the gate's hang-over)."""
        self.backend = backend
        self.ring = ring or ReferenceRing()
        self.alignment = Alignment(self.ring, delay_ms / 1000.0)
        self.enabled = not isinstance(backend, NullBackend)
        self._hold_blocks = max(1, int(hold_ms / 10))
        self._holding_blocks = int(holding_tail_ms / 10)
        self._idle_blocks = max(self._hold_blocks, self._holding_blocks, int(idle_after_s * 100))
        self._quiet_blocks = self._idle_blocks  # blocks since the reference was last loud
        self._agent_quiet_blocks = self._idle_blocks  # the same, earcons not counted (see `holding`)
        self.far_active = False
        self.converged = False
        """True after the backend adapted on 3 s of far-end audio; until then (and after a move
        of the echo path) `holding` says the uplink should wait."""
        self._loud_blocks = 0  # far-end blocks the backend has adapted on since the path last moved
        self._mic_dc: float | None = None  # the mic's DC offset as followed so far (`_without_dc`; None: no frame yet)
        self.stats = EchoStats()
        self.delay_ms: float | None = None
        """The latest confident estimate of the whole delay the canceller sees (bulk + residual)."""
        self._max_lag_s = max_lag_s
        # the delay estimator's history (2 x 64 kB); only a canceller that runs keeps one
        win = 1 << math.ceil(math.log2(estimate_every_s * SAMPLE_RATE_HZ)) if self.enabled else 0
        self._hist_ref = np.zeros(win, dtype=np.int16)
        self._hist_mic = np.zeros(win, dtype=np.int16)
        self._hist_loud = 0  # loud reference blocks in the history since the last estimate
        self._every_blocks = int(estimate_every_s * 100)
        self._last_lag_s: float | None = None
        self._since_estimate = [1.0, 1.0]  # mic and cleaned energy of far-end frames since the last estimate
        self._was_cancelling: bool | None = False  # the estimate before: cancelling, not, or None: could not tell
        self._cancelled_at_s: float | None = None  # a lag the canceller was seen cancelling at since the last move
        self._judged_from_converged = False  # the canceller had converged when the history since the last estimate began
        self.drift = DriftFit()
        """The echo path's drift the timestamps miss; the bulk delay moves at its rate."""
        self.residual_echo = False
        """The last frame is the kiosk's own sound, not the visitor: the canceller's leftover of
        the far end (see RESIDUAL_CANCELLED_DB), or an earcon told of with `play_cue` and its
        echo. It must not open the gate."""
        self._out_db: deque[float] = deque()  # cleaned frames' levels over RESIDUAL_FLOOR_S
        self.echo_level = EchoLevel(max_lag_s)
        """How loud the echo can be in a frame: a visitor louder than that is not residual echo."""
        self.grade = EchoGrade()
        """Whether the canceller copes with this room, from the agent's recent replies."""
        self._cues: deque[tuple[float, float]] = deque(maxlen=CUES_KEPT)  # (from, until) of earcons, time.monotonic()
        self.in_cue = False
        """The last frame fell in an earcon told of with `play_cue` (or its echo's tail)."""
        self._block_starts = np.arange(0)  # where a frame's blocks start (`_hear_far_end`)

    def play_cue(self, from_t: float, until_t: float) -> None:
        """The speaker plays one of the kiosk's earcons from `from_t` to `until_t` (the clock of the
        capture timestamps). The backend does not run on it: AEC3 adapting on a pure tone was
        measured to leave it worse off for the agent's next words (in reverberant rooms the gate
        then opened on the echo of the first reply); its echo is the kiosk's own sound instead."""
        self._cues.append((from_t, until_t + CUE_TAIL_S))

    def _in_cue(self, first_at: float, last_at: float) -> bool:
        while self._cues and self._cues[0][1] < first_at:
            self._cues.popleft()
        return any(a <= last_at and first_at <= b for a, b in self._cues)

    def process(self, frame: bytes, captured_at: float) -> bytes:
        """One captured frame (its last sample captured at `captured_at`) in, the cleaned frame out."""
        n = len(frame) // 2
        ref, energy, loud_blocks = self._hear_far_end(n, captured_at)
        mic = np.frombuffer(frame, dtype="<i2")
        centred = self._without_dc(mic) if self.enabled else None
        if centred is not None and not self.far_active:  # the speaker is silent: the mic hears the room's own noise
            self.grade.hear_room(centred)
        if centred is None or self._quiet_blocks >= self._idle_blocks:  # off, or nothing to cancel: rest
            if self._out_db:  # a reply has just ended
                self.grade.reply_ended()
            self._out_db.clear()
            return frame
        self.echo_level.push(n // BLOCK, None if energy is None else energy / BLOCK)  # not while resting: 2 s of quiet already went in
        if self.in_cue:
            self.residual_echo = True  # an earcon and its echo: the kiosk's own sound, not adapted on
            return frame
        self._remember(mic, ref, loud_blocks, captured_at)
        self.stats.frames_processed += 1
        out = np.empty_like(mic)
        for i in range(0, n, BLOCK):
            out[i : i + BLOCK] = self.backend.process(mic[i : i + BLOCK], ref[i : i + BLOCK])
        self._loud_blocks += loud_blocks
        self.converged = self._loud_blocks >= CONVERGE_BLOCKS
        self._judge_residual(centred, out, loud_blocks > 0)
        return out.astype("<i2", copy=False).tobytes()

    def _without_dc(self, mic: np.ndarray) -> np.ndarray:
        """The frame as float samples, the mic's DC offset (followed over ~15 s, DC_FOLLOW) taken off."""
        m = mic.astype(np.float32)
        mean = float(m.mean())
        self._mic_dc = mean if self._mic_dc is None else self._mic_dc + DC_FOLLOW * (mean - self._mic_dc)
        m -= self._mic_dc
        return m

    def _hear_far_end(self, n: int, captured_at: float) -> tuple[np.ndarray, np.ndarray | None, int]:
        """The far end over a frame of `n` samples: sets `far_active`, `agent_audible`, `in_cue`
        (clears `residual_echo`); returns the aligned reference, its blocks' sums of squares (None:
        the speaker was silent, as over most frames of a conversation) and how many were loud. It
        runs on every frame, with cancellation off too (the gate's `far_end`), so it is kept to a
        few numpy calls: one read of the ring, one sum per block (exact, float64)."""
        if n % BLOCK:
            raise AudioError(f"echo canceller needs whole 10 ms blocks, got {n} samples")
        self.stats.frames += 1
        n_blocks = n // BLOCK
        first_at = captured_at - (n - 1) / SAMPLE_RATE_HZ
        self.alignment.rate = self.drift.rate_at(captured_at)
        ref = self.alignment.take(n, first_at)
        energy: np.ndarray | None = None
        loud_blocks, last_loud = 0, -1
        if np.count_nonzero(ref):
            x = ref.astype(np.float64)
            x *= x
            if len(self._block_starts) != n_blocks:
                self._block_starts = np.arange(0, n, BLOCK)
            energy = np.add.reduceat(x, self._block_starts)
            for i, e in enumerate(energy.tolist()):
                if e > FAR_ENERGY:
                    loud_blocks += 1
                    last_loud = i
        # blocks since the reference was last loud: those after this frame's last loud block
        self._quiet_blocks = n_blocks - 1 - last_loud if loud_blocks else self._quiet_blocks + n_blocks
        self.far_active = self._quiet_blocks < self._hold_blocks
        self.residual_echo = False
        self.in_cue = cue = bool(self._cues) and self._in_cue(first_at, captured_at)
        self._agent_quiet_blocks = self._quiet_blocks if loud_blocks and not cue else self._agent_quiet_blocks + n_blocks
        return ref, energy, loud_blocks

    def _judge_residual(self, m: np.ndarray, out: np.ndarray, loud: bool) -> None:
        """Sets `residual_echo` for this frame (two energies and a short minimum: cheap); `m`: the
        mic's frame, its DC offset off (the backend's high-pass takes it off: no echo taken off)."""
        o = out.astype(np.float32)
        e_mic = float(np.dot(m, m)) + 1.0
        e_out = float(np.dot(o, o)) + 1.0
        if loud:
            self._since_estimate[0] += e_mic
            self._since_estimate[1] += e_out
        out_db = 10.0 * math.log10(e_out / len(out))
        floors = self._out_db
        floors.append(out_db)
        while len(floors) > RESIDUAL_FLOOR_S * SAMPLE_RATE_HZ / len(out):
            floors.popleft()
        taken_db = 10.0 * math.log10(e_mic / e_out)
        poor = self.grade.poor
        graded = loud and self.converged
        if not self.far_active or (taken_db < RESIDUAL_CANCELLED_DB and not poor and not graded):
            return
        mic_db = 10.0 * math.log10(e_mic / len(m))
        lag_s = None if self.delay_ms is None else self.delay_ms / 1000.0 - self.alignment.delay_s
        envelope_db = self.echo_level.envelope_db(len(m) // BLOCK, lag_s)
        if loud and taken_db >= ECHO_FRAME_DB:
            self.echo_level.learn(mic_db, envelope_db)
        # the canceller also cuts a visitor now and then: one louder than the echo could be is not echo
        over_echo = self.echo_level.visitor_over_echo(mic_db, envelope_db)
        if graded and not over_echo:
            self.grade.frame(e_mic, e_out, self.grade.noise_energy(len(m)))
        if poor:  # a room the canceller does not cope with (echograde.py): only a visitor over the echo is not echo
            self.residual_echo = not over_echo
        elif taken_db >= RESIDUAL_CANCELLED_DB:
            self.residual_echo = out_db >= min(floors) + RESIDUAL_OVER_FLOOR_DB and not over_echo

    @property
    def agent_audible(self) -> bool:
        """The agent's voice (not an earcon the daemon told of) played within the room's hold: the
        gate's `far_end`. Earcons need no raised bar: their frames are handed to the gate as the
        kiosk's own sound already (see `play_cue`, and the daemon's earcon window)."""
        return self._agent_quiet_blocks < self._hold_blocks

    @property
    def agent_resting(self) -> bool:
        """The agent's voice has not played for `idle_after_s` (or cancellation is off): the
        canceller passes the microphone through as it is, except to the agent's echo, of which
        there is none (early parts of frames may go up without it, see `MicPath.lead`)."""
        return not self.enabled or self._agent_quiet_blocks >= self._idle_blocks

    @property
    def holding(self) -> bool:
        """The canceller has not converged yet and the far end played within `holding_tail_ms`:
        what the mic hears is mostly echo, and a gate it opened stays open for its hang-over, so
        the uplink carries silence (half duplex for this stretch; once per boot in practice).
        Earcons the daemon told of do not hold it: their echo cannot open the gate (it is the
        kiosk's own sound), and a visitor answering the ready earcon at once keeps their words."""
        return self.enabled and not self.converged and self._agent_quiet_blocks < self._holding_blocks

    def close(self) -> None:
        self.backend.close()

    def _remember(self, mic: np.ndarray, ref: np.ndarray, loud_blocks: int, captured_at: float) -> None:
        """Keeps the last seconds of mic and reference; estimates the delay once enough far-end
        audio went by (a few FFTs of 4 kHz audio every couple of seconds of agent speech)."""
        n = len(mic)
        for hist, x in ((self._hist_ref, ref), (self._hist_mic, mic)):
            hist[:-n] = hist[n:]
            hist[-n:] = x
        self._hist_loud += loud_blocks
        if self._hist_loud >= self._every_blocks:
            self._hist_loud = 0
            self._estimate(captured_at)

    def _estimate(self, at_s: float) -> None:
        """Acts on an estimate only when the one before agrees (within 3 ms): speech repeats
        itself enough that a lone estimate can point at the wrong lag with fair confidence.
        `at_s`: capture time of the frame that completed the history (the drift line's x)."""
        # below the bulk as far as it goes: an echo path that shrank after a move (the speaker
        # reopened with less buffering) is then found, and the reference moves back to it
        fine_s, confidence = estimate_delay(self._hist_ref, self._hist_mic, self._max_lag_s, -0.05 - self.alignment.delay_s, subsample=True)
        lag_s = round(fine_s * SAMPLE_RATE_HZ / DECIMATE) * DECIMATE / SAMPLE_RATE_HZ  # decisions on the 4 kHz grid
        self.stats.delay_estimates += 1
        e_mic, e_out = self._since_estimate
        self._since_estimate = [1.0, 1.0]
        cancelling = self._cancelling(lag_s, e_mic, e_out) if confidence >= 8.0 else None
        # before convergence AEC3's initial suppression takes 10+ dB off whatever the alignment:
        # no sign the canceller follows this lag ("cannot tell"), which must not pin the reference
        judged, self._judged_from_converged = self._judged_from_converged, self.converged
        if cancelling and not judged:
            cancelling = None
        was_cancelling, self._was_cancelling = self._was_cancelling, cancelling
        previous, self._last_lag_s = self._last_lag_s, lag_s if confidence >= 8.0 else None
        if cancelling:
            self._cancelled_at_s = lag_s
        if self._last_lag_s is None or previous is None or abs(lag_s - previous) > 0.003:
            return
        bulk_s = self.alignment.delay_s
        self.delay_ms = round((bulk_s + lag_s) * 1000.0, 1)
        # the whole delay (the bulk as it was mid-history, plus the lag) onto the drift line
        mid_s = len(self._hist_mic) / 2 / SAMPLE_RATE_HZ
        self.alignment.rate = self.drift.add(at_s, bulk_s - self.alignment.rate * mid_s + fine_s)
        seen_cancelling = self._cancelled_at_s is not None and abs(lag_s - self._cancelled_at_s) <= 0.003
        if not 0.0 <= lag_s <= MOVE_BEYOND_S and cancelling is False and not was_cancelling and not seen_cancelling:  # beyond what AEC3 follows: move
            self.stats.delay_moves += 1
            self.alignment.shift(max(0.0, bulk_s + lag_s - 0.02))
            self.converged = False
            self._loud_blocks = 0
            self._last_lag_s = None
            self._cancelled_at_s = None
            self._judged_from_converged = False
            self._hist_ref[:] = 0  # the history no longer matches the new alignment
            self._hist_mic[:] = 0

    def _cancelling(self, lag_s: float, e_mic: float, e_out: float) -> bool | None:
        """Whether the canceller took MOVE_UNLESS_ERLE_DB off the far-end frames since the estimate
        before; None (cannot tell) when it did not and the mic was not mostly the speaker at
        `lag_s` (MOVE_SPEAKER_SHARE: a visitor talking; only worked out where a move is possible)."""
        if 10.0 * math.log10(e_mic / e_out) >= MOVE_UNLESS_ERLE_DB:
            return True
        if 0.0 <= lag_s <= MOVE_BEYOND_S or speaker_share(self._hist_ref, self._hist_mic, lag_s) >= MOVE_SPEAKER_SHARE:
            return False
        return None
