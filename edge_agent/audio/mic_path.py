"""MicPath: what one captured frame goes through before the conversation may send it.

In order: the echo canceller (which takes the agent's voice and our earcons, as the speaker
reported playing them, out of the microphone signal), the earcon remover (which takes out what is
left of our own earcons), the VAD gate (an open gate is the visitor talking), and the echo hold
(which keeps the uplink back while the canceller converges). The gate is told when the agent is
audible in the room, and what is left of its voice or an earcon must not open it.

Pure audio processing on the caller's thread (the daemon's loop); whether the result goes to the
agent, is held for a link being opened or becomes silence is the daemon's decision. The benchmarks
and the simulated rooms run this same path (devtools/echoscore.py), over a canceller run live or
replayed from a recorded track, so what they score is what the daemon sends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.devices import LEAD_BLOCK_BYTES, LEAD_BLOCK_MS
from edge_agent.audio.earcons import EarconRemover
from edge_agent.audio.gate import VadGate


class FrameCanceller(Protocol):
    """What the path needs of the echo canceller (`EchoCanceller`), set for the frame it last took."""

    far_active: bool
    residual_echo: bool
    in_cue: bool

    @property
    def agent_audible(self) -> bool: ...

    @property
    def holding(self) -> bool: ...

    @property
    def agent_resting(self) -> bool: ...

    def process(self, frame: bytes, captured_at: float) -> bytes: ...

    def play_cue(self, from_t: float, until_t: float) -> None: ...


class EchoHold:
    """Decides, frame by frame, whether the gate's output may go up while the canceller converges:
    not while it is `holding`, nor, while the far end stays audible, for the rest of a gate
    opening that began while it held (the gate opened on echo, and would otherwise send echo
    until its hang-over ran out once the canceller counts as converged). When the far end falls
    quiet (an earcon ended) an open gate is the visitor's and goes up once the hold ends."""

    def __init__(self) -> None:
        self._was_open = False
        self._opened_on_echo = False

    def admit(self, holding: bool, far_active: bool, gate_open: bool) -> bool:
        if not gate_open:
            self._opened_on_echo = False
        elif not self._was_open and holding and far_active:
            self._opened_on_echo = True
        self._was_open = gate_open
        return not (holding or (self._opened_on_echo and far_active))

    @property
    def opened_on_echo(self) -> bool:
        """The gate's current opening began while the canceller held the uplink back on echo."""
        return self._opened_on_echo


class MicPath:
    """Echo canceller -> earcon removal -> gate -> echo hold, with `on_speech(open)` called each
    time the gate opens or closes (the visitor starts or stops talking)."""

    def __init__(self, echo: FrameCanceller, earcons_heard: EarconRemover, gate: VadGate, on_speech: Callable[[bool], None]) -> None:
        self.echo, self.earcons_heard, self.gate = echo, earcons_heard, gate
        self.echo_hold = EchoHold()
        self._on_speech = on_speech
        self._agent_was_audible = False
        self._gate_was_open = False

    def hear(self, frame: bytes, captured_at: float) -> tuple[tuple[bytes, ...], bool]:
        """One captured frame (`captured_at` on time.monotonic()): the gate's output (silence
        while it is closed, a pre-roll burst when it opens) and whether the echo hold admits it."""
        return self.after_canceller(self.echo.process(frame, captured_at), captured_at)

    def after_canceller(self, frame: bytes, captured_at: float) -> tuple[tuple[bytes, ...], bool]:
        """`hear` for a frame the canceller has just taken (`echo.process`): a benchmark that
        measures the cleaned frame itself (ERLE) calls the two steps apart."""
        if self.echo.agent_audible != self._agent_was_audible:  # the gate hears the agent's echo
            self._agent_was_audible = self.echo.agent_audible
            self.gate.far_end(self._agent_was_audible)
        # the mic hears our earcons and what the canceller leaves of the agent's voice: they must not
        # open the gate (an open gate is the visitor talking). Earcons are taken out of the frame
        # (not sent even by an open gate); what is left is the visitor's unless the tone dominates it
        room = not self.gate.is_open and not self.echo.agent_audible  # the room alone, as far as we know
        frame, earcon = self.earcons_heard.clean(frame, captured_at, self.gate.frame_ms / 1000.0, room)
        earcon = earcon and not (self.earcons_heard.ringing and self.gate.is_open)  # the visitor talks on
        # the canceller does not run under an earcon: its flag then stands for the earcon, handled
        # above, unless the agent's voice may be in the frame too
        agent_echo = self.echo.residual_echo and not (self.earcons_heard.enabled and self.echo.in_cue and not self.echo.agent_audible)
        out = self.gate.push(frame, earcon or agent_echo)
        admitted = self.echo_hold.admit(self.echo.holding, self.echo.far_active, self.gate.is_open)
        if self.gate.is_open != self._gate_was_open:
            self._gate_was_open = self.gate.is_open
            self._on_speech(self.gate.is_open)
        return out, admitted

    def lead(self, pcm: bytes, captured_at: float) -> bytes:
        """The start of a frame still being captured (a press hurries the microphone; whole
        LEAD_BLOCK_MS blocks, the last sample captured at `captured_at`): how much of it may go up
        now, ahead of its frame (a prefix, maybe empty; the rest waits for its frame, as any audio
        does). Only through an open gate, only while the agent has been silent long enough that
        the canceller would leave the frame as it is, and only up to the first block an earcon is
        heard in (the press earcon plays right now): such a block waits for its frame, which the gate
        holds back while the press alone holds it open (sent once the visitor is heard, as
        silence if not), where what the remover leaves of the tone (its onset: up to RMS 2 500 in
        10 ms) would go ahead; and a block is judged
        alone, so that the room around a tone's edge does not hide the tone. The frame, once
        complete, goes through `hear` as any other; the caller sends only the rest of it. Nothing
        goes ahead of frames the gate holds back (`VadGate.held_frames`)."""
        if not self.gate.is_open or self.gate.held_frames or not self.echo.agent_resting or self.echo_hold.opened_on_echo:
            return b""  # (an opening that began on echo: its frames may be held back, so are its parts)
        block = LEAD_BLOCK_BYTES
        ok = 0
        while ok + block <= len(pcm):
            part = pcm[ok : ok + block]
            at = captured_at - (len(pcm) - ok - block) / (2 * SAMPLE_RATE_HZ)
            cleaned, cue = self.earcons_heard.clean(part, at, LEAD_BLOCK_MS / 1000.0, room=False)
            if cue or cleaned != part:  # an earcon is heard in it: its frame decides
                break
            ok += block
        return pcm[:ok]

    def cue(self, name: str, from_t: float, until_t: float) -> None:
        """The speaker plays earcon `name` from `from_t` until `until_t` (time.monotonic())."""
        self.earcons_heard.played(name, from_t, until_t)
        self.echo.play_cue(from_t, until_t)
