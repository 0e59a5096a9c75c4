"""Badge and QR readers: keyboard-like input devices read through the kernel's input layer.

RFID/NFC readers and QR scanners type the id like a keyboard and end it with Enter. The reader
opens `[badge] device` (a /dev/input/by-id/... path) with python-evdev and grabs it, so the
typed ids never reach a console or another program. `ScanParser` turns key events into scans,
a pure function of `evdev.InputEvent`s (US layout, shift and caps lock): a scan is the keys
typed with at most `key_gap_ms` between them, up to the terminator, `min_length` to
`max_length` characters of `charset`. Anything else (a person typing slowly, overlong input,
keys that are not characters, floods) is dropped and counted, never raised.

`BadgeReader` runs the device on its own thread, turns each accepted scan into a slot key at
once (`BadgeKeyer`: the raw id goes nowhere else, not even the log) and hands the kiosk a
`Press(origin="badge", slot=key)` through `emit` (call_soon_threadsafe in the daemon). A
device that disappears (unplugged) is reopened every `REOPEN_S`. A FIFO or a regular file at
the path is read as raw `struct input_event` records, the same bytes /dev/input/event* gives:
how the tests, and anyone replaying a capture, feed the very same parsing code.
"""

from __future__ import annotations

import logging
import os
import select
import stat
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evdev import InputEvent, ecodes

from edge_agent.core import conversation as c
from edge_agent.core.config_hardware import BadgeSettings
from edge_agent.core.logs import printable
from edge_agent.core.slots import BadgeKeyer

log = logging.getLogger(__name__)

REOPEN_S = 2.0
SEEN_KEPT = 64
"""Badges whose last read the repeat window remembers (the newest)."""
MAX_NAME_CHARS = 64
"""Most characters of a device's name that are logged (a USB product string: whoever made the
device chose it, newlines and terminal escape codes included)."""
EVENT_FORMAT = "llHHi"
"""struct input_event on 64-bit Linux: timeval (sec, usec), type, code, value."""
EVENT_SIZE = struct.calcsize(EVENT_FORMAT)
KEY_DOWN = 1

_SHIFTS = {ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT}
TERMINATORS = {"enter": {ecodes.KEY_ENTER, ecodes.KEY_KPENTER}, "tab": {ecodes.KEY_TAB}}


def shown_name(name: object) -> str:
    """A device's name fit for one log line (core/logs.py `printable`)."""
    return printable(str(name), MAX_NAME_CHARS)


def _keymap() -> dict[int, tuple[str, str]]:
    """Key code -> (character, shifted character), US layout as readers emulate it."""
    keys: dict[int, tuple[str, str]] = {}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        keys[ecodes.ecodes[f"KEY_{ch.upper()}"]] = (ch, ch.upper())
    for digit, shifted in zip("1234567890", "!@#$%^&*()", strict=True):
        keys[ecodes.ecodes[f"KEY_{digit}"]] = (digit, shifted)
        keys[ecodes.ecodes[f"KEY_KP{digit}"]] = (digit, digit)
    for name, pair in {
        "MINUS": "-_", "EQUAL": "=+", "LEFTBRACE": "[{", "RIGHTBRACE": "]}", "SEMICOLON": ";:", "APOSTROPHE": "'\"",
        "GRAVE": "`~", "BACKSLASH": "\\|", "COMMA": ",<", "DOT": ".>", "SLASH": "/?", "SPACE": "  ",
        "KPMINUS": "--", "KPPLUS": "++", "KPASTERISK": "**", "KPSLASH": "//", "KPDOT": "..",
    }.items():  # fmt: skip
        keys[ecodes.ecodes[f"KEY_{name}"]] = (pair[0], pair[1])
    return keys


KEYMAP = _keymap()
CHARSETS = {
    "digits": frozenset("0123456789"),
    "hex": frozenset("0123456789abcdefABCDEF"),
    "alnum": frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "printable": frozenset(ch for pair in KEYMAP.values() for ch in pair),
}


@dataclass
class ScanParser:
    """Key events in, whole scans out; bounded memory whatever the device sends."""

    settings: BadgeSettings
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("scans", "too_short", "too_long", "bad_chars", "timeouts"), 0))

    def __post_init__(self) -> None:
        self._chars: list[str] = []
        self._bad = self._long = False
        self._shift: set[int] = set()
        self._caps = False
        self._last_key_s: float | None = None
        self._gap_s = self.settings.key_gap_ms / 1000.0
        self._terminators = TERMINATORS[self.settings.terminator]
        self._allowed = CHARSETS[self.settings.charset]

    def feed(self, event: InputEvent) -> str | None:
        """One input event; returns a scan when this event completed a valid one."""
        if event.type == ecodes.EV_SYN and event.code == ecodes.SYN_DROPPED:
            self.lost()  # the kernel dropped events: a key-up may be among them
            # and what follows at once is the rest of a torn scan (the kernel keeps the newest
            # event after SYN_DROPPED): dropped up to its terminator, or until a pause
            self._bad = True
            self._last_key_s = event.timestamp()
            return None
        if event.type != ecodes.EV_KEY:
            return None
        code, value = event.code, event.value
        if code in _SHIFTS and not value:
            self._shift.discard(code)
            return None
        if value != KEY_DOWN:  # key up, or autorepeat (a reader never holds a key)
            return None
        at = event.timestamp()
        if self._last_key_s is not None and not 0 <= at - self._last_key_s <= self._gap_s:
            if self._chars or self._bad or self._long:
                self.counts["timeouts"] += 1  # too slow for a reader: a person, or a torn scan
            self.lost()  # and a Shift whose key-up never came belongs to it
        self._last_key_s = at
        if code in _SHIFTS:
            self._shift.add(code)
        elif code == ecodes.KEY_CAPSLOCK:
            self._caps = not self._caps
        elif code in self._terminators:
            return self._finish()
        elif code not in KEYMAP:
            self._bad = True  # a key that is no character (F-keys, Ctrl, arrows...)
        elif len(self._chars) >= self.settings.max_length:
            self._long = True  # keep nothing more: the buffer stays bounded
        else:
            plain, shifted = KEYMAP[code]
            ch = shifted if self._shift else plain
            if self._caps and ch.isalpha():
                ch = ch.swapcase()
            self._chars.append(ch)
        return None

    def _finish(self) -> str | None:
        text = "".join(self._chars)
        bad, long = self._bad, self._long
        self.lost()  # a scan is whole: the next starts with no Shift or Caps Lock on
        if not text and not bad and not long:
            return None  # a stray Enter
        if long:
            self.counts["too_long"] += 1
        elif bad or not set(text) <= self._allowed:
            self.counts["bad_chars"] += 1
        elif len(text) < self.settings.min_length:
            self.counts["too_short"] += 1
        else:
            self.counts["scans"] += 1
            # hex names a number: a reader set to capitals (or Caps Lock on) types the same card as
            # another kiosk's reader in small letters, and the two were two people
            return text.lower() if self.settings.charset == "hex" else text
        return None

    def _reset(self) -> None:
        self._chars.clear()
        self._bad = self._long = False

    def lost(self) -> None:
        """Events were lost (SYN_DROPPED), the device went away and came back, or the scan ended
        or timed out: nothing of it carries over, and a Shift held in it must not type every later
        badge shifted (with a digits-only charset every later scan was refused, until a restart)."""
        self._reset()
        self._shift.clear()
        self._caps = False
        self._last_key_s = None


def decode_records(data: bytes) -> tuple[list[InputEvent], bytes]:
    """Raw `struct input_event` records (from a FIFO, a capture file) as InputEvents, and the
    bytes of an incomplete last record to prepend to the next read."""
    whole = len(data) - len(data) % EVENT_SIZE
    events = [InputEvent(*struct.unpack_from(EVENT_FORMAT, data, i)) for i in range(0, whole, EVENT_SIZE)]
    return events, data[whole:]


def event_records(events: list[tuple[float, int, int, int]]) -> bytes:
    """(time_s, type, code, value) tuples as raw records: what a device would deliver."""
    out = bytearray()
    for at, etype, code, value in events:
        sec = int(at)
        out += struct.pack(EVENT_FORMAT, sec, round((at - sec) * 1e6), etype, code, value)
    return bytes(out)


def typed(text: str, start_s: float = 0.0, key_s: float = 0.01, terminator: int = ecodes.KEY_ENTER) -> list[tuple[float, int, int, int]]:
    """Key events a reader sends to type `text` (shift where needed) and the terminator."""
    reverse = {pair[0]: (code, False) for code, pair in KEYMAP.items() if not code_is_keypad(code)}
    reverse.update({pair[1]: (code, True) for code, pair in KEYMAP.items() if not code_is_keypad(code) and pair[1] != pair[0]})
    events: list[tuple[float, int, int, int]] = []
    at = start_s
    for ch in text:
        code, shift = reverse[ch]
        keys = [(ecodes.KEY_LEFTSHIFT, 1)] if shift else []
        keys += [(code, 1), (code, 0)] + ([(ecodes.KEY_LEFTSHIFT, 0)] if shift else [])
        for key, value in keys:
            events += [(at, ecodes.EV_KEY, key, value), (at, ecodes.EV_SYN, 0, 0)]
        at += key_s
    return [*events, (at, ecodes.EV_KEY, terminator, 1), (at, ecodes.EV_KEY, terminator, 0), (at, ecodes.EV_SYN, 0, 0)]


def code_is_keypad(code: int) -> bool:
    return str(ecodes.KEY.get(code, "")).startswith("KEY_KP")


class BadgeReader:
    """A badge/QR reader as a button: each accepted scan is a Press for that person's slot."""

    def __init__(self, settings: BadgeSettings, keyer: BadgeKeyer, clock: Callable[[], float] = time.monotonic) -> None:
        if settings.device is None:
            raise ValueError("BadgeReader needs badge.device")
        self.settings = settings
        self.path = settings.device
        self._keyer = keyer
        self._clock = clock
        self.parser = ScanParser(settings)
        self.counts = self.parser.counts
        self.counts.update(repeats=0, flood=0, reopens=0, accepted=0)
        self._emit: Callable[[c.Event], None] | None = None
        self._last: tuple[str, float] | None = None  # the last scan accepted: (slot key, when)
        self._seen: OrderedDict[str, float] = OrderedDict()
        """Each badge's last read, accepted or dropped as its repeat, oldest first (at most SEEN_KEPT,
        each within repeat_ignore_s): with only the last badge's kept, a card left lying on the
        reader took the kiosk back at its next re-read after another person's scan."""
        self._stop_r, self._stop_w = os.pipe()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        """The device failed and that was logged; cleared by every open that works (each unplug logged once)."""

    def start(self, emit: Callable[[c.Event], None], quit: Callable[[], None]) -> None:
        self._emit = emit
        self._thread = threading.Thread(target=self._run, name="badge-reader", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopped.set()
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(3)
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)

    # ------------------------------------------------------------------ scans (reader thread)
    def accept(self, text: str) -> None:
        """A parsed scan: keyed at once; repeats and floods are dropped before the kiosk sees them."""
        key = self._keyer.slot_for(text)
        now = self._clock()
        # a repeat is within repeat_ignore_s of the badge's last read, accepted or not: a card left
        # in an RFID reader's field, re-read every 1.5 s, was a press every other read (its
        # holder's conversation ended and started again every 3 s; a helper's attack)
        window = self.settings.repeat_ignore_s
        while self._seen and (len(self._seen) > SEEN_KEPT or not 0 <= now - next(iter(self._seen.values())) < window):
            self._seen.popitem(last=False)  # out of its window (or a flood of badges): bounded
        seen = self._seen.get(key)
        repeat = seen is not None and 0 <= now - seen < window
        if not repeat and self._last is not None and now - self._last[1] < self.settings.min_interval_s:
            self.counts["flood"] += 1  # not a read that starts a repeat window: the badge was never taken
            return
        self._seen.pop(key, None)
        self._seen[key] = now  # the newest read last
        if repeat:
            self.counts["repeats"] += 1
            return
        self._last = (key, now)
        self.counts["accepted"] += 1
        log.info("badge: scan for slot %s", key)
        if self._emit is not None:
            self._emit(c.Press(origin="badge", slot=key))

    def _feed(self, event: InputEvent) -> None:
        scan = self.parser.feed(event)
        if scan is not None:
            self.accept(scan)

    # ------------------------------------------------------------------ device loop
    def _run(self) -> None:
        self._failing = False
        while not self._stopped.is_set():
            try:
                finished = self._read_device()
                self._failing = False
                if finished:
                    return
            except Exception as exc:  # unplugged, permission, anything: never kill the thread
                if not self._failing:
                    log.warning("badge reader %s unavailable (%s); retrying every %.0f s", self.path, exc, REOPEN_S)
                self._failing = True
            if self._wait(REOPEN_S):
                return
            self.counts["reopens"] += 1

    def _wait(self, seconds: float) -> bool:
        """Sleeps unless close() is called; True when stopping."""
        ready, _, _ = select.select([self._stop_r], [], [], seconds)
        return bool(ready) or self._stopped.is_set()

    def _read_device(self) -> bool:
        """Reads one device until it goes away; True when there is nothing to reopen."""
        self.parser.lost()  # opened again: nothing of a scan torn by the last close carries over
        mode = os.stat(self.path).st_mode
        if stat.S_ISCHR(mode):
            self._read_evdev()
            return False
        # a FIFO is opened read-write: writers may come and go without an end of file
        fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK if stat.S_ISFIFO(mode) else os.O_RDONLY)
        try:
            self._read_records(fd)
        finally:
            os.close(fd)
        return True  # a capture file is read once

    def _read_evdev(self) -> None:
        from evdev import InputDevice

        device: Any = InputDevice(self.path)
        try:
            if self.settings.grab:
                device.grab()  # keystrokes go to us only, not to a console
            log.info("badge reader: %s (%s)%s", self.path, shown_name(device.name), ", grabbed" if self.settings.grab else "")
            self._failing = False  # open: the next unplug is news
            while not self._stopped.is_set():
                ready, _, _ = select.select([device.fd, self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                for event in device.read():
                    self._feed(event)
        finally:
            try:
                device.close()
            except OSError:
                pass

    def _read_records(self, fd: int) -> None:
        pending = b""
        while not self._stopped.is_set():
            ready, _, _ = select.select([fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(fd, 64 * EVENT_SIZE)
            except BlockingIOError:
                continue
            if not data:
                return  # the end of a capture file
            events, pending = decode_records(pending + data)
            for event in events:
                self._feed(event)
