"""Shared fixtures: recordings, TOML configs, the agent simulator on loopback, a daemon process."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.audio.devices import FileSource, write_wav_16k_mono
from edge_agent.devtools.mosquitto import Mosquitto
from edge_agent.devtools.pulse import PulseServer
from edge_agent.devtools.simulator import AgentSimulator, SimulatorThread
from edge_agent.errors import EdgeAgentError

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent


def read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


def write_wav(path: Path, pcm: bytes) -> Path:
    return write_wav_16k_mono(path, pcm)


def labels(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"kiosk_dev_{name}.labels.json").read_text())


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (datetime.date, datetime.time)):  # TOML's local date, date-time and time
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def toml_dump(data: dict[str, dict[str, Any]]) -> str:
    """Enough TOML for test configs: sections of scalars, lists and inline tables."""
    lines = []
    for section, table in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A command run in-process (`cli.main`) sets up logging like a real process: basicConfig(force=True)
    puts a StreamHandler on the root logger writing to sys.stderr, which under `capsys` is that test's
    capture stream, closed when the test ends. Left there, every later kiosk thread's log line is a
    "--- Logging error --- ValueError: I/O operation on closed file" on stderr. Taken off again here,
    with the root level that basicConfig changed (pytest's own capture handlers are left alone)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if type(h) is logging.StreamHandler and h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    thread = SimulatorThread()
    with thread:
        yield thread


@pytest.fixture
def sim(sim_thread: SimulatorThread) -> AgentSimulator:
    return sim_thread.sim


def make_certs(root: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1, made with openssl."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=root)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edge-agent test CA", "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (root / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    return {n: root / n for n in ("ca.crt", "server.crt", "server.key")}


def interruptible(*args: str) -> list[str]:
    """`python -m edge_agent ARGS` as a command line whose SIGINT (Ctrl-C) works even when this
    test run ignores SIGINT: a run started in the background by a shell without job control (a
    script's `cmd &`, nohup) has it ignored, children inherit that across exec, and Python then
    raises no KeyboardInterrupt, so the command ran on. Its SIGINT is set back to Python's own."""
    code = "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); runpy.run_module('edge_agent', run_name='__main__', alter_sys=True)"
    return [sys.executable, "-c", code, *args]


def assert_leads_start_their_frames(events: list[tuple[str, bytes]]) -> None:
    """`events`: ("lead", pcm) and ("frame", pcm) in the order a microphone handed them over (or
    the daemon let them through). The parts of a frame that went ahead of it (`hurry`) are, put
    together, that frame's start as captured, each once: the daemon sends only the frame's rest
    after them (`CaptureFeed.frame`)."""
    ahead = b""
    for kind, pcm in events:
        if kind == "lead":
            ahead += pcm
        else:
            assert pcm.startswith(ahead), (len(ahead), len(pcm))
            ahead = b""


@contextlib.contextmanager
def mock_pins(pin_class: Any = None) -> Iterator[Any]:
    """gpiozero's own MockFactory as the pin factory (MockPWMPin pins unless told), reset after."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    factory = MockFactory(pin_class=pin_class or MockPWMPin)
    old = Device.pin_factory
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = old


def wait_for(pred: Any, timeout_s: float = 10.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def daemon_config(tmp_path: Path, endpoint: str, clip_s: float = 12.0, silent: bool = False, **sections: dict[str, Any]) -> Path:
    """A config for `edge-agent run` in a process: device `svc`, a clip of the quiet recording
    (or silence) as the microphone, no speaker, the keyboard as the button; `sections` add to it."""
    pcm = bytes(int(clip_s * 32000)) if silent else read_wav(DATA / "kiosk_dev_quiet.wav")[: int(clip_s * 32000)]
    clip = write_wav(tmp_path / "clip.wav", pcm)
    data: dict[str, dict[str, Any]] = {
        "device": {"id": "svc", "state_dir": str(tmp_path / "state")},
        "agent": {"endpoint": endpoint, "agent_id": "a"},
        "audio": {"input": f"file:{clip}", "output": "null"},
        "button": {"source": "keyboard"},
    }
    for name, extra in sections.items():
        data.setdefault(name, {}).update(extra)
    cfg = tmp_path / "config.toml"
    cfg.write_text(toml_dump(data))
    return cfg


class DaemonProcess:
    """`edge-agent run` as a real process with the keyboard button on its stdin."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        full_env = {**os.environ, "EDGE_AGENT_PUBLIC_KEY": "test-public-key", "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env.pop("JOURNAL_STREAM", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "--log-level", "debug", *args, "run", "-c", str(config_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
            cwd=REPO,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_log(self, pattern: str, timeout_s: float = 20.0, after: int = 0) -> re.Match[str]:
        rx = re.compile(pattern)

        def find() -> re.Match[str] | None:
            for line in self.lines[after:]:
                m = rx.search(line)
                if m:
                    return m
            return None

        try:
            return wait_for(find, timeout_s, f"log line /{pattern}/")  # type: ignore[no-any-return]
        except AssertionError:
            raise AssertionError(f"no /{pattern}/ in daemon log:\n{self.log[-4000:]}") from None

    def key(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def press(self) -> int:
        mark = len(self.lines)
        self.key("p")
        return mark

    def long_press(self) -> int:
        mark = len(self.lines)
        self.key("l")
        return mark

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(2)


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(5)


# ----------------------------------------------------------------------------- PulseAudio
@contextlib.contextmanager
def pulse_server(root: Path) -> Iterator[PulseServer]:
    """A started throw-away PulseAudio whose devices PortAudio in this process finds (through
    ALSA's `pulse` device) until it is killed and the environment put back."""
    server = PulseServer(root).start()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        server.kill()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------- MQTT


class Broker(Mosquitto):
    """A real mosquitto on a free loopback port. Where mosquitto is missing the test fails: it
    skipped, and a machine without mosquitto ran a green suite that never touched MQTT
    (script/bootstrap installs it)."""

    def __init__(self, root: Path, extra: str = "", port: int | None = None) -> None:
        try:
            super().__init__(root, extra, port)
        except EdgeAgentError as exc:
            pytest.fail(str(exc), pytrace=False)

    def start(self) -> Broker:
        super().start()
        return self

    @classmethod
    def with_password(cls, root: Path, username: str, password: str, extra: str = "") -> Broker:
        """A started broker that lets only `username` in, with `password`."""
        passwd = root / "passwd"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), username, password], check=True, capture_output=True)
        passwd.chmod(0o644)
        b = cls(root, extra=f"password_file {passwd}\n{extra}")
        b.conf.write_text(b.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
        return b.start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path).start()
    yield b
    b.kill()


_MARKERS = itertools.count()


class Observer:
    """A paho client that records every message it sees (thread-safe list)."""

    def __init__(self, port: int, topics: str = "#", **tls: Any) -> None:
        self.messages: list[tuple[str, bytes, bool, float]] = []
        self.topics = topics
        self.client_id = f"observer-{time.monotonic_ns()}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id)
        if tls.get("username"):
            self.client.username_pw_set(tls["username"], tls.get("password"))
        if tls.get("ca_file"):
            self.client.tls_set(ca_certs=tls["ca_file"])
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics, 1)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload), bool(m.retain), time.monotonic()))
        self.client.connect_async("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def find(self, topic: str, since: int = 0) -> list[bytes]:
        return [p for t, p, _, _ in self.messages[since:] if t == topic]

    def wait(self, topic: str, pred: Any = None, timeout_s: float = 20.0, since: int = 0) -> bytes:
        def hit() -> bytes | None:
            for p in self.find(topic, since):
                if pred is None or pred(p):
                    return p
            return None

        return wait_for(hit, timeout_s, f"a message on {topic}")  # type: ignore[no-any-return]

    def settle(self, timeout_s: float = 20.0) -> None:
        """Returns once every retained message of the subscription has arrived: a marker published
        after the subscription (non-retained, empty, under `_settle/`) comes after them, as the
        broker handles one client's packets in order. Instead of sleeping and hoping."""
        assert self.topics.endswith("#"), "settle needs a subscription ending in #"
        marker = f"{self.topics[:-1]}_settle/{self.client_id}/{next(_MARKERS)}"

        def seen() -> bool:
            if self.client.is_connected():
                self.client.publish(marker, b"", qos=1)
            return bool(self.find(marker))

        wait_for(seen, timeout_s, "the retained messages (a marker after them)")

    def received(self, since: int = 0) -> list[tuple[str, bytes, bool, float]]:
        """The messages, without settle()'s markers."""
        return [m for m in self.messages[since:] if "_settle/" not in m[0]]

    def json(self, topic: str, since: int = 0) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.find(topic, since)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# ----------------------------------------------------------------------------- in-process kiosk
class KioskThread:
    """A Kiosk running on its own event loop thread, driven from the test thread."""

    def __init__(self, settings: Any, wait_ready: bool = True, **kwargs: Any) -> None:
        from edge_agent.hardware.button import NoButton
        from edge_agent.service.daemon import Kiosk

        kwargs.setdefault("button", NoButton())
        self.kiosk = Kiosk(settings, **kwargs)
        self.wait_ready = wait_ready
        self.loop = asyncio.new_event_loop()
        self.result: int | None = None
        self.leftover_tasks: list[str] = []
        self._thread = threading.Thread(target=self._run, name="kiosk", daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.loop.run_until_complete(self.kiosk.run())
        finally:  # every task the kiosk started must be finished by now
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            self.leftover_tasks = [t.get_name() for t in pending]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.wait(pending, timeout=2))
            self.loop.close()

    def __enter__(self) -> KioskThread:
        self._thread.start()
        if self.wait_ready:
            wait_for(self.kiosk.ready.is_set, 20, "the kiosk to be ready")
        return self

    def send(self, event: Any) -> None:
        self.loop.call_soon_threadsafe(self.kiosk.dispatch, event)

    def on_loop(self, fn: Any, timeout_s: float = 5.0) -> Any:
        """Run fn() on the kiosk's loop and return its result: reads that must agree with each other."""
        import concurrent.futures

        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(fn())
            except BaseException as e:  # handed to the test thread
                done.set_exception(e)

        self.loop.call_soon_threadsafe(call)
        return done.result(timeout_s)

    def press(self, long: bool = False) -> None:
        from edge_agent.core.conversation import Press

        self.send(Press(long=long))

    @property
    def state(self) -> str:
        return self.kiosk.conversation.state  # type: ignore[no-any-return]

    def wait_state(self, state: str, timeout_s: float = 20.0) -> None:
        wait_for(lambda: self.state == state, timeout_s, f"state {state} (now {self.state})")

    def __exit__(self, *exc: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self.kiosk.stop)
        except RuntimeError:  # the kiosk ended by itself and its loop is closed
            pass
        self._thread.join(20)
        if exc[0] is None:  # a kiosk still running would go on logging into later tests
            assert not self._thread.is_alive(), "the kiosk did not stop within 20 s"
            assert self.leftover_tasks == [], f"tasks outlived the kiosk: {self.leftover_tasks}"


def kiosk_events(k: KioskThread) -> list[tuple[str, dict[str, Any]]]:
    """Every event the kiosk reports from now on, (kind, fields) in order, as MQTT would carry them."""
    seen: list[tuple[str, dict[str, Any]]] = []
    k.kiosk.reporter.event = lambda kind, fields: seen.append((kind, dict(fields)))  # type: ignore[method-assign]
    return seen


def watch_gate_openings(k: KioskThread, room: Any) -> list[float]:
    """From now on, the room's microphone time (s, `room.captured` samples at 16 kHz) of each time
    the kiosk's gate opens (its dispatch wrapped: a VisitorSpeech that became active)."""
    from edge_agent.core.conversation import VisitorSpeech

    opened: list[float] = []
    dispatch = k.kiosk.dispatch

    def watch(event: Any) -> None:
        if isinstance(event, VisitorSpeech) and event.active:
            opened.append(room.captured / 16000)
        dispatch(event)

    k.kiosk.dispatch = watch
    return opened


def kiosk_settings(tmp_path: Path, endpoint: str, clip: bytes | None = None, **sections: Any) -> Any:
    """Settings for an in-process kiosk: file mic (the clip, or silence), null speaker."""
    from edge_agent.core import config

    mic = write_wav(tmp_path / "mic.wav", clip if clip is not None else bytes(32000 * 2))
    data: dict[str, dict[str, Any]] = {
        "device": {"id": "test-kiosk", "state_dir": str(tmp_path / "state")},
        "agent": {"endpoint": endpoint, "agent_id": "agent-1", "public_key": "test-key"},
        "audio": {"input": f"file:{mic}", "output": "null"},
        "button": {"source": "none"},
    }
    for name, extra in sections.items():
        if isinstance(extra, list):  # an array of tables ([[buttons]])
            data[name] = extra  # type: ignore[assignment]
        else:
            data.setdefault(name, {}).update(extra)
    return config.from_dict(data)


# ----------------------------------------------------------------------------- the quick subset
SLOW_FILES = {"test_fuzz.py"}
"""Every test of these files is slow (hypothesis runs thousands of examples)."""
SLOW_TESTS = {
    # each took 2 s or more in a whole-suite run (2026-11-30, 2 shared cores, 7.5 min in all)
    "test_kill_9_at_random_points_never_loses_an_acknowledged_session",
    "test_slow_uplink_drops_oldest_audio_counted_and_memory_stays_flat",
    "test_fatal_refusals_go_to_error_without_a_retry_storm",
    "test_state_sequence_events_and_metrics_of_a_conversation",
    "test_press_resume_restart_long_press",
    "test_half_duplex_sends_silence_while_the_agent_speaks",
    "test_full_duplex_lets_the_visitor_barge_in_and_clear_stops_playback",
    "test_malformed_commands_get_an_error_and_change_nothing",
    "test_continuation_not_honoured_by_an_opt_out_agent",
    "test_broker_killed_and_restarted_mid_conversation",
    "test_gate_meets_the_targets",
    "test_server_dropping_idle_sockets_shortens_the_hold",
    "test_retryable_refusal_backs_off_with_a_cap",
    "test_capture_to_wire_is_the_wait_for_the_period_and_no_more",
    "test_microphone_missing_at_start_is_retried_until_it_appears",
    "test_fleet_json_snapshot",
    "test_watchdog_stops_when_capture_stalls_and_resumes_after",
    "test_doctor_passes_on_a_healthy_kiosk",
    "test_ready_after_setup_and_watchdog_pings",
    "test_sighup_reloads_config_when_idle_and_rejects_a_bad_one",
    "test_a_silent_dead_link_is_detected_and_replaced",
    "test_doctor_fails_with_hints_and_nonzero_exit",
    "test_gated_silence_is_compressed_on_the_wire_unless_turned_off",
    "test_other_frame_sizes",
    "test_username_password_and_tls",
    "test_every_command_and_its_result",
    "test_unused_standby_is_replaced_after_its_hold",
    "test_availability_state_discovery_and_last_will",
    "test_fleet_into_a_pipe_writes_no_screen_codes",
    "test_agent_audio_is_read_without_a_large_buffer_per_message",
    "test_past_the_window_it_ends_cleanly_and_the_next_press_continues",
    "test_refused_standby_backs_off_and_a_press_still_connects",
    "test_source_hands_over_a_capture_period_per_wake_up_with_honest_stamps",
    "test_gate_of_a_recording_larger_than_memory_is_one_line",
    "test_a_config_of_many_unknown_keys_is_reported_in_a_few_lines",
}
"""Slow tests of otherwise quick files, by name: `script/test --quick` (pytest -m "not slow")
leaves them out. A new test that takes seconds gets `@pytest.mark.slow` where it is written."""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The echo tests ran LiveKit's native runtime in this process: shut it down while Python is
    whole, or a log line on its way at interpreter exit aborts pytest after a green run."""
    from edge_agent.audio.nativeexit import shut_native_runtime

    shut_native_runtime()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = getattr(item, "originalname", item.name)
        if item.path.name in SLOW_FILES or name in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


class AlsaFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.infile = root / "mic.raw"
        self.outfile = root / "speaker.raw"

    def mic(self, pcm: bytes) -> None:
        self.infile.write_bytes(pcm)

    def played(self) -> bytes:
        return self.outfile.read_bytes() if self.outfile.exists() else b""


@pytest.fixture(scope="session")
def alsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlsaFiles]:
    """A HOME whose .asoundrc makes `default` capture from mic.raw and play into speaker.raw."""
    root = tmp_path_factory.mktemp("alsa-home")
    files = AlsaFiles(root)
    files.mic(b"")
    (root / ".asoundrc").write_text(
        f"""
pcm.!default {{ type asym capture.pcm "fakemic" playback.pcm "fakespk" }}
pcm.fakemic {{ type file slave.pcm "nullsrc" file "/dev/null" infile "{files.infile}" format "raw" }}
pcm.nullsrc {{ type null }}
pcm.fakespk {{ type file slave.pcm "null" file "{files.outfile}" format "raw" }}
"""
    )
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(root)
    yield files
    if old is not None:
        os.environ["HOME"] = old


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """A throw-away PulseAudio for a module's tests (`pulse_server`)."""
    with pulse_server(tmp_path_factory.mktemp("pulse")) as server:
        yield server


class LateMic(FileSource):
    """A file microphone that opens only once its file exists (a USB mic unplugged at start)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.frames_captured, self.overruns, self.last_frame_at, self.stalled = 0, 0, time.monotonic(), False

    def start(self, loop: Any, on_frame: Any) -> None:
        FileSource.__init__(self, self._path, 30)  # raises AudioError while the file is missing
        FileSource.start(self, loop, on_frame)

    def stop(self) -> None:
        if hasattr(self, "_timer"):
            FileSource.stop(self)
