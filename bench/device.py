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

import numpy as np
import psutil
from steps import pct, wait_until

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.alsascan import SCAN_HIDDEN
from edge_agent.audio.devices import write_wav_16k_mono
from edge_agent.core import conversation as c
from edge_agent.devtools.mosquitto import Mosquitto
from edge_agent.devtools.pulse import MonitorRecording, PulseServer
from edge_agent.devtools.simulator import SimulatorThread

IMPORTS = "asyncio, sqlite3, ssl, zlib, json, numpy, webrtcvad, websockets.asyncio.client, paho.mqtt.client, gpiozero, gpiozero.pins.mock, pyaudio, psutil"
"""What the daemon loads from outside the package (the floor imports these and nothing else)."""




AGENT_AUDIO = bytes(range(256)) * 125 * 8
"""8 s of agent audio: a full-scale 125 Hz sawtooth without a zero sample (loud on the monitor)."""
LOUD = 2000
"""A monitor sample above this is agent audio (the null sink's silence is digital zero, and the
resamplers' ringing after the sawtooth stops dies out far below it)."""


def heard_until(monitor: MonitorRecording, spans: list[tuple[float, float]]) -> list[float | None]:
    """For each span (time.monotonic() from, until), when the last loud sample in it was played,
    by the monitor's own clock (None: none there)."""
    pcm, first_at = monitor.samples()
    loud = np.abs(pcm.astype(np.int32)) > LOUD
    out: list[float | None] = []
    for t0, t1 in spans:
        lo = max(0, int((t0 - first_at) * SAMPLE_RATE_HZ))
        hi = min(len(pcm), int((t1 - first_at) * SAMPLE_RATE_HZ))
        idx = np.flatnonzero(loud[lo:hi])
        out.append(first_at + (lo + int(idx[-1]) + 1) / SAMPLE_RATE_HZ if len(idx) else None)
    return out


def bench_barge_in(tmp: Path, pulse: PulseServer, clears: int, echo_cancel: bool = False, drop_device: bool = True, monitor_on: bool = True) -> dict[str, Any]:
    """The microphone is silent: a visitor's speech would make the simulator answer on its own,
    and that reply's audio, arriving after a `clear`, would be timed as if the clear had not
    stopped the speaker (the ~270 ms p95 of the first runs). Each clear interrupts the one
    reply `say` queued, and nothing else plays.

    Two figures per clear: the kiosk's (its DAC-time bookkeeping, `audio_leaves_at`) and the
    monitor's (the sink's monitor recorded meanwhile: when the loud agent audio really ended,
    see MonitorRecording). `drop_device=False` is the speaker that only stops feeding the device
    (the behaviour before it dropped the device's buffer), measured on the same device.

    The recording is a second client of the null sink asking for 5 ms latency, which holds the
    sink's own latency there. `monitor_on=False` runs the kiosk alone on the sink (no cross-check):
    there a restarted stream can stall until the sink's render-ahead (up to 2 s) has played, and
    the speaker's pace check turns the drop off (`bad_restarts`, `dropping_at_end`)."""
    from conftest import KioskThread, kiosk_settings

    from edge_agent.audio.pyaudio_io import PyAudioSink

    tmp.mkdir(parents=True, exist_ok=True)
    os.environ.update(pulse.env)  # PortAudio (in this process) finds the pulse device through ALSA
    monitor = pulse.record_monitor() if monitor_on else None
    if monitor is not None:
        monitor.wait_started()
    runner = SimulatorThread()
    heard: list[float] = []
    dispatched: list[float] = []
    handed: list[float] = []
    arrivals: list[float] = []
    said: list[float] = []
    unplayed = 0
    never_heard = 0
    try:
        with runner as sim:
            settings = kiosk_settings(tmp, sim.url, bytes(32000 * 20), audio={"earcons": False, "duplex": "full", "output": "pulse", "echo_cancel": echo_cancel})
            sink = PyAudioSink("pulse", settings.audio.playback_buffer_ms, drop_device=drop_device)
            with KioskThread(settings, sink=sink) as k:
                k.press()
                wait_until(lambda: k.state == c.LISTENING, 10)
                wait_until(lambda: sink.callbacks > 100, 20)  # the pulse stream runs (its start can stall a while)
                loop = runner.loop
                for _ in range(clears):
                    said.append(time.monotonic())
                    sink.audio_leaves_at = None  # this reply's, not the one the last clear cut
                    played = sink.buffer.played_bytes
                    asyncio.run_coroutine_threadsafe(sim.say(AGENT_AUDIO), loop).result(5)
                    wait_until(lambda: k.kiosk.sink.buffer.queued_bytes > 16000, 5)
                    time.sleep(0.1)  # the speaker is playing
                    unplayed += sink.buffer.played_bytes == played  # ... or it is stalled
                    before = sink.buffer.cleared_at
                    sent_at = asyncio.run_coroutine_threadsafe(sim.control("clear"), loop).result(5)
                    wait_until(lambda b=before: sink.buffer.cleared_at != b, 5)  # type: ignore[misc]
                    time.sleep(0.2)  # whatever the device still held has played by now
                    arrived = k.kiosk.stats.clear_arrived_at
                    assert arrived is not None and sink.buffer.cleared_at is not None, (arrived, sink.callbacks, sink.buffer.played_bytes, sink.callback_errors)
                    # the clock starts when `clear` leaves the agent (loopback: it is in the
                    # kiosk's socket microseconds later); `clear_arrived_at` is stamped only once
                    # the link's loop has parsed and dispatched it, so a busy loop hid its wait
                    if sink.audio_leaves_at is None:  # a stalled stream: none of this reply left the device
                        never_heard += 1  # (nothing to time: the last reply's end is no figure of this one)
                    else:
                        heard.append((sink.audio_leaves_at - sent_at) * 1000)
                    dispatched.append((arrived - sent_at) * 1000)
                    handed.append((sink.buffer.cleared_at - sent_at) * 1000)
                    arrivals.append(sent_at)
                    time.sleep(0.1)
                turns = sum(s.turns for s in sim.sessions)
        time.sleep(0.1)
        if monitor is not None:
            ended = heard_until(monitor, list(zip(said, [*said[1:], time.monotonic()], strict=True)))  # each reply until the next
            started = heard_until_first(monitor, said)
    finally:
        if monitor is not None:
            monitor.stop()
    assert turns == 0, f"the simulator answered {turns} times: its audio would be timed as the interrupted reply's"
    out = {
        "p50": pct(heard, 50),
        "p95": pct(heard, 95),
        "clears": clears,
        "device": "ALSA pulse -> PulseAudio null sink (clocked), playback_buffer_ms 20, its monitor recorded at 5 ms latency",
        "drop_device": drop_device,
        "clear_dispatched_p50": pct(dispatched, 50),
        "clear_dispatched_max": round(max(dispatched), 2),
        "handed_to_device_p50": pct(handed, 50),
        "handed_to_device_p95": pct(handed, 95),
        "device_drops": sink.drop.drops if sink.drop is not None else 0,
        "bad_restarts": sink.drop.bad_restarts if sink.drop is not None else 0,
        "dropping_at_end": sink.drop is not None and sink.drop.enabled,
        "device_underflows": sink.device_underflows,
        "replies_not_playing_at_clear": unplayed,
        "clears_timed": len(heard),
        "replies_never_heard": never_heard,
    }
    if monitor is None:
        out["device"] = "ALSA pulse -> PulseAudio null sink (clocked), playback_buffer_ms 20, the kiosk its only client"
        return out
    missing = sum(1 for e in ended if e is None)
    assert not missing, f"the monitor heard no agent audio around {missing} of {clears} clears"
    on_monitor = [(e - a) * 1000 for e, a in zip(ended, arrivals, strict=False) if e is not None]
    heard_reply = [x for x in started if x is not None]
    out |= {
        "on_monitor_p50": pct(on_monitor, 50),
        "on_monitor_p95": pct(on_monitor, 95),
        "on_monitor_max": round(max(on_monitor), 2),
        "reply_heard_after_p50": pct(heard_reply, 50),
        "reply_heard_after_max": round(max(heard_reply), 2) if heard_reply else None,
    }
    return out


def heard_until_first(monitor: MonitorRecording, said: list[float], within_s: float = 1.0) -> list[float | None]:
    """For each time in `said`, ms until the monitor heard the first loud sample after it (a
    speaker that stalls after emptying its device shows here)."""
    pcm, first_at = monitor.samples()
    loud = np.abs(pcm.astype(np.int32)) > LOUD
    out: list[float | None] = []
    for t in said:
        lo = max(0, int((t - first_at) * SAMPLE_RATE_HZ))
        idx = np.flatnonzero(loud[lo : lo + int(within_s * SAMPLE_RATE_HZ)])
        out.append(round((first_at + (lo + int(idx[0])) / SAMPLE_RATE_HZ - t) * 1000, 2) if len(idx) else None)
    return out


def _rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


def _wait_online(port: int, topic: str, timeout_s: float) -> None:
    """Until the daemon's retained availability says `online` (it takes commands from then on)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        got = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-C", "1", "-W", "3"], capture_output=True, text=True)
        if got.stdout.strip() == "online":
            return
    raise TimeoutError(f"the daemon never came online on {topic}")


def bench_full_stack(tmp: Path, pulse: PulseServer, visitor_pcm: bytes, seconds: float) -> dict[str, Any]:
    from conftest import toml_dump

    tmp.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(tmp).start()
    player = pulse.play_loop(write_wav_16k_mono(tmp / "visitor.wav", visitor_pcm))
    # a second client holding the speaker's null sink at low latency, as the barge-in part's
    # monitor recording does: alone on it, the kiosk's every restart stalls ~1.9 s (the null sink
    # renders 2 s ahead while ALSA's pulse plugin reconnects, and unlike an ALSA sink it does not
    # rewind when the new stream lowers its latency), and the speaker turns its drop off
    holder = pulse.record_monitor()
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
            # and the same as the daemon initialises it: a52 left out of the scan, then the plugins
            # only the scan used given back (audio/alsascan.py)
            released = subprocess.Popen([sys.executable, "-c", f"import {IMPORTS}, time; from edge_agent.audio.alsascan import hide_from_scan, release_scan; hide_from_scan(); pa = pyaudio.PyAudio(); release_scan(); time.sleep({seconds + 30})"], env=env, stderr=subprocess.DEVNULL)
            try:
                time.sleep(4)
                _wait_online(broker.port, "edge-agent/bench/availability", 60.0)  # a loaded machine starts it late
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
        holder.stop()
        os.killpg(player.pid, signal.SIGKILL)
        player.wait(5)
        broker.kill()
    return {"rss_mb_full_stack": round(peak, 1), "rss_mb_imports_floor": round(floor_mb, 1), "rss_mb_portaudio_floor": round(pa_floor_mb, 1), "rss_mb_portaudio_released_floor": round(released_mb, 1), "agent_turns": turns, "seconds": seconds, "daemon_cpu_s": round(cpu.user + cpu.system, 1), "imports": IMPORTS, "scan_hidden": list(SCAN_HIDDEN)}


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
        return bench_barge(tmp, pulse, clears), bench_full_stack(tmp / "full", pulse, visitor_pcm, seconds)


def bench_barge(tmp: Path, pulse: PulseServer, clears: int) -> dict[str, Any]:
    """`barge_in_ms`: the kiosk as it is, then the same with the canceller in the capture path
    (the speaker also feeds its ring), the baseline (a speaker that keeps the device's buffer),
    and the kiosk alone on the sink (no monitor recording)."""
    barge = bench_barge_in(tmp / "barge", pulse, clears)
    barge["echo_cancel"] = bench_barge_in(tmp / "barge-aec", pulse, clears, echo_cancel=True)
    barge["device_kept"] = bench_barge_in(tmp / "barge-kept", pulse, clears, drop_device=False)
    barge["sink_alone"] = bench_barge_in(tmp / "barge-alone", pulse, clears, monitor_on=False)
    return barge
