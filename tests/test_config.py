"""Config: defaults, the key contract, and every bad value -> exit 78 naming the key."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from conftest import REPO, toml_dump

from edge_agent.cli import main
from edge_agent.core import config, tomlsection
from edge_agent.errors import EX_CONFIG, ConfigError


def test_documented_example_config_is_valid_and_complete(tmp_path: Path) -> None:
    path = REPO / "config" / "edge-agent.toml"
    settings = config.load(path)
    text = path.read_text()
    # every key every section reads is documented in the example
    for name, cls in config.SECTIONS.items():
        for field in cls.__dataclass_fields__:
            assert f"{field} =" in text or f"# {field} =" in text or field in ("metadata", "config", "secret"), f"{name}.{field} undocumented"
    assert settings.audio.frame_ms in (10, 20, 30)
    # the template's defaults are the defaults: turning echo cancellation on in a copy of it makes
    # full duplex the default, as documented (a `duplex = "half"` left set kept barge-in off)
    on = tmp_path / "on.toml"
    on.write_text(text.replace("echo_cancel = false", "echo_cancel = true"))
    assert config.load(on).audio.duplex == "full"
    assert settings.audio.duplex == config.from_dict({}).audio.duplex == "half"


def test_defaults_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_AGENT_PUBLIC_KEY", raising=False)
    s = config.load(None)
    assert s.session.resume and s.audio.duplex == "half" and s.button.pin == 17
    # the microphone's device buffer is its capture period: no wake-ups beyond the period's
    assert s.audio.capture_block_ms == s.audio.capture_period_ms == 60 and s.vad.press_opens_ms == 0
    with pytest.raises(ConfigError, match=r"agent\.public_key"):
        s.agent.require_runnable()


def test_public_key_sources_and_it_is_never_in_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_AGENT_PUBLIC_KEY", raising=False)
    keyfile = tmp_path / "key"
    keyfile.write_text("from-file\n")
    s = config.from_dict({"agent": {"public_key_file": str(keyfile), "agent_id": "a"}})
    assert s.agent.public_key is None  # read only by what talks to the agent
    s = config.validate_for_run(s)
    assert s.agent.public_key == "from-file"
    assert "from-file" not in repr(s)
    monkeypatch.setenv("EDGE_AGENT_PUBLIC_KEY", "from-env")
    assert config.from_dict({"agent": {"public_key": "inline"}}).agent.public_key == "from-env"


def test_a_key_as_an_operator_pastes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A newcomer's trial: a key file saved with a byte-order mark kept it in the key (sent as is,
    refused by the platform with nothing pointing at the cause); the environment's or inline key
    kept the white space around it, and one of white space alone passed as a key; the installer's
    placeholder, uncommented unchanged, started a kiosk that could never talk. And a config saved
    with a byte-order mark was "not valid TOML ... line 1, column 1"."""
    monkeypatch.delenv("EDGE_AGENT_PUBLIC_KEY", raising=False)
    keyfile = tmp_path / "key"
    keyfile.write_bytes(b"\xef\xbb\xbfmy-public-key\r\n")
    s = config.validate_for_run(config.from_dict({"agent": {"public_key_file": str(keyfile), "agent_id": "a"}}))
    assert s.agent.public_key == "my-public-key"
    assert config.from_dict({"agent": {"public_key": " inline \n"}}).agent.public_key == "inline"
    monkeypatch.setenv("EDGE_AGENT_PUBLIC_KEY", " from-env\n")
    assert config.from_dict({"agent": {"public_key": "inline"}}).agent.public_key == "from-env"
    monkeypatch.setenv("EDGE_AGENT_PUBLIC_KEY", "   ")
    assert config.from_dict({"agent": {"public_key": "inline"}}).agent.public_key == "inline"
    blank = config.from_dict({"agent": {"public_key": "  ", "agent_id": "a"}})
    with pytest.raises(ConfigError, match=r"agent\.public_key: missing"):
        blank.agent.require_runnable()
    monkeypatch.setenv("EDGE_AGENT_PUBLIC_KEY", config.EXAMPLE_PUBLIC_KEY)
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b"\xef\xbb\xbf" + toml_dump({"device": {"state_dir": str(tmp_path), "id": "k1"}, "agent": {"agent_id": "a"}}).encode())
    assert config.load(cfg).device.id == "k1"
    assert main(["run", "-c", str(cfg)]) == EX_CONFIG
    assert "the installer's placeholder" in capsys.readouterr().err


def test_a_wrong_type_is_shown_as_the_config_wrote_it() -> None:
    """`preroll_ms = true` said "got True", Python's spelling (a newcomer's)."""
    cases = (
        ({"vad": {"preroll_ms": True}}, "must be a whole number, got true"),
        ({"agent": {"ping_interval_s": False}}, "must be a number, got false"),
        ({"device": {"id": True}}, "must be a string, got true"),
    )
    for data, says in cases:
        with pytest.raises(ConfigError) as err:
            config.from_dict(data)
        assert str(err.value).endswith(says), str(err.value)


def test_unknown_section_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml_dump({"future_feature": {"x": 1}, "device": {"id": "k1"}}))
    s = config.load(path)
    assert s.device.id == "k1"
    assert "future_feature" in caplog.text


def test_a_typo_names_the_key_it_resembles(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A newcomer's typo: the error (or, for a section, the warning) says which name was meant."""
    with pytest.raises(ConfigError, match=r"vad\.agressiveness: unknown key \(did you mean aggressiveness\?\)"):
        config.from_dict({"vad": {"agressiveness": 2}})
    with pytest.raises(ConfigError, match=r"^device\.colour: unknown key$"):  # nothing like it: no guess
        config.from_dict({"device": {"colour": "red"}})
    path = tmp_path / "c.toml"
    path.write_text('[agents]\nagent_id = "a"\n')
    config.load(path)
    assert "ignoring section [agents]" in caplog.text and "did you mean [agent]?" in caplog.text
    caplog.clear()  # and when another key is wrong too, the section's line still comes first
    path.write_text('[vda]\naggressiveness = 3\n[device]\ncolour = "red"\n')
    with pytest.raises(ConfigError, match=r"device\.colour"):
        config.load(path)
    assert "did you mean [vad]?" in caplog.text


BAD = [
    ({"device": {"id": "bad/id"}}, "device.id"),
    ({"device": {"state_dir": ""}}, "device.state_dir"),  # the store went into the working directory
    ({"mqtt": {"enabled": True, "host": " "}}, "mqtt.host"),  # paho refused it: exit 70
    ({"device": {"colour": "red"}}, "device.colour"),
    ({"agent": {"endpoint": "http://x"}}, "agent.endpoint"),
    ({"agent": {"agent_id": 5}}, "agent.agent_id"),
    ({"agent": {"public_key_file": "/nonexistent/key"}}, "agent.public_key_file"),
    ({"agent": {"include_metadata_in_prompt": "yes"}}, "agent.include_metadata_in_prompt"),
    ({"agent": {"metadata": "x"}}, "agent.metadata"),
    ({"agent": {"config": 3}}, "agent.config"),
    ({"agent": {"metadata": {"since": datetime.date(2024, 1, 1)}}}, "agent.metadata.since"),
    ({"agent": {"config": {"voice": {"speed": float("nan")}}}}, "agent.config.voice.speed"),
    ({"agent": {"config": {"times": [1, datetime.time(9, 30)]}}}, "agent.config.times[1]"),
    ({"agent": {"dead_after_s": 0}}, "agent.dead_after_s"),
    ({"session": {"resume": 1}}, "session.resume"),
    ({"session": {"resume_within_s": -1}}, "session.resume_within_s"),
    ({"session": {"idle_timeout_s": "30"}}, "session.idle_timeout_s"),
    ({"session": {"max_duration_s": 1}}, "session.max_duration_s"),
    ({"session": {"reconnect_window_s": True}}, "session.reconnect_window_s"),
    ({"audio": {"frame_ms": 25}}, "audio.frame_ms"),
    ({"audio": {"capture_period_ms": 50}}, "audio.capture_period_ms"),
    ({"audio": {"frame_ms": 20, "capture_period_ms": 90}}, "audio.capture_period_ms"),
    ({"audio": {"capture_period_ms": 20}}, "audio.capture_period_ms"),
    ({"audio": {"capture_period_ms": 240}}, "audio.capture_period_ms"),
    ({"audio": {"capture_block_ms": 15}}, "audio.capture_block_ms"),
    ({"audio": {"capture_block_ms": 90}}, "audio.capture_block_ms"),  # longer than the 60 ms period
    ({"audio": {"capture_block_ms": -10}}, "audio.capture_block_ms"),
    ({"audio": {"duplex": "both"}}, "audio.duplex"),
    ({"audio": {"input": 3}}, "audio.input"),
    ({"audio": {"input": ""}}, "audio.input"),  # run retried "no input device matches ''" every 5 s
    ({"audio": {"input": "file:"}}, "audio.input"),  # "cannot read : No such file or directory"
    ({"audio": {"output": "file: "}}, "audio.output"),
    ({"mqtt": {"topic_prefix": "$SYS/edge-agent"}}, "mqtt.topic_prefix"),  # the broker drops every publish there
    ({"audio": {"earcon_volume": 2.0}}, "audio.earcon_volume"),
    ({"vad": {"aggressiveness": 4}}, "vad.aggressiveness"),
    ({"vad": {"preroll_ms": -5}}, "vad.preroll_ms"),
    ({"vad": {"hangover_ms": 1.5}}, "vad.hangover_ms"),
    ({"vad": {"engine": "magic"}}, "vad.engine"),
    ({"button": {"source": "foot-pedal"}}, "button.source"),
    ({"button": {"pin": 99}}, "button.pin"),
    ({"button": {"pull_up": "true"}}, "button.pull_up"),
    ({"button": {"bounce_s": 5}}, "button.bounce_s"),
    ({"button": {"hold_s": 0}}, "button.hold_s"),
    ({"button": {"mode": "latch"}}, "button.mode"),
    ({"led": {"pin": "27"}}, "led.pin"),
    ({"log": {"level": "loud"}}, "log.level"),
    ({"mqtt": {"port": 0}}, "mqtt.port"),
    ({"mqtt": {"qos": 3}}, "mqtt.qos"),
    ({"mqtt": {"topic_prefix": "a/#"}}, "mqtt.topic_prefix"),
    ({"mqtt": {"topic_prefix": "a\x00b"}}, "mqtt.topic_prefix"),
    ({"mqtt": {"discovery_prefix": "ha/#"}}, "mqtt.discovery_prefix"),
    ({"mqtt": {"discovery_prefix": "/"}}, "mqtt.discovery_prefix"),
    ({"mqtt": {"keepalive_s": 1}}, "mqtt.keepalive_s"),
    ({"mqtt": {"enabled": True, "password_file": "/nonexistent"}}, "mqtt.password_file"),
    # the broker refused the will topic (never connected) or dropped the kiosk at every publish
    ({"mqtt": {"topic_prefix": "edge\tagent"}}, "mqtt.topic_prefix"),
    ({"mqtt": {"discovery_prefix": "home\u202eassistant"}}, "mqtt.discovery_prefix"),
    ({"mqtt": {"client_id": "kiosk\n7"}}, "mqtt.client_id"),
    # over 65 535 bytes paho's network thread died (struct.error): MQTT dead until a restart
    ({"mqtt": {"topic_prefix": "t" * 70_000}}, "mqtt.topic_prefix"),
    ({"mqtt": {"client_id": "c" * 70_000}}, "mqtt.client_id"),
    # os.stat's "embedded null byte" was an unexpected error, exit 70, restarted by systemd
    ({"device": {"state_dir": "/var/lib/edge\u0000agent"}}, "device.state_dir"),
]


@pytest.mark.parametrize(("data", "key"), BAD, ids=[k for _, k in BAD])
def test_bad_value_exits_78_with_one_line_naming_the_key(tmp_path: Path, data: dict, key: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml_dump(data))
    assert main(["run", "-c", str(cfg)]) == EX_CONFIG
    err = capsys.readouterr().err.strip().splitlines()  # this key first; a missing agent key and id may follow
    assert key in err[0] and all(line.startswith("edge-agent: config error: ") for line in err), err


def test_every_bad_section_is_named_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Three sections wrong: `run` and `doctor` named only the first, and an installer met the
    next one at each try. Now one line each (the first bad key of each section), exit 78."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml_dump({"audio": {"frame_ms": 25}, "mqtt": {"port": 70000}, "session": {"idle_timeout_s": "soon"}, "led": {"pin": 17}}))
    with pytest.raises(ConfigError) as caught:
        config.load(cfg)
    assert [e.key for e in caught.value.all()] == ["session.idle_timeout_s", "audio.frame_ms", "mqtt.port"]  # in the sections' order
    assert main(["run", "-c", str(cfg)]) == EX_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("edge-agent: config error: ") for line in err), err
    assert main(["doctor", "-c", str(cfg)]) == EX_CONFIG
    fails = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert [f.split()[2] for f in fails] == ["session.idle_timeout_s:", "audio.frame_ms:", "mqtt.port:"], fails


def test_every_bad_key_of_a_section_is_named_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Three keys wrong in [audio] and a typo'd one beside them: only the first was named, and an
    installer met the next at each try. Each key whose value alone is wrong is named now (the
    section read on with that key's default to find the next), in the order the section reads
    them, the unknown key last; a problem between keys still ends that section's read."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml_dump({"audio": {"frame_ms": 25, "duplex": "both", "echo_delay_ms": "soon", "earcon": True}, "mqtt": {"port": 70000}}))
    with pytest.raises(ConfigError) as caught:
        config.load(cfg)
    keys = [e.key for e in caught.value.all()]
    assert keys[:3] == ["audio.frame_ms", "audio.duplex", "audio.echo_delay_ms"] and keys[3:] == ["audio.earcon", "mqtt.port"], keys
    assert "did you mean earcons?" in str(caught.value.all()[3])
    assert main(["doctor", "-c", str(cfg)]) == EX_CONFIG
    fails = [line.split()[2] for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert fails == [f"{k}:" for k in keys], fails


def test_the_example_config_names_its_key_and_its_agent_id_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The example config failed on the missing key and, once the key was set, on the placeholder
    agent id: two tries before the doctor reached anything else. A typo'd section ([leds]) beside
    an error was shown only once the error was fixed: its WARN line comes with the FAILs now."""
    monkeypatch.delenv("EDGE_AGENT_PUBLIC_KEY", raising=False)
    example = (REPO / "config" / "edge-agent.toml").read_text()
    cfg = tmp_path / "example.toml"
    cfg.write_text(example.replace("[led]", "[leds]", 1) if "[led]" in example else example + "\n[leds]\npin = 5\n")
    assert main(["doctor", "-c", str(cfg)]) == EX_CONFIG
    out = capsys.readouterr().out.splitlines()
    fails = [line.split()[2] for line in out if line.startswith("FAIL")]
    assert fails == ["agent.public_key:", "agent.agent_id:"], out
    assert any(line.startswith("WARN") and "[leds]" in line for line in out), out


def test_section_that_is_not_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('audio = "loud"\n')
    assert main(["run", "-c", str(cfg)]) == EX_CONFIG
    assert "audio" in capsys.readouterr().err


def test_toml_nested_too_deeply_is_a_config_error_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tomllib parses nested arrays recursively: a few thousand deep was a RecursionError, exit 70
    (an unexpected error, which systemd restarts every 3 s) instead of 78."""
    cfg = tmp_path / "deep.toml"
    cfg.write_text('[agent]\nmetadata = { a = ' + "[" * 5000 + "]" * 5000 + " }\n")
    assert main(["run", "-c", str(cfg)]) == EX_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nested too deeply" in err[0], err


def test_not_toml_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[audio\nframe_ms = ")
    assert main(["run", "-c", str(cfg)]) == EX_CONFIG
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["run", "-c", str(tmp_path / "missing.toml")]) == EX_CONFIG
    assert "cannot read config file" in capsys.readouterr().err


def test_a_password_file_beside_mqtt_turned_off_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MQTT turned off (`enabled = false`, say to rule the broker out) with the kiosk's
    password_file line left in: the file is not read, so a missing one does not stop the kiosk
    (it did: exit 78, and systemd does not restart on it). Turned on, it is read again."""
    monkeypatch.setenv("EDGE_AGENT_PUBLIC_KEY", "k")
    mqtt = {"enabled": False, "password_file": str(tmp_path / "gone")}
    settings = config.from_dict({"device": {"state_dir": str(tmp_path / "state")}, "agent": {"agent_id": "a"}, "mqtt": mqtt})
    assert config.validate_for_run(settings).mqtt.password is None
    with pytest.raises(ConfigError, match=r"mqtt\.password_file"):
        config.validate_for_run(config.from_dict({"device": {"state_dir": str(tmp_path / "state")}, "agent": {"agent_id": "a"}, "mqtt": {**mqtt, "enabled": True}}))


def test_a_config_path_that_is_no_regular_file_is_one_line_not_a_hang(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A FIFO at the config path (a mistyped path, a config meant to be piped in) blocked run,
    doctor and gate at open, saying nothing; a huge file is not a kiosk's config either."""
    import os
    import signal

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("blocked opening the FIFO")

    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # fail, not hang, where the open blocks
    try:
        assert main(["run", "-c", str(fifo)]) == EX_CONFIG
    finally:
        signal.alarm(0)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a regular file" in err[0] and str(fifo) in err[0], err
    assert main(["doctor", "-c", str(fifo)]) == EX_CONFIG
    assert capsys.readouterr().out.startswith(f"FAIL  config: {fifo}: cannot read config file: not a regular file")
    assert main(["gate", "-c", str(fifo), str(REPO / "tests" / "data" / "kiosk_dev_quiet.wav")]) == EX_CONFIG
    assert "not a regular file" in capsys.readouterr().err
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"# " + b"x" * config.CONFIG_MAX_BYTES + b"\n")
    assert main(["run", "-c", str(huge)]) == EX_CONFIG
    assert "larger than 1 MiB" in capsys.readouterr().err


def test_missing_key_for_running(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_AGENT_PUBLIC_KEY", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(tmp_path)}, "agent": {"agent_id": "a"}}))
    assert main(["run", "-c", str(cfg)]) == EX_CONFIG
    assert "agent.public_key" in capsys.readouterr().err


PIN_CLASHES = [
    ("[led]\npin = 17\n", "led.pin: GPIO 17 is already button.pin"),  # the default button.pin
    ("[led]\npin = 27\n[[buttons]]\npin = 27\n", "led.pin: GPIO 27 is already buttons[0].pin"),
    ("[led]\nred = 22\ngreen = 22\nblue = 24\n", "led.green: GPIO 22 is already led.red"),
    ("[button]\nsource = 'none'\n[[buttons]]\npin = 5\n[led]\nred = 22\ngreen = 23\nblue = 5\n", "led.blue: GPIO 5 is already buttons[0].pin"),
    ("[[buttons]]\npin = 17\n", "buttons[0].pin: GPIO 17 is already button.pin"),
    ("[[buttons]]\npin = 5\n[[buttons]]\npin = 5\n", "buttons[1].pin: GPIO 5 is already buttons[0].pin"),
]


@pytest.mark.parametrize(("text", "says"), PIN_CLASHES, ids=[says.split(":")[0] for _, says in PIN_CLASHES])
def test_a_gpio_pin_used_twice_is_a_config_error_naming_both_keys(tmp_path: Path, text: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Two keys on one pin passed validation and the doctor; `run` then failed at gpiozero (exit
    1: a restart loop under systemd) naming button.pin whichever keys clashed."""
    cfg = tmp_path / "pins.toml"
    cfg.write_text(text)
    assert main(["run", "-c", str(cfg)]) == EX_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"edge-agent: config error: {says}"], err
    assert main(["doctor", "-c", str(cfg)]) == EX_CONFIG
    assert capsys.readouterr().out.startswith(f"FAIL  config: {says}")


def test_only_pins_that_are_opened_can_clash() -> None:
    """A keyboard button opens no pin; an RGB LED opens red, green and blue and not `pin`."""
    s = config.from_dict({"button": {"source": "keyboard"}, "led": {"pin": 17}})
    assert s.led.used_pins() == [("led.pin", 17)]
    s = config.from_dict({"button": {"source": "keyboard"}, "led": {"red": 17, "green": 23, "blue": 24}})
    assert s.led.used_pins() == [("led.red", 17), ("led.green", 23), ("led.blue", 24)]


@pytest.mark.parametrize(("led", "says"), [
    ({"red": 17, "green": 18}, "led.blue: missing: an RGB LED needs red, green and blue (only red, green set)"),
    ({"pin": 27, "blue": 24}, "led.red: missing: an RGB LED needs red, green and blue (only blue set)"),
    ({"pin": 22, "red": 25, "green": 23, "blue": 24}, "led.pin: GPIO 22 set beside red, green and blue"),  # its LED stayed dark
])
def test_an_rgb_led_missing_a_colour_is_a_config_error(tmp_path: Path, led: dict[str, int], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    """It opened no pin at all (not even `pin`) and said nothing: a kiosk with no LED, found
    by a visitor who cannot tell whether it listens."""
    with pytest.raises(ConfigError) as e:
        config.from_dict({"led": led})
    assert str(e.value).startswith(says)
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(tmp_path / "state")}, "led": led}))
    assert main(["doctor", "-c", str(cfg)]) == EX_CONFIG
    assert capsys.readouterr().out.startswith(f"FAIL  config: {says}")


@pytest.mark.parametrize("endpoint", ["wss://", "wss://host:99999/millis", "wss://host:0/millis", "wss://host:port/millis", "wss://:443/millis", "wss://[::1/millis"])
def test_an_endpoint_without_a_host_or_with_an_impossible_port_exits_78(tmp_path: Path, endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the scheme was checked: `run` reported ready and failed at the first press, and
    `gate -c` and the doctor's config line passed."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(tmp_path / "state")}, "agent": {"endpoint": endpoint, "agent_id": "a", "public_key": "k"}}))
    for command in (["run"], ["doctor"], ["gate", str(REPO / "tests" / "data" / "kiosk_dev_quiet.wav")]):
        assert main([*command, "-c", str(cfg)]) == EX_CONFIG, command
        said = capsys.readouterr()
        line = said.err.strip() or said.out.splitlines()[0]  # the doctor's FAIL line (the next names the file)
        assert "agent.endpoint: " in line and repr(endpoint) in line and "\n" not in line, (command, line)


def test_good_endpoints_pass() -> None:
    for endpoint in ("wss://api-west.millis.ai:8080/millis", "ws://127.0.0.1:8765", "wss://[::1]:443/m", "wss://host/millis"):
        assert config.from_dict({"agent": {"endpoint": endpoint}}).agent.endpoint == endpoint


def test_a_reload_keeps_what_was_opened_at_start_and_names_it() -> None:
    """A reload that took `button.mode = "hold"` made the conversation wait for push-to-talk
    holds from a button that, opened at start, still sent presses: the mic never opened."""
    from edge_agent.service.assembly import reloadable, timing_from

    running = config.from_dict({"button": {"mode": "toggle"}})
    new = config.from_dict({"button": {"mode": "hold"}, "session": {"idle_timeout_s": 5.0}, "audio": {"duplex": "full"}})
    kept, waiting = reloadable(running, new)
    assert waiting == ["audio", "button"]
    assert kept.button.mode == "toggle" and kept.audio.duplex == "half" and kept.session.idle_timeout_s == 5.0
    assert not timing_from(kept).push_to_talk and timing_from(kept).duplex_half
    shared = config.from_dict({"mqtt": {"enabled": True}, "session": {"share": True}})
    kept, waiting = reloadable(config.from_dict({"mqtt": {"enabled": True}}), shared)
    assert waiting == ["session.share"] and not kept.session.share


# ----------------------------------------------------------------------------- every bad key at once: a helper's attacks
def _problems(toml: str, tmp_path: Path) -> list[str]:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        config.load(cfg, warn=False)
    return [str(e) for e in caught.value.all()]


@pytest.mark.parametrize(
    "toml",
    [
        # frame_ms mistyped as a string: with the default 30 in its place, capture_period_ms = 20
        # (right for 20 ms frames) was called out of range "between 30 and 120"
        '[audio]\nframe_ms = "20"\ncapture_period_ms = 20\n',
        '[audio]\nframe_ms = 25\ncapture_period_ms = 20\n',
        # capture_period_ms mistyped: with the default 60, capture_block_ms = 90 (right for 120)
        # was called out of range "between 0 and 60"
        '[audio]\ncapture_period_ms = "120"\ncapture_block_ms = 90\n',
    ],
)
def test_a_key_is_not_called_out_of_range_by_another_keys_default(toml: str, tmp_path: Path) -> None:
    found = _problems(toml, tmp_path)
    assert len(found) == 1, found


def test_a_quoted_key_with_a_dot_is_named_once_and_deletes_no_good_key(tmp_path: Path) -> None:
    """`"frame_ms.x" = 1` (an unknown key) made the read delete frame_ms, a good key: a false
    capture_period_ms line, then the unknown key named twice."""
    found = _problems('[audio]\n"frame_ms.x" = 1\nframe_ms = 10\ncapture_period_ms = 20\n', tmp_path)
    assert len(found) == len(set(found)), found
    assert not any(p.startswith("audio.capture_period_ms") for p in found), found


def test_thousands_of_unknown_keys_are_read_in_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """5000 unknown keys (CONFIG_MAX_BYTES allows some 100 000): the section was read once per
    key, each read sorting every key left: quadratic (20 000 took 45 s), minutes for `run`,
    `doctor`, and a SIGHUP reload on the event loop (WatchdogSec=15 kills the kiosk). Now one
    read of the section names them all."""
    reads = []
    real_init = tomlsection.Section.__init__

    def counting_init(self: tomlsection.Section, name: str, table: object) -> None:
        reads.append(name)
        real_init(self, name, table)

    monkeypatch.setattr(tomlsection.Section, "__init__", counting_init)
    found = _problems("[log]\n" + "".join(f"unknown_key_{i} = 1\n" for i in range(5000)), tmp_path)
    assert len(found) == 5000 and reads.count("log") == 1, (len(found), reads.count("log"))


@pytest.mark.parametrize(
    "toml",
    [
        "[agent.metadata]\n" + "a." * 5000 + "b = 1\n",
        "[agent.metadata." + ".".join(["a"] * 5000) + "]\nb = 1\n",
    ],
)
def test_metadata_nested_deeply_is_a_config_error_not_a_crash(toml: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Dotted keys nest a table without tomllib recursing: _check_json recursed and raised
    RecursionError, `run` exited 70 (a traceback, restarted by systemd)."""
    cfg = tmp_path / "deep.toml"
    cfg.write_text(toml)
    assert main(["run", "-c", str(cfg)]) == EX_CONFIG
    assert "agent.metadata" in capsys.readouterr().err


def test_a_wildcard_in_a_topic_prefix_is_named_beside_a_bad_port(tmp_path: Path) -> None:
    """A topic prefix with # is wrong whatever else [mqtt] sets, but a plain ConfigError: after
    a bad port it was not named, and the installer met it at the next try."""
    found = _problems('[mqtt]\nport = 0\ndiscovery_prefix = "ha/#"\n', tmp_path)
    assert [p.split(":")[0] for p in found] == ["mqtt.port", "mqtt.discovery_prefix"], found


def test_every_bad_buttons_entry_is_named(tmp_path: Path) -> None:
    """[[buttons]] is read outside read_section: its first bad key only."""
    found = _problems('[[buttons]]\npin = 99\nslot = 5\n[[buttons]]\npin = "x"\n', tmp_path)
    assert [p.split(":")[0] for p in found] == ["buttons[0].slot", "buttons[0].pin", "buttons[1].pin"], found


def test_every_bad_value_of_agent_metadata_is_named(tmp_path: Path) -> None:
    found = _problems("[agent.metadata]\na = nan\nb = inf\n", tmp_path)
    assert [p.split(":")[0] for p in found] == ["agent.metadata.a", "agent.metadata.b"], found


def test_a_section_that_is_no_table_is_one_config_error(tmp_path: Path) -> None:
    """Held on the current code; guards the fix above (a lookup in a non-table section)."""
    assert _problems("agent = 5\n", tmp_path) == ["agent: must be a table ([agent]), got int"]


def test_a_speaker_file_that_is_the_microphones_recording_is_refused_also_through_a_link(tmp_path: Path) -> None:
    """`audio.output = "file:X"` naming the file `audio.input` reads, by its path or through a
    link (or a hard link), would have the kiosk write over the recording it plays. Another file, or one not there
    yet, or a link looping on itself (Python 3.11's `Path.resolve` raised for it), is no such file."""
    recording = tmp_path / "mic.wav"
    recording.write_bytes(b"RIFF")
    (tmp_path / "link.wav").symlink_to(recording)
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    (tmp_path / "hard.wav").hardlink_to(recording)
    for sink in (recording, tmp_path / "link.wav", tmp_path / "." / "mic.wav", tmp_path / "hard.wav"):
        with pytest.raises(ConfigError, match=r"names the file audio\.input reads"):
            config.from_dict({"audio": {"input": f"file:{recording}", "output": f"file:{sink}"}})
    for sink in (tmp_path / "out.wav", tmp_path / "loop.wav"):
        assert config.from_dict({"audio": {"input": f"file:{recording}", "output": f"file:{sink}"}}).audio.output == f"file:{sink}"
