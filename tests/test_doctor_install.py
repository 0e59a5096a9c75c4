"""`edge-agent doctor` against real peers, and the installer's file handling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, REPO, Broker, read_wav, toml_dump, write_wav

from edge_agent.cli import main
from edge_agent.core import config
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.errors import EX_CONFIG


def _doctor(cfg: Path, *extra_env: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", **dict(extra_env)}
    return subprocess.run([sys.executable, "-m", "edge_agent", "doctor", "-c", str(cfg), "--meter-s", "1"], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def _cfg(tmp_path: Path, endpoint: str, mqtt_port: int, audio: bytes) -> Path:
    clip = write_wav(tmp_path / "mic.wav", audio)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        toml_dump(
            {
                "device": {"id": "doc", "state_dir": str(tmp_path / "state")},
                "agent": {"endpoint": endpoint, "agent_id": "a", "public_key": "doctor-test-key"},
                "audio": {"input": f"file:{clip}", "output": "null"},
                "button": {"source": "gpio", "pin": 17},
                "led": {"pin": 27},
                "mqtt": {"enabled": True, "host": "127.0.0.1", "port": mqtt_port},
            }
        )
    )
    return cfg


def test_doctor_passes_on_a_healthy_kiosk(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    out = _doctor(_cfg(tmp_path, sim.url, broker.port, read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3]))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for name in ("config", "state dir writable", "system clock plausible", "audio input", "audio output", "button on GPIO 17", "status LED", "MQTT broker", "agent endpoint"):
        assert any(line.startswith("PASS  " + name) for line in lines), (name, out.stdout)
    assert "level" in out.stdout and "WebSocket upgrade OK" in out.stdout


def test_doctor_fails_with_hints_and_nonzero_exit(tmp_path: Path, broker: Broker) -> None:
    port = broker.port
    broker.kill()
    out = _doctor(_cfg(tmp_path, "ws://127.0.0.1:9/millis", port, bytes(32000 * 2)))
    assert out.returncode == 1
    fails = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert any("audio input" in f and "silence" in f for f in fails)
    assert any("MQTT broker" in f for f in fails) and any("agent endpoint" in f for f in fails)
    assert out.stdout.count("hint:") >= 3


def test_doctor_writes_no_file_speaker_and_one_file_cannot_be_both_mic_and_speaker(tmp_path: Path) -> None:
    """The doctor "creates and changes no file", but it played its earcon into a `file:` speaker:
    a recording kept there (832 044 bytes) became the earcon (5 804). And a config naming one
    file as mic and speaker passed the doctor and `run` cut the recording to a header (found by
    a newcomer). Now the doctor checks the file can be written and plays nothing into it, and
    the same file twice is a config error for every command, through a link too."""
    recording = read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3]
    cfg = _cfg(tmp_path, "ws://127.0.0.1:9/millis", 9, recording)
    kept = write_wav(tmp_path / "kept.wav", recording)
    before = kept.read_bytes()
    text = cfg.read_text().replace('output = "null"', f'output = "file:{kept}"')
    assert text != cfg.read_text()
    cfg.write_text(text)
    out = _doctor(cfg)
    assert kept.read_bytes() == before, "the doctor wrote into the speaker's file"
    assert any(line.startswith("PASS  audio output") and "not played" in line for line in out.stdout.splitlines()), out.stdout
    (tmp_path / "link.wav").symlink_to(tmp_path / "mic.wav")
    for spec in (f"file:{tmp_path / 'mic.wav'}", f"file:{tmp_path / 'link.wav'}"):
        cfg.write_text(text.replace(f'output = "file:{kept}"', f'output = "{spec}"'))
        out = _doctor(cfg)
        assert out.returncode == EX_CONFIG and "FAIL  config: audio.output" in out.stdout, out.stdout
        run = subprocess.run([sys.executable, "-m", "edge_agent", "run", "-c", str(cfg)], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert run.returncode == EX_CONFIG and "audio.output" in run.stderr, run.stderr
    assert read_wav(tmp_path / "mic.wav") == recording
    cfg.write_text(text.replace(f'output = "file:{kept}"', f'output = "file:{tmp_path}"'))  # a dir: writable, no file
    out = _doctor(cfg)
    assert any(line.startswith("FAIL  audio output") and "a directory" in line for line in out.stdout.splitlines()), out.stdout


def test_doctor_checks_the_badge_reader(tmp_path: Path) -> None:
    """A badge reader that is not there, or a node that is no input device, passed the doctor
    (it never looked at `[badge]`): the kiosk then logged a warning every 2 s and took no scan.
    Now a missing node and a character device that is no input device (/dev/null) FAIL with a
    hint; a FIFO of key events (a test set-up) passes, said to be one."""
    recording = read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 2]
    cfg = _cfg(tmp_path, "ws://127.0.0.1:9/millis", 9, recording)
    secret = tmp_path / "secret"
    secret.write_bytes(os.urandom(32))
    fifo = tmp_path / "reader"
    os.mkfifo(fifo)
    base = cfg.read_text()
    for device, verdict, words in (
        (tmp_path / "gone", "FAIL", "by-id"),
        (Path("/dev/null"), "FAIL", "not an input device"),
        (fifo, "PASS", "a FIFO of key events"),
    ):
        cfg.write_text(base + f'\n[badge]\ndevice = "{device}"\nsecret_file = "{secret}"\n')
        out = _doctor(cfg)
        lines = out.stdout.splitlines()
        at = next((i for i, x in enumerate(lines) if x.startswith(("PASS  badge reader", "FAIL  badge reader"))), None)
        assert at is not None and lines[at].startswith(f"{verdict}  badge reader {device}"), out.stdout
        assert words in "\n".join(lines[at : at + 2]), out.stdout  # the line and its hint


def test_doctor_on_a_bad_config_exits_78(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[button]\npin = 'seventeen'\n")
    out = _doctor(cfg)
    assert out.returncode == 78 and "FAIL  config: button.pin" in out.stdout


def test_run_and_doctor_without_c_read_the_installed_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A plain `edge-agent doctor` on a kiosk checked built-in defaults (FAIL agent.public_key:
    missing) whatever /etc/edge-agent/config.toml, the file the service runs with, said."""
    monkeypatch.delenv("EDGE_AGENT_PUBLIC_KEY", raising=False)
    installed = tmp_path / "config.toml"
    installed.write_text("[button]\npin = 99\n")
    monkeypatch.setattr(config, "INSTALLED_CONFIG", installed, raising=False)  # (before the fix the doctor's output failed)
    assert main(["doctor"]) == EX_CONFIG
    assert capsys.readouterr().out == f"FAIL  config: button.pin: must be between 0 and 53, got 99\n      checked: {installed}\n"
    assert main(["run"]) == EX_CONFIG
    assert capsys.readouterr().err == "edge-agent: config error: button.pin: must be between 0 and 53, got 99\n"
    assert main(["gate", str(DATA / "kiosk_dev_quiet.wav"), "--json"]) == 0  # a tool over recordings keeps built-in defaults
    capsys.readouterr()

    clip = write_wav(tmp_path / "mic.wav", read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 2])
    kiosk = {"device": {"state_dir": str(tmp_path / "state")}, "agent": {"agent_id": "a", "public_key": "k", "endpoint": "ws://127.0.0.1:9/millis"}}
    installed.write_text(toml_dump({**kiosk, "audio": {"input": f"file:{clip}", "output": "null"}, "button": {"source": "none"}}))
    assert main(["doctor", "--meter-s", "0.2"]) == 1  # nothing listens on port 9
    assert capsys.readouterr().out.startswith(f"PASS  config: {installed}\n")

    monkeypatch.setattr(config, "INSTALLED_CONFIG", tmp_path / "absent.toml")
    assert main(["doctor"]) == EX_CONFIG
    assert capsys.readouterr().out.endswith(f"checked: built-in defaults (no -c, and no {tmp_path / 'absent.toml'})\n")
    monkeypatch.undo()
    assert f"edge-agent run -c {config.INSTALLED_CONFIG}\n" in (REPO / "systemd" / "edge-agent.service").read_text()  # the file the service runs with


def _install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO / "script" / "install"), *args], capture_output=True, text=True, env={**os.environ, "DESTDIR": str(root)}, check=True)


def test_install_never_overwrites_an_edited_config_and_uninstall_keeps_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _install(root)
    config = root / "etc/edge-agent/config.toml"
    assert config.read_text() == (REPO / "config/edge-agent.toml").read_text()
    assert (root / "etc/systemd/system/edge-agent.service").read_text() == (REPO / "systemd/edge-agent.service").read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    config.write_text(config.read_text() + "\n# edited on site\n")
    out = _install(root)
    assert "keeping the existing" in out.stdout and config.read_text().endswith("# edited on site\n")
    assert (root / "etc/edge-agent/config.toml.dist").exists()
    state = root / "var/lib/edge-agent"
    state.mkdir(parents=True)
    (state / "sessions.sqlite3").write_text("x")
    subprocess.run(["bash", str(REPO / "script" / "uninstall")], check=True, env={**os.environ, "DESTDIR": str(root)})
    assert not (root / "etc/systemd/system/edge-agent.service").exists() and not (root / "opt/edge-agent").exists()
    assert config.exists() and (state / "sessions.sqlite3").exists()
    subprocess.run(["bash", str(REPO / "script" / "uninstall"), "--purge-config", "--purge-state"], check=True, env={**os.environ, "DESTDIR": str(root)})
    assert not config.exists() and not state.exists()


def test_pinout_svg_is_generated_from_its_data_file() -> None:
    import xml.etree.ElementTree as ET

    out = subprocess.run([sys.executable, str(REPO / "script" / "pinout"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    svg = ET.parse(REPO / "hw" / "pinout.svg").getroot()
    texts = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert "GPIO17 (11)" in texts and "GPIO27 (13)" in texts and "330 ohm" in " ".join(svg.itertext())
