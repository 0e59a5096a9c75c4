"""gpiozero button and LED on gpiozero's own MockFactory pins, with real hold timing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATA, KioskThread, kiosk_settings, read_wav, wait_for
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge_agent.core import conversation as c
from edge_agent.core.config_hardware import ButtonSettings, LedSettings
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.hardware.gpio import GpioButton, StatusLed


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    factory = MockFactory(pin_class=MockPWMPin)
    old = Device.pin_factory
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = old


def _button(mode: str = "toggle", hold_s: float = 0.3) -> tuple[GpioButton, list[c.Event]]:
    events: list[c.Event] = []
    button = GpioButton(ButtonSettings(source="gpio", pin=17, pull_up=True, bounce_s=0.0, hold_s=hold_s, mode=mode))
    button.start(events.append, lambda: None)
    return button, events


def test_short_press_is_reported_on_release(pins: MockFactory) -> None:
    button, events = _button()
    pin = pins.pin(17)
    pin.drive_low()
    time.sleep(0.05)
    assert events == []  # not yet: it might become a long press
    pin.drive_high()
    wait_for(lambda: events, 2, "a press event")
    assert events == [c.Press(long=False)]
    button.close()


def test_long_press_is_reported_when_the_hold_time_passes(pins: MockFactory) -> None:
    button, events = _button(hold_s=0.2)
    pin = pins.pin(17)
    pin.drive_low()
    wait_for(lambda: events, 2, "a long press event")
    assert events == [c.Press(long=True)]
    pin.drive_high()
    time.sleep(0.1)
    assert events == [c.Press(long=True)]  # the release adds no short press
    button.close()


def test_hold_mode_is_push_to_talk(pins: MockFactory) -> None:
    button, events = _button(mode="hold", hold_s=0.2)
    pin = pins.pin(17)
    pin.drive_low()
    wait_for(lambda: events, 2)
    time.sleep(0.35)
    pin.drive_high()
    wait_for(lambda: len(events) >= 2, 2)
    assert events == [c.Talk(True), c.Talk(False, long=True)]
    pin.drive_low()
    time.sleep(0.05)
    pin.drive_high()
    wait_for(lambda: len(events) >= 4, 2)
    assert events[2:] == [c.Talk(True), c.Talk(False, long=False)]
    button.close()


def test_an_exception_in_the_handler_does_not_kill_the_button(pins: MockFactory) -> None:
    calls: list[c.Event] = []

    def bad_emit(ev: c.Event) -> None:
        calls.append(ev)
        raise RuntimeError("boom")

    button = GpioButton(ButtonSettings("gpio", 17, True, 0.0, 0.3, "toggle"))
    button.start(bad_emit, lambda: None)
    pin = pins.pin(17)
    for _ in range(2):
        pin.drive_low()
        time.sleep(0.03)
        pin.drive_high()
        time.sleep(0.05)
    wait_for(lambda: len(calls) == 2, 2, "both presses despite the exception")
    button.close()


def _toggles(pin: object, seconds: float) -> int:
    start = len(pin.states)  # type: ignore[attr-defined]
    time.sleep(seconds)
    return len(pin.states) - start  # type: ignore[attr-defined]


def test_led_shows_each_state(pins: MockFactory) -> None:
    led = StatusLed(LedSettings(pin=27, red=None, green=None, blue=None))
    pin = pins.pin(27)
    led.show("listening")
    time.sleep(0.05)
    assert pin.state == 1
    led.show("idle")
    time.sleep(0.05)
    assert pin.state == 0
    led.show("connecting")
    slow = _toggles(pin, 0.6)
    led.show("error")
    fast = _toggles(pin, 0.6)
    assert slow >= 2 and fast > 2 * slow
    led.show("speaking")
    time.sleep(0.3)
    levels = {round(s.state, 2) for s in pin.states[-10:]}
    assert any(0 < v < 1 for v in levels), levels  # a pulse passes through in-between levels
    led.close()


def test_led_flashes_briefly_when_idle_with_an_unusable_store(pins: MockFactory) -> None:
    led = StatusLed(LedSettings(pin=27, red=None, green=None, blue=None))
    pin = pins.pin(27)
    start = len(pin.states)
    led.show("store_fault")
    time.sleep(2.4)
    led.close()
    states = pin.states[start:]
    ons = [(a.timestamp, b.timestamp) for a, b in zip(states, states[1:]) if a.state == 1 and b.state == 0]
    assert ons and all(end - begin < 0.5 for begin, end in ons), states  # a flash, not the connecting blink
    assert len(ons) <= 2


def test_rgb_led_colours(pins: MockFactory) -> None:
    led = StatusLed(LedSettings(pin=None, red=22, green=23, blue=24))
    led.show("listening")
    time.sleep(0.05)
    assert (pins.pin(22).state, pins.pin(23).state, pins.pin(24).state) == (0, 1, 0)
    led.show("error")
    time.sleep(0.3)
    assert any(s.state == 1 for s in pins.pin(22).states[-6:]) and pins.pin(23).state == 0
    led.close()


def test_the_kiosk_runs_on_a_gpio_button_and_led(pins: MockFactory, tmp_path: Path, sim: AgentSimulator) -> None:
    settings = kiosk_settings(
        tmp_path, sim.url, read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3], button={"source": "gpio", "pin": 17, "hold_s": 0.3, "bounce_s": 0.0}, led={"pin": 27}
    )
    button, led = pins.pin(17), pins.pin(27)

    def tap(hold_s: float = 0.05) -> None:
        button.drive_low()
        time.sleep(hold_s)
        button.drive_high()

    with KioskThread(settings, button=None) as k:
        tap()
        k.wait_state(c.LISTENING)
        time.sleep(0.05)
        assert led.state == 1
        first = sim.sessions[0]
        tap()
        k.wait_state(c.IDLE)
        time.sleep(0.05)
        assert led.state == 0
        tap(0.5)  # long press: a fresh session
        wait_for(lambda: len(sim.sessions) == 2 and k.state == c.LISTENING, 5)
        assert "session_continuation" not in sim.sessions[1].initiate["data"]
        tap()
        k.wait_state(c.IDLE)
        tap()
        wait_for(lambda: len(sim.sessions) == 3, 5)
        assert sim.sessions[2].initiate["data"]["session_continuation"]["session_id"] == sim.sessions[1].session_id != first.session_id
    assert k.result == 0
