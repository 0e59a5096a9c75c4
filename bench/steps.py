"""What every benchmark does: wait for a condition between steps, and take percentiles."""

from __future__ import annotations

import time
from typing import Any

UNLIMITED_STARTS = {"start_burst": 1000, "starts_per_minute": 600.0}
"""`[session]` for benchmarks that press back to back by design (the start rate limit would refuse them)."""


def wait_until(pred: Any, timeout_s: float, poll_s: float = 0.0005) -> None:
    """Polls `pred` every `poll_s` (half a millisecond by default: figures are in ms); a step that
    never comes fails the run."""
    end = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError("benchmark step timed out")
        time.sleep(poll_s)


def pct(values: list[float], q: float, digits: int = 2) -> float:
    """The `q`th percentile (nearest rank), rounded to `digits` decimals; NaN for no values."""
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q / 100 * len(s)))], digits) if s else float("nan")
