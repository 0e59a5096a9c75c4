"""Metrics: the numbers a fleet admin watches, gathered from a running Kiosk.

Published on `<prefix>/<id>/metrics` every `mqtt.metrics_interval_s`; cheap enough to gather
every few seconds (counters, one psutil call, one sysfs read).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.daemon import Kiosk


def own_process() -> Any:
    try:
        import psutil

        proc = psutil.Process()
        proc.cpu_percent(None)  # the first call only sets the baseline
        return proc
    except Exception:  # psutil missing or /proc unreadable: metrics say None
        return None


def cpu_temperature_c() -> float | None:
    """The SoC temperature where the board exposes it (every Raspberry Pi does)."""
    try:
        return round(int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def collect_metrics(kiosk: Kiosk) -> dict[str, Any]:
    proc = kiosk.process
    mem = proc.memory_info().rss / 1e6 if proc else None
    return {
        "uptime_s": round(time.monotonic() - kiosk.started_at, 1),
        "state": kiosk.conversation.state,
        "frames_captured": kiosk.counters["frames_captured"],
        "frames_sent": kiosk.counters["frames_uplinked"],
        "frames_gated": kiosk.gate.frames_gated,
        "uplink_bytes": kiosk.stats.bytes_up,
        "downlink_bytes": kiosk.stats.bytes_down,
        "uplink_dropped": kiosk.stats.frames_dropped,
        "overruns": kiosk.source.overruns,
        "underruns": kiosk.sink.buffer.underruns,
        "rtt_ms": None if kiosk.stats.rtt_ms is None else round(kiosk.stats.rtt_ms, 1),
        "response_latency_ms": kiosk.response_latency_ms,
        "reconnects": kiosk.counters["reconnects"],
        "agent_connects": kiosk.stats.connects,
        "warm_link_ready": kiosk.standby.ready if kiosk.settings.agent.warm_link else None,
        "warm_presses": kiosk.standby.taken,
        "bad_frames": kiosk.stats.bad_frames,
        "errors": kiosk.counters["errors"],
        "cpu_percent": round(proc.cpu_percent(None), 1) if proc else None,
        "rss_mb": None if mem is None else round(mem, 1),
        "temperature_c": cpu_temperature_c(),
        "open_fds": proc.num_fds() if proc else None,
        "threads": threading.active_count(),
        "tasks": len(asyncio.all_tasks()) if _loop_running() else None,
    }


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
