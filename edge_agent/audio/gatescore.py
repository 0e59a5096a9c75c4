"""Scores a gate's sent intervals against a `.labels.json` file (speech intervals in seconds).

Three figures, the ones the gate must meet on every recording:
- speech_recall: share of labelled speech time that was sent;
- onset_ok: share of labelled onsets sent together with the `onset_lead_s` before them;
- idle_share: share of the idle audio that was sent anyway, idle counted strictly: everything more
  than `before_s` (0.5 s) before an utterance or more than `after_s` (1.0 s) after one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from edge_agent.core.statefiles import read_small_file
from edge_agent.errors import EdgeAgentError

Intervals = list[tuple[float, float]]
LABELS_MAX_BYTES = 16 * 1024 * 1024
"""Largest labels file read (an hour of utterances takes a few kB)."""
LABELS_SHAPE = 'expected {"duration_s": 55.2, "speech": [[1.0, 2.5], ...]} (seconds), as in tests/data/'
LABELS_SLACK_S = 0.1
"""How far a labels file's times (rounded to the ms) may go past its `duration_s`, and that from its
recording's length."""


@dataclass(frozen=True)
class Labels:
    duration_s: float
    speech: Intervals

    @classmethod
    def load(cls, path: str | Path) -> Labels:
        """A `.labels.json` file; anything else is one EdgeAgentError naming the file."""
        try:  # a regular file of bounded size: `/dev/zero` read until memory ran out, a FIFO hung
            raw = read_small_file(Path(path), LABELS_MAX_BYTES)
        except OSError as exc:
            raise EdgeAgentError(f"cannot read labels {path}: {exc.strerror or exc}") from None
        except ValueError as exc:  # no regular file, or too large
            raise EdgeAgentError(f"cannot read labels {path}: {exc}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as exc:  # not UTF-8 either
            raise EdgeAgentError(f"{path}: not JSON ({exc}); {LABELS_SHAPE}") from None
        except RecursionError:  # json nests recursively: 100 000 '[' exhausted the stack (exit 70)
            raise EdgeAgentError(f"{path}: not a labels file (nested too deeply); {LABELS_SHAPE}") from None
        if not isinstance(data, dict):
            raise EdgeAgentError(f"{path}: not a labels file (a JSON {type(data).__name__}, not an object); {LABELS_SHAPE}")
        try:
            duration, speech = data["duration_s"], data["speech"]
        except KeyError as exc:
            raise EdgeAgentError(f"{path}: not a labels file (no {exc} key); {LABELS_SHAPE}") from None
        problem = _labels_problem(duration, speech)
        if problem:
            raise EdgeAgentError(f"{path}: not a labels file ({problem}); {LABELS_SHAPE}")
        return cls(float(duration), [(float(a), float(b)) for a, b in speech])


def _seconds(value: object) -> TypeGuard[float]:
    """A JSON number of seconds: finite, not a bool (true is 1 to Python, not a time), and an int a
    float holds (math.isfinite of a 400-digit one raised OverflowError: exit 70)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) < 1e12 if isinstance(value, int) else math.isfinite(value)


def _labels_problem(duration: object, speech: object) -> str | None:
    """What is wrong with a labels file's `duration_s` and `speech`, or None: scores over reversed
    intervals, or ones past the recording's end, would be figures that mean nothing."""
    if not _seconds(duration) or duration <= 0:
        return f"duration_s must be a number of seconds over 0, got {duration!r}"
    if not isinstance(speech, list):
        return f"speech must be a list of [start_s, end_s] pairs, got a JSON {type(speech).__name__}"
    end = duration + LABELS_SLACK_S
    for i, pair in enumerate(speech):
        if not (isinstance(pair, list) and len(pair) == 2 and all(_seconds(t) for t in pair)):
            return f"speech[{i}] must be a [start_s, end_s] pair of numbers, got {json.dumps(pair)[:60]}"
        a, b = pair
        if not 0 <= a < b:
            return f"speech[{i}] [{a}, {b}] must start at 0 s or later and end after it starts"
        if b > end:
            return f"speech[{i}] [{a}, {b}] ends past the recording's end (duration_s {duration})"
    return None


@dataclass(frozen=True)
class GateScore:
    speech_recall: float
    onset_ok: float
    idle_share: float
    sent_share: float

    def as_dict(self) -> dict[str, float]:
        return {"speech_recall": round(self.speech_recall, 4), "onset_ok": round(self.onset_ok, 4), "idle_share": round(self.idle_share, 4), "sent_share": round(self.sent_share, 4)}


def _overlap(a: Intervals, b: Intervals) -> float:
    """Total length of the intersection of two sorted, non-overlapping interval lists."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def _merge(iv: Intervals) -> Intervals:
    out: Intervals = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def _length(iv: Intervals) -> float:
    return sum(b - a for a, b in iv)


def far_from_speech(labels: Labels, before_s: float, after_s: float) -> Intervals:
    """The idle parts: more than `before_s` before and more than `after_s` after any labelled speech."""
    near = _merge([(max(0.0, a - before_s), min(labels.duration_s, b + after_s)) for a, b in labels.speech])
    out: Intervals = []
    t = 0.0
    for a, b in near:
        if a > t:
            out.append((t, a))
        t = max(t, b)
    if t < labels.duration_s:
        out.append((t, labels.duration_s))
    return out


def score(sent: Intervals, labels: Labels, onset_lead_s: float = 0.1, before_s: float = 0.5, after_s: float = 1.0, tolerance_s: float = 0.005) -> GateScore:
    """Scores `sent` (seconds of the input that were transmitted) against `labels`."""
    sent = _merge(sent)
    speech = _merge(labels.speech)
    speech_len = _length(speech)
    recall = _overlap(sent, speech) / speech_len if speech_len else 1.0
    onsets_ok = 0
    for a, _ in labels.speech:
        want = (max(0.0, a - onset_lead_s), a)
        onsets_ok += _overlap(sent, [want]) >= (want[1] - want[0]) - tolerance_s
    far = far_from_speech(labels, before_s, after_s)
    far_len = _length(far)
    idle = _overlap(sent, far) / far_len if far_len else 0.0
    return GateScore(recall, onsets_ok / len(labels.speech) if labels.speech else 1.0, idle, _length(sent) / labels.duration_s if labels.duration_s else 0.0)
