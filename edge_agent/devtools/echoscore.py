"""What a kiosk would send in the simulated echo room (echoroom.py): the benchmarks' and tests' scores.

`score_path` plays the agent into an echo path alone and then with the visitor talking over it,
runs the daemon's canceller and its capture path (`MicPath`: far end, residual echo, earcon
removal, gate, hold) over the microphone, and scores what would have gone up (ERLE, idle sent,
double-talk recall); `after_replies` the same for a reply after earlier ones (a converged
canceller that has graded its room); `gate_intervals` is that capture path over a canceller's recorded run
(`ReplayedCanceller`); `earcon_press` is a press with its earcons heard in a room. Apart from
echoroom.py, which is the room itself and the devices that run the daemon in it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.earcons import EarconRemover, Earcons
from edge_agent.audio.echo import EchoCanceller, make_backend
from edge_agent.audio.echotrack import CancelledTrack, cancel_tracks, erle_db
from edge_agent.audio.gate import VadGate
from edge_agent.audio.gatescore import GateScore, Labels, score
from edge_agent.audio.mic_path import FrameCanceller, MicPath
from edge_agent.core.config_audio import VadSettings
from edge_agent.devtools.echoroom import EchoPath, simulate


@dataclass(frozen=True)
class EchoScore:
    """What a visitor and the agent feel of one echo path (see README, "Echo cancellation")."""

    erle_db: float | None
    """Echo return loss enhancement with the agent alone, after the first 2 s (room noise at
    -84 dBFS, so the figure is the canceller's and not the noise floor's)."""
    idle_sent: float
    """Agent alone: share of the audio the kiosk would have sent up (gate open, uplink not held)."""
    recall: float
    """Visitor talking over the agent: share of the visitor's speech sent up."""
    idle_sent_double_talk: float
    """The same run: share of the idle audio sent anyway, idle as the gate's figures count it (more
    than 0.5 s before or 1.0 s after the visitor's labelled speech: gatescore.score's defaults)."""
    delay_ms: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def score_path(path: EchoPath, far: bytes, near: bytes, labels: Labels, vad: VadSettings, near_at_s: float = 6.0, echo_cancel: bool = True, frame_ms: int = 30) -> EchoScore:
    """Plays `far` (the agent) into the room, alone and then with the visitor saying `near` from
    `near_at_s` (`labels`: its speech, seconds from its start), runs the daemon's canceller and
    gate over the microphone as the daemon does, and scores what would have gone up."""
    quiet_path = replace(path, noise_rms=2.0)
    mic, _ = simulate(far, quiet_path)
    canceller = EchoCanceller(make_backend(echo_cancel))
    cleaned, far_active, *_ = cancel_tracks(mic, far, canceller, frame_ms)
    erle = erle_db(mic, cleaned, far_active, frame_ms)
    duration_s = len(far) / 2 / SAMPLE_RATE_HZ
    alone = _run_gate(path, far, None, vad, echo_cancel, frame_ms)[0]
    both, delay_ms = double_talk(path, far, near, labels, vad, near_at_s, echo_cancel, frame_ms)
    return EchoScore(erle, score(alone, Labels(duration_s, [])).idle_share, both.speech_recall, both.idle_share, delay_ms)


DOUBLE_TALK_TAIL_S = 1.5
"""A double-talk run goes on this long past the scored window (the agent talks on, the visitor's
words carry on): a word the window's end cuts short is judged with the evidence that follows it,
as in a room, where speech does not stop with a recording. Only the window is scored. Without it,
an utterance starting 0.6 s before the end under the far end's higher bar could never open the
gate (the one double-talk run under 0.98 on 2026-12-01)."""


def double_talk(
    path: EchoPath,
    far: bytes,
    near: bytes,
    labels: Labels,
    vad: VadSettings,
    near_at_s: float,
    echo_cancel: bool = True,
    frame_ms: int = 30,
    after_listened: bool = False,
    kept_grades: Sequence[float] = (),
) -> tuple[GateScore, float | None]:
    """The visitor says `near` from `near_at_s` while the agent plays `far`: how the daemon's
    canceller and gate score their speech (and the delay the canceller found). `after_listened`:
    the reply comes after two the visitor listened to (`after_replies`; echo cancellation on).
    `kept_grades`: the canceller is fresh (the daemon just started) with the room's grade kept
    from before (service/roomgrade.py)."""
    duration_s = len(far) / 2 / SAMPLE_RATE_HZ
    speech = [(a + near_at_s, min(b + near_at_s, duration_s)) for a, b in labels.speech if a + near_at_s < duration_s]
    room_goes_on = far + far[: round(DOUBLE_TALK_TAIL_S * SAMPLE_RATE_HZ) * 2]  # the agent talks on
    if after_listened:
        sent, canceller = after_replies(path, room_goes_on, vad, (near, near_at_s), frame_ms)
        delay_ms = canceller.delay_ms
    else:
        sent, delay_ms = _run_gate(path, room_goes_on, (near, near_at_s), vad, echo_cancel, frame_ms, kept_grades)
    in_window = [(a, min(b, duration_s)) for a, b in sent if a < duration_s]
    return score(in_window, Labels(duration_s, speech)), delay_ms


def agent_alone_idle(path: EchoPath, far: bytes, vad: VadSettings, kept_grades: Sequence[float] = (), frame_ms: int = 30) -> float:
    """The share of the agent's reply `far` (nobody talking) a freshly started kiosk sends up,
    its canceller's grade of the room kept from before (`kept_grades`, oldest first)."""
    sent = _run_gate(path, far, None, vad, True, frame_ms, kept_grades)[0]
    return score(sent, Labels(len(far) / 2 / SAMPLE_RATE_HZ, [])).idle_share


def _run_gate(
    path: EchoPath, far: bytes, near: tuple[bytes, float] | None, vad: VadSettings, echo_cancel: bool, frame_ms: int, kept_grades: Sequence[float] = ()
) -> tuple[list[tuple[float, float]], float | None]:
    mic, _ = simulate(far, path, *(near or (None, 0.0)))
    canceller = EchoCanceller(make_backend(echo_cancel))
    if kept_grades:
        canceller.grade.restore(kept_grades)
    track = cancel_tracks(mic, far, canceller, frame_ms)
    return gate_intervals(VadGate(vad, frame_ms), track), canceller.delay_ms


LISTENED_REPLIES = ((0.0, 12.0), (24.0, 36.0))
"""The earlier replies of `after_replies`: stretches of the agent's track (seconds), 12 s each."""
REPLY_GAP_S = 2.5
"""Silence before the first (the kiosk hears its room before it ever speaks) and after each of
them: the canceller rests (its `idle_after_s`) and the reply is graded."""


def after_replies(path: EchoPath, far: bytes, vad: VadSettings, near: tuple[bytes, float] | None = None, frame_ms: int = 30) -> tuple[list[tuple[float, float]], EchoCanceller]:
    """`far` played (and the visitor saying `near` from its offset in seconds) by a kiosk that has
    already played the agent's earlier replies (LISTENED_REPLIES, nobody talking over them): the
    daemon's canceller lives as long as the daemon, so every reply but a kiosk's first meets a
    converged canceller that has graded its room (echograde.py). Returns the gate's sent
    stretches over `far` (seconds from its start) and the canceller."""
    gap = bytes(2 * round(REPLY_GAP_S * SAMPLE_RATE_HZ))
    before = gap + b"".join(far[2 * round(a * SAMPLE_RATE_HZ) : 2 * round(b * SAMPLE_RATE_HZ)] + gap for a, b in LISTENED_REPLIES)
    offset_s = len(before) / 2 / SAMPLE_RATE_HZ
    mic, _ = simulate(before + far, path, *((near[0], near[1] + offset_s) if near else (None, 0.0)))
    canceller = EchoCanceller(make_backend(True))
    sent = gate_intervals(VadGate(vad, frame_ms), cancel_tracks(mic, before + far, canceller, frame_ms))
    return [(max(a, offset_s) - offset_s, b - offset_s) for a, b in sent if b > offset_s], canceller


class ReplayedCanceller:
    """A canceller's run over a recorded track (`cancel_tracks`) played back frame by frame, with
    what it said of each frame, so `MicPath` can run on it as on the live canceller."""

    def __init__(self, track: CancelledTrack) -> None:
        self.track = track
        self.frames = 0
        self.far_active = self.residual_echo = self.in_cue = self._held = False

    def process(self, frame: bytes, captured_at: float) -> bytes:
        """The next cleaned frame (`frame`, taken from the track by the caller) with its flags."""
        i, t = self.frames, self.track
        self.frames += 1
        self.far_active, self._held, self.residual_echo = t.far_active[i], t.held[i], t.residual_echo[i]
        return frame

    @property
    def agent_audible(self) -> bool:
        return self.far_active  # the tracks hold the agent's voice, no earcon

    @property
    def holding(self) -> bool:
        return self._held

    @property
    def agent_resting(self) -> bool:
        return False  # a replayed track is played frame by frame: nothing goes ahead of a frame

    def play_cue(self, from_t: float, until_t: float) -> None:
        raise NotImplementedError("a replayed track has no earcons")


def mic_path(echo: FrameCanceller, gate: VadGate, earcons_heard: EarconRemover | None = None) -> MicPath:
    """The daemon's capture path after the canceller (audio/mic_path.py) for a benchmark."""
    return MicPath(echo, earcons_heard or EarconRemover(), gate, lambda speaking: None)


def gate_intervals(gate: VadGate, track: CancelledTrack) -> list[tuple[float, float]]:
    """What leaves the kiosk of a cleaned recording: the gate's open stretches (pre-roll included)
    less what `EchoHold` keeps back, frame by frame through the daemon's own `MicPath`."""
    path = mic_path(ReplayedCanceller(track), gate)
    fb = gate.frame_bytes
    frame_s = gate.frame_ms / 1000.0
    out: list[tuple[float, float]] = []
    sending = False
    start = 0
    pcm = track.cleaned
    for i, off in enumerate(range(0, min(len(pcm) - fb + 1, len(track.held) * fb), fb)):
        was_open = gate.is_open
        _, admitted = path.hear(pcm[off : off + fb], (i + 1) * frame_s)
        now_sending = admitted and gate.is_open
        if now_sending and not sending:  # an onset sends its pre-roll too
            start = gate.open_since if not was_open else i
        elif sending and not now_sending:
            out.append((start * frame_s, i * frame_s))
        sending = now_sending
    if sending:
        out.append((start * frame_s, gate.frames * frame_s))
    return out


@dataclass(frozen=True)
class EarconPress:
    """What the gate did around one press with the press and ready earcons heard in a room."""

    opened_s: float | None
    """Press -> the gate opens, on the frames' clock (None: it never did)."""
    frames_sent: int
    """Frames the gate let through from the press on."""
    lost_ms: int
    """Of the visitor's speech from the press, ms outside what the gate let through (pre-roll included)."""


def earcon_press(
    path: EchoPath,
    vad: VadSettings,
    volume: float = 0.3,
    ready_after_s: float = 0.08,
    removal: bool = True,
    speech: bytes | None = None,
    press_s: float = 3.0,
    frame_ms: int = 30,
) -> EarconPress:
    """The speaker plays the press earcon at `press_s` and the ready earcon `ready_after_s` later
    through `path`; the visitor says `speech` from the press. Frames go through the daemon's
    `MicPath` (echo cancellation off: the earcons are told to it as the daemon tells them), the
    gate told of the press (its prior)."""
    earcons = Earcons(True, volume)
    gate = VadGate(vad, frame_ms)
    heard = mic_path(EchoCanceller(make_backend(False)), gate, EarconRemover(removal))
    far = np.zeros(int((press_s + 4.0) * SAMPLE_RATE_HZ), np.int16)
    for name, at in (("press", press_s), ("ready", press_s + ready_after_s)):
        pcm = np.frombuffer(earcons.get(name), "<i2")
        far[int(at * SAMPLE_RATE_HZ) : int(at * SAMPLE_RATE_HZ) + len(pcm)] += pcm
        heard.cue(name, at, at + len(pcm) / SAMPLE_RATE_HZ)
    mic, _ = simulate(far.tobytes(), path, speech, press_s if speech else 0.0)
    fb, frame_s = gate.frame_bytes, frame_ms / 1000.0
    opened, sent = None, 0
    spans: list[list[float]] = []
    for i in range(len(mic) // fb):
        if i == round(press_s / frame_s):
            gate.new_visitor()
        was = gate.is_open
        heard.hear(mic[i * fb : (i + 1) * fb], (i + 1) * frame_s)
        if gate.is_open and not was:
            spans.append([gate.open_since * frame_s, math.inf])
        elif was and not gate.is_open:
            spans[-1][1] = i * frame_s
        if gate.is_open and i * frame_s >= press_s:
            sent += 1
            opened = (i + 1) * frame_s - press_s if opened is None else opened
    end = press_s + (len(speech) / 2 / SAMPLE_RATE_HZ if speech else 0.0)
    covered = sum(max(0.0, min(b, end) - max(a, press_s)) for a, b in spans)
    return EarconPress(opened, sent, round((end - press_s - covered) * 1000))
