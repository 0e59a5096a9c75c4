"""AudioWatch: notices a stalled or lost microphone, reports it once, and reopens it every few seconds.

A USB microphone that is unplugged, or a capture that stops delivering frames, must not leave a
kiosk deaf in silence: the daemon reports `audio_stalled` (an `error` event), retries every
AUDIO_RETRY_S, and reports `audio_recovered` when frames flow again. While audio stays dead the
daemon's systemd watchdog pings stop (it asks `alive`), so systemd restarts the service as a
last resort.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edge_agent.audio.devices import AudioSource
from edge_agent.core.ratelimit import LogThrottle
from edge_agent.errors import EdgeAgentError

log = logging.getLogger("edge_agent")

AUDIO_STALL_S = 2.0
"""No captured frame for this long means the microphone is stalled or gone."""
AUDIO_RETRY_S = 5.0
RETRY_LOG_FIRST, RETRY_LOG_EVERY_S = 3, 600.0
"""Retries of one outage logged: the first few, then one per 10 minutes saying how many were
left out (a microphone gone for a month wrote a line every 5 s)."""


class AudioWatch:
    """Supervises one audio source; `check` is called from the daemon's tick."""

    def __init__(self, source: AudioSource, name: str, notify: Callable[[str, dict[str, Any]], None], recovered: Callable[[], None]) -> None:
        self.source, self.name = source, name
        self._notify, self._recovered = notify, recovered
        self.stalled_at: float | None = None
        self._retry_at = 0.0
        self._retry_log = LogThrottle(RETRY_LOG_FIRST, RETRY_LOG_EVERY_S)

    def alive(self, stall_s: float = AUDIO_STALL_S) -> bool:
        """The capture delivered a frame lately."""
        return time.monotonic() - self.source.last_frame_at < stall_s

    def check(self, alive: bool, now: float, reopen: Callable[[], None] | None) -> None:
        """Reports a stall once, retries `reopen` every AUDIO_RETRY_S while it lasts, reports the
        recovery. `reopen` is None while the loop is not running (nothing to reopen onto)."""
        if alive:
            if self.stalled_at is not None:
                self.stalled_at = None
                self._notify("audio_recovered", {})
                self._recovered()
            return
        if self.stalled_at is None:
            self.stalled_at = now
            self._retry_at = now
            self._retry_log = LogThrottle(RETRY_LOG_FIRST, RETRY_LOG_EVERY_S)
            self._notify("error", {"code": "audio_stalled", "message": f"no audio from {self.name} for {AUDIO_STALL_S:.0f} s"})
        if now >= self._retry_at and reopen is not None:
            self._retry_at = now + AUDIO_RETRY_S
            try:
                reopen()
                self._log_retry(logging.INFO, "audio input reopened", now)
            except (EdgeAgentError, OSError) as exc:
                self._log_retry(logging.ERROR, f"audio input still unavailable: {exc}", now)

    def _log_retry(self, level: int, what: str, now: float) -> None:
        left_out = self._retry_log.allow(now)
        if left_out is not None:
            log.log(level, "%s%s", what, f" ({left_out} retries left out of the log before this one)" if left_out else "")
