"""KioskReports: what the kiosk tells about itself, to the log, the fleet (MQTT) and systemd.

Its events (counted, logged at their level, sent to the fleet unless private), its state changes
(a log line, the retained MQTT state and a systemd `STATUS=`, at a bounded rate: StateReports)
and its metrics every interval. Apart from `Kiosk`, which only hands it what to tell, so what is
said where, and at which level, is read in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from edge_agent.core.events import StateChanged
from edge_agent.core.ports import PRIVATE_EVENTS, Reporter, describe
from edge_agent.core.ratelimit import LogThrottle
from edge_agent.service.notify import SystemdNotifier
from edge_agent.service.statereports import StateReports

log = logging.getLogger("edge_agent")


class KioskReports:
    """Tells `reporter` (MQTT) and `notifier` (systemd) and the log; counts into the kiosk's
    `counters`. `transcripts`: whether a visitor's words may reach the log (`log.transcripts`,
    read at each event: a reload changes it)."""

    def __init__(self, reporter: Reporter, notifier: SystemdNotifier, counters: dict[str, int], transcripts: Callable[[], bool]) -> None:
        self.reporter, self.notifier, self.counters = reporter, notifier, counters
        self._transcripts = transcripts
        self.response_latency_ms: float | None = None
        self.states = StateReports(self._report_state)
        """The state changes, bounded in rate: `changed` for each, `flush` from the tick."""
        self._latency_log = LogThrottle(first=10, every_s=1.0)  # a server drives these too (see StateReports)

    def _report_state(self, a: StateChanged, left_out: int) -> None:
        """A state change told to the log, MQTT and systemd (at a bounded rate: StateReports)."""
        more = f" ({left_out} state changes before it not reported)" if left_out else ""
        log.info("state: %s%s%s", a.state, f" (session {a.session_id})" if a.session_id else "", more)
        self.reporter.state(a.state, a.session_id, a.continued_from, a.slot)
        self._status(a.state, a.session_id)

    def _status(self, state: str, session_id: str | None) -> None:
        """The unit's `STATUS=` (`systemctl status edge-agent`, which every local user may read)."""
        self.notifier.send(f"STATUS={state}" + (f" session {session_id}" if session_id else ""))

    def forgotten(self, state: str, published_ids: tuple[str | None, str | None], now: float) -> None:
        """The sessions were forgotten: the retained state again, naming no forgotten session."""
        self.states.flush(now, force=True)  # a change held back names the session: out before, not after
        self.reporter.state(state, *published_ids)  # the retained state names none (nor whose it was)
        self._status(state, published_ids[0])  # nor does systemd's: it kept `idle session <wiped id>` until the next visitor

    def event(self, kind: str, fields: dict[str, Any]) -> None:
        """One of the conversation's events: counted, logged at its level (an error as a warning, a
        visitor's words only with `log.transcripts`) and sent to the fleet unless it is private."""
        if kind == "response_latency":
            self.response_latency_ms = fields["ms"]
            self.counters["replies"] += 1
            if self._latency_log.allow(time.monotonic()) is None:
                return
        elif kind == "reconnecting":
            self.counters["reconnects"] += 1
        elif kind == "error":
            self.counters["errors"] += 1
        private = kind in PRIVATE_EVENTS  # visitors' words reach the journal only when asked
        # an error (a storage fault the kiosk runs through, a lost link, a stalled microphone) is
        # logged as a warning: at INFO it read as routine, and `log.level = "warning"` hid it
        level = logging.WARNING if kind == "error" else logging.INFO if not private or self._transcripts() else logging.DEBUG
        log.log(level, "%s", describe(kind, fields))
        if not private:
            self.reporter.event(kind, fields)

    async def publish_metrics(self, every_s: float, metrics: Callable[[], dict[str, Any]]) -> None:
        """`metrics()` to the fleet every `every_s` (`mqtt.metrics_interval_s`: a reload keeps it)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                self.reporter.metrics(metrics())
            except Exception:
                log.exception("metrics failed")
