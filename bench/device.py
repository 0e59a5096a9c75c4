"""Benchmarks on clocked audio devices (a throw-away PulseAudio, see devtools/pulse.py): barge-in
as the visitor hears it, and the daemon's memory with its whole stack loaded.

`barge_in`: from the moment `clear` arrives at the kiosk's socket until the last agent sample
leaves the output device (PortAudio's DAC time on the ALSA `pulse` device, whose buffer is
real), so the device buffer is inside the figure. `full_stack`: `edge-agent run` with PyAudio
on the `pulse` device (microphone: a visitor played into the `room` sink), MQTT on and publishing
metrics to a real mosquitto every 2 s, gpiozero's mock pin factory for the button and LED, during
a conversation with replies; its peak RSS beside a bare Python importing the same libraries, and
beside one that also initialises PortAudio (whose ALSA device scan loads ALSA's plugins).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from steps import pct, wait_until

from edge_agent.audio.devices import write_wav_16k_mono
from edge_agent.core import conversation as c
from edge_agent.devtools.mosquitto import Mosquitto
from edge_agent.devtools.pulse import PulseServer
from edge_agent.devtools.simulator import SimulatorThread

IMPORTS = "asyncio, sqlite3, ssl, zlib, json, numpy, webrtcvad, websockets.asyncio.client, paho.mqtt.client, gpiozero, gpiozero.pins.mock, pyaudio, psutil"
"""What the daemon loads from outside the package (the floor imports these and nothing else)."""




def bench_barge_in(tmp: Path, pulse: PulseServer, clears: int, echo_cancel: bool = False) -> dict[str, Any]:
    """The microphone is silent: a visitor's speech would make the simulator answer on its own,
    and that reply's audio, arriving after a `clear`, would be timed as if the clear had not
    stopped the speaker (the ~270 ms p95 of the first runs). Each clear interrupts the one
    reply `say` queued, and nothing else plays."""
    from conftest import KioskThread, kiosk_settings

    from edge_agent.audio.pyaudio_io import PyAudioSink

    tmp.mkdir(parents=True, exist_ok=True)
    os.environ.update(pulse.env)  # PortAudio (in this process) finds the pulse device through ALSA
    runner = SimulatorThread()
    heard: list[float] = []
    handed: list[float] = []
    with runner as sim, KioskThread(kiosk_settings(tmp, sim.url, bytes(32000 * 20), audio={"earcons": False, "duplex": "full", "output": "pulse", "echo_cancel": echo_cancel})) as k:
        sink = k.kiosk.sink
        assert isinstance(sink, PyAudioSink)
        k.press()
        wait_until(lambda: k.state == c.LISTENING, 10)
        wait_until(lambda: sink.callbacks > 100, 20)  # the pulse stream runs (its start can stall a while)
        loop = runner.loop
        for _ in range(clears):
            asyncio.run_coroutine_threadsafe(sim.say(bytes(range(256)) * 125 * 8), loop).result(5)  # 1 s of audio
            wait_until(lambda: k.kiosk.sink.buffer.queued_bytes > 16000, 5)
            time.sleep(0.1)  # the speaker is playing
            before = sink.buffer.cleared_at
            sent_at = asyncio.run_coroutine_threadsafe(sim.control("clear"), loop).result(5)
            wait_until(lambda b=before: sink.buffer.cleared_at != b, 5)  # type: ignore[misc]
            time.sleep(0.2)  # whatever the device still held has played by now
            arrived = k.kiosk.stats.clear_arrived_at
            assert arrived is not None and sink.audio_leaves_at is not None and sink.buffer.cleared_at is not None, (arrived, sink.audio_leaves_at, sink.callbacks, sink.buffer.played_bytes, sink.callback_errors)
            heard.append((sink.audio_leaves_at - arrived) * 1000)
            handed.append((sink.buffer.cleared_at - sent_at) * 1000)
            time.sleep(0.1)
        turns = sum(s.turns for s in sim.sessions)
    assert turns == 0, f"the simulator answered {turns} times: its audio would be timed as the interrupted reply's"
    return {
        "p50": pct(heard, 50),
        "p95": pct(heard, 95),
        "clears": clears,
        "device": "ALSA pulse -> PulseAudio null sink (clocked), playback_buffer_ms 20",
        "handed_to_device_p50": pct(handed, 50),
        "handed_to_device_p95": pct(handed, 95),
    }


def _rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


def bench_full_stack(tmp: Path, pulse: PulseServer, visitor_pcm: bytes, seconds: float) -> dict[str, Any]:
    from conftest import toml_dump

    tmp.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(tmp).start()
    player = pulse.play_loop(write_wav_16k_mono(tmp / "visitor.wav", visitor_pcm))
    env = {**os.environ, **pulse.env, "EDGE_AGENT_PUBLIC_KEY": "k", "GPIOZERO_PIN_FACTORY": "mock"}
    try:
        with SimulatorThread() as sim:
            cfg = tmp / "full.toml"
            cfg.write_text(
                toml_dump(
                    {
                        "device": {"id": "bench", "state_dir": str(tmp / "state")},
                        "agent": {"endpoint": sim.url, "agent_id": "a"},
                        "session": {"idle_timeout_s": 600.0},
                        "audio": {"input": "pulse", "output": "pulse", "duplex": "full"},
                        "button": {"source": "gpio", "pin": 17},
                        "led": {"pin": 27},
                        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "metrics_interval_s": 2.0},
                        "log": {"level": "warning"},
                    }
                )
            )
            daemon = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(cfg)], stderr=subprocess.DEVNULL, env=env)
            floor = subprocess.Popen([sys.executable, "-c", f"import {IMPORTS}, time; time.sleep({seconds + 30})"], env=env)
            # the same, then PortAudio initialised: its ALSA device scan loads ALSA's plugins
            pa_floor = subprocess.Popen([sys.executable, "-c", f"import {IMPORTS}, time; pa = pyaudio.PyAudio(); time.sleep({seconds + 30})"], env=env, stderr=subprocess.DEVNULL)
            # and the same once the daemon has given back the plugins only the scan used (audio/alsascan.py)
            released = subprocess.Popen([sys.executable, "-c", f"import {IMPORTS}, time; from edge_agent.audio.alsascan import release_scan; pa = pyaudio.PyAudio(); release_scan(); time.sleep({seconds + 30})"], env=env, stderr=subprocess.DEVNULL)
            try:
                time.sleep(4)
                pub = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "edge-agent/bench/cmd", "-m", json.dumps({"action": "press"})], capture_output=True, timeout=10)
                assert pub.returncode == 0, pub.stderr
                wait_until(lambda: bool(sim.sessions), 15)
                peak = 0.0
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    peak = max(peak, _rss_mb(daemon.pid))
                    time.sleep(0.5)
                turns = sum(s.turns for s in sim.sessions)
                floor_mb, pa_floor_mb, released_mb = _rss_mb(floor.pid), _rss_mb(pa_floor.pid), _rss_mb(released.pid)
                cpu = psutil.Process(daemon.pid).cpu_times()
            finally:
                daemon.terminate()
                floor.kill()
                pa_floor.kill()
                released.kill()
                daemon.wait(10)
                floor.wait(5)
                pa_floor.wait(5)
                released.wait(5)
    finally:
        os.killpg(player.pid, signal.SIGKILL)
        player.wait(5)
        broker.kill()
    return {"rss_mb_full_stack": round(peak, 1), "rss_mb_imports_floor": round(floor_mb, 1), "rss_mb_portaudio_floor": round(pa_floor_mb, 1), "rss_mb_portaudio_released_floor": round(released_mb, 1), "agent_turns": turns, "seconds": seconds, "daemon_cpu_s": round(cpu.user + cpu.system, 1), "imports": IMPORTS}


@contextmanager
def pulse_server(root: Path) -> Iterator[PulseServer]:
    """A throw-away PulseAudio for the block, stopped at the end."""
    pulse = PulseServer(root).start()
    try:
        yield pulse
    finally:
        pulse.kill()


def bench_devices(tmp: Path, clears: int, seconds: float, visitor_pcm: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(barge_in_ms, full stack memory) on one throw-away PulseAudio."""
    with pulse_server(tmp / "pulse") as pulse:
        barge = bench_barge_in(tmp / "barge", pulse, clears)
        # the same with the canceller in the capture path (the speaker also feeds its ring)
        barge["echo_cancel"] = bench_barge_in(tmp / "barge-aec", pulse, clears, echo_cancel=True)
        return barge, bench_full_stack(tmp / "full", pulse, visitor_pcm, seconds)
