"""A hostile tester's second pass at the fleet: real kiosks on a real mosquitto (conftest's
broker), real paho, nothing of the unit under test mocked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import Broker, KioskThread, Observer, kiosk_settings, wait_for

from edge_agent.core import config
from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.fleet.status import StatusReporter

REPO = Path(__file__).resolve().parent.parent

FAST = {"ping_interval_s": 1.0, "connect_timeout_s": 2.0}


def _kiosk(tmp_path: Path, name: str, sim: AgentSimulator, port: int, agent_id: str = "agent-1", **mqtt: Any) -> Any:
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    return kiosk_settings(
        root,
        sim.url,
        agent={**FAST, "agent_id": agent_id},
        device={"id": name},
        session={"share": True},
        mqtt={"enabled": True, "host": "127.0.0.1", "port": port, "discovery": False, "keepalive_s": 5, **mqtt},
    )


def _converse(k: KioskThread, sim: AgentSimulator, obs: Observer, name: str, slot: str) -> Any:
    obs.wait(f"edge-agent/{name}/availability", lambda p: p == b"online")
    before = len(sim.sessions)
    obs.client.publish(f"edge-agent/{name}/cmd", json.dumps({"action": "press", "slot": slot}), qos=1)
    k.wait_state(c.LISTENING)
    session = wait_for(lambda: len(sim.sessions) > before and sim.sessions[-1], 20, "the session")
    obs.client.publish(f"edge-agent/{name}/cmd", json.dumps({"action": "end"}), qos=1)
    k.wait_state(c.IDLE)
    return session


def test_a_reload_that_changes_the_agent_keeps_the_fleet_sharing_its_sessions(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """SIGHUP takes a new `agent.agent_id` at once (README: `[agent]` at once when idle), and the
    kiosk's conversations go to the new agent; its session sharing was joined at start for the old
    agent only: the new agent's sessions were never published nor followed, so a person no longer
    continued at the next kiosk, with no word in the log, until a restart."""
    obs = Observer(broker.port)
    try:
        with KioskThread(_kiosk(tmp_path, "kiosk-a", sim, broker.port)) as a, KioskThread(_kiosk(tmp_path, "kiosk-b", sim, broker.port)) as b:
            obs.wait("edge-agent/kiosk-b/availability", lambda p: p == b"online")
            # the fleet's admin moves every kiosk to the new agent with `systemctl reload`
            for k, name in ((a, "kiosk-a"), (b, "kiosk-b")):
                new = _kiosk(tmp_path, name, sim, broker.port, agent_id="agent-2")
                assert k.on_loop(lambda k=k, new=new: k.kiosk.reloads.reload(new)) is True
                assert k.kiosk.settings.agent.agent_key == "agent-2"
            first = _converse(a, sim, obs, "kiosk-a", "visitor-7")
            pointer = json.loads(obs.wait("edge-agent/_sessions/agent-2/visitor-7", timeout_s=10))
            assert pointer["session_id"] == first.session_id
            wait_for(lambda: b.on_loop(lambda: b.kiosk.store.newest("agent-2", "visitor-7")), 20, "B to know the session")
            second = _converse(b, sim, obs, "kiosk-b", "visitor-7")
            assert second.continued_from == first.session_id
    finally:
        obs.close()


def test_fleet_prefix_with_a_slash_reads_the_kiosks_a_config_with_it_reaches(tmp_path: Path, broker: Broker) -> None:
    """`topic_prefix = "edge-agent/"` in a kiosk's config is the prefix `edge-agent` (the config
    strips the slashes), and `fleet --prefix edge-agent/` passed the same check; but the view
    subscribed to `edge-agent//+/...` as typed: an empty fleet and exit 0, which a monitoring
    script reads as "no kiosks"."""
    settings = config.from_dict({"device": {"id": "kiosk-7"}, "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "topic_prefix": "edge-agent/", "discovery": False}})
    assert settings.mqtt.topic_prefix == "edge-agent"
    reporter = StatusReporter(settings.mqtt, "kiosk-7", lambda cmd, reply: None)
    obs = Observer(broker.port)
    reporter.start()
    try:
        obs.wait("edge-agent/kiosk-7/availability", lambda p: p == b"online")
        for prefix in ("edge-agent/", "/edge-agent"):
            cmd = [sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--prefix", prefix, "--json", "--wait-s", "1"]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=30)
            assert out.returncode == 0, out.stderr
            snap = json.loads(out.stdout)
            assert [row["id"] for row in snap["kiosks"]] == ["kiosk-7"], (prefix, snap)
            assert snap["prefix"] == "edge-agent"
    finally:
        reporter.close()
        obs.close()


def test_a_renamed_kiosk_leaves_the_new_kiosk_that_took_its_old_id_alone(tmp_path: Path, broker: Broker) -> None:
    """kiosk-1 is renamed lobby-1 (its old device is cleared from Home Assistant: good), and a new
    Pi is installed as kiosk-1, as fleets replace hardware. The renamed kiosk remembered kiosk-1
    in its state dir and, at each of its reconnects, cleared the new kiosk-1's live discovery
    configs (they name `edge-agent-kiosk-1`): the new kiosk vanished from Home Assistant, and since
    finding configs there kept kiosk-1 in its ledger, again at every reconnect. README: "another
    kiosk's configs are never touched"."""
    from test_ha_discovery import retained, run_reporter, wait_retained

    mine, theirs = tmp_path / "renamed", tmp_path / "new-pi"
    old = run_reporter(broker.port, "kiosk-1", mine)
    wait_retained(broker.port, lambda r: len(r) == 18, "kiosk-1's 18 configs")
    old.close()
    renamed = run_reporter(broker.port, "lobby-1", mine)
    wait_retained(broker.port, lambda r: len(r) == 18 and all("lobby-1" in t for t in r), "only lobby-1's configs")
    renamed.close()
    new_pi = run_reporter(broker.port, "kiosk-1", theirs)  # another kiosk, online, under the freed id
    try:
        wait_retained(broker.port, lambda r: len(r) == 36, "lobby-1's and the new kiosk-1's configs")
        for _ in range(2):  # the renamed kiosk reconnects (a restart, a broker blip), twice
            again = run_reporter(broker.port, "lobby-1", mine)
            again.close()
        now = retained(broker.port)
        gone = sorted(t for t in (f"homeassistant/sensor/edge_agent_kiosk-1/{o}/config" for o in ("state", "rtt_ms")) if not now.get(t))
        assert not gone, f"the new kiosk-1's configs were cleared by the renamed kiosk: {gone}"
        assert len(now) == 36
    finally:
        new_pi.close()


def test_the_discovery_pass_sees_every_retained_config_before_it_publishes(tmp_path: Path, broker: Broker) -> None:
    """The clean-up pass ends at the UNSUBACK, taken to come after every retained message. At QoS 1
    it need not: mosquitto sends at most 20 (max_inflight_messages) unacknowledged, queues the rest
    and sends the UNSUBACK ahead of them. A kiosk that remembers two old ids, 36 stale configs on
    the broker, published its current configs and only then cleared the old ones that came late
    (Home Assistant gives a new entity whose id is still taken a `_2` suffix: the order is the point
    of the pass), and forgot an old id whose configs came late."""
    from test_ha_discovery import settings as mqtt_settings

    from edge_agent.fleet.discovery import discovery_messages
    from edge_agent.fleet.discovery_sync import LEDGER_FILE

    state = tmp_path / "state"
    state.mkdir()
    (state / LEDGER_FILE).write_text(json.dumps({"owners": [["homeassistant", "old-1"], ["homeassistant", "old-2"]]}))
    seeder = Observer(broker.port, "seed/none")
    wait_for(seeder.client.is_connected, 20, "the seeding client")
    s = mqtt_settings(host="127.0.0.1", port=broker.port)
    for old in ("old-1", "old-2"):
        for topic, payload in discovery_messages(s, old):
            seeder.client.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(5)
    seeder.close()
    ha = Observer(broker.port, "homeassistant/#")  # Home Assistant, watching its discovery topics
    try:
        ha.settle()
        mark = len(ha.messages)
        reporter = StatusReporter(s, "lobby-1", lambda cmd, reply: None, state_dir=state)
        reporter.start()
        try:
            wait_for(reporter.discovery.synced.is_set, 10, "the discovery pass")
            wait_for(lambda: len([m for m in ha.received(mark) if not m[1]]) == 36 and len([m for m in ha.received(mark) if m[1]]) == 18, 10, "36 clears and 18 configs")
            order = [bool(p) for _, p, _, _ in ha.received(mark)]
            assert order == [False] * 36 + [True] * 18, "a config was published before every stale one was cleared"
        finally:
            reporter.close()
    finally:
        ha.close()
