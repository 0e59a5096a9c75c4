"""Leftovers of earlier notes, each with a test that failed before its fix (2026-12-07 evening)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_newcomer import ea
from test_privacy import toml_dump, write_wav


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
