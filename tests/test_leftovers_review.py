"""Leftovers of earlier notes, each with a test that failed before its fix (2026-12-07 evening)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from conftest import REPO, toml_dump, write_wav
from test_newcomer import ea


@pytest.mark.parametrize("meter_s", ["1e300", "61", "0", "nan"])
def test_doctor_meter_s_past_a_minute_is_a_usage_error(tmp_path: Path, meter_s: str) -> None:
    """`doctor --meter-s 1e300` passed the check (a positive number) and the level meter listened
    for good, the microphone's frames piling up in memory: the doctor never finished."""
    mic = write_wav(tmp_path / "mic.wav", bytes(32000))
    data = {"audio": {"input": f"file:{mic}", "output": "null"}, "button": {"source": "none"}, "device": {"state_dir": str(tmp_path / "state")}}
    data["agent"] = {"agent_id": "a", "public_key": "k", "endpoint": "ws://127.0.0.1:9/millis"}
    path = tmp_path / "c.toml"
    path.write_text(toml_dump(data))
    out = ea("doctor", "-c", str(path), "--meter-s", meter_s, timeout_s=20)
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-500:])
    assert "--meter-s" in out.stderr and "at most 60" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_gate_lists_an_unbroken_stretch_once(tmp_path: Path) -> None:
    """With `vad.engine = "webrtcvad"`, `gate --json` on the noisy dev recording listed 22 stretches
    of which 11 touched the one before (`[1.05, 2.16], [2.16, 9.39]`): the gate closed and
    reopened with a pre-roll reaching back to where it closed, the audio sent unbroken. Each
    stretch now starts after the last one ended, and together they are exactly the frames the
    gate put on the wire, pushed live."""
    from edge_agent.audio.classifiers import make_classifier
    from edge_agent.audio.gate import VadGate
    from edge_agent.audio.wavfile import read_wav_16k_mono
    from edge_agent.core.config import from_dict

    cfg = tmp_path / "webrtcvad.toml"
    cfg.write_text('[vad]\nengine = "webrtcvad"\n')
    wav = REPO / "tests" / "data" / "kiosk_dev_noisy.wav"
    out = ea("gate", str(wav), "-c", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    sent = json.loads(out.stdout)["sent"]
    assert all(a[1] < b[0] for a, b in itertools.pairwise(sent)), sent
    vad = from_dict({"vad": {"engine": "webrtcvad"}}).vad
    gate = VadGate(vad, 30, make_classifier(vad))
    pcm = read_wav_16k_mono(wav)
    pushed = [gate.push(pcm[at : at + gate.frame_bytes]) for at in range(0, len(pcm) - gate.frame_bytes + 1, gate.frame_bytes)]
    on_wire = sum(frame != gate.silence for out in pushed for frame in out)  # closed, it sends silence
    assert round(sum(b - a for a, b in sent) / 0.03) == on_wire
