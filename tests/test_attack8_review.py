"""A helper's review (attack8, 2026-12-07) of the restart's own pointers and the forget fixes.

1. A kiosk's own pointer naming a forgotten session left on the broker (paho sent it from before
   the kiosk heard the forget, after the forget's clearing; the kiosk restarted before it heard the
   echo, or its correction was held back by the limit and went with the restart) stayed retained
   for good: the restarted kiosk hears, at its connect, its own pointer then the forget naming it,
   and only drops the pointer (its store no longer holds the session: nothing of its own to
   defend, nothing deleted). A kiosk installed later files the forgotten person's session from it
   (the fleet model's seed 267 of 200 steps, `kiosk_restarts=True, restarts=False`, violation (c))."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sharefuzz as sf
from conftest import Broker, KioskThread, Observer, kiosk_settings, wait_for
from test_share import FAST, _kiosk

from edge_agent.core.store import SessionStore
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.fleet import share as share_module
from edge_agent.fleet.pointer import Forgotten, Pointer


def test_a_restarted_kiosk_clears_its_own_pointer_of_a_forgotten_session(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """The broker retains kiosk-a's pointer of s41 and, before it (the pointer went out after), a
    forget naming s41. kiosk-a starts (restarted, its store holds nothing of the slot): the pointer
    of the forgotten session is cleared, as a kiosk that heard the echo live clears it."""
    topic = "edge-agent/_sessions/agent-1/visitor-1"
    now = time.time()
    obs = Observer(broker.port)
    try:
        obs.settle()
        obs.client.publish(f"{topic}/forgotten", Forgotten(now - 5, "kiosk-b", ("s41",)).to_wire(), qos=1, retain=True).wait_for_publish(5)
        obs.client.publish(topic, Pointer("s41", now - 10, None, None, "kiosk-a").to_wire(), qos=1, retain=True).wait_for_publish(5)
        obs.wait(topic)
        since = len(obs.messages)
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port):
            obs.wait("edge-agent/kiosk-a/availability", lambda p: p == b"online", since=since)
            wait_for(lambda: b"" in obs.find(topic, since), 10, "the forgotten session's pointer cleared")
        late = Observer(broker.port)  # a kiosk installed later
        try:
            late.settle()
            assert not [p for p in late.find(topic) if p], "the broker still retains the forgotten session's pointer"
        finally:
            late.client.loop_stop()
            late.client.disconnect()
    finally:
        obs.close()


def test_fleet_model_seed_267_with_kiosk_restarts_keeps_no_forgotten_pointer_retained() -> None:
    fleet = sf.run(267, 200, kiosk_restarts=True, restarts=False)
    try:
        assert not [v for v in fleet.violations if v.startswith("(c)")], fleet.violations
    finally:
        fleet.close()


def test_a_restart_does_not_publish_again_a_resumed_sessions_pointer_the_broker_holds(tmp_path: Path, sim: AgentSimulator, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """kiosk-a resumed x here (the platform kept its id: x continuing itself), so its live pointer
    named no predecessor, and the broker retains it. At a restart the pointer rebuilt from the store
    named what x first continued (w): it differed from the broker's copy of the very same pointer and
    was published again as a correction, one per resumed slot at every restart (a kiosk of thousands
    of badges spent the corrections limit, one a second, for an hour on nothing)."""
    monkeypatch.setattr(share_module, "RESEND_AFTER_S", 0.5)
    topic = "edge-agent/_sessions/agent-1/visitor-1"
    now = time.time()
    settings = kiosk_settings(
        tmp_path,
        sim.url,
        agent=FAST,
        device={"id": "kiosk-a"},
        session={"share": True},
        mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port, "discovery": False, "keepalive_s": 5},
    )
    store = SessionStore(Path(settings.device.state_dir))
    store.record_start("w", "agent-1", "visitor-1", None, now - 100)
    store.record_start("x", "agent-1", "visitor-1", "w", now - 60)
    store.record_end("x", "done", now - 50)
    store.record_start("x", "agent-1", "visitor-1", "x", now - 20)  # resumed here, its id kept
    store.record_end("x", "done", now - 10)
    store.close()
    obs = Observer(broker.port)
    try:
        obs.settle()
        live = Pointer("x", now - 20, now - 10, None, "kiosk-a")  # as `announce` published it
        obs.client.publish(topic, live.to_wire(), qos=1, retain=True).wait_for_publish(5)
        obs.wait(topic)
        since = len(obs.messages)
        with KioskThread(settings) as k:
            share = k.kiosk.share
            assert share is not None
            wait_for(lambda: share.counts["received"] >= 1, 20, "the retained pointer heard")
            time.sleep(1.5)  # past RESEND_AFTER_S
            assert obs.find(topic, since) == [], "the broker's copy of our own pointer was published again"
            assert share.counts["corrected"] == 0
    finally:
        obs.close()
