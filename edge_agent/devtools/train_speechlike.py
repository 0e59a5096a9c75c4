"""Trains the speech-likeness model (audio/speechlike.py) on the tuning rooms, seeded and deterministic.

    python -m edge_agent.devtools.train_speechlike [--out edge_agent/audio/speechlike.json]

Runs the default gate (CueClassifier without a model) over the tuning rooms of devtools/rooms.py
where the model acts (BUSY_KINDS: music, TV, crowd; seeds 1-3 only, the held-out rooms are never seen), takes the features of every block the cues
find speech-like, labels it speech (inside the visitor's labelled speech) or idle (the strict idle
of the gate's score: more than 0.5 s before or 1.0 s after any speech), and fits a tiny
MLP (16 tanh units) by full-batch Adam from a seeded start (each room kind weighted alike, speech
against idle balanced within it). The same rooms and seed give the same weights.
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
from edge_agent.core.config_audio import VadSettings
from edge_agent.devtools import rooms

GATE = VadSettings(engine="cues", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90)
BUSY_KINDS = ("music", "tv", "babble")
"""The rooms the model acts in (CueClassifier asks it only in a busy room) and is trained on."""
L2 = 1e-4
"""Weight decay on the first layer (standardised features)."""
HIDDEN = 16
STEPS = 1500
LEARNING_RATE = 0.01
SEED = 12


def _in_any(t: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    hit = np.zeros(len(t), dtype=bool)
    for a, b in intervals:
        hit |= (t >= a) & (t < b)
    return hit


def room_features(pcm: np.ndarray, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """Features of the blocks the cues find speech-like, and their labels (1 speech, 0 idle); others dropped."""
    classifier = CueClassifier(GATE.aggressiveness, features=True)
    gate = VadGate(GATE, ANALYSIS_MS, classifier)
    data = pcm.tobytes()
    fb = gate.frame_bytes
    rows, keep = [], []
    likeness = classifier.likeness
    assert likeness is not None
    for off in range(0, len(data) - fb + 1, fb):
        gate.push(data[off : off + fb])
        rows.append(list(likeness.features))
        keep.append(classifier._level != NOISE)
    t = (np.arange(len(rows)) + 0.5) * ANALYSIS_MS / 1000
    speech = _in_any(t, labels.speech)
    idle = _in_any(t, far_from_speech(labels, 0.5, 1.0))
    use = np.asarray(keep) & (speech | idle)
    return np.asarray(rows)[use], speech[use].astype(float)


def fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray, hidden: int = HIDDEN, steps: int = STEPS, seed: int = SEED) -> SpeechModel:
    """Weighted cross-entropy, full-batch Adam from a seeded start, on standardised features."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    weight = weight / weight.sum()
    rng = np.random.default_rng(seed)
    params = [rng.normal(0.0, 1.0 / np.sqrt(z.shape[1]), (z.shape[1], hidden)), np.zeros(hidden), rng.normal(0.0, 1.0 / np.sqrt(hidden), hidden), np.zeros(1)]
    moment = [np.zeros_like(p) for p in params]
    energy = [np.zeros_like(p) for p in params]
    for step in range(1, steps + 1):
        h = np.tanh(z @ params[0] + params[1])
        p = 1.0 / (1.0 + np.exp(-np.clip(h @ params[2] + params[3][0], -30, 30)))
        g = weight * (p - y)
        gh = np.outer(g, params[2]) * (1.0 - h * h)
        grads = [z.T @ gh + L2 * params[0], gh.sum(axis=0), h.T @ g, np.array([g.sum()])]
        for i, grad in enumerate(grads):
            moment[i] = 0.9 * moment[i] + 0.1 * grad
            energy[i] = 0.999 * energy[i] + 0.001 * grad * grad
            params[i] -= LEARNING_RATE * (moment[i] / (1 - 0.9**step)) / (np.sqrt(energy[i] / (1 - 0.999**step)) + 1e-8)
    return SpeechModel(mean.tolist(), scale.tolist(), params[0].tolist(), params[1].tolist(), params[2].tolist(), float(params[3][0]))


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
    model = train([r for r in rooms.tuning_rooms() if r.kind in BUSY_KINDS], rooms.SpeechBank(args.data))
    model.save(args.out)
    print(f"wrote {args.out} ({len(FEATURES)} features, {HIDDEN} hidden units)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
