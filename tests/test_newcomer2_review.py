"""A second newcomer's review (gate, echo, doctor, the example config, broker-acl), as a kiosk
operator and a fleet admin trying what the README and config/edge-agent.toml say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import DATA, REPO
from test_newcomer import ea, one_line_error

from edge_agent.core import config
from edge_agent.errors import ConfigError

EXAMPLE = REPO / "config" / "edge-agent.toml"


def _example_with_buttons_uncommented(tmp_path: Path) -> Path:
    """The shipped example with its agent id set and its `[[buttons]]` entry uncommented as it is."""
    text = EXAMPLE.read_text().replace('agent_id = "your-agent-id"', 'agent_id = "my-agent"', 1)
    text = re.sub(r"^# (\[\[buttons\]\]|pin = 5|slot = \"english\"|agent_id = \"\.\.\.\")", r"\1", text, flags=re.M)
    text = text.replace('# state_dir = "/var/lib/edge-agent"', f"state_dir = {str(tmp_path / 'state')!r}")
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(text)
    return cfg


def test_the_examples_buttons_placeholder_agent_id_is_refused_like_the_main_one(tmp_path: Path) -> None:
    """`[[buttons]] agent_id = "..."`, uncommented from the example as it is: `...` is a valid label,
    so `run` and `doctor` passed it (the main `agent_id` placeholder they refuse), and every press
    of that button sent `...` to the platform as the agent to talk to. Refused by the check `run` and
    `doctor` share, naming the entry; `gate`, which talks to no agent, still reads the file."""
    cfg = _example_with_buttons_uncommented(tmp_path)
    settings = config.load(cfg)
    assert settings.buttons[0].agent_id == "..."
    with pytest.raises(ConfigError) as caught:
        config.validate_for_run(settings)
    keys = [problem.key for problem in caught.value.all()]
    assert "buttons[0].agent_id" in keys, keys
    config.validate_for_run(settings, talk_to_agent=False)  # gate's part: no agent, no refusal


def test_doctor_fails_the_examples_buttons_placeholder(tmp_path: Path) -> None:
    out = ea("doctor", "-c", str(_example_with_buttons_uncommented(tmp_path)), env={"EDGE_AGENT_PUBLIC_KEY": "k"})
    assert out.returncode == 78, (out.returncode, out.stdout, out.stderr)
    assert "buttons[0].agent_id" in out.stdout + out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("key, value", [("ca_file", "/etc/ssl/certs/ca-certificates.crt"), ("cert_file", "/k/c.pem"), ("key_file", "/k/k.pem"), ("tls_insecure", True)])
def test_an_mqtt_tls_setting_beside_tls_off_is_said(tmp_path: Path, key: str, value: object) -> None:
    """`[mqtt] ca_file = ...` (the example shows it right under `tls = false`) without `tls = true`:
    the kiosk connected in plain text, the CA file unused, and neither the log nor `doctor` said so
    (a TLS broker on 8883 then refused a connection it could not read). Said as the config's other
    read-past keys are; with `tls = true`, or MQTT off, nothing is said."""
    mqtt = {"enabled": True, "port": 8883, key: value}
    said = [line for line in config.from_dict({"mqtt": mqtt}).ignored_sections if f"mqtt.{key}" in line]
    assert said and "tls = true" in said[0], said
    for quiet in ({**mqtt, "tls": True}, {**mqtt, "enabled": False}):
        assert config.from_dict({"mqtt": quiet}).ignored_sections == ()


@pytest.mark.parametrize("args, option", [(["--admin", "alice", "--ha-user", "home assistant"], "--ha-user"), (["--admin", "_x"], "--admin")])
def test_broker_acl_names_the_option_of_a_bad_user(args: list[str], option: str) -> None:
    """`--admin alice --ha-user 'home assistant'` said `--admin/--ha-user: ...`, leaving the admin to
    guess which, and `--admin _x` was told to "use ASCII letters, digits, - and _", which it did
    (a name must start and end with a letter or digit)."""
    line = one_line_error(ea("broker-acl", *args), code=2)
    assert line.startswith(f"edge-agent broker-acl: {option} "), line
    assert "starting and ending with a letter or digit" in line, line


def test_doctor_meters_a_silent_microphone_at_the_16_bit_floor(tmp_path: Path) -> None:
    """A muted microphone's exact zeros were metered as `level -270.3 dBFS` and `-270 dBFS peak`
    (the log of a 1e-9 stand-in for 0), a figure no 16-bit device can show: floored at one step."""
    silent = tmp_path / "silent.wav"
    import wave

    with wave.open(str(silent), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 16000)
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(
        f'[agent]\nagent_id = "a"\n[device]\nstate_dir = {str(tmp_path / "state")!r}\n'
        f'[audio]\ninput = "file:{silent}"\noutput = "null"\n[button]\nsource = "none"\n'
    )
    out = ea("doctor", "-c", str(cfg), "--meter-s", "0.5", env={"EDGE_AGENT_PUBLIC_KEY": "k"})
    text = out.stdout + out.stderr
    assert "level  -90.3 dBFS" in text and "-270" not in text, text
    assert "only digital silence (-90 dBFS peak)" in text, text


def test_gate_and_echo_claims_hold() -> None:
    """What held in this review, kept: `gate --json` prints the keys the help promises."""
    out = ea("gate", str(DATA / "kiosk_dev_quiet.wav"), "--json")
    assert out.returncode == 0 and out.stdout.startswith('{"sent": [['), out.stderr
