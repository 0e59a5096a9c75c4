"""A hostile tester of the service lifecycle, second round: what systemd is told (STATUS=) after
the operator's privacy switch. Real `edge-agent run` processes, a real notify socket, a real
mosquitto, the agent simulator on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker, DaemonProcess, Observer, daemon_config, wait_for
from test_service import NotifySocket

from edge_agent.devtools.simulator import AgentSimulator


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.close()


@pytest.fixture
def observer(broker: Broker) -> Iterator[Observer]:
    obs = Observer(broker.port, "edge-agent/#")
    yield obs
    obs.close()


def _cmd(obs: Observer, action: str, cid: str) -> dict[str, Any]:
    mark = len(obs.messages)
    obs.client.publish("edge-agent/svc/cmd", json.dumps({"action": action, "id": cid}), qos=1)
    raw = obs.wait("edge-agent/svc/cmd/result", lambda p: json.loads(p).get("id") == cid, 20, since=mark)
    return json.loads(raw)  # type: ignore[no-any-return]


def _statuses(notify: NotifySocket) -> list[str]:
    return [m for _, m in notify.messages if m.startswith("STATUS=")]


@pytest.mark.parametrize("live", [False, True], ids=["idle", "mid-conversation"])
def test_a_forget_over_mqtt_leaves_no_wiped_session_id_in_systemctl_status(
    tmp_path: Path, sim: AgentSimulator, broker: Broker, observer: Observer, notify: NotifySocket, daemons: list[DaemonProcess], live: bool
) -> None:
    """`forget_sessions` (the operator's privacy switch) cleared the session id from the retained
    MQTT state, but the kiosk's last `STATUS=` line (`systemctl status edge-agent`, readable by
    every local user) kept naming the wiped session, `idle session <id>` (or, forgotten while the
    visitor talked, `listening session <id>` of a conversation now off the record), until the next
    state change: the systemd status must be told the same as the fleet."""
    mqtt = {"enabled": True, "host": "127.0.0.1", "port": broker.port, "discovery": False, "keepalive_s": 5}
    cfg = daemon_config(tmp_path, sim.url, silent=True, mqtt=mqtt)
    d = DaemonProcess(cfg, env={"NOTIFY_SOCKET": str(notify.path)})
    daemons.append(d)
    observer.wait("edge-agent/svc/availability", lambda p: p == b"online")
    time.sleep(0.3)  # the kiosk's subscription is in place once it has said online
    mark = d.press()
    d.wait_log("state: listening", after=mark)
    wait_for(lambda: sim.sessions, 20, "a session")
    sid = sim.sessions[0].session_id
    state = "listening" if live else "idle"
    if not live:
        mark = d.press()  # ends it: idle, the status naming the last session
        d.wait_log("state: idle", after=mark)
    wait_for(lambda: any(m.startswith(f"STATUS={state}") and sid in m for m in _statuses(notify)), 20, f"STATUS={state} naming {sid}")
    reply = _cmd(observer, "forget_sessions", "f1")
    assert reply["ok"] is True, reply
    # the retained MQTT state names no session any more ...
    observer.wait("edge-agent/svc/state", lambda p: json.loads(p)["state"] == state and sid not in p.decode())
    # ... and neither does what systemd shows as the unit's status
    wait_for(lambda: sid not in _statuses(notify)[-1], 10, f"a STATUS= line no longer naming the forgotten session {sid}; sent: {_statuses(notify)}")
    assert d.stop() == 0
