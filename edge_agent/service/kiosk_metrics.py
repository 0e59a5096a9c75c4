"""KioskMetrics: the numbers a fleet admin watches, gathered from the kiosk's parts.

The parts are handed over once, when the kiosk is assembled, so this module reads counters off
the gate, the link, the devices, the store and the echo canceller without reaching into `Kiosk`;
what changes with every conversation (its state, the last response latency) and with a reload
(the warm link) comes with each call. Published by the status reporter every
`mqtt.metrics_interval_s` (README, "Fleet status and control over MQTT").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_agent.agent.link import LinkStats
from edge_agent.agent.standby import Standby
from edge_agent.audio.devices import AudioSink, AudioSource
from edge_agent.audio.echo import EchoCanceller
from edge_agent.audio.gate import VadGate
from edge_agent.core.backlog import Backlog
from edge_agent.core.store import SessionStore
from edge_agent.fleet.metrics import process_metrics
from edge_agent.hardware.button import Button
from edge_agent.service.slots import slot_metrics

if TYPE_CHECKING:  # loaded only with `session.share` on (service/slots.py)
    from edge_agent.fleet.share import SessionShare


@dataclass(frozen=True)
class KioskMetrics:
    """The parts the metrics read (each keeps its own counters)."""

    counters: dict[str, int]
    stats: LinkStats
    gate: VadGate
    backlog: Backlog
    source: AudioSource
    sink: AudioSink
    standby: Standby
    store: SessionStore
    echo: EchoCanceller
    inputs: list[Button]
    share: SessionShare | None
    process: Any
    started_at: float
    """Monotonic time the kiosk started (for `uptime_s`)."""

    def gather(self, state: str, starts_refused: int, response_latency_ms: float | None, warm_link: bool) -> dict[str, Any]:
        """The kiosk's counters, then the process's health."""
        stats, counters, echo = self.stats, self.counters, self.echo
        return {
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "state": state,
            "frames_captured": counters["frames_captured"],
            "frames_sent": counters["frames_uplinked"],
            "frames_gated": self.gate.frames_gated,
            "gate_talker_room": self.gate.talker_room,
            "gate_openings_held_back": self.gate.openings_held_back,
            "gate_strikes_held_back": self.gate.strikes_held_back,
            "uplink_bytes": stats.bytes_up,
            "downlink_bytes": stats.bytes_down,
            "uplink_dropped": stats.frames_dropped,
            "held_dropped": self.backlog.dropped,
            "overruns": self.source.overruns,
            "underruns": self.sink.buffer.underruns,
            "playback_dropped_ms": self.sink.buffer.dropped_bytes // 32,
            "rtt_ms": None if stats.rtt_ms is None else round(stats.rtt_ms, 1),
            "response_latency_ms": response_latency_ms,
            "reconnects": counters["reconnects"],
            "agent_connects": stats.connects,
            "warm_link_ready": self.standby.ready if warm_link else None,
            "warm_presses": self.standby.taken,
            "bad_frames": stats.bad_frames,
            "starts_refused": starts_refused,
            "errors": counters["errors"],
            "store_ok": self.store.fault is None,
            "echo_delay_ms": echo.delay_ms,
            "echo_reply_erle_db": None if echo.grade.best_db is None else round(echo.grade.best_db, 1),
            "echo_poor_room": echo.grade.poor if echo.enabled else None,
            **self.sink.health().as_metrics(),
            **slot_metrics(self.inputs, self.share),
            **process_metrics(self.process),
        }
