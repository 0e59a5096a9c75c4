"""A newcomer's review of the README's commands, run through the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_newcomer import ea


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


def test_a_demo_state_dir_that_is_a_file_is_one_line_naming_the_option(tmp_path: Path) -> None:
    """`demo --state-dir FILE` warned that it could not tell whether a kiosk ran there, then was
    `config error: device.state_dir: ...`, exit 78: a key of a config the demo's user never wrote
    (`sessions --state-dir FILE` is one line and exit 2)."""
    afile = tmp_path / "kiosk.toml"
    afile.write_text("[device]\n")
    out = _demo(tmp_path, "--state-dir", str(afile))
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "config error" not in out.stderr and "device.state_dir" not in out.stderr, out.stderr[-2000:]
    assert f"--state-dir {afile}" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    assert afile.read_text() == "[device]\n"


def test_a_demo_state_dir_it_cannot_make_fails_instead_of_claiming_the_store(tmp_path: Path) -> None:
    """A `--state-dir` the demo cannot make (under a file, on a read-only card) ran the story on
    sessions kept in memory, printed `ok: the store holds session ...` and "checked in the
    simulator and the store", exit 0, and ended by naming a `sessions --state-dir` command that
    answers "does not exist": the check the README promises did not check the store at all."""
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "state"
    out = _demo(tmp_path, "--state-dir", str(target))
    assert out.returncode == 2, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    assert "demo done" not in out.stdout and "the store holds" not in out.stdout, out.stdout[-2000:]
    assert f"--state-dir {target}" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]


def test_fleet_wait_s_without_json_is_refused_not_ignored() -> None:
    """`--wait-s` is documented "with --json"; without it the live view ignored it and ran until
    Ctrl-C, so a monitoring script's `edge-agent fleet --wait-s 5` never ended. Refused before any
    broker is tried (none listens on port 1 here)."""
    out = ea("fleet", "--host", "127.0.0.1", "--port", "1", "--wait-s", "1")
    assert out.returncode == 2, (out.returncode, out.stdout[-1000:], out.stderr[-1000:])
    assert "--wait-s" in out.stderr and "--json" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_provision_dir_that_is_a_file_says_so(tmp_path: Path) -> None:
    """`provision NAME --dir FILE` said `cannot write FILE/NAME.mqtt_password: File exists`, exit 1:
    the file named is not there, and nothing says that `--dir` must be a directory."""
    afile = tmp_path / "kiosk.toml"
    afile.write_text("[device]\n")
    out = ea("provision", "k1", "--dir", str(afile))
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert f"--dir {afile}" in out.stderr and "not a directory" in out.stderr and "File exists" not in out.stderr, out.stderr
    assert afile.read_text() == "[device]\n"


@pytest.mark.parametrize("spec", ["missing.wav", "loop:"])
def test_a_demo_input_it_cannot_play_is_one_line_naming_the_option(tmp_path: Path, spec: str) -> None:
    """`demo --input missing.wav` said `cannot read missing.wav`, naming no option (a bad `--output`
    is one line naming it); `--input loop:` said `cannot read : No such file`. Exit 1 as before
    (an audio error, tests/test_newcomer.py)."""
    out = _demo(tmp_path, "--input", spec)
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    assert f"--input {spec}" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "cannot read :" not in out.stderr, out.stderr[-2000:]


@pytest.mark.parametrize("key", ["password", "password_file"])
def test_an_mqtt_password_without_a_username_is_said(tmp_path: Path, key: str, caplog: pytest.LogCaptureFixture) -> None:
    """`[mqtt] password_file` (or `password`) with no `username`: MQTT sends a password only with a
    user name, so it was silently left out, and the broker refused the kiosk (or let it in
    anonymously) with nothing in the log or `doctor` saying why. Said at load as the config's other
    read-past lines are (and listed by doctor); not an error: a kiosk on a broker that lets anyone
    in runs so, and must not stop at an upgrade. With MQTT off, or a username, nothing is said."""
    from edge_agent.core import config

    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    mqtt = {"enabled": True, key: str(secret) if key == "password_file" else "s3cret"}
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(f"[device]\nstate_dir = {str(tmp_path / 'state')!r}\n[mqtt]\nenabled = true\n{key} = {mqtt[key]!r}\n")
    with caplog.at_level("WARNING"):
        settings = config.load(cfg)
    said = [line for line in settings.ignored_sections if f"mqtt.{key}" in line]
    assert said and "mqtt.username is not set" in said[0], settings.ignored_sections
    assert said[0] in caplog.text
    for quiet in ({**mqtt, "username": "kiosk-1"}, {**mqtt, "enabled": False}):
        assert config.from_dict({"device": {"state_dir": str(tmp_path / "state")}, "mqtt": quiet}).ignored_sections == ()


def test_devices_says_which_audio_is_no_device(tmp_path: Path) -> None:
    """`edge-agent devices -c CFG` "shows which would be chosen" (README); with a recording as the
    microphone and `null` as the speaker it listed the cards and said nothing of either."""
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(f"[device]\nstate_dir = {str(tmp_path / 'state')!r}\n[audio]\ninput = 'file:{REPO}/tests/data/kiosk_dev_quiet.wav'\noutput = 'null'\n")
    out = ea("devices", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "audio.input = 'file:" in out.stdout and "a recording, no device" in out.stdout, out.stdout
    assert "audio.output = 'null': nothing played" in out.stdout, out.stdout
