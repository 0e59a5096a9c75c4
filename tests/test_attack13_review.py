"""A helper's attack (attack13) on the offline tools, the store's side files and config reload:
what held is in its report; what did not, here (each failed before its fix)."""

from __future__ import annotations

import logging
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, KioskThread, kiosk_settings, write_wav

from edge_agent.cli import main
from edge_agent.core import config
from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import AgentSimulator

SHOWN_MAX = 10
"""`errors.SHOWN_MAX`: problems named one by one (the rest counted)."""

TONE = b"".join(struct.pack("<h", int(8000 * math.sin(i * 0.2))) for i in range(16000 * 2))
"""2 s of a tone: what the echo tool takes as a track (it needs 1 s)."""


def _loop(tmp_path: Path, name: str) -> Path:
    """A link to itself (a mistyped `ln -s`): opening it fails with ELOOP."""
    link = tmp_path / name
    link.symlink_to(link)
    return link


def test_echo_output_that_is_a_link_looping_on_itself_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`edge-agent echo mic.wav speaker.wav -o LOOP`: the check that the output is none of the
    inputs resolved the path, and Python 3.11's `Path.resolve` raises RuntimeError ("Symlink loop
    from ...") for a loop, which the check did not catch: exit 70, "unexpected error ... report it"."""
    mic, speaker = write_wav(tmp_path / "mic.wav", TONE), write_wav(tmp_path / "speaker.wav", TONE)
    out = _loop(tmp_path, "out.wav")
    assert main(["echo", str(mic), str(speaker), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "unexpected" not in err and f"cannot write {out}" in err, err
    assert mic.read_bytes()[44:] == TONE and speaker.read_bytes()[44:] == TONE


def test_provision_passwd_that_is_a_link_looping_on_itself_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`provision --passwd LOOP`: the same RuntimeError from the check that the password file is
    not the new secret file (now `core/statefiles.same_file`): exit 70 and no word of the loop."""
    passwd = _loop(tmp_path, "passwd")
    keys = tmp_path / "keys"
    keys.mkdir()
    assert main(["provision", "kiosk-1", "--dir", str(keys), "--passwd", str(passwd)]) == 1
    err = capsys.readouterr().err
    assert "unexpected" not in err and str(passwd) in err, err
    assert list(keys.iterdir()) == []


def _agent_toml(sim: AgentSimulator, settings: config.Settings) -> str:
    return f'[agent]\nendpoint = "{sim.url}"\nagent_id = "{settings.agent.agent_id}"\npublic_key = "pk"\n[device]\nstate_dir = "{settings.device.state_dir}"\n'


def test_a_reload_mid_conversation_to_a_config_of_many_unknown_sections_is_a_few_lines(tmp_path: Path, sim: AgentSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """A config (under the 1 MiB limit) of 100000 unknown sections, SIGHUP while a visitor talks:
    the reload logged 100001 lines (one warning a section: journald's rate limit then drops the
    kiosk's own) and held the event loop 13.6 s looking for a near name for each; 1.3 s after."""
    settings = kiosk_settings(tmp_path, sim.url)
    cfg = tmp_path / "reload.toml"
    cfg.write_text(_agent_toml(sim, settings) + "".join(f"[zz{i}]\n" for i in range(100_000)))
    with KioskThread(settings) as k:
        k.press()
        k.wait_state(c.LISTENING, 10)
        caplog.clear()
        caplog.set_level(logging.INFO)
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: config.load(cfg)), timeout_s=60)
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("edge_agent")]
        assert len(lines) <= SHOWN_MAX + 2, (len(lines), lines[:3])
        assert any("99990 more sections" in line for line in lines), lines
        assert k.state != c.IDLE  # the conversation goes on with the settings it had
        k.press()
        k.wait_state(c.IDLE, 10)


def test_a_config_of_many_unknown_keys_is_reported_in_a_few_lines(tmp_path: Path, sim: AgentSimulator, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """100000 unknown keys in [session]: `run` (and `gate`, `doctor`) printed 100000 lines, and a
    rejected reload logged one line of 2.9 MB. The first SHOWN_MAX problems, then a count."""
    settings = kiosk_settings(tmp_path, sim.url)
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(_agent_toml(sim, settings) + "[session]\n" + "".join(f"k{i}=1\n" for i in range(100_000)))
    wav = write_wav(tmp_path / "x.wav", TONE)
    assert main(["gate", "-c", str(cfg), str(wav)]) == 78
    err = capsys.readouterr().err.splitlines()
    assert len(err) == SHOWN_MAX + 1 and "99990 more problems" in err[-1], err[-3:]
    with KioskThread(settings) as k:
        caplog.set_level(logging.INFO)
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: config.load(cfg)), timeout_s=60)
        rejected = [r.getMessage() for r in caplog.records if "config reload rejected" in r.getMessage()]
        assert len(rejected) == 1 and len(rejected[0]) < 2000, len(rejected[0]) if rejected else caplog.text[-500:]


def test_gate_of_a_recording_larger_than_memory_is_one_line(tmp_path: Path) -> None:
    """A long recording (10 h here, 1.15 GB) gated on a machine whose memory cannot hold it (a Pi
    Zero 2 has 512 MB: 2.2 h of audio; here the process is limited to 1 GiB): `read_wav_16k_mono`
    reads it whole, and the MemoryError ended `gate` as "unexpected error: MemoryError: (...
    report it)", exit 70. One line naming the file and what to do instead, exit 1."""
    n = 10 * 3600 * 32000
    wav = tmp_path / "day.wav"
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    with wav.open("wb") as f:  # sparse: no disk taken, but every byte is read
        f.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", n))
        f.truncate(44 + n)
    code = f"import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\nfrom edge_agent.cli import main\nsys.exit(main(['gate', {str(wav)!r}, '--json']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "unexpected" not in done.stderr and f"{wav}: 10.0 h of audio is more than this machine's memory holds" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""
