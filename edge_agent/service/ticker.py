"""Ticker: when the kiosk's periodic work (timeouts, supervision, the systemd watchdog) runs.

Every TICK_S. While the microphone delivers frames the tick rides on them (`frame`: no wake-up
of its own, the loop is awake anyway); each tick books a fallback timer a little later, which
fires only when frames stop coming. Timeouts are whole seconds, so a slower tick means fewer
wake-ups of an idle kiosk at no cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

TICK_S = 0.25
TICK_GRACE_S = 0.1
"""The fallback timer fires this long after a tick was due, so that a frame due now comes first."""


class Ticker:
    """Calls `on_tick(now)` (time.monotonic()) every TICK_S on the loop given to `start`; no
    timer is booked once `running()` turns false (the daemon is stopping)."""

    def __init__(self, on_tick: Callable[[float], None], running: Callable[[], bool]) -> None:
        self._on_tick, self._running = on_tick, running
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._at = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.tick()

    def frame(self, captured_at: float) -> None:
        """A captured frame (`captured_at` on time.monotonic()): ticks when one is due."""
        if captured_at - self._at >= TICK_S:
            self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        self._at = now
        if self._timer is not None:
            self._timer.cancel()
        if self._loop is not None and self._running():
            self._timer = self._loop.call_later(TICK_S + TICK_GRACE_S, self.tick)
        self._on_tick(now)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
