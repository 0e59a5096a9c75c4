"""gpiozero button and LED on gpiozero's own MockFactory pins, with real hold timing."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import DATA, KioskThread, kiosk_settings, mock_pins, read_wav, wait_for
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from edge_agent.core import config
from edge_agent.core import conversation as c
from edge_agent.core.config_hardware import ButtonSettings, LedSettings
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.errors import EdgeAgentError
from edge_agent.hardware.gpio import GpioButton, StatusLed
from edge_agent.service.doctor import Doctor
from edge_agent.service.slots import slot_inputs


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    with mock_pins() as factory:
        yield factory


def _button(mode: str = "toggle", hold_s: float = 1.0) -> tuple[GpioButton, list[c.Event]]:
    """A button on pin 17. Taps in these tests last 0.05 s: holds are long enough that a loaded
    machine (a late wake-up of the test thread) does not turn a tap into a long press."""
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
    wait_for(lambda: events, 10, "a press event")
    assert events == [c.Press(long=False)]
    button.close()


def test_long_press_is_reported_when_the_hold_time_passes(pins: MockFactory) -> None:
    button, events = _button(hold_s=0.2)
    pin = pins.pin(17)
    pin.drive_low()
    wait_for(lambda: events, 10, "a long press event")
    assert events == [c.Press(long=True)]
    pin.drive_high()
    time.sleep(0.1)
    assert events == [c.Press(long=True)]  # the release adds no short press
    button.close()


def test_hold_mode_is_push_to_talk(pins: MockFactory) -> None:
    button, events = _button(mode="hold", hold_s=0.5)
    pin = pins.pin(17)
    pin.drive_low()
    wait_for(lambda: events, 10)
    time.sleep(0.7)
    pin.drive_high()
    wait_for(lambda: len(events) >= 2, 10)
    assert events == [c.Talk(True), c.Talk(False, long=True)]
    pin.drive_low()
    time.sleep(0.05)
    pin.drive_high()
    wait_for(lambda: len(events) >= 4, 10)
    assert events[2:] == [c.Talk(True), c.Talk(False, long=False)]
    button.close()


def test_a_slot_buttons_release_names_its_slot(pins: MockFactory) -> None:
    """A `[[buttons]]` push-to-talk button's release carries its slot and agent, as its hold
    does: the conversation tells it from the button of the slot that is talking."""
    from edge_agent.core.slots import Target

    events: list[c.Event] = []
    button = GpioButton(ButtonSettings(source="gpio", pin=17, pull_up=True, bounce_s=0.0, hold_s=0.5, mode="hold"), Target("de", "agent-de"))
    button.start(events.append, lambda: None)
    pin = pins.pin(17)
    pin.drive_low()
    wait_for(lambda: events, 10)
    pin.drive_high()
    wait_for(lambda: len(events) >= 2, 10)
    assert events == [c.Talk(True, slot="de", agent_id="agent-de"), c.Talk(False, slot="de", agent_id="agent-de")]
    button.close()


def test_an_exception_in_the_handler_does_not_kill_the_button(pins: MockFactory) -> None:
    calls: list[c.Event] = []

    def bad_emit(ev: c.Event) -> None:
        calls.append(ev)
        raise RuntimeError("boom")

    button = GpioButton(ButtonSettings("gpio", 17, True, 0.0, 1.0, "toggle"))
    button.start(bad_emit, lambda: None)
    pin = pins.pin(17)
    for _ in range(2):
        pin.drive_low()
        time.sleep(0.03)
        pin.drive_high()
        time.sleep(0.05)
    wait_for(lambda: len(calls) == 2, 10, "both presses despite the exception")
    button.close()


def _durations(pin: object, seconds: float) -> list[float]:
    """How long each state lasted that began and ended in the next `seconds` (a mock pin stamps
    each change with the time since the one before). Blink rates compared by these, not by
    toggles counted in a window, stay apart when a loaded machine delays the blink thread."""
    start = len(pin.states)  # type: ignore[attr-defined]
    time.sleep(seconds)
    return [s.timestamp for s in pin.states[start + 1 :]]  # type: ignore[attr-defined]


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


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
    slow = _durations(pin, 0.8)
    led.show("error")
    fast = _durations(pin, 0.8)
    assert slow and len(fast) >= 3, (slow, fast)  # both blink
    assert _median(slow) < 0.6 and _median(fast) < _median(slow) / 2, (slow, fast)  # 0.25 s and 0.08 s
    led.show("speaking")
    # a pulse passes through in-between levels
    wait_for(lambda: any(0 < round(s.state, 2) < 1 for s in pin.states[-10:]), 10, "in-between levels of a pulse")
    led.close()


def test_led_flashes_briefly_when_idle_with_an_unusable_store(pins: MockFactory) -> None:
    led = StatusLed(LedSettings(pin=27, red=None, green=None, blue=None))
    pin = pins.pin(27)
    start = len(pin.states)
    led.show("store_fault")
    time.sleep(2.4)
    led.close()
    states = pin.states[start:]
    ons = [b.timestamp for a, b in pairwise(states) if a.state == 1 and b.state == 0]  # how long each on lasted
    assert ons and all(on_s < 0.5 for on_s in ons), states  # a flash, not the connecting blink
    assert len(ons) <= 2


def test_rgb_led_colours(pins: MockFactory) -> None:
    led = StatusLed(LedSettings(pin=None, red=22, green=23, blue=24))
    led.show("listening")
    time.sleep(0.05)
    assert (pins.pin(22).state, pins.pin(23).state, pins.pin(24).state) == (0, 1, 0)
    led.show("error")
    wait_for(lambda: any(s.state == 1 for s in pins.pin(22).states[-6:]), 10, "red blinking")
    assert pins.pin(23).state == 0
    led.close()


def test_the_kiosk_runs_on_a_gpio_button_and_led(pins: MockFactory, tmp_path: Path, sim: AgentSimulator) -> None:
    settings = kiosk_settings(
        tmp_path, sim.url, read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 3], button={"source": "gpio", "pin": 17, "hold_s": 1.0, "bounce_s": 0.0}, led={"pin": 27}
    )
    button, led = pins.pin(17), pins.pin(27)

    def tap(hold_s: float = 0.05) -> None:
        button.drive_low()
        time.sleep(hold_s)
        button.drive_high()

    with KioskThread(settings, button=None) as k:
        tap()
        k.wait_state(c.LISTENING)
        wait_for(lambda: led.state == 1, 10, "the LED on")
        first = sim.sessions[0]
        tap()
        k.wait_state(c.IDLE)
        wait_for(lambda: led.state == 0, 10, "the LED off")
        tap(1.3)  # long press: a fresh session
        wait_for(lambda: len(sim.sessions) == 2 and k.state == c.LISTENING, 20)
        assert "session_continuation" not in sim.sessions[1].initiate["data"]
        tap()
        k.wait_state(c.IDLE)
        tap()
        wait_for(lambda: len(sim.sessions) == 3, 20)
        assert sim.sessions[2].initiate["data"]["session_continuation"]["session_id"] == sim.sessions[1].session_id != first.session_id
    assert k.result == 0


def test_a_buttons_entry_that_cannot_open_its_pin_names_its_own_key(pins: MockFactory) -> None:
    """Another program holds pin 5: the `[[buttons]]` entry's error said `button.pin 5` (the
    main button is on 17)."""
    from gpiozero import LED

    holder = LED(5)
    (extra,) = slot_inputs(config.from_dict({"buttons": [{"pin": 5, "slot": "en"}]}))
    with pytest.raises(EdgeAgentError, match=r"^buttons\[0\]\.pin 5: cannot use GPIO \(pin GPIO5 is already in use"):
        extra.start(lambda ev: None, lambda: None)
    holder.close()


def test_an_led_that_cannot_open_names_its_keys_and_a_reason() -> None:
    """On a pin factory without PWM an RGB LED failed with `led: cannot use GPIO ()`: gpiozero's
    PinPWMUnsupported has no message."""
    old = Device.pin_factory
    Device.pin_factory = MockFactory()  # MockPin: no PWM
    try:
        with pytest.raises(EdgeAgentError) as raised:
            StatusLed(LedSettings(pin=None, red=22, green=23, blue=24))
        assert str(raised.value) == "led.red, led.green, led.blue 22, 23, 24: cannot use GPIO (PinPWMUnsupported)"
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = old


def test_doctor_checks_every_buttons_entry(pins: MockFactory, tmp_path: Path) -> None:
    """The doctor opened the main button and the LED, never a `[[buttons]]` pin."""
    from gpiozero import LED

    settings = kiosk_settings(tmp_path, "ws://127.0.0.1:9/millis", button={"source": "gpio"}, buttons=[{"pin": 5}, {"pin": 6}])
    holder = LED(6)  # another program on the second entry's pin
    lines: list[str] = []
    Doctor(settings, meter_s=0.2, out=lines.append, service_active=lambda: False).run()
    holder.close()
    assert any(line.startswith("PASS  button on GPIO 17") for line in lines), lines
    assert any(line.startswith("PASS  button buttons[0] on GPIO 5") for line in lines), lines
    assert any(line.startswith("FAIL  button buttons[1] on GPIO 6: buttons[1].pin 6: cannot use GPIO") for line in lines), lines


def test_a_keyboard_button_whose_stdin_closes_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """`button.source = "keyboard"` with stdin at EOF (a service's /dev/null) idled without a word:
    the kiosk looked up and nobody could start a conversation."""
    import io

    from edge_agent.hardware.button import KeyboardButton

    got: list[object] = []
    button = KeyboardButton(io.StringIO("p\n"))
    with caplog.at_level(logging.WARNING, logger="edge_agent.hardware.button"):
        button.start(got.append, lambda: None)
        assert button._thread is not None
        button._thread.join(5.0)
    assert len(got) == 1
    assert any("stdin is closed" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records), caplog.records
