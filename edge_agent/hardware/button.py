"""Buttons: turn a physical or keyboard button into Conversation events.

Every button calls `emit(event)` from whatever thread it lives on; the daemon's emit hands the
event to the event loop with call_soon_threadsafe and guards it, so a bad press can never kill
the button's thread. `KeyboardButton` reads stdin lines: empty or `p` = press, `l` = long press,
`q` = quit. The gpiozero button lives in `gpio`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import IO, Protocol

from edge_agent.core import conversation as c

log = logging.getLogger(__name__)

Emit = Callable[[c.Event], None]


class Button(Protocol):
    def start(self, emit: Emit, quit: Callable[[], None]) -> None: ...

    def close(self) -> None: ...


class NoButton:
    """`button.source = "none"`: conversations start from MQTT commands only."""

    def start(self, emit: Emit, quit: Callable[[], None]) -> None:
        pass

    def close(self) -> None:
        pass


class KeyboardButton:
    """Lines on stdin act as the button (demo and tests). EOF leaves the daemon running, with a
    warning: no press will come from the keyboard after it (under systemd stdin is /dev/null, so
    `button.source = "keyboard"` there is a kiosk nobody can start a conversation on)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdin
        self._thread: threading.Thread | None = None

    def start(self, emit: Emit, quit: Callable[[], None]) -> None:
        def read() -> None:
            for line in self._stream:
                key = line.strip().lower()
                if key in ("", "p", "press"):
                    emit(c.Press(long=False))
                elif key in ("l", "long"):
                    emit(c.Press(long=True))
                elif key in ("q", "quit"):
                    quit()
                    return
                else:
                    log.warning("keyboard: %r is not a key (Enter/p = press, l = long press, q = quit)", key)
            log.warning('keyboard: stdin is closed: no presses from the keyboard any more (under a service, set button.source = "gpio" or "none")')

        self._thread = threading.Thread(target=read, name="keyboard-button", daemon=True)
        self._thread.start()

    def close(self) -> None:
        pass
