"""The learned speech-likeness (audio/speechlike.py, `vad.engine = "learned"`): the shipped model
loads and answers deterministically, its training script reproduces it, and the veto acts only in
busy rooms (music, a TV, a crowd) so the rooms the cues hold are untouched."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
from gate_rooms import bank

from edge_agent.audio.classifiers import make_classifier
from edge_agent.audio.cues import CueClassifier
from edge_agent.audio.gate import VadGate
from edge_agent.audio.gatefile import gate_file_intervals
from edge_agent.audio.gatescore import score
from edge_agent.audio.speechlike import FEATURES, SpeechModel
from edge_agent.core.config_audio import VadSettings
from edge_agent.devtools import rooms, train_speechlike
from edge_agent.errors import AudioError

GATE = VadSettings(engine="learned", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90)


@cache
def room(kind: str, snr_db: float) -> tuple[bytes, rooms.Labels]:
    pcm, labels = rooms.make_room(bank(), rooms.Room(kind, snr_db, 0.0, 1))
    return pcm.tobytes(), labels


def _run(classifier: CueClassifier, pcm: bytes) -> tuple[list[tuple[float, float]], list[float]]:
    gate = VadGate(GATE, 30, classifier)
    probabilities: list[float] = []
    sent = []
    for off in range(0, len(pcm) - gate.frame_bytes + 1, gate.frame_bytes):
        was = gate.is_open
        gate.push(pcm[off : off + gate.frame_bytes])
        if gate.is_open != was:
            sent.append((gate.frames, gate.is_open))
        assert classifier.likeness is not None
        probabilities.append(classifier.likeness.probability)
    return [(float(a), float(b)) for a, b in sent], probabilities


def test_the_shipped_model_loads_and_answers_deterministically() -> None:
    model = SpeechModel.load()
    pcm, _ = room("music", 10.0)
    first = _run(CueClassifier(2, speech_model=model), pcm)
    again = _run(CueClassifier(2, speech_model=SpeechModel.load()), pcm)
    assert first == again
    asked = [p for p in first[1] if p > 0.0]
    assert asked and all(0.0 < p < 1.0 for p in asked)  # the model was asked, in a busy room
    features = np.linspace(0.0, 1.0, len(FEATURES))
    assert model.probability(list(features)) == pytest.approx(1.0 / (1.0 + np.exp(-model.logits(features[None, :])[0])))


def test_the_engine_is_chosen_by_config() -> None:
    classifier = make_classifier(GATE)
    assert isinstance(classifier, CueClassifier) and classifier.likeness is not None and classifier.likeness.model is not None
    plain = make_classifier(VadSettings(engine="cues", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90))
    assert isinstance(plain, CueClassifier) and plain.likeness is None  # the default pays nothing for it


def test_a_broken_model_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text('{"mean": [1, 2]}', encoding="utf-8")
    with pytest.raises(AudioError, match="speech model"):
        SpeechModel.load(bad)
    bad.write_text('{"mean": [0], "scale": [1], "hidden_w": [[1]], "hidden_b": [0], "out_w": [1], "out_b": 0}', encoding="utf-8")
    with pytest.raises(AudioError, match="do not fit"):
        SpeechModel.load(bad)


def test_rooms_the_cues_hold_are_untouched() -> None:
    """Stationary noise never makes a room busy: the learned engine sends exactly what the cues send."""
    pcm, _ = room("pink", 5.0)
    plain = gate_file_intervals(VadGate(GATE, 30, CueClassifier(2)), pcm)
    learned = gate_file_intervals(VadGate(GATE, 30, CueClassifier(2, speech_model=SpeechModel.load())), pcm)
    assert learned == plain


def test_in_music_the_veto_keeps_the_visitors_speech() -> None:
    """Music at 10 dB, busy (the cues before the tonal-room cue call most of it SPEECH), so the
    model is asked: it costs the visitor no speech and no onset. It used to leak less than the
    cues alone here (idle 0.80 against 0.94); since the tonal-room cue both leak about as little
    (0.133 against 0.137: the model was trained before that cue; README, the learned
    speech-likeness). The tonal cue holds for this engine too: without it, 0.80."""
    pcm, labels = room("music", 10.0)
    plain = score(gate_file_intervals(VadGate(GATE, 30, CueClassifier(2)), pcm), labels)
    learned = score(gate_file_intervals(VadGate(GATE, 30, CueClassifier(2, speech_model=SpeechModel.load())), pcm), labels)
    assert learned.speech_recall >= plain.speech_recall - 0.001 and learned.onset_ok == plain.onset_ok, (plain, learned)
    assert learned.idle_share <= 0.2, (plain, learned)


def test_training_reproduces_the_shipped_model() -> None:
    """A short run (seed 1's busy rooms, fewer steps) twice: identical weights, and it decides like the shipped model."""
    mixes = [(r, *rooms.make_room(bank(), r)) for r in rooms.tuning_rooms(seeds=(1,), snrs=(10.0,)) if r.kind in train_speechlike.BUSY_KINDS]
    x, y, w = train_speechlike.training_set(mixes)
    a = train_speechlike.fit(x, y, w, steps=300)
    b = train_speechlike.fit(x, y, w, steps=300)
    assert a.raw == b.raw
    shipped = SpeechModel.load().logits(x) > 0
    assert np.mean((a.logits(x) > 0) == shipped) >= 0.85
