"""`edge-agent gate`: the daemon's speech gate over recordings, an installer's and a tuner's check
of what leaves the kiosk (README, "The speech gate").

`--json` prints one line per recording, `{"sent": [[start_s, end_s], ...], "sent_share": ...,
"frames": ...}`, and `"score"` against a `--labels` file (recall, onsets, strict idle share). The
engine is the config's `vad.engine` (`-c`), so the baselines stay comparable. Imported only when
the command runs, as every command but `run`: the process's start-up is part of its cost goal.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from edge_agent import BYTES_PER_S, SAMPLE_RATE_HZ
from edge_agent.core import config
from edge_agent.errors import EdgeAgentError, UsageError

if TYPE_CHECKING:
    from edge_agent.audio.gatescore import Labels


def cmd_gate(args: argparse.Namespace) -> int:
    """The daemon's speech gate over each recording in turn (a fresh gate each); with --json one line each."""
    from edge_agent.audio.wavfile import read_wav_16k_mono

    settings = config.load_logged(args.config, args.log_level)
    config.validate_for_run(settings, talk_to_agent=False)
    labels = None
    if args.labels:
        if len(args.input) > 1:
            raise UsageError(f"--labels scores one recording, got {len(args.input)}: run it once per recording with that recording's labels")
        from edge_agent.audio.gatescore import Labels

        labels = Labels.load(args.labels)  # a bad labels file fails before the work, not after
    recordings = [(path, read_wav_16k_mono(path)) for path in args.input]  # an unreadable one fails before any output
    frame_bytes = 2 * SAMPLE_RATE_HZ * settings.audio.frame_ms // 1000
    for path, pcm in recordings:
        if len(pcm) < frame_bytes:  # a header with no audio after it: nothing to gate, no figure means anything
            raise EdgeAgentError(f"{path}: need at least one {settings.audio.frame_ms} ms frame of audio, got {len(pcm) / BYTES_PER_S:.2f} s")
    for i, (path, pcm) in enumerate(recordings):
        if i and not args.json:
            print()
        _gate_one(args, settings, path, pcm, labels)
    return 0


def _gate_one(args: argparse.Namespace, settings: config.Settings, path: str, pcm: bytes, labels: Labels | None) -> None:
    from edge_agent.audio.gate import VadGate
    from edge_agent.audio.gatefile import gate_file_intervals
    from edge_agent.audio.gatescore import LABELS_SLACK_S, score

    duration = len(pcm) / BYTES_PER_S
    if labels is not None and abs(labels.duration_s - duration) > LABELS_SLACK_S:
        raise EdgeAgentError(f"{args.labels}: labels a {labels.duration_s:.1f} s recording, {path} is {duration:.1f} s: give the labels made for this recording")
    gate = VadGate(settings.vad, settings.audio.frame_ms)
    t0 = time.perf_counter()
    sent = gate_file_intervals(gate, pcm)
    elapsed = time.perf_counter() - t0
    share = sum(b - a for a, b in sent) / duration if duration else 0.0
    result: dict[str, object] = {"sent": [[round(a, 3), round(b, 3)] for a, b in sent], "sent_share": round(share, 4), "frames": gate.frames}
    got = score(sent, labels) if labels is not None else None
    if got is not None:
        result["score"] = got.as_dict()
    if args.json:
        print(json.dumps(result))
        return
    print(f"{path}: {duration:.1f} s, {gate.frames} frames of {settings.audio.frame_ms} ms, engine {settings.vad.engine}")
    print(f"sent {share:.1%} of the audio in {len(sent)} stretch{'' if len(sent) == 1 else 'es'}; gate ran at {duration / max(elapsed, 1e-9):.0f}x real time")
    for a, b in sent:
        print(f"  {a:8.2f} - {b:8.2f} s")
    if got is not None:
        print(f"against {args.labels}: speech recall {got.speech_recall:.4f} (goal >= 0.995), onsets with their 100 ms lead {got.onset_ok:.2f} (goal 1.00),")
        print(f"  idle sent {got.idle_share:.4f} (goal <= 0.05; idle: more than 0.5 s before or 1.0 s after labelled speech)")
