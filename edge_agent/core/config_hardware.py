"""Settings of the kiosk's hardware: `[button]`, `[[buttons]]`, `[badge]`, `[led]`.

Frozen dataclasses read once from their TOML tables (see core/tomlsection.py) and validated
there; core/config.py puts them into `Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edge_agent.core.slots import BADGE_KEY_PREFIX, MAX_SLOT_CHARS, MIN_SECRET_BYTES, is_label
from edge_agent.core.tomlsection import BadValue, Section, read_section, secret_bytes_from_file
from edge_agent.errors import ConfigError


@dataclass(frozen=True)
class ButtonSettings:
    source: str
    pin: int
    pull_up: bool
    bounce_s: float
    hold_s: float
    mode: str

    @classmethod
    def read(cls, s: Section) -> ButtonSettings:
        """A toggle button's short press is a make longer than `bounce_s` and shorter than
        `hold_s`: with `bounce_s >= hold_s` there was none, and no press ever continued the last
        conversation, with nothing said (push-to-talk has no short press)."""
        button = cls(
            source=s.choice("source", "gpio", ("gpio", "keyboard", "none")),
            pin=s.integer("pin", 17, 0, 53),
            pull_up=s.flag("pull_up", True),
            bounce_s=s.number("bounce_s", 0.05, 0.0, 1.0),
            hold_s=s.number("hold_s", 1.5, 0.2, 10.0),
            mode=s.choice("mode", "toggle", ("toggle", "hold")),
        )
        if button.mode == "toggle" and button.bounce_s >= button.hold_s:
            raise ConfigError(s.key("bounce_s"), f"must be shorter than button.hold_s ({button.hold_s:g}), got {button.bounce_s:g}: no press could be a short one (continue the last conversation)")
        return button


@dataclass(frozen=True)
class ExtraButton:
    """One `[[buttons]]` entry: a further GPIO button with its own slot and/or agent; pull-up,
    debounce, hold time and mode come from `[button]`."""

    pin: int
    slot: str | None
    agent_id: str | None

    @classmethod
    def read(cls, s: Section) -> ExtraButton:
        slot, agent_id = s.opt_str("slot"), s.opt_str("agent_id")
        if "pin" not in s.table:
            s.seen.add("pin")
            s.done()  # a typo'd `pinn` says so, rather than "pin: missing"
            raise ConfigError(s.key("pin"), "missing: every [[buttons]] entry needs its GPIO pin")
        pin = s.integer("pin", 0, 0, 53)
        for key, value in (("slot", slot), ("agent_id", agent_id)):
            if value is not None and not is_label(value):
                raise BadValue(s.key(key), f"use 1-{MAX_SLOT_CHARS} letters, digits, '_', '.' or '-', got {value!r}")
        if slot is not None and slot.startswith(BADGE_KEY_PREFIX):
            raise BadValue(s.key("slot"), f"slots that start with {BADGE_KEY_PREFIX!r} are badge holders' (a button would continue a person's conversation), got {slot!r}")
        return cls(pin=pin, slot=slot, agent_id=agent_id)


def read_buttons(value: object) -> tuple[ExtraButton, ...]:
    """`[[buttons]]`: an array of tables (their pins are checked against the others' by
    `check_gpio_pins`)."""
    if not isinstance(value, list):
        raise ConfigError("buttons", "must be an array of tables ([[buttons]])")
    buttons: list[ExtraButton] = []
    problems: list[ConfigError] = []
    for i, table in enumerate(value):
        try:  # every entry's bad keys, as a section's
            buttons.append(read_section(f"buttons[{i}]", ExtraButton.read, table))
        except ConfigError as exc:
            found, exc.more = exc.all(), ()
            problems += found
    if problems:
        raise ConfigError.together(problems)
    return tuple(buttons)


def gpio_pins(button: ButtonSettings, buttons: tuple[ExtraButton, ...], led: LedSettings) -> list[tuple[str, int]]:
    """(key, BCM pin) of every GPIO pin the kiosk opens, in the order it opens them: the main
    button's only when `button.source = "gpio"`, every `[[buttons]]` entry's, the LED's as
    `StatusLed` uses them (see `LedSettings.used_pins`)."""
    pins = [("button.pin", button.pin)] if button.source == "gpio" else []
    pins += [(f"buttons[{i}].pin", extra.pin) for i, extra in enumerate(buttons)]
    return pins + led.used_pins()


def check_gpio_pins(button: ButtonSettings, buttons: tuple[ExtraButton, ...], led: LedSettings) -> None:
    """ConfigError naming both keys when two of them would open the same GPIO pin: gpiozero
    refused the second at start, as a runtime failure (exit 1, a restart loop under systemd)
    naming the wrong key."""
    first: dict[int, str] = {}
    for key, pin in gpio_pins(button, buttons, led):
        if pin in first:
            raise ConfigError(key, f"GPIO {pin} is already {first[pin]}")
        first[pin] = key


BADGE_CHARSETS = {"digits": "0123456789", "hex": "0123456789abcdefABCDEF", "alnum": "", "printable": ""}


@dataclass(frozen=True)
class BadgeSettings:
    """`[badge]`: an RFID/NFC or QR reader that types like a keyboard (see hardware/badge.py)."""

    device: str | None
    secret: bytes | None = field(repr=False)
    """None until `with_secret` read `secret_file`."""
    grab: bool
    charset: str
    min_length: int
    max_length: int
    terminator: str
    key_gap_ms: int
    repeat_ignore_s: float
    min_interval_s: float
    secret_file: str | None = None

    @classmethod
    def read(cls, s: Section) -> BadgeSettings:
        device = s.opt_str("device")
        secret_file = s.opt_str("secret_file")  # read by `with_secret`, only by what runs the reader
        if device and not secret_file:
            raise ConfigError(s.key("secret_file"), "missing: a badge reader needs the fleet's secret (a file with at least 16 random bytes)")
        min_length = s.integer("min_length", 4, 1, 256)
        max_length = s.integer("max_length", 64, 1, 256)
        if max_length < min_length:
            raise ConfigError(s.key("max_length"), f"must be at least badge.min_length ({min_length}), got {max_length}")
        return cls(
            device=device,
            secret=None,
            secret_file=secret_file,
            grab=s.flag("grab", True),
            charset=s.choice("charset", "alnum", tuple(BADGE_CHARSETS)),
            min_length=min_length,
            max_length=max_length,
            terminator=s.choice("terminator", "enter", ("enter", "tab")),
            key_gap_ms=s.integer("key_gap_ms", 200, 5, 10000),
            repeat_ignore_s=s.number("repeat_ignore_s", 2.0, 0.0, 600.0),
            min_interval_s=s.number("min_interval_s", 0.5, 0.0, 60.0),
        )

    def with_secret(self) -> BadgeSettings:
        """These settings with the secret read from `secret_file` (the daemon reads it, through
        `config.validate_for_run`; `sessions` or `gate` never need it, so an operator who may not
        read it can still run them). ConfigError naming badge.secret_file when it cannot be read,
        is empty, is shorter than MIN_SECRET_BYTES or is one byte repeated."""
        if self.secret is not None or not self.secret_file:
            return self
        secret = secret_bytes_from_file("badge.secret_file", self.secret_file)
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError("badge.secret_file", f"the secret must be at least {MIN_SECRET_BYTES} bytes")
        if len(set(secret)) == 1:  # everyone knows that key: a badge's slot key could be computed, and its id tested offline
            raise ConfigError("badge.secret_file", f"the secret is one byte repeated ({secret[0]:#04x}: a file of zeros from /dev/zero or a power cut?); make one with: head -c 32 /dev/urandom")
        return replace(self, secret=secret)


@dataclass(frozen=True)
class LedSettings:
    pin: int | None
    red: int | None
    green: int | None
    blue: int | None

    @classmethod
    def read(cls, s: Section) -> LedSettings:
        """An RGB LED needs all three colours: with one left out there would be no LED at all
        (not even `pin`), with nothing said, on a kiosk whose LED is how a visitor sees it listen;
        and `pin` beside all three would be ignored, its LED dark."""
        led = cls(pin=s.opt_int("pin", 0, 53), red=s.opt_int("red", 0, 53), green=s.opt_int("green", 0, 53), blue=s.opt_int("blue", 0, 53))
        colours = {"red": led.red, "green": led.green, "blue": led.blue}
        missing = [name for name, pin in colours.items() if pin is None]
        if 0 < len(missing) < 3:
            given = ", ".join(name for name in colours if name not in missing)
            raise ConfigError(s.key(missing[0]), f"missing: an RGB LED needs red, green and blue (only {given} set); for a one-colour LED use pin")
        if not missing and led.pin is not None:  # the LED on `pin` stayed dark, with nothing said
            raise ConfigError(s.key("pin"), f"GPIO {led.pin} set beside red, green and blue: an RGB LED uses those three; leave out pin (or the colours, for a one-colour LED)")
        return led

    @property
    def rgb(self) -> tuple[int, int, int] | None:
        """The RGB LED's (red, green, blue) pins: used when all three are set (`pin` then is not)."""
        if self.red is None or self.green is None or self.blue is None:
            return None
        return (self.red, self.green, self.blue)

    def used_pins(self) -> list[tuple[str, int]]:
        """(key, pin) of the pins the LED opens: red, green and blue, else `pin`, else none."""
        if self.rgb is not None:
            return list(zip(("led.red", "led.green", "led.blue"), self.rgb, strict=True))
        return [("led.pin", self.pin)] if self.pin is not None else []
