"""`edge-agent doctor`: checks a kiosk's set-up, one PASS/FAIL line with a hint each.

Config valid (the same validation `run` makes, `config.validate_for_run`), and a WARN line for
each section it does not know (a typo leaves that section at its defaults); state dir writable by
the service user (its owner, when run as root), its database readable, and private, checked
without creating or changing a file there (service/statecheck.py); no secret or conversation exposed (WARN
lines, see core/exposure.py); with echo cancellation on, what the state dir keeps of the echo
canceller's grade of the room (service/roomgrade.py: a WARN line for a room it does not cope with,
or a file it cannot use); clock plausible (TLS needs it); audio input opens and a 3 s level
meter shows the microphone hears something; output opens; GPIO pins usable (the button's,
each `[[buttons]]` entry's, the LED's; one pin under two keys is a config error); a badge reader
(`[badge] device`) there, an input device this user may open, typing the terminator key; MQTT broker
reachable with the credentials; agent endpoint reachable with valid TLS and WebSocket upgrade.
WARN lines do not change the exit code.
Exit 0 when everything passes, 1 otherwise (78 when the config itself is invalid).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.core import config
from edge_agent.core.config_hardware import ButtonSettings
from edge_agent.core.exposure import exposure_warnings
from edge_agent.core.logs import setup_logging
from edge_agent.errors import EX_CONFIG, ConfigError, EdgeAgentError
from edge_agent.service.instance import held_by

PLAUSIBLE_SINCE = 1735689600  # 2025-01-01: a Pi without RTC that has not synced yet says 1970
HEARS_SOMETHING_DBFS = -70.0


SERVICE = "edge-agent.service"
NO_SOUND_CARD = 'no sound card (a laptop, CI): audio.input = "file:RECORDING.wav" and audio.output = "null"'


def service_running(unit: str = SERVICE) -> bool:
    """Whether systemd runs the kiosk's service now (False where there is no systemctl, or no
    systemd: in a container systemctl says so on stderr, which is not the doctor's to print)."""
    try:
        done = subprocess.run(["systemctl", "is-active", "--quiet", unit], timeout=5, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return done.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class Doctor:
    def __init__(self, settings: config.Settings, meter_s: float = 3.0, out: Callable[[str], None] = print, service_active: Callable[[], bool] = service_running) -> None:
        self.s = settings
        self.meter_s = meter_s
        self.out = out
        self.failed = 0
        self._service_active = service_active

    def check(self, name: str, fn: Callable[[], str]) -> None:
        try:
            detail = fn()
        except Exception as exc:  # every failure becomes a FAIL line with its hint
            self.failed += 1
            hint = getattr(exc, "hint", "")
            self.out(f"FAIL  {name}: {exc}" + (f"\n      hint: {hint}" if hint else ""))
            return
        self.out(f"PASS  {name}" + (f": {detail}" if detail else ""))

    def run(self) -> int:
        if self._service_active():
            # on a Pi's own sound card and GPIO pins one process at a time: the checks below would
            # fail on (or take over) what the running kiosk holds
            self.out(f"WARN  {SERVICE} is running: it holds the microphone, the speaker and the GPIO pins, so those checks may fail; `sudo systemctl stop edge-agent` first")
        elif (holder := held_by(self.s.device.state_dir)) is not None:  # one run by hand
            self.out(f"WARN  an edge-agent ({holder}) runs with {self.s.device.state_dir}: it holds the microphone, the speaker and the GPIO pins, so those checks may fail; stop it first")
        for ignored in self.s.ignored_sections:  # a typo'd section name leaves that section at its defaults
            self.out(f"WARN  config: {ignored}")
        self.check("state dir writable", self.state_dir)
        if os.geteuid() == 0 and (files := self.service_files()):  # root reads them all: judged for the service user
            self.check("service user reads its files", lambda: self.service_reads(files))
        for warning in exposure_warnings(self.s):
            self.out(f"WARN  exposure: {warning}")
        if self.s.audio.echo_cancel:
            self.echo_room()
        self.check("system clock plausible", self.clock)
        self.check("audio input", self.audio_input)
        self.check("audio output", self.audio_output)
        if self.s.button.source == "gpio":
            self.check(f"button on GPIO {self.s.button.pin}", lambda: self.button(self.s.button))
        for i, extra in enumerate(self.s.buttons):  # pull-up, debounce and hold time are [button]'s
            self.check(f"button buttons[{i}] on GPIO {extra.pin}", partial(self.button, replace(self.s.button, pin=extra.pin), f"buttons[{i}].pin"))
        if self.s.led.used_pins():
            self.check("status LED", self.led)
        if self.s.badge.device:
            self.check(f"badge reader {self.s.badge.device}", self.badge_reader)
        if self.s.mqtt.enabled:
            self.check(f"MQTT broker {self.s.mqtt.host}:{self.s.mqtt.port}", self.mqtt)
        self.check(f"agent endpoint {self.s.agent.endpoint}", self.agent)
        self.out("all checks passed" if not self.failed else f"{self.failed} check(s) failed")
        return 0 if not self.failed else 1

    # ------------------------------------------------------------------ checks
    def state_dir(self) -> str:
        from edge_agent.service.statecheck import check_state_dir

        d = self.s.device.state_dir
        detail = check_state_dir(d)  # creates nothing: a doctor as root must not lock the service out
        mode = d.stat().st_mode if d.is_dir() else 0
        if mode & 0o077:
            self.out(f"WARN  exposure: state dir {d} is open to other users (mode {mode & 0o777:o}): chmod 700 {d}")
        return detail

    def service_files(self) -> list[tuple[str, str]]:
        """(key, path) of every file `run` opens at start besides the audio: the config first
        (root read it, and one only root may read passed while the service's `run` exited 78)."""
        from edge_agent.service.statecheck import CONFIG_KEY

        a, b, m = self.s.agent, self.s.badge, self.s.mqtt
        named = [(CONFIG_KEY, str(self.s.source) if self.s.source else None)]
        named += [("agent.public_key_file", a.public_key_file), ("badge.secret_file", b.secret_file if b.device else None)]
        if m.enabled:
            named += [("mqtt.password_file", m.password_file), ("mqtt.ca_file", m.ca_file), ("mqtt.cert_file", m.cert_file), ("mqtt.key_file", m.key_file)]
        return [(key, path) for key, path in named if path]

    def service_reads(self, files: list[tuple[str, str]]) -> str:
        from edge_agent.service.statecheck import service_reads

        return service_reads(files) or "no service user on this machine to judge them for (read as root)"

    def echo_room(self) -> None:
        """The `echo room` line: what the state dir keeps of the echo canceller's grade of the room
        (PASS), or a WARN when it says the canceller does not cope or the file cannot be used.
        Reads only: the daemon's start decides what to do with the file."""
        from edge_agent.service.roomgrade import RoomGradeFile, grade_summary, hardware_of, poor_room_warning

        kept = RoomGradeFile(self.s.device.state_dir, hardware_of(self.s.audio))
        grades, problem = kept.read()
        warning = poor_room_warning(grades, kept.path)
        if problem:
            self.out(f"WARN  echo room: {problem}: the kiosk grades the room afresh at its next start")
        elif warning:
            self.out(f"WARN  echo room: {warning}")
        else:
            self.out(f"PASS  echo room: {grade_summary(grades)}")

    def clock(self) -> str:
        now = time.time()
        if now < PLAUSIBLE_SINCE:
            raise Hint(time.strftime("%Y-%m-%d", time.gmtime(now)), "TLS certificates will look invalid: wait for NTP (timedatectl) or add an RTC")
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))

    def audio_input(self) -> str:
        from edge_agent.audio.factory import open_source

        source = open_source(self.s.audio.input, self.s.audio.frame_ms, self.s.audio.capture_period_ms)
        frames: list[bytes] = []

        async def listen() -> None:
            source.start(asyncio.get_running_loop(), lambda frame, _at: frames.append(frame))
            await asyncio.sleep(self.meter_s)
            source.stop()

        try:
            asyncio.run(listen())
        except (EdgeAgentError, OSError) as exc:
            raise Hint(str(exc), f"see `edge-agent devices`; set audio.input to a device name or index ({NO_SOUND_CARD})") from None
        if not frames:
            raise Hint("opened, but no audio arrived", "the device may be in use by another program (try dsnoop, see hw/README.md)")
        pcm = np.frombuffer(b"".join(frames), dtype=np.int16).astype(np.float64)
        step = max(1, len(pcm) // 6)
        for i in range(0, len(pcm) - step + 1, step):
            # floored at one step of 16 bits (-90.3 dBFS): a muted mic's exact zeros read -270 dBFS
            rms = max(1.0, math.sqrt(float(np.mean(pcm[i : i + step] ** 2))))
            db = 20 * math.log10(rms / 32768)
            self.out(f"      level {db:6.1f} dBFS |" + "#" * max(0, int((db + 90) / 3)))
        peak_db = 20 * math.log10(max(1.0, float(np.abs(pcm).max())) / 32768)
        if peak_db < HEARS_SOMETHING_DBFS:
            raise Hint(f"only digital silence ({peak_db:.0f} dBFS peak)", "unmuted? `alsamixer -c N`, capture switch on, gain up; speak during the check")
        return f"{len(frames)} frames in {self.meter_s:g} s, peak {peak_db:.0f} dBFS"

    def audio_output(self) -> str:
        from edge_agent.audio.earcons import render
        from edge_agent.audio.factory import open_sink

        if self.s.audio.output.startswith("file:"):  # playing into it would write over it: the doctor writes no file
            return self._output_file(Path(self.s.audio.output[5:]))
        sink = open_sink(self.s.audio.output, self.s.audio.playback_buffer_ms)

        async def play() -> None:
            sink.start(asyncio.get_running_loop(), lambda: None)
            sink.buffer.write(render("ready", self.s.audio.earcon_volume))
            await asyncio.sleep(0.4)
            sink.stop()

        try:
            asyncio.run(play())
        except (EdgeAgentError, OSError) as exc:
            raise Hint(str(exc), f"see `edge-agent devices`; set audio.output to a device name or index ({NO_SOUND_CARD})") from None
        return f"{self.s.audio.output} (played the 'ready' earcon)"

    def _output_file(self, path: Path) -> str:
        """A `file:` speaker, checked without writing: the kiosk makes (or replaces) it when it
        runs. Played into, the doctor replaced a recording there with its earcon."""
        where = path if path.exists() else path.parent
        if path.is_dir():  # writable, but no file the kiosk can write its sound into
            raise Hint(f"{path}: a directory", f"set audio.output to a file in it, e.g. file:{path / 'speaker.wav'}")
        if not where.exists() or not os.access(where, os.W_OK):
            raise Hint(f"{path}: {'not writable' if where.exists() else 'its directory does not exist'}", "set audio.output to a file the service user may write")
        return f"file:{path} (writable; not played: the kiosk writes it when it runs)"

    def button(self, settings: ButtonSettings, key: str = "button.pin") -> str:
        """Opens one button's pin (the main one, or a `[[buttons]]` entry's: `key`) and lets it go."""
        from edge_agent.hardware.gpio import GpioButton

        b = GpioButton(settings, key=key)
        try:
            b.start(lambda ev: None, lambda: None)
        except ConfigError:  # a pin the board has not: the hint about groups and other programs misled
            raise
        except EdgeAgentError as exc:
            raise Hint(str(exc), "is the service user in group gpio? is another program using the pin?") from None
        b.close()
        return f"BCM {settings.pin}, pull-up {'on' if settings.pull_up else 'off'}: press it and watch `journalctl -u edge-agent`"

    def led(self) -> str:
        from edge_agent.hardware.gpio import StatusLed

        led = StatusLed(self.s.led)
        led.show("connecting")
        time.sleep(1.0)
        led.close()
        return "blinked for 1 s"

    def badge_reader(self) -> str:
        """Opens `[badge] device` as the kiosk does (not grabbed: a keyboard stays the console's)
        and reads its capabilities: a missing node, one this user may not open, or a device that
        cannot type the terminator is a FAIL, where the kiosk itself would only log a warning every
        2 s and never take a scan."""
        import stat

        path = Path(self.s.badge.device or "")
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise Hint(f"{path}: {exc.strerror}", "plugged in? `ls -l /dev/input/by-id/`: use the reader's ...-event-kbd path") from None
        if stat.S_ISFIFO(mode) or stat.S_ISREG(mode):
            return f"{'a FIFO' if stat.S_ISFIFO(mode) else 'a recording'} of key events (a test set-up, not a reader)"
        if not stat.S_ISCHR(mode):
            raise Hint(f"{path}: not a device", "set badge.device to the reader's /dev/input/by-id/...-event-kbd path")
        from evdev import InputDevice, ecodes

        from edge_agent.hardware.badge import TERMINATORS, shown_name

        try:
            device: Any = InputDevice(str(path))
        except PermissionError:
            raise Hint(f"{path}: permission denied", "the service's drop-in `DeviceAllow=char-input r`, `SupplementaryGroups=audio gpio input`; `sudo usermod -a -G input edge-agent`") from None
        except OSError as exc:
            raise Hint(f"{path}: not an input device ({exc.strerror})", "set badge.device to the reader's /dev/input/by-id/...-event-kbd path") from None
        try:
            name, keys = shown_name(device.name), set(device.capabilities().get(ecodes.EV_KEY, []))
        finally:
            device.close()
        if not keys & TERMINATORS[self.s.badge.terminator]:  # as the kiosk takes it: Enter or keypad Enter
            raise Hint(f"{name} cannot type {self.s.badge.terminator.title()}", "not a keyboard-style reader, or badge.terminator is wrong; try the reader's other event node")
        return f"{name}: scan a badge and watch `journalctl -u edge-agent`"

    def mqtt(self) -> str:
        from edge_agent.fleet.mqttclient import make_client

        m = self.s.mqtt
        client = make_client(m, f"edge-agent-doctor-{self.s.device.id}")
        result: dict[str, Any] = {}
        done = threading.Event()

        def on_connect(c: Any, u: Any, f: Any, reason: Any, p: Any) -> None:
            result["reason"] = reason
            done.set()

        client.on_connect = on_connect
        try:
            client.connect(m.host, m.port, keepalive=10)
        except OSError as exc:
            raise Hint(str(exc), "is the broker running and reachable (firewall, port, tls)?") from None
        client.loop_start()
        try:
            if not done.wait(5):
                raise Hint("no answer in 5 s", "wrong port, or TLS on one side only?")
            if result["reason"].is_failure:
                raise Hint(f"refused: {result['reason']}", "check mqtt.username / password_file and the broker's ACL")
        finally:
            client.loop_stop()
            client.disconnect()
        return f"connected{' with TLS' if m.tls else ''}{' as ' + m.username if m.username else ''}"

    def agent(self) -> str:
        from websockets.asyncio.client import connect

        from edge_agent.agent.health import classify

        ep = self.s.agent.endpoint

        async def probe() -> None:
            ssl_ctx = None
            if ep.startswith("wss://"):
                import ssl

                ssl_ctx = ssl.create_default_context()
            async with connect(ep, ssl=ssl_ctx, open_timeout=self.s.agent.connect_timeout_s, ping_interval=None, close_timeout=1):
                pass

        try:
            asyncio.run(probe())
        except Exception as exc:
            _, reason = classify(exc)
            raise Hint(reason, "check agent.endpoint, DNS and the clock; a proxy must allow WebSockets") from None
        return "WebSocket upgrade OK" + (" (TLS verified)" if ep.startswith("wss://") else "")


class Hint(EdgeAgentError):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def cmd_doctor(args: argparse.Namespace) -> int:
    checked = args.config or f"built-in defaults (no -c, and no {config.INSTALLED_CONFIG})"
    try:
        settings = config.load(args.config, warn=False)  # its own WARN lines say it
        settings = config.validate_for_run(settings)  # the same check `run` makes: doctor never passes what run refuses
    except ConfigError as exc:
        for problem in exc.shown():  # every bad section at once (past SHOWN_MAX counted), not one per try
            print(f"FAIL  config: {problem}")
        for ignored in exc.notes:  # a typo'd [leds] was shown only once the errors were fixed
            print(f"WARN  config: {ignored}")
        print(f"      checked: {checked}")
        return EX_CONFIG
    setup_logging(args.log_level or settings.log.level)
    print(f"PASS  config: {checked}")
    return Doctor(settings, meter_s=args.meter_s).run()

