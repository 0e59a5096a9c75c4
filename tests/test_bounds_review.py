"""Resource bounds over a kiosk's months of uptime: what one conversation leaves behind must not
add up (helper review "bounds")."""

from __future__ import annotations

from pathlib import Path

from conftest import Broker, KioskThread, kiosk_settings, wait_for

from edge_agent.devtools.simulator import AgentSimulator

CONVERSATIONS = 30


def test_shared_pointers_remember_one_session_per_slot_not_one_per_conversation(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """With `session.share`, every conversation of the kiosk's one button replaced the slot's
    published pointer but left its session id in the by-id map for good: one entry per visitor,
    never pruned (the bound only counts slots), so a kiosk up for months grew without end."""
    settings = kiosk_settings(
        tmp_path,
        sim.url,
        mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port},
        session={"share": True, "start_burst": 1000, "starts_per_minute": 600.0},
    )
    with KioskThread(settings) as k:
        share = k.kiosk.share
        assert share is not None
        for _ in range(CONVERSATIONS):
            k.press()
            wait_for(lambda: k.state == "listening", 10, "a conversation")
            k.press()
            k.wait_state("idle", 10)
        mine = k.on_loop(lambda: (len(share._mine), len(share._mine._slot_of)))
    assert len(sim.sessions) >= CONVERSATIONS
    assert mine == (1, 1), f"(slots, session ids) remembered after {CONVERSATIONS} conversations of one slot: {mine}"
