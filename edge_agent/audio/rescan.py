"""A fresh PortAudio device list for a device opened while another PyAudio device is open.

PortAudio scans the devices only when no one else holds it initialised (Pa_Initialize counts its
users): while the microphone's stream runs, the speaker's reopen sees the list made when the
microphone opened, and a speaker plugged in since (missing at start, or back under another card
after a USB re-enumeration) was never found, retried every 5 s for good (and the other way round).
When ALSA's cards or its configuration files changed since the list held was made, the other open
devices are closed for the scan and opened again right after it (a gap of a few periods in what
they capture or play); when nothing changed the list is still right and nobody is disturbed.

Devices open and close on several threads (the event loop, each audio watch's reopen thread, the
stop): the bookkeeping here is under one lock, held only around it, never across an open (a hung
driver must not hold the stop). A device stopped by anyone else while it was closed for a scan
is not opened again by the scan (the stop, or its own watch's reopen, decides), and one whose
PortAudio could not be let go (the speaker's drop thread stuck in it) makes a fresh scan
impossible: then nobody is closed for one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Rescannable(Protocol):
    def pause_for_scan(self) -> None:
        """Closes the device (and lets PortAudio go) for another device's scan."""

    def resume_after_scan(self) -> None:
        """Opens it again after that scan."""


_lock = threading.RLock()
_open: list[Rescannable] = []
_paused: list[Rescannable] = []
"""Closed for a scan and not stopped by anyone since: the scan opens them again."""
_pausing: Rescannable | None = None
_stuck: list[Rescannable] = []
"""Stopped without letting PortAudio go: no scan is fresh while one is."""
_scanned_state: tuple[object, ...] | None = None

CLOSE_WAIT_S = 1.0
"""How long a stop waits for a scan's bookkeeping (see `closed`)."""
CONFIG_DIRS = (Path("/etc/alsa/conf.d"), Path("/usr/share/alsa/alsa.conf.d"))
"""Where sound servers (PipeWire, PulseAudio) drop ALSA configuration: a change there is one too."""


def alsa_state() -> tuple[object, ...]:
    """What ALSA's device list is made from: its cards, and its configuration files' versions."""
    try:
        cards: object = Path("/proc/asound/cards").read_text()
    except OSError:
        cards = None
    files = [Path.home() / ".asoundrc", Path.home() / ".config/alsa/asoundrc", Path("/etc/asound.conf"), *CONFIG_DIRS]
    files += [Path(p) for p in os.environ.get("ALSA_CONFIG_PATH", "").split(":") if p]
    stamps: list[object] = [cards]
    for f in files:
        try:
            st = f.stat()
            stamps.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((str(f), None))
    return tuple(stamps)


def scanning() -> None:
    """Called just before `pyaudio.PyAudio()`: when no device holds PortAudio, it scans afresh."""
    global _scanned_state
    with _lock:
        if not _open and not _stuck:
            _scanned_state = alsa_state()


def open_with_scan(me: Rescannable, open_device: Callable[[], None]) -> None:
    """Runs `open_device` (`me`'s open, which scans for its device) with the other open devices
    closed for the scan when the list they hold PortAudio with is out of date, opened again after."""
    others = before_open(me)
    try:
        open_device()
    finally:
        after_open(others)


def before_open(me: Rescannable) -> list[Rescannable]:
    """Before `me` scans for its device: the other open devices, closed when the list they hold
    PortAudio with is out of date (hand them to `after_open`)."""
    global _pausing
    with _lock:
        others = [d for d in _open if d is not me]
        if not others or _stuck or _scanned_state == alsa_state():
            return []
        log.info("the audio devices changed since PortAudio listed them: the open devices close for a new scan")
        for d in others:
            _pausing = d
            try:
                d.pause_for_scan()
            finally:
                _pausing = None
            _paused.append(d)
        return others


def after_open(others: list[Rescannable]) -> None:
    for d in others:
        with _lock:
            if d not in _paused:  # stopped meanwhile (the kiosk's stop, its own watch's reopen)
                continue
            _paused.remove(d)
        try:
            d.resume_after_scan()
        except Exception as exc:  # its watch notices it stays closed and reopens it
            log.error("an audio device closed for a scan did not open again: %s", exc)


def opened(me: Rescannable) -> None:
    with _lock:
        if me not in _open:
            _open.append(me)
        if me in _stuck:
            _stuck.remove(me)


def closed(me: Rescannable, let_go: bool = True) -> None:
    """`me` stopped; `let_go` False: its PortAudio is still held (a thread stuck in it). Waits for
    a scan's bookkeeping at most CLOSE_WAIT_S (a close hung in a driver there must not hold the
    kiosk's stop: then `me` may be opened again by that scan, at the end of the process)."""
    if not _lock.acquire(timeout=CLOSE_WAIT_S):
        log.warning("audio device stopped while another device's scan hangs")
        return
    try:
        if me in _open:
            _open.remove(me)
        if _pausing is not me and me in _paused:
            _paused.remove(me)
        if not let_go and me not in _stuck:
            _stuck.append(me)
    finally:
        _lock.release()
