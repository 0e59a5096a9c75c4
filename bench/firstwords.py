"""Benchmarks of the first second of a conversation: a visitor who talks from the instant of the press.

`press_to_speech`: press -> the first byte of that speech written to the agent's socket (the
kiosk's uplink tap), beside the gate's own decision (press -> the gate opens) in the same presses.
`first_words_lost`: how much of that speech the agent never received, found by looking up every
10 ms of it, byte for byte, in what the simulator recorded. Loopback, and through the fault proxy
adding 50 ms or 300 ms of round trip; cold (connect at the press) and warm (agent.warm_link).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from steps import UNLIMITED_STARTS, pct, wait_until

from edge_agent.core import conversation as c
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.devtools.simulator import AgentSimulator, SimulatorThread
from edge_agent.devtools.visitor import VisitorMic, lost_ms

SPEECH_S = (2.2, 3.2)
"""One second of continuous speech from the quiet dev recording (labelled speech from 2.2 s)."""


def presses(
    tmp: Path,
    sim: AgentSimulator,
    url: str,
    speech: bytes,
    n: int,
    warm: bool = False,
    backlog_ms: int | None = None,
    earcons: bool = True,
    period_ms: int = 60,
    vad: dict[str, Any] | None = None,
    block_ms: int = 0,
) -> dict[str, list[float]]:
    """`n` presses, the visitor speaking `speech` from each press on; per press: press -> first
    speech byte on the socket, press -> gate open, ms of the speech the agent never got."""
    from conftest import KioskThread, kiosk_settings

    tmp.mkdir(parents=True, exist_ok=True)
    audio: dict[str, Any] = {"earcons": earcons, "capture_period_ms": period_ms, "capture_block_ms": block_ms}
    if backlog_ms is not None:
        audio["backlog_ms"] = backlog_ms
    mic = VisitorMic(period_ms=period_ms, block_ms=block_ms)
    k = KioskThread(kiosk_settings(tmp, url, audio=audio, agent={"warm_link": warm}, session=UNLIMITED_STARTS, vad=vad or {}), source=mic)
    out: dict[str, list[float]] = {"speech": [], "gate": [], "lost": []}
    first: list[float] = []
    opened: list[float] = []

    def tap(frame: bytes, at: float) -> None:  # on the kiosk's loop, for every uplink frame
        if not first and mic.has_speech(frame):
            first.append(at)

    with k:
        k.kiosk.stats.uplink_tap = tap
        gate = k.kiosk.gate
        push = gate.push

        def timed_push(frame: bytes, cue: bool = False) -> tuple[bytes, ...]:
            was = gate.is_open
            sent = push(frame, cue)
            if gate.is_open and not was and not opened:
                opened.append(time.monotonic())
            return sent

        gate.push = timed_push  # type: ignore[method-assign]
        time.sleep(1.0)  # the gate learns the room
        phase = random.Random(n)
        for _ in range(n):
            if warm:
                wait_until(lambda: k.kiosk.standby.ready, 10)
            sessions = len(sim.sessions)
            first.clear()
            opened.clear()
            t0 = time.monotonic()
            mic.speak(speech, t0)
            k.press()
            wait_until(lambda s=sessions: k.state == c.LISTENING and len(sim.sessions) > s, 10)  # type: ignore[misc]
            wait_until(lambda: not mic.speaking and bool(first), 10)
            time.sleep(0.3)  # the last frames of the speech reach the simulator
            out["speech"].append((first[0] - t0) * 1000)
            out["gate"].append((opened[0] - t0) * 1000 if opened else float("nan"))
            out["lost"].append(lost_ms(speech, bytes(sim.sessions[-1].uplink)))
            k.press()
            wait_until(lambda: k.state == c.IDLE and not gate.is_open, 10)  # the next visitor starts afresh
            # the gate closes on a capture period's frames: a fixed pause would press at the same
            # point of the period every time (20 ms before the next one, at 60 ms); a visitor
            # presses at any point of it
            time.sleep(0.1 + phase.uniform(0.0, period_ms / 1000.0))
    return out


def bench_first_words(tmp: Path, speech: bytes, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(press_to_speech_ms, first_words_lost_ms) figures."""
    far = max(5, n // 2)
    runs: dict[str, dict[str, list[float]]] = {}
    with SimulatorThread() as sim:
        runs["cold"] = presses(tmp / "cold", sim, sim.url, speech, n)
        runs["warm"] = presses(tmp / "warm", sim, sim.url, speech, n, warm=True)
        runs["quiet"] = presses(tmp / "quiet", sim, sim.url, speech, n, earcons=False)
        runs["no_prior"] = presses(tmp / "no-prior", sim, sim.url, speech, n, vad={"press_prior_ms": 0})
        runs["period_30"] = presses(tmp / "period-30", sim, sim.url, speech, n, period_ms=30)
        runs["opens_60"] = presses(tmp / "opens-60", sim, sim.url, speech, n, vad={"press_opens_ms": 300})
        runs["opens_30"] = presses(tmp / "opens-30", sim, sim.url, speech, n, period_ms=30, vad={"press_opens_ms": 300})
        runs["opens_block_20"] = presses(tmp / "opens-b20", sim, sim.url, speech, n, block_ms=20, vad={"press_opens_ms": 300})
        runs["opens_block_10"] = presses(tmp / "opens-b10", sim, sim.url, speech, n, block_ms=10, vad={"press_opens_ms": 300})
        with FaultProxyThread("127.0.0.1", sim.port) as proxy:
            proxy.delay_s = 0.025  # each way: a 50 ms round trip
            runs["50_cold"] = presses(tmp / "50-cold", sim, proxy.url(), speech, far)
            runs["50_warm"] = presses(tmp / "50-warm", sim, proxy.url(), speech, far, warm=True)
            proxy.delay_s = 0.150  # a 300 ms round trip (a far region over a mobile link)
            runs["300_cold"] = presses(tmp / "300-cold", sim, proxy.url(), speech, far)
            runs["300_cold_nothing_held"] = presses(tmp / "300-none", sim, proxy.url(), speech, max(3, far // 2), backlog_ms=0)
    speech_ms = {
        "p50": pct(runs["cold"]["speech"], 50),
        "p95": pct(runs["cold"]["speech"], 95),
        "warm_p50": pct(runs["warm"]["speech"], 50),
        "warm_p95": pct(runs["warm"]["speech"], 95),
        "rtt_50ms_cold_p50": pct(runs["50_cold"]["speech"], 50),
        "rtt_50ms_cold_p95": pct(runs["50_cold"]["speech"], 95),
        "rtt_50ms_warm_p50": pct(runs["50_warm"]["speech"], 50),
        "rtt_50ms_warm_p95": pct(runs["50_warm"]["speech"], 95),
        "rtt_300ms_cold_p50": pct(runs["300_cold"]["speech"], 50),
        "rtt_300ms_cold_p95": pct(runs["300_cold"]["speech"], 95),
        "earcons_off_p50": pct(runs["quiet"]["speech"], 50),
        "earcons_off_p95": pct(runs["quiet"]["speech"], 95),
        "earcons_off_gate_opens_p95": pct(runs["quiet"]["gate"], 95),
        "without_press_prior_p50": pct(runs["no_prior"]["speech"], 50),
        "without_press_prior_p95": pct(runs["no_prior"]["speech"], 95),
        "capture_period_30ms_p50": pct(runs["period_30"]["speech"], 50),
        "capture_period_30ms_p95": pct(runs["period_30"]["speech"], 95),
        "press_opens_gate_p50": pct(runs["opens_60"]["speech"], 50),
        "press_opens_gate_p95": pct(runs["opens_60"]["speech"], 95),
        "press_opens_gate_period_30ms_p50": pct(runs["opens_30"]["speech"], 50),
        "press_opens_gate_period_30ms_p95": pct(runs["opens_30"]["speech"], 95),
        "press_opens_gate_block_20ms_p50": pct(runs["opens_block_20"]["speech"], 50),
        "press_opens_gate_block_20ms_p95": pct(runs["opens_block_20"]["speech"], 95),
        "press_opens_gate_block_10ms_p50": pct(runs["opens_block_10"]["speech"], 50),
        "press_opens_gate_block_10ms_p95": pct(runs["opens_block_10"]["speech"], 95),
        "baseline_gate_opens_p50": pct(runs["cold"]["gate"], 50),
        "baseline_gate_opens_p95": pct(runs["cold"]["gate"], 95),
        "presses": n,
        "presses_far": far,
    }
    lost = {
        "p50": pct(runs["cold"]["lost"], 50),
        "max": max(runs["cold"]["lost"]),
        "rtt_50ms_p50": pct(runs["50_cold"]["lost"], 50),
        "rtt_50ms_max": max(runs["50_cold"]["lost"]),
        "rtt_300ms_p50": pct(runs["300_cold"]["lost"], 50),
        "rtt_300ms_max": max(runs["300_cold"]["lost"]),
        "baseline_nothing_held_rtt_300ms_p50": pct(runs["300_cold_nothing_held"]["lost"], 50),
        "baseline_nothing_held_rtt_300ms_max": max(runs["300_cold_nothing_held"]["lost"]),
        "speech_ms": round(len(speech) / 32),
    }
    return speech_ms, lost
