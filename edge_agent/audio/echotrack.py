"""The daemon's echo canceller run over recorded tracks, faster than real time: a microphone track
and the speaker track played with it, as `edge-agent echo` (an installer's check of a kiosk's
hardware), the simulated rooms and the benchmarks run it. Also ERLE, the figure they report.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.echo import BLOCK, EchoCanceller


class CancelledTrack(NamedTuple):
    """A mic track after the canceller, with what the canceller said of each frame."""

    cleaned: bytes
    far_active: list[bool]
    """The far end was audible (the stretches ERLE is measured over)."""
    held: list[bool]
    """The daemon would have held the uplink back (`EchoCanceller.holding`)."""
    residual_echo: list[bool]
    """The frame is residual echo: the daemon hands it to the gate as its own sound."""


def cancel_tracks(
    mic: bytes, ref: bytes, canceller: EchoCanceller, frame_ms: int = 30, cues: tuple[tuple[float, float], ...] = (), reply_s: float | None = None
) -> CancelledTrack:
    """Runs `canceller` over a recorded mic track and the speaker track played with it (same
    length, 16 kHz mono int16), faster than real time, with the timestamps a live kiosk would give
    (sample i of either heard / captured at i / 16 kHz). `cues`: (from_s, until_s) of the earcons
    in the speaker track, as the daemon tells the canceller (`EchoCanceller.play_cue`). `reply_s`:
    the canceller's room grade (`EchoGrade`) takes every `reply_s` of the tracks, and their end, as
    one reply (the daemon ends a reply when the agent falls silent; a recorded take may never)."""
    for from_s, until_s in cues:
        canceller.play_cue(from_s, until_s)
    n = SAMPLE_RATE_HZ * frame_ms // 1000
    lead = 2 * BLOCK  # the speaker is handed its audio a little ahead of the mic's frames
    total = min(len(mic), len(ref)) // 2 // n * n
    out = bytearray()
    far: list[bool] = []
    held: list[bool] = []
    residual: list[bool] = []
    written = 0
    reply_frames = round(reply_s * 1000 / frame_ms) if reply_s else 0
    for i, start in enumerate(range(0, total, n)):
        upto = min(total, start + n + lead)
        if upto > written:
            canceller.ring.write(ref[2 * written : 2 * upto], written / SAMPLE_RATE_HZ)
            written = upto
        out += canceller.process(mic[2 * start : 2 * (start + n)], (start + n - 1) / SAMPLE_RATE_HZ)
        far.append(canceller.far_active)
        held.append(canceller.holding)
        residual.append(canceller.residual_echo)
        if reply_frames and (i + 1) % reply_frames == 0:
            canceller.grade.reply_ended()
    if reply_frames:
        canceller.grade.reply_ended()
    return CancelledTrack(bytes(out), far, held, residual)


def erle_db(mic: bytes, cleaned: bytes, frames: list[bool], frame_ms: int = 30, skip_s: float = 2.0) -> float | None:
    """Echo return loss enhancement, 10 log10(mic energy / cleaned energy), over the frames marked
    True after the first `skip_s` (the canceller's convergence); None when there are none."""
    n = SAMPLE_RATE_HZ * frame_ms // 1000
    a = np.frombuffer(mic, dtype="<i2")[: len(frames) * n].astype(np.float64).reshape(-1, n)
    b = np.frombuffer(cleaned, dtype="<i2")[: len(frames) * n].astype(np.float64).reshape(-1, n)
    a -= a.mean()  # a mic's DC offset (the whole track's): the canceller's high-pass takes it off,
    b -= b.mean()  # and counted it read as echo taken off (84.6 dB off a stuck mic)
    mask = np.array(frames, dtype=bool)
    mask[: int(skip_s * 1000 / frame_ms)] = False
    if not mask.any():
        return None
    e_in, e_out = float(np.square(a[mask]).sum()), float(np.square(b[mask]).sum())
    return round(10.0 * math.log10((e_in + 1.0) / (e_out + 1.0)), 1)
