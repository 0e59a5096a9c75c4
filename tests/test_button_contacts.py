"""The button as contacts really behave (a helper's hostile review, 2026-12-06; each failed before its
fix): chatter at the press and the release, held down through a start, let go at the hold time.
Each case on gpiozero's own MockFactory
pins (MockPin does not implement bounce_time: every edge reaches the button, as on any factory
whose debounce is shorter than the switch's bounce, or with bounce_s = 0)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATA, KioskThread, kiosk_settings, mock_pins, read_wav, wait_for
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge_agent.core import conversation as c
from edge_agent.core.config_hardware import ButtonSettings
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.hardware.gpio import GpioButton


class _PressedPin(MockPWMPin):
    """A mock pin whose button is held down: a pull-up does not lift a pin shorted to ground
    (MockPin's pull drives the pin, which no real pull resistor does to a closed switch)."""

    pressed = False

    def _set_pull(self, value: str) -> None:
        if not type(self).pressed:
            super()._set_pull(value)
        else:
            self._pull = value
            self._change_state(False)


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    with mock_pins(_PressedPin) as factory:
        yield factory
    _PressedPin.pressed = False


def _button(mode: str = "toggle", hold_s: float = 0.3, bounce_s: float = 0.05) -> tuple[GpioButton, list[c.Event]]:
    events: list[c.Event] = []
    button = GpioButton(ButtonSettings(source="gpio", pin=17, pull_up=True, bounce_s=bounce_s, hold_s=hold_s, mode=mode))
    button.start(events.append, lambda: None)
    return button, events


def test_a_bounce_at_the_release_of_a_long_press_is_no_short_press(pins: MockFactory) -> None:
    """A long press starts fresh; the contacts chattering as it is let go (release, make,
    release within a millisecond) sent a short press too, which ended the fresh conversation."""
    button, events = _button()
    pin = pins.pin(17)
    pin.drive_low()
    wait_for(lambda: events, 10, "the long press")
    pin.drive_high()
    pin.drive_low()
    pin.drive_high()
    time.sleep(0.15)
    assert events == [c.Press(long=True)]
    button.close()


def test_a_bounce_at_the_release_of_a_tap_is_one_press(pins: MockFactory) -> None:
    button, events = _button()
    pin = pins.pin(17)
    pin.drive_low()
    time.sleep(0.1)
    pin.drive_high()
    pin.drive_low()
    pin.drive_high()
    time.sleep(0.15)
    assert events == [c.Press(long=False)]
    button.close()


def test_a_bounce_at_the_press_is_one_press(pins: MockFactory) -> None:
    button, events = _button()
    pin = pins.pin(17)
    pin.drive_low()
    pin.drive_high()
    pin.drive_low()
    time.sleep(0.1)
    pin.drive_high()
    time.sleep(0.15)
    assert events == [c.Press(long=False)]
    button.close()


def test_a_button_held_down_at_start_sends_no_short_press_when_let_go(pins: MockFactory) -> None:
    """A button held (or stuck) down while the daemon starts, let go minutes later, was a short
    press: it continued the last visitor's conversation for whoever stands there."""
    _PressedPin.pressed = True
    button, events = _button(hold_s=0.2)
    pin = pins.pin(17)
    assert pin.state == 0 and button._button.is_pressed  # type: ignore[attr-defined]
    time.sleep(0.5)  # held well past hold_s
    pin.drive_high()
    time.sleep(0.15)
    assert events == []
    # the button works as before afterwards
    pin.drive_low()
    time.sleep(0.08)
    pin.drive_high()
    wait_for(lambda: events, 10, "the next tap")
    assert events == [c.Press(long=False)]
    button.close()


def test_a_release_at_the_hold_time_is_one_press_not_two(pins: MockFactory) -> None:
    """Let go just as the hold time passes, gpiozero's hold thread and its edge callback race:
    both a short and a long press went out (the one started the conversation, the other ended
    it). Tried up to 120 times; exactly one press each time."""
    button, events = _button(hold_s=0.02, bounce_s=0.0)
    pin = pins.pin(17)
    doubles = []
    for _ in range(120):
        before = len(events)
        pin.drive_low()
        time.sleep(0.02)
        pin.drive_high()
        time.sleep(0.03)
        if len(events) - before != 1:
            doubles.append(events[before:])
            break
    button.close()
    assert doubles == []


def test_a_bouncing_tap_starts_a_conversation_that_stays(pins: MockFactory, tmp_path: Path, sim: AgentSimulator) -> None:
    """End to end: one tap whose contacts chatter at the release must leave the kiosk talking
    (it started the conversation and ended it again at once)."""
    settings = kiosk_settings(tmp_path, sim.url, read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3], button={"source": "gpio", "pin": 17, "hold_s": 1.0, "bounce_s": 0.05}, led={"pin": 27})
    button = pins.pin(17)
    with KioskThread(settings, button=None) as k:
        button.drive_low()
        time.sleep(0.1)
        button.drive_high()
        button.drive_low()
        button.drive_high()
        k.wait_state(c.LISTENING)
        time.sleep(0.5)
        assert k.state == c.LISTENING
    assert k.result == 0


def test_push_to_talk_hung_up_by_a_silent_hold_stays_hung_up_through_a_release_bounce(pins: MockFactory, tmp_path: Path, sim: AgentSimulator) -> None:
    """Push-to-talk: a hold of hold_s in which nobody spoke hangs up; the contacts chattering as
    it was let go pressed again, which started a new conversation (ENDING takes a press)."""
    settings = kiosk_settings(
        tmp_path, sim.url, read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3], button={"source": "gpio", "pin": 17, "hold_s": 0.5, "bounce_s": 0.05, "mode": "hold"}, led={"pin": 27}
    )
    button = pins.pin(17)
    with KioskThread(settings, button=None) as k:
        button.drive_low()
        k.wait_state(c.LISTENING)
        time.sleep(0.7)  # silent, past hold_s
        button.drive_high()
        button.drive_low()
        button.drive_high()
        time.sleep(2.0)
        assert (k.state, len(sim.sessions)) == (c.IDLE, 1)
    assert k.result == 0


def test_a_button_held_through_a_restart_does_not_continue_the_last_visitor(pins: MockFactory, tmp_path: Path, sim: AgentSimulator) -> None:
    """End to end: the kiosk restarted while the button was held down (a visitor leaning on it, a
    stuck key); letting it go started a conversation continuing the last visitor's session."""
    settings = kiosk_settings(tmp_path, sim.url, read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3], button={"source": "gpio", "pin": 17, "hold_s": 1.0, "bounce_s": 0.05}, led={"pin": 27})
    button = pins.pin(17)
    with KioskThread(settings, button=None) as k:  # a first visitor's conversation
        button.drive_low()
        time.sleep(0.1)
        button.drive_high()
        k.wait_state(c.LISTENING)
        button.drive_low()
        time.sleep(0.1)
        button.drive_high()
        k.wait_state(c.IDLE)
    pins.reset()
    _PressedPin.pressed = True  # held down across the restart
    with KioskThread(settings, button=None) as k:
        assert pins.pin(17).state == 0
        time.sleep(1.5)  # past hold_s
        button = pins.pin(17)
        button.drive_high()
        time.sleep(1.5)
        started = [(s.continued_from == sim.sessions[0].session_id) for s in sim.sessions[1:]]
        assert (k.state, started) == (c.IDLE, []), f"a conversation started; continuing the last visitor's: {started}"
    assert k.result == 0
