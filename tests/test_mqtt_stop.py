"""The kiosk's stop on a broker link that does not answer: its availability must not stay
`online` (a ghost kiosk in the fleet view and Home Assistant) when its `offline` never left.

Real mosquitto, real paho, the project's fault proxy between them."""

from __future__ import annotations

import time

from conftest import Broker, wait_for
from test_ha_discovery import retained

from edge_agent.core import config
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.fleet.status import StatusReporter


def test_a_stop_whose_offline_cannot_go_out_still_leaves_the_kiosk_offline(broker: Broker) -> None:
    """The broker's acknowledgements stop coming back (a one-way link) while the kiosk has more
    QoS 1 messages out than paho's in-flight window (20): paho holds the rest, `offline` among
    them, and the clean DISCONNECT that followed went out ahead of it. The broker then drops the
    last will on a clean disconnect, and `online` stayed retained for good. Now the kiosk's
    DISCONNECT asks the broker to send the will (MQTT 5 reason code 0x04), `offline`."""
    with FaultProxyThread("127.0.0.1", broker.port) as proxy:
        settings = config.from_dict({"device": {"id": "kiosk-9"}, "mqtt": {"enabled": True, "host": "127.0.0.1", "port": proxy.port}})
        reporter = StatusReporter(settings.mqtt, "kiosk-9", lambda cmd, reply: None)
        reporter.start()
        try:
            wait_for(reporter.connected.is_set, 10, "the reporter's connect")
            wait_for(lambda: retained(broker.port, "edge-agent/kiosk-9/#").get("edge-agent/kiosk-9/availability") == b"online", 10, "online retained")
            proxy.mode = "deaf"
            for i in range(40):  # more than paho's 20 in flight: the rest wait in paho
                reporter.event("test", {"i": i})
            time.sleep(0.3)
        finally:
            reporter.close()
        seen = wait_for(lambda: retained(broker.port, "edge-agent/kiosk-9/#").get("edge-agent/kiosk-9/availability") == b"offline" or None, 10, "offline retained")
        assert seen
