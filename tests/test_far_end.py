"""With echo cancellation off (as shipped) the canceller still tells the gate when the far end is
audible, on every captured frame, so that path is kept short (`EchoCanceller._hear_far_end`, one
for both settings: float64 block sums, a plain loop over a frame's few blocks). These tests hold
it to the rule worked out here the straightforward way, frame by frame: the aligned reference,
float32 block energies against FAR_RMS, the hold, earcons told of with `play_cue`."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.audio.echo import BLOCK, CUE_TAIL_S, FAR_RMS, EchoCanceller, make_backend
from edge_agent.audio.reference import Alignment, ReferenceRing

SR = 16000


class CancellerFlags:
    """`far_active`, `agent_audible`, `in_cue` as the canceller's own path sets them."""

    def __init__(self, ring: ReferenceRing, delay_ms: float, hold_blocks: int = 30, idle_blocks: int = 200) -> None:
        self.alignment = Alignment(ring, delay_ms / 1000.0)
        self.hold = hold_blocks
        self.quiet = self.agent_quiet = idle_blocks
        self.cues: list[tuple[float, float]] = []

    def frame(self, n: int, captured_at: float) -> tuple[bool, bool, bool]:
        first = captured_at - (n - 1) / SR
        ref = self.alignment.take(n, first)
        n_blocks, last = n // BLOCK, -1
        if ref.any():
            blocks = ref.reshape(-1, BLOCK).astype(np.float32)
            loud = np.einsum("ij,ij->i", blocks, blocks) > FAR_RMS * FAR_RMS * BLOCK
            if loud.any():
                last = int(np.flatnonzero(loud)[-1])
        self.quiet = n_blocks - 1 - last if last >= 0 else self.quiet + n_blocks
        cue = any(a <= captured_at and first <= b for a, b in self.cues)
        self.agent_quiet = self.quiet if last >= 0 and not cue else self.agent_quiet + n_blocks
        return self.quiet < self.hold, self.agent_quiet < self.hold, cue


def _chunk(rng: np.random.Generator, n: int) -> np.ndarray:
    """Speaker audio of every kind the bar has to tell apart: silence, blocks at the bar to the
    sample (all ±30: exactly FAR_RMS, not over it) and just over it (±31), soft and loud noise,
    full scale (float32 sums round there), and speech-like bursts."""
    kind = rng.integers(7)
    if kind == 0:
        return np.zeros(n, dtype="<i2")
    if kind in (1, 2):
        return (np.where(rng.random(n) < 0.5, -1, 1) * (30 + kind - 1)).astype("<i2")
    if kind == 3:
        return (rng.standard_normal(n) * 25).astype("<i2")
    if kind == 4:
        return np.where(rng.random(n) < 0.5, -32768, 32767).astype("<i2")
    envelope = np.repeat(rng.random(n // 80 + 1) < 0.5, 80)[:n]
    return (rng.standard_normal(n) * (3000 if kind == 5 else 40) * envelope).astype("<i2")


@pytest.mark.parametrize("delay_ms", [0, 120])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_far_end_flags_with_cancellation_off_are_the_cancellers_own(delay_ms: int, seed: int) -> None:
    """Speaker blocks of 20 ms written as a speaker reports them (jitter, gaps, a dropped buffer
    now and then), 30 ms mic frames read against them, earcons told of: the flags are the same
    on every frame, also where a frame reaches past what the speaker has reported yet."""
    rng = np.random.default_rng(seed)
    off = EchoCanceller(make_backend(False), delay_ms=delay_ms)
    model = CancellerFlags(off.ring, delay_ms)
    write_at, frame_at = 100.0, 100.0
    flags: list[tuple[bool, bool, bool]] = []
    for _ in range(4000):
        if write_at <= frame_at:
            off.ring.write(_chunk(rng, 320).tobytes(), write_at + rng.normal(0, 0.001))
            write_at += 0.02 + (rng.random() < 0.03) * rng.random() * 0.5  # now and then a gap
            if rng.random() < 0.01:
                off.ring.cut(write_at - rng.random() * 0.03)  # the speaker dropped what it held
            if rng.random() < 0.01:
                until = write_at + rng.random() * 0.3
                off.play_cue(write_at, until)
                model.cues.append((write_at, until + CUE_TAIL_S))
            continue
        frame_at += 0.03 + rng.normal(0, 0.0005)
        assert off.process(bytes(960), frame_at) == bytes(960)
        want = model.frame(480, frame_at)
        assert (off.far_active, off.agent_audible, off.in_cue) == want, len(flags)
        assert not off.residual_echo and not off.holding
        flags.append(want)
    far, agent, cue = (sum(f[i] for f in flags) for i in range(3))
    assert 0 < agent < far < len(flags) and cue > 0  # every state was seen, and left
