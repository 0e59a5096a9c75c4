"""A newcomer's review of the README's commands, run through the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("JOURNAL_STREAM", None)
    cmd = [sys.executable, "-m", "edge_agent", "demo", "--auto", "--state-dir", str(tmp_path / "state"), *args]
    return subprocess.run(cmd, text=True, cwd=REPO, env=env, timeout=120, capture_output=True)


def test_a_demo_output_it_cannot_write_names_the_option_not_a_config_key(tmp_path: Path) -> None:
    """The demo has no config file: an `--output file:` it cannot write was reported as
    `config error: audio.output: ...` with exit 78 (the code the unit reads as "fix the config"),
    pointing a newcomer at a file they never wrote."""
    (tmp_path / "state").mkdir(mode=0o700)
    target = tmp_path / "no-such-dir" / "agent.wav"
    out = _demo(tmp_path, "--output", f"file:{target}")
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "config error" not in out.stderr and "audio.output" not in out.stderr, out.stderr[-2000:]
    assert f"--output file:{target}" in out.stderr and "No such file or directory" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr


def test_a_demo_output_naming_its_input_names_both_options(tmp_path: Path) -> None:
    """`--input x.wav --output file:x.wav`: the demo refused it as a config error naming the keys
    `audio.output` / `audio.input`, which the demo's user never set."""
    (tmp_path / "state").mkdir(mode=0o700)
    clip = REPO / "edge_agent" / "data" / "demo_speech.wav"
    copy = tmp_path / "speech.wav"
    copy.write_bytes(clip.read_bytes())
    out = _demo(tmp_path, "--input", f"file:{copy}", "--output", f"file:{copy}")
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "config error" not in out.stderr and "audio.input" not in out.stderr, out.stderr[-2000:]
    assert "--output" in out.stderr and "--input" in out.stderr, out.stderr[-2000:]
    assert copy.read_bytes() == clip.read_bytes()  # the recording it plays is left alone
