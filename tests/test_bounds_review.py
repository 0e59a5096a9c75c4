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


def test_earcon_windows_stay_bounded_while_no_mic_frame_comes() -> None:
    """The canceller lets earcon windows go only as mic frames pass them: a dead mic for days
    while presses from the fleet still play earcons grew the list by one per earcon, for good.
    The newest window still marks its frames as the kiosk's own sound."""
    from edge_agent.audio.echo import EchoCanceller, make_backend

    canceller = EchoCanceller(make_backend(True))
    for i in range(5000):
        canceller.play_cue(10.0 * i, 10.0 * i + 0.3)
    assert len(canceller._cues) <= 100  # CUES_KEPT: a few minutes of presses
    canceller.process(bytes(320), 10.0 * 4999 + 0.1)
    assert canceller.in_cue
