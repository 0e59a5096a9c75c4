"""Slots under attack (a helper's review, 2026-12-06; each test failed before its fix): several
conversations kept apart on one kiosk, driven through the real daemon with two `[[buttons]]` on
gpiozero's MockFactory pins and the loopback agent simulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import KioskThread, kiosk_settings, mock_pins, wait_for
from gpiozero.pins.mock import MockFactory

from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import AgentSimulator


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    with mock_pins() as factory:
        yield factory


def _tap(pins: MockFactory, pin: int) -> None:
    pins.pin(pin).drive_low()
    time.sleep(0.1)
    pins.pin(pin).drive_high()


@pytest.mark.parametrize("step_s", [-3600.0, 3600.0])
def test_a_clock_step_loses_no_slots_conversation_the_kiosk_held_itself(
    tmp_path: Path, sim: AgentSimulator, pins: MockFactory, monkeypatch: pytest.MonkeyPatch, step_s: float
) -> None:
    """Two buttons (two languages, or two badge holders): A talked, then B, then the time server
    stepped the clock (by an hour either way: a Pi with no battery clock, a bad server). A's press
    started fresh: the running kiosk remembered on the monotonic clock only the last conversation
    (B's), and A's stored time was an hour in the future (of no known age) or an hour older than
    `resume_within_s`. The README: the conversation the running kiosk held itself is aged on the
    monotonic clock, which no clock step moves; that held for one slot only."""
    true_time = time.time
    monkeypatch.setattr(time, "time", lambda: true_time() - step_s)  # the clock before the step
    buttons = [{"pin": 5, "slot": "a"}, {"pin": 6, "slot": "b"}]
    settings = kiosk_settings(tmp_path, sim.url, button={"bounce_s": 0.01}, buttons=buttons, session={"resume_within_s": 1800})
    with KioskThread(settings) as k:
        _tap(pins, 5)
        wait_for(lambda: len(sim.sessions) == 1 and k.state == c.LISTENING, 10, "A's conversation")
        _tap(pins, 6)  # B mid-conversation: switched
        wait_for(lambda: len(sim.sessions) == 2 and k.state == c.LISTENING, 10, "B's conversation")
        _tap(pins, 6)
        k.wait_state(c.IDLE, 10)
        monkeypatch.setattr(time, "time", true_time)  # NTP steps the clock right
        _tap(pins, 5)
        wait_for(lambda: len(sim.sessions) == 3 and k.state == c.LISTENING, 10, "A again")
        assert sim.sessions[2].initiate["data"].get("session_continuation") == {"session_id": sim.sessions[0].session_id}
        _tap(pins, 6)  # and B's too
        wait_for(lambda: len(sim.sessions) == 4 and k.state == c.LISTENING, 10, "B again")
        assert sim.sessions[3].initiate["data"].get("session_continuation") == {"session_id": sim.sessions[1].session_id}


OPT_OUT = {"privacy_settings": {"opt_out_data_collection": True}}


@pytest.mark.parametrize("warm", [False, True])
def test_a_button_for_another_agent_is_not_sent_the_main_agents_overrides(tmp_path: Path, sim: AgentSimulator, pins: MockFactory, warm: bool) -> None:
    """`[[buttons]]` one per language: the main agent English, with `[agent.config]` overriding its
    prompt and language (README of the config: "overrides the stored agent per session"), and a
    button for the French agent. The French button's `initiate` carried the English agent's
    `agent_config` with the French agent id: the French agent spoke English with the English
    prompt. Another agent's conversation gets no overrides of the configured one; the kiosk's
    own `[agent.metadata]` (where it stands) still goes with it, and so does the kiosk's privacy
    choice (`privacy_settings`: Data Opt-Out), which is the kiosk's, not the agent's."""
    buttons = [{"pin": 6, "slot": "french", "agent_id": "agent-fr"}]
    settings = kiosk_settings(
        tmp_path, sim.url, button={"bounce_s": 0.01}, buttons=buttons,
        agent={"warm_link": warm, "config": {"language": "en", "prompt": "You are the English guide.", **OPT_OUT}, "metadata": {"site": "lobby"}},
    )
    with KioskThread(settings) as k:
        if warm:
            wait_for(lambda: k.kiosk.standby.ready, 10, "the standby link")
        _tap(pins, 6)
        wait_for(lambda: len(sim.sessions) == 1 and k.state == c.LISTENING, 10, "the French conversation")
        data = sim.sessions[0].initiate["data"]
        assert data["agent"] == {"agent_id": "agent-fr", "agent_config": OPT_OUT} and data["metadata"] == {"site": "lobby"}
        _tap(pins, 6)
        k.wait_state(c.IDLE, 10)
        if warm:
            wait_for(lambda: k.kiosk.standby.ready, 10, "the standby link")
        k.press()  # the main button: the configured agent, with its overrides
        wait_for(lambda: len(sim.sessions) == 2 and k.state == c.LISTENING, 10, "the English conversation")
        assert sim.sessions[1].initiate["data"]["agent"] == {"agent_id": "agent-1", "agent_config": {"language": "en", "prompt": "You are the English guide.", **OPT_OUT}}
