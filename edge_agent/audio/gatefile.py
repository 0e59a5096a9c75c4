"""A VadGate run over a whole recording: the stretches it sends, for `edge-agent gate`, the room matrix, bench and the tests."""

from __future__ import annotations

from edge_agent.audio.gate import VadGate


def gate_file_intervals(gate: VadGate, pcm: bytes) -> list[tuple[float, float]]:
    """Runs `gate` over a whole recording; returns the sent stretches in seconds of the input. A
    reopening whose pre-roll reaches back to where the gate closed continues that stretch (the
    audio sent is unbroken): listed apart, `gate --json` counted more stretches than were sent."""
    fb = gate.frame_bytes
    read_ahead = getattr(gate.classifier, "read_ahead", None)
    if read_ahead is not None:  # the whole recording is known: a classifier may analyse it in batches
        read_ahead(pcm)
    stretches: list[tuple[int, int]] = []  # in frames: [first, end)
    was_open = False
    for off in range(0, len(pcm) - fb + 1, fb):
        gate.push(pcm[off : off + fb])
        if gate.is_open and not was_open:
            start = gate.open_since
            if stretches and stretches[-1][1] >= start:
                start = stretches.pop()[0]
        elif was_open and not gate.is_open:
            stretches.append((start, gate.frames - 1))
        was_open = gate.is_open
    if was_open:
        stretches.append((start, gate.frames))
    frame_s = gate.frame_ms / 1000.0
    return [(first * frame_s, end * frame_s) for first, end in stretches]
