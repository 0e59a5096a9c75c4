"""A hostile review of the thread boundaries: what paho's thread (and its timers) and the event
loop both touch. Real mosquitto, real paho; a pause injected at the window in a subclass."""

from __future__ import annotations

import json
import threading
from typing import Any

from conftest import Broker, wait_for
from test_ha_discovery import retained

from edge_agent.core import config
from edge_agent.fleet.status import StatusReporter

STATE = "edge-agent/kiosk-9/state"


class _PausedCatchUp(StatusReporter):
    """Holds the first state publish made off the test's thread (paho's, at the connect: the
    catch-up of `_say_online`) until the test has changed the state, or for at most a second."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.test_thread = threading.get_ident()
        self.paused = threading.Event()
        self.go = threading.Event()

    def _publish(self, leaf: str, payload: dict[str, Any], retain: bool = False) -> bool:
        if leaf == "state" and threading.get_ident() != self.test_thread and not self.paused.is_set():
            self.paused.set()
            self.go.wait(1.0)
        return super()._publish(leaf, payload, retain)


def _retained_state(port: int) -> str | None:
    payload = retained(port, "edge-agent/kiosk-9/#").get(STATE)
    return None if not payload else str(json.loads(payload)["state"])


def test_the_connects_catch_up_does_not_retain_a_state_older_than_the_loops(broker: Broker) -> None:
    """The connect's catch-up (paho's thread) copied the state, let go of the lock, then published;
    a conversation ending in between published `idle` from the loop, and the older `listening`
    went out after it: the broker retained `listening` for an idle kiosk (the fleet and Home
    Assistant showed it busy until its next conversation)."""
    settings = config.from_dict({"device": {"id": "kiosk-9"}, "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "discovery": False}})
    reporter = _PausedCatchUp(settings.mqtt, "kiosk-9", lambda cmd, reply: None)
    reporter.state("listening", "s-1", None)  # offline: kept for the connect
    reporter.start()
    try:
        wait_for(reporter.paused.is_set, 10, "the connect's catch-up")
        reporter.state("idle", None, None)  # the loop: the conversation ended
        reporter.go.set()
        wait_for(lambda: reporter._states_out and all(i.is_published() for i in reporter._states_out), 5, "both states acknowledged")
        assert _retained_state(broker.port) == "idle"
    finally:
        reporter.close()

