"""The button and LED against settings the board cannot honour (a helper's review, 2026-12-06;
each failed before its fix), on gpiozero's own MockFactory pins."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import kiosk_settings, mock_pins
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from edge_agent.core import config
from edge_agent.core import conversation as c
from edge_agent.core.config_hardware import ButtonSettings, LedSettings
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.hardware.gpio import GpioButton, StatusLed
from edge_agent.service.slots import slot_inputs


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    with mock_pins() as factory:
        yield factory


def _start(settings: ButtonSettings, key: str = "button.pin") -> GpioButton:
    button = GpioButton(settings, key=key)
    button.start(lambda ev: None, lambda: None)
    return button


def test_a_pin_the_board_has_not_is_a_config_error(pins: MockFactory) -> None:
    """`button.pin = 40` (a pin of another board, or a typo) passed the config's 0-53 and failed at
    start as a runtime error: exit 1, which the unit restarts every 3 s for ever, where a config
    error exits 78 and stays down until the operator fixes it. No restart gives a board a pin."""
    with pytest.raises(ConfigError) as raised:
        _start(ButtonSettings(source="gpio", pin=40, pull_up=True, bounce_s=0.05, hold_s=1.0, mode="toggle"))
    assert raised.value.key == "button.pin" and "40" in raised.value.problem
    (extra,) = slot_inputs(config.from_dict({"buttons": [{"pin": 45, "slot": "en"}]}))
    with pytest.raises(ConfigError) as raised:
        extra.start(lambda ev: None, lambda: None)
    assert raised.value.key == "buttons[0].pin"
    with pytest.raises(ConfigError) as raised:
        StatusLed(LedSettings(pin=41, red=None, green=None, blue=None))
    assert raised.value.key == "led.pin"


def test_a_pull_the_pin_cannot_have_is_a_config_error(pins: MockFactory) -> None:
    """GPIO 2 has a fixed pull-up (the I2C pins): `pull_up = false` on it can never open, and
    restarting the service every 3 s does not change that."""
    with pytest.raises(ConfigError) as raised:
        _start(ButtonSettings(source="gpio", pin=2, pull_up=False, bounce_s=0.05, hold_s=1.0, mode="toggle"))
    assert raised.value.key == "button.pin" and "pull_up" in raised.value.problem


def test_a_pin_another_program_holds_stays_a_runtime_error(pins: MockFactory) -> None:
    """What a restart can mend (the other program lets go) is still no config error."""
    holder = LED(5)
    try:
        with pytest.raises(EdgeAgentError) as raised:
            _start(ButtonSettings(source="gpio", pin=5, pull_up=True, bounce_s=0.05, hold_s=1.0, mode="toggle"))
        assert not isinstance(raised.value, ConfigError)
    finally:
        holder.close()


def _tap(pin: object, hold_s: float) -> None:
    pin.drive_low()  # type: ignore[attr-defined]
    time.sleep(hold_s)
    pin.drive_high()  # type: ignore[attr-defined]


def test_a_debounce_as_long_as_the_hold_time_is_a_config_error(pins: MockFactory) -> None:
    """`bounce_s = 0.5` with `hold_s = 0.4` (a worn switch given a long debounce): a press shorter
    than 0.5 s is taken for chatter and one longer is a long press, so no press ever continued the
    last conversation, with nothing said. Shown on the pin, then refused by the config."""
    events: list[c.Event] = []
    button = GpioButton(ButtonSettings(source="gpio", pin=17, pull_up=True, bounce_s=0.5, hold_s=0.4, mode="toggle"))
    button.start(events.append, lambda: None)
    pin = pins.pin(17)
    _tap(pin, 0.2)  # a tap: under bounce_s
    time.sleep(0.1)
    _tap(pin, 0.45)  # under bounce_s still, and over hold_s
    time.sleep(0.1)
    button.close()
    assert c.Press(long=False) not in events  # no tap of any length is a short press
    with pytest.raises(ConfigError) as raised:
        config.from_dict({"button": {"bounce_s": 0.5, "hold_s": 0.4}})
    assert raised.value.key == "button.bounce_s"
    # push-to-talk takes no short press: the same numbers are fine there
    assert config.from_dict({"button": {"bounce_s": 0.5, "hold_s": 0.4, "mode": "hold"}}).button.hold_s == 0.4


def test_the_doctor_names_a_pin_the_board_has_not_without_the_group_hint(pins: MockFactory, tmp_path: Path) -> None:
    """`edge-agent doctor` on a `[[buttons]]` pin the board has not: the FAIL line's hint sent the
    installer to check the service user's groups and other programs, neither of which is it."""
    from edge_agent.service.doctor import Doctor

    settings = kiosk_settings(tmp_path, "ws://127.0.0.1:9/millis", button={"source": "gpio"}, buttons=[{"pin": 45}])
    lines: list[str] = []
    Doctor(settings, meter_s=0.2, out=lines.append, service_active=lambda: False).run()
    (fail,) = [line for line in lines if line.startswith("FAIL  button buttons[0]")]
    assert "buttons[0].pin: GPIO 45: not a pin of this board" in fail and "group gpio" not in fail, fail
