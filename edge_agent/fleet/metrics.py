"""Metrics: the process-health figures a fleet admin watches beside the kiosk's own counters.

Published on `<prefix>/<id>/metrics` every `mqtt.metrics_interval_s`; cheap enough to gather
every few seconds (counters, one psutil call, one sysfs read).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any


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


def process_metrics(proc: Any) -> dict[str, Any]:
    """The process's own health (CPU %, RSS MB, SoC temperature, fds, threads, asyncio tasks).

    `proc` is what `own_process()` returned (None when psutil is unavailable: those figures are None).
    The kiosk adds its own counters beside these; this module knows nothing of the kiosk.
    """
    mem = proc.memory_info().rss / 1e6 if proc else None
    return {
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
