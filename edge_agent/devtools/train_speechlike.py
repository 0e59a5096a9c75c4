"""Trains the speech-likeness model (audio/speechlike.py) on the tuning rooms, seeded and deterministic.

    python -m edge_agent.devtools.train_speechlike [--out edge_agent/audio/speechlike.json]

Runs the default gate (CueClassifier without a model) over every tuning room of devtools/rooms.py
(seeds 1-3 only; the held-out rooms are never seen), takes the features of every block the cues
find speech-like, labels it speech (inside the visitor's labelled speech) or idle (the strict idle
of the gate's score: more than 0.5 s before or 1.0 s after any speech), and fits a logistic
regression by Newton's method (L2-regularised, each room kind weighted alike and speech against
idle balanced within it). No randomness besides the rooms' own seeds: the same rooms give the
same weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge_agent.audio.cues import CueClassifier
from edge_agent.audio.frames import ANALYSIS_MS, NOISE
from edge_agent.audio.gate import VadGate
from edge_agent.audio.gatescore import Labels, far_from_speech
from edge_agent.audio.speechlike import FEATURES, MODEL_PATH, SpeechModel
from edge_agent.core.config import VadSettings
from edge_agent.devtools import rooms

GATE = VadSettings(engine="cues", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90)
L2 = 1e-3
"""Ridge on the standardised weights: keeps them small where features overlap."""


def _in_any(t: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    hit = np.zeros(len(t), dtype=bool)
    for a, b in intervals:
        hit |= (t >= a) & (t < b)
    return hit


def room_features(pcm: np.ndarray, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """Features of the blocks the cues find speech-like, and their labels (1 speech, 0 idle); others dropped."""
    classifier = CueClassifier(GATE.aggressiveness)
    gate = VadGate(GATE, ANALYSIS_MS, classifier)
    data = pcm.tobytes()
    fb = gate.frame_bytes
    rows, keep = [], []
    for off in range(0, len(data) - fb + 1, fb):
        gate.push(data[off : off + fb])
        rows.append(list(classifier.likeness.features))
        keep.append(classifier._level != NOISE)
    t = (np.arange(len(rows)) + 0.5) * ANALYSIS_MS / 1000
    speech = _in_any(t, labels.speech)
    idle = _in_any(t, far_from_speech(labels, 0.5, 1.0))
    use = np.asarray(keep) & (speech | idle)
    return np.asarray(rows)[use], speech[use].astype(float)


def fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float = L2, steps: int = 30) -> SpeechModel:
    """Weighted, L2-regularised logistic regression by Newton's method on standardised features."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    weight = weight / weight.sum()
    reg = l2 * np.eye(z.shape[1])
    reg[-1, -1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30, 30)))
        grad = z.T @ (weight * (p - y)) + reg @ w
        hess = (z * (weight * p * (1 - p))[:, None]).T @ z + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return SpeechModel(mean.tolist(), scale.tolist(), w[:-1].tolist(), float(w[-1]))


def training_set(mixes: list[tuple[rooms.Room, np.ndarray, Labels]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and weights: every room kind weighs alike, speech and idle balanced within it."""
    xs, ys, kinds = [], [], []
    for room, pcm, labels in mixes:
        x, y = room_features(pcm, labels)
        xs.append(x)
        ys.append(y)
        kinds += [room.kind] * len(y)
    x, y = np.vstack(xs), np.concatenate(ys)
    kind = np.asarray(kinds)
    weight = np.zeros(len(y))
    for k in set(kinds):
        for label in (0.0, 1.0):
            sel = (kind == k) & (y == label)
            if sel.any():
                weight[sel] = 1.0 / sel.sum()
    return x, y, weight


def train(room_list: list[rooms.Room], bank: rooms.SpeechBank) -> SpeechModel:
    mixes = []
    for room in room_list:
        pcm, labels = rooms.make_room(bank, room)
        mixes.append((room, pcm, labels))
    return fit(*training_set(mixes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "tests" / "data")
    args = parser.parse_args(argv)
    model = train(rooms.tuning_rooms(), rooms.SpeechBank(args.data))
    model.save(args.out)
    for name, w in sorted(zip(FEATURES, model.raw["weights"]), key=lambda nw: -abs(nw[1])):
        print(f"{name:16s} {w:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
