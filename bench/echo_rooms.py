"""Echo cancellation figures for script/bench: the daemon's canceller and gate over simulated rooms
(delays 10-300 ms, several impulse responses and reverberation times, speaker clipping, clock
drift), and a 10-minute run with the speaker's clock 100 ppm fast, faster than real time.

Definitions (README, "Echo cancellation"):
- erle_db: 10 log10(mic energy / cleaned energy) over the frames where the agent is audible,
  agent alone, after the first 2 s, room noise at -84 dBFS;
- idle_sent: agent alone (55 s of speech into the room), share of the audio that would have gone
  up (gate open and uplink not held while the canceller converges);
- recall: the visitor talking over the agent from 6 s on, share of their labelled speech sent;
- idle_sent_double_talk: same run, share of the idle audio sent anyway, idle counted as the gate's
  figures count it (more than 0.5 s before or 1.0 s after the visitor's labelled speech);
- recall_by_start / recall_worst_start: the same double talk with the visitor starting at each of
  VISITOR_STARTS_S (where the agent's speech is at another point each time), and the lowest;
- after_two_replies: idle_sent and recall_by_start for a reply after two the canceller played
  to a visitor who listened (converged, its room graded: audio/echograde.py), every path;
  in a room those replies graded poor, `after_restart` is the reply on a canceller just started
  (a reboot) with that grade kept in the state dir (service/roomgrade.py: written and read back
  through its file): idle_sent and recall_by_start. In other rooms a kept grade changes nothing.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.audio.devices import read_wav_16k_mono
from edge_agent.audio.earcons import Earcons
from edge_agent.audio.echo import EchoCanceller, make_backend
from edge_agent.audio.echograde import EchoGrade
from edge_agent.audio.echotrack import cancel_tracks
from edge_agent.audio.gate import VadGate
from edge_agent.audio.gatescore import Labels, score
from edge_agent.core.config_audio import VadSettings
from edge_agent.devtools.echoroom import EchoPath, Room, RoomMicrophone, RoomSpeaker, simulate
from edge_agent.devtools.echoscore import after_replies, agent_alone_idle, double_talk, gate_intervals, mic_path, score_path
from edge_agent.service.roomgrade import RoomGradeFile

SR = 16000
VISITOR_STARTS_S = (6.0, 8.0, 11.0, 14.0)
GOALS = {"erle_db": 30.0, "idle_sent": 0.02, "recall": 0.98}
PATHS = {
    "desk 10 ms, rt60 0.2 s": EchoPath(delay_ms=10, rt60_s=0.2, seed=0),
    "desk 45 ms, clipping speaker": EchoPath(delay_ms=45, rt60_s=0.25, seed=1, drive=2.5),
    "kiosk 70 ms, +90 ppm": EchoPath(delay_ms=70, rt60_s=0.3, seed=7, drift_ppm=90),
    "kiosk 90 ms, rt60 0.4 s, +100 ppm": EchoPath(delay_ms=90, rt60_s=0.4, seed=2, drift_ppm=100),
    "kiosk 150 ms, loud, -80 ppm": EchoPath(delay_ms=150, rt60_s=0.3, seed=3, drift_ppm=-80, gain=0.9),
    "USB buffer 300 ms": EchoPath(delay_ms=300, rt60_s=0.25, seed=4),
    "hall 120 ms, rt60 0.6 s": EchoPath(delay_ms=120, rt60_s=0.6, seed=5),
    "hall 150 ms, rt60 0.6 s, far speaker": EchoPath(delay_ms=150, rt60_s=0.6, reverb=0.15, seed=6, drift_ppm=-80),
}
HELD_OUT = {
    "desk 25 ms, small speaker clipping harder (drive 3), +40 ppm": EchoPath(delay_ms=25, rt60_s=0.35, drive=3.0, gain=0.6, drift_ppm=40, seed=21),
    "kiosk 200 ms, rt60 0.5 s, -120 ppm": EchoPath(delay_ms=200, rt60_s=0.5, drift_ppm=-120, seed=22),
    "booth 60 ms, dead room (rt60 0.12 s), echo louder than the speaker signal": EchoPath(delay_ms=60, rt60_s=0.12, gain=1.2, seed=23),
    "USB buffer 380 ms, noisy room (-55 dBFS)": EchoPath(delay_ms=380, rt60_s=0.3, seed=25, noise_rms=60),
    "lobby 100 ms, rt60 0.8 s, speaker far (reverberation 4x), +60 ppm": EchoPath(delay_ms=100, rt60_s=0.8, rir_ms=400, reverb=0.2, gain=0.3, drift_ppm=60, seed=24),
    "USB buffer 420 ms, rt60 0.45 s, +150 ppm, noisy room (-58 dBFS)": EchoPath(delay_ms=420, rt60_s=0.45, rir_ms=250, drift_ppm=150, noise_rms=45, seed=32),
    "kiosk 250 ms, rt60 0.35 s, -90 ppm, clipping speaker (drive 2)": EchoPath(delay_ms=250, rt60_s=0.35, drive=2.0, drift_ppm=-90, seed=33),
    "auditorium 160 ms, rt60 1.0 s, speaker far (reverberation 3x), -70 ppm": EchoPath(delay_ms=160, rt60_s=1.0, rir_ms=500, reverb=0.15, gain=0.35, drift_ppm=-70, seed=31),
}
"""Echo paths the canceller and gate were never tuned on (added after the figures above were
met): other delays, RT60s, drifts, clipping, speaker distances and noise; reported apart. The
last three were added with issue 13's double-talk check (USB 380 ms), never tuned on either."""


def bench_echo(data: Path, vad: VadSettings, quick: bool) -> dict[str, Any]:
    speech = read_wav_16k_mono(data / "kiosk_dev_quiet.wav")
    labels = Labels.load(data / "kiosk_dev_quiet.labels.json")
    agent = (speech[2 * SR * 20 :] + speech)[: len(speech)]
    paths = {name: scored(path, agent, speech, labels, vad) for name, path in PATHS.items()}
    baseline = score_path(PATHS["kiosk 70 ms, +90 ppm"], agent, speech, labels, vad, echo_cancel=False).as_dict()
    drift = drift_run(speech, vad, 2.0 if quick else 10.0, 100.0)
    first = {name: first_reply(path, agent, vad) for name, path in {**PATHS, **HELD_OUT}.items()}
    held_out = {name: scored(path, agent, speech, labels, vad) for name, path in HELD_OUT.items()}
    later = {name: later_reply(path, agent, speech, labels, vad) for name, path in {**PATHS, **HELD_OUT}.items()}
    ordinary = [v for k, v in paths.items() if not k.startswith("hall")]
    return {
        "paths": paths,
        "held_out": held_out,
        "without_echo_cancel_kiosk_70ms": baseline,
        "drift_run": drift,
        "first_reply": first,
        "worst_ordinary_room": {
            "erle_db": min(v["erle_db"] for v in ordinary),
            "idle_sent": max(v["idle_sent"] for v in ordinary),
            "recall": min(v["recall"] for v in ordinary),
            "recall_worst_start": min(v["recall_worst_start"] for v in ordinary),
        },
        "worst_held_out": {
            "erle_db": min(v["erle_db"] for v in held_out.values()),
            "idle_sent": max(v["idle_sent"] for v in held_out.values()),
            "recall": min(v["recall"] for v in held_out.values()),
            "recall_worst_start": min(v["recall_worst_start"] for v in held_out.values()),
        },
        "after_two_replies": later,
        "after_two_replies_worst": {
            "idle_sent": max(v["idle_sent"] for v in later.values()),
            "recall_worst_start": min(v["recall_worst_start"] for v in later.values()),
            "runs_under_goal": sum(r < GOALS["recall"] for v in later.values() for r in v["recall_by_start"].values()),
        },
        "double_talk_runs_under_goal": sum(r < GOALS["recall"] for v in (*paths.values(), *held_out.values()) for r in v["recall_by_start"].values()),
        "double_talk_runs": len(VISITOR_STARTS_S) * (len(paths) + len(held_out)),
    }


def scored(path: EchoPath, agent: bytes, speech: bytes, labels: Labels, vad: VadSettings) -> dict[str, Any]:
    """score_path's figures (visitor from 6 s) and double-talk recall with each visitor start."""
    out: dict[str, Any] = score_path(path, agent, speech, labels, vad, near_at_s=VISITOR_STARTS_S[0]).as_dict()
    by_start = {f"{VISITOR_STARTS_S[0]:g}": out["recall"]}
    for at in VISITOR_STARTS_S[1:]:
        by_start[f"{at:g}"] = round(double_talk(path, agent, speech, labels, vad, at)[0].speech_recall, 4)
    out["recall_by_start"] = by_start
    out["recall_worst_start"] = min(by_start.values())
    return out


def later_reply(path: EchoPath, agent: bytes, speech: bytes, labels: Labels, vad: VadSettings) -> dict[str, Any]:
    """The agent's reply after two it played to a visitor who listened (echoscore.after_replies: a
    converged canceller that has graded its room, as every reply but a kiosk's first meets it):
    those two replies' ERLE as graded, whether the room counts as poor, agent-alone idle sent,
    and double-talk recall with each visitor start."""
    duration_s = len(agent) / 2 / SR
    sent, canceller = after_replies(path, agent, vad)
    out: dict[str, Any] = {
        "reply_erle_db": [round(x, 1) for x in canceller.grade.replies],
        "poor_room": canceller.grade.poor,
        "idle_sent": round(score(sent, Labels(duration_s, [])).idle_share, 4),
    }
    by_start = {f"{at:g}": round(double_talk(path, agent, speech, labels, vad, at, after_listened=True)[0].speech_recall, 4) for at in VISITOR_STARTS_S}
    out["recall_by_start"] = by_start
    out["recall_worst_start"] = min(by_start.values())
    if canceller.grade.poor:
        out["after_restart"] = after_restart(path, agent, speech, labels, vad, canceller.grade)
    return out


def after_restart(path: EchoPath, agent: bytes, speech: bytes, labels: Labels, vad: VadSettings, grade: EchoGrade) -> dict[str, Any]:
    """The reply on a canceller just started, with `grade` kept across the restart in a state dir."""
    with tempfile.TemporaryDirectory() as state:
        RoomGradeFile(Path(state), "bench", grade).keep()
        kept = RoomGradeFile(Path(state), "bench").load()
    by_start = {f"{at:g}": round(double_talk(path, agent, speech, labels, vad, at, kept_grades=kept)[0].speech_recall, 4) for at in VISITOR_STARTS_S}
    return {"idle_sent": round(agent_alone_idle(path, agent, vad, kept), 4), "recall_by_start": by_start, "recall_worst_start": min(by_start.values())}


def first_reply(path: EchoPath, agent: bytes, vad: VadSettings) -> dict[str, Any]:
    """A fresh canceller (just booted) hears the press and ready earcons, then 12 s of the agent's
    first reply, agent alone: how soon the canceller takes 20 and 30 dB off (ERLE over 0.5 s
    windows of far-end frames, from the reply's start, room noise at -84 dBFS), how long the uplink
    was held, and the share of the reply the kiosk would have sent up (idle sent)."""
    earcons = Earcons(True, 0.3)
    press, ready = earcons.get("press"), earcons.get("ready")
    lead = press + bytes(SR * 2) + ready
    lead += bytes(4 * SR - len(lead))  # the reply starts 2 s after the press
    far = lead + agent[: 2 * SR * 12]
    p0 = len(press) / 2 / SR
    cues = ((0.0, p0), (p0 + 1.0, len(press + bytes(SR * 2) + ready) / 2 / SR))
    mic, _ = simulate(far, replace(path, noise_rms=2.0))
    track = cancel_tracks(mic, far, EchoCanceller(make_backend(True)), cues=cues)
    frames = len(track.far_active)
    m = np.frombuffer(mic, dtype="<i2")[: frames * 480].astype(np.float64).reshape(-1, 480)
    o = np.frombuffer(track.cleaned, dtype="<i2")[: frames * 480].astype(np.float64).reshape(-1, 480)
    far_on = np.array(track.far_active)
    start, win = int(2.0 / 0.03), int(0.5 / 0.03)
    reach: dict[int, float | None] = {20: None, 30: None}
    for i in range(start, frames - win):
        w = far_on[i : i + win]
        if w.sum() < win // 2:
            continue
        erle = 10 * np.log10((np.square(m[i : i + win][w]).sum() + 1) / (np.square(o[i : i + win][w]).sum() + 1))
        for goal in reach:
            if reach[goal] is None and erle >= goal:
                reach[goal] = round((i + win - start) * 0.03, 2)
    mic, _ = simulate(far, path)
    track = cancel_tracks(mic, far, EchoCanceller(make_backend(True)), cues=cues)
    sent = gate_intervals(VadGate(vad, 30), track)
    reply = Labels(len(far) / 2 / SR, [(0.0, 1.0)])  # idle counted from 1 s after this: the reply
    return {"erle_20db_after_s": reach[20], "erle_30db_after_s": reach[30], "held_s": round(sum(track.held) * 0.03, 2), "idle_sent": round(score(sent, reply).idle_share, 4)}


def drift_run(speech: bytes, vad: VadSettings, minutes: float, ppm: float) -> dict[str, Any]:
    """The paired room devices on a made-up clock, the agent talking without end: ERLE and what
    the gate would send, per minute, while the speaker's clock runs `ppm` fast (the echo drifts
    by 6 ms a minute at 100 ppm) and the reference follows through the timestamps alone."""
    room = Room(EchoPath(delay_ms=60, rt60_s=0.3, drift_ppm=ppm, noise_rms=2.0, seed=12))
    speaker = RoomSpeaker(room)
    mic = RoomMicrophone(room, speaker)
    canceller = EchoCanceller(make_backend(True))
    speaker.buffer.tap = canceller.ring.write
    gate = VadGate(vad, 30)
    uplink = mic_path(canceller, gate)
    minute: dict[str, float] = {"e_in": 0.0, "e_out": 0.0, "frames": 0, "sent": 0}
    per_minute: list[dict[str, float]] = []

    def on_frame(pcm: bytes, at: float) -> None:
        out = canceller.process(pcm, at)
        _, admitted = uplink.after_canceller(out, at)
        sending = admitted and gate.is_open
        if canceller.far_active:
            minute["e_in"] += float(np.square(np.frombuffer(pcm, dtype="<i2"), dtype=np.float64).sum())
            minute["e_out"] += float(np.square(np.frombuffer(out, dtype="<i2"), dtype=np.float64).sum())
        minute["frames"] += 1
        minute["sent"] += sending
        if minute["frames"] == 2000:  # one minute of 30 ms frames
            per_minute.append({"erle_db": round(10 * np.log10((minute["e_in"] + 1) / (minute["e_out"] + 1)), 1), "idle_sent": round(minute["sent"] / 2000, 4)})
            minute.update(e_in=0.0, e_out=0.0, frames=0, sent=0)

    t = 1000.0
    mic.start_at(t, on_frame)
    cpu0 = time.process_time()
    while t < 1000.0 + minutes * 60:
        if speaker.buffer.queued_bytes < 64000:
            speaker.buffer.write(speech)
        t += 0.06
        mic.step(t)
    return {
        "minutes": minutes,
        "drift_ppm": ppm,
        "echo_moved_ms": round(minutes * 60 * ppm * 1e-3, 1),
        "per_minute": per_minute,
        "min_erle_db_after_first_minute": min((m["erle_db"] for m in per_minute[1:]), default=None),
        "max_idle_sent": max(m["idle_sent"] for m in per_minute),
        "resyncs": canceller.alignment.resyncs,
        "delay_moves": canceller.stats.delay_moves,
        "delay_ms_found": canceller.delay_ms,
        "x_realtime": round(minutes * 60 / (time.process_time() - cpu0), 1),
    }
