"""gpiozero button and status LED. Hardware only through gpiozero's pin factory.

Works with whatever factory gpiozero picks (lgpio on a Pi 5, RPi.GPIO or pigpio on older Pis)
and with `GPIOZERO_PIN_FACTORY=mock` for dry runs; tests use `MockFactory` pins.

Button (`[button]`): in `mode = "toggle"` a short press (released before `hold_s`) is `Press`,
a long press (held `hold_s`) is `Press(long=True)`, reported as soon as the hold time passes.
In `mode = "hold"` (push-to-talk) pressing sends `Talk(True)` and releasing `Talk(False)`; a
hold of `hold_s` or more during which the visitor said nothing hangs up.

LED (`[led]`): idle off, connecting blink, listening on, speaking pulse, error fast blink (also
whatever the state while the microphone or the speaker is gone), idle with an unusable session
store a short flash every 2 s (amber on RGB);
with `red/green/blue` pins an RGB LED shows the same states in colour.
gpiozero calls back on its own thread: every callback is guarded and only hands an event on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edge_agent.core import conversation as c
from edge_agent.core.config_hardware import ButtonSettings, LedSettings
from edge_agent.core.slots import Target
from edge_agent.errors import ConfigError, EdgeAgentError

log = logging.getLogger(__name__)


def _guarded(fn: Callable[[], None]) -> Callable[[], None]:
    """Wrap a gpiozero callback so an exception is logged instead of killing its thread."""

    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("button callback failed")

    return run


def _reason(exc: BaseException) -> str:
    """What went wrong, never empty: some of gpiozero's errors carry no message (a pin factory
    without PWM raises a bare `PinPWMUnsupported()`), and `cannot use GPIO ()` said nothing."""
    return str(exc).strip() or type(exc).__name__


def _refused(keys: str, pins: str, exc: BaseException, hint: str = "") -> EdgeAgentError:
    """The error for pins gpiozero would not open. A ConfigError (exit 78: the unit does not
    restart it) when the config asks what this board cannot do, no such pin or a pull the pin
    cannot have, which no restart mends: as a runtime error it restarted every 3 s for ever. Else
    an EdgeAgentError: another program holding the pin may let it go."""
    if not isinstance(exc, ImportError):  # gpiozero is there: its errors can be told apart
        from gpiozero.exc import PinFixedPull, PinInvalidPin, PinInvalidPull

        if isinstance(exc, PinInvalidPin):
            return ConfigError(keys, f"GPIO {pins}: not a pin of this board ({_reason(exc)})")
        if isinstance(exc, (PinFixedPull, PinInvalidPull)):
            return ConfigError(keys, f"GPIO {pins}: {_reason(exc)}; set button.pull_up = true or use another pin")
    return EdgeAgentError(f"{keys} {pins}: cannot use GPIO ({_reason(exc)}){hint}")


class GpioButton:
    """One GPIO button; `target` (a `[[buttons]]` entry's slot and/or agent) goes with its
    presses, None for the main button (the kiosk's default slot and agent). `key` is the config
    key its pin comes from, for the error when the pin cannot be opened."""

    def __init__(self, settings: ButtonSettings, target: Target | None = None, key: str = "button.pin") -> None:
        self.settings = settings
        self.target = target or Target()
        self.key = key
        self._button: Any = None
        self._lock = threading.Lock()
        self._held = False
        self._down = False  # a press seen and not yet let go: the hold and the release race for it
        self._stale = False  # held down when the button was opened: its release is no press
        self._pressed_at = 0.0
        self._hung_up_at = -1e9  # push-to-talk: when a release last hung up
        self._chatter = False  # push-to-talk: a make right after a hang-up, and its release

    def start(self, emit: Callable[[c.Event], None], quit: Callable[[], None]) -> None:
        try:
            from gpiozero import Button
            from gpiozero.exc import GPIOZeroError

            self._button = Button(self.settings.pin, pull_up=self.settings.pull_up, bounce_time=self.settings.bounce_s or None, hold_time=self.settings.hold_s)
        except (GPIOZeroError, OSError, RuntimeError, ImportError) as exc:
            off_a_pi = '; off a Pi set button.source = "keyboard" (Enter = press), or GPIOZERO_PIN_FACTORY=mock for a dry run'
            raise _refused(self.key, str(self.settings.pin), exc, off_a_pi) from None
        self._emit = emit
        self._stale = bool(self._button.is_pressed)  # held (or stuck) down through a start
        self._button.when_pressed = _guarded(self._on_pressed)
        self._button.when_held = _guarded(self._on_held)
        self._button.when_released = _guarded(self._on_released)

    def _on_pressed(self) -> None:
        with self._lock:
            self._held = False
            self._down = True
            self._stale = False
            self._pressed_at = time.monotonic()
            # a make right after a hang-up is its contacts chattering, no new conversation
            self._chatter = self.settings.mode == "hold" and self._pressed_at - self._hung_up_at < self.settings.bounce_s
            if self._chatter:
                return
        if self.settings.mode == "hold":
            self._emit(c.Talk(True, slot=self.target.slot, agent_id=self.target.agent_id))

    def _on_held(self) -> None:
        with self._lock:  # a release that got in first (let go at the hold time) was the press
            if not self._down:
                return
            self._held = True
        if self.settings.mode == "toggle":
            self._emit(c.Press(long=True, slot=self.target.slot, agent_id=self.target.agent_id))

    def _on_released(self) -> None:
        with self._lock:
            if self._stale or not self._down:  # held since before the start: no press of ours
                self._stale = False
                return
            self._down = False
            held = self._held
            if self._chatter:
                self._chatter = False
                return
            if held:
                self._hung_up_at = time.monotonic()
            # contacts chattering: a make shorter than the debounce time is none (the pin
            # factory's own debounce is not everywhere, the mock factory has none)
            bounce = time.monotonic() - self._pressed_at < self.settings.bounce_s
        if self.settings.mode == "hold":
            self._emit(c.Talk(False, long=held, slot=self.target.slot, agent_id=self.target.agent_id))
        elif not held and not bounce:
            self._emit(c.Press(long=False, slot=self.target.slot, agent_id=self.target.agent_id))

    def close(self) -> None:
        if self._button is not None:
            self._button.close()
            self._button = None


FLASH_S = 0.1

# state -> (mono pattern, rgb colour); patterns: off, on, blink(period_s on and off), pulse(fade_s),
# flash (a 0.1 s flash every period_s)
_LOOKS: dict[str, tuple[tuple[str, float], tuple[float, float, float]]] = {
    c.IDLE: (("off", 0.0), (0.0, 0.0, 0.0)),
    c.CONNECTING: (("blink", 0.25), (0.0, 0.0, 1.0)),
    c.LISTENING: (("on", 0.0), (0.0, 1.0, 0.0)),
    c.SPEAKING: (("pulse", 0.5), (0.0, 0.8, 0.8)),
    c.ENDING: (("blink", 0.5), (0.3, 0.3, 0.0)),
    c.ERROR: (("blink", 0.08), (1.0, 0.0, 0.0)),
    "store_fault": (("flash", 2.0), (1.0, 0.4, 0.0)),  # idle, but the session store is unusable (no resume after a restart)
}


class StatusLed:
    """Shows the conversation state; `show` is cheap and safe to call from the event loop."""

    def __init__(self, settings: LedSettings) -> None:
        try:
            from gpiozero import LED, PWMLED, RGBLED
            from gpiozero.exc import GPIOZeroError

            self._rgb: Any = None
            self._led: Any = None
            if settings.rgb is not None:
                self._rgb = RGBLED(*settings.rgb)
            elif settings.pin is not None:
                try:
                    self._led = PWMLED(settings.pin)
                except (GPIOZeroError, OSError):  # no PWM on this factory: a plain LED still works
                    self._led = LED(settings.pin)
        except (GPIOZeroError, OSError, RuntimeError, ImportError) as exc:
            used = settings.used_pins()
            keys, pins = ", ".join(key for key, _ in used), ", ".join(str(pin) for _, pin in used)
            raise _refused(keys, pins, exc) from None

    @property
    def device(self) -> Any:
        return self._rgb or self._led

    def show(self, state: str) -> None:
        (pattern, period), colour = _LOOKS.get(state, _LOOKS[c.ERROR])
        try:
            if self._rgb is not None:
                self._show_rgb(pattern, period, colour)
            elif self._led is not None:
                self._show_mono(pattern, period)
        except Exception:  # an LED must never take the kiosk down
            log.exception("led update failed")

    def _show_mono(self, pattern: str, period: float) -> None:
        led = self._led
        if pattern == "off":
            led.off()
        elif pattern == "on":
            led.on()
        elif pattern == "pulse" and hasattr(led, "pulse"):
            led.pulse(fade_in_time=period, fade_out_time=period, background=True)
        elif pattern == "flash":
            led.blink(on_time=FLASH_S, off_time=period - FLASH_S, background=True)
        else:
            led.blink(on_time=period or 0.5, off_time=period or 0.5, background=True)

    def _show_rgb(self, pattern: str, period: float, colour: tuple[float, float, float]) -> None:
        rgb = self._rgb
        if pattern == "off":
            rgb.off()
        elif pattern == "on":
            rgb.color = colour
        elif pattern == "pulse":
            rgb.pulse(fade_in_time=period, fade_out_time=period, on_color=colour, background=True)
        elif pattern == "flash":
            rgb.blink(on_time=FLASH_S, off_time=period - FLASH_S, on_color=colour, background=True)
        else:
            rgb.blink(on_time=period, off_time=period, on_color=colour, background=True)

    def close(self) -> None:
        dev = self.device
        if dev is not None:
            dev.close()
