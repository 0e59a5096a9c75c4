"""systemd and the daemon: the notify protocol one way (READY=1, STATUS=..., WATCHDOG=1), signals the other.

The notify protocol is a datagram to $NOTIFY_SOCKET: a few clear lines instead of a dependency. Does nothing when not started by systemd. The
protocol is one `KEY=value` per line, so a value carrying a newline (a server's session id in a
STATUS= line, say) could add a line of its own, `WATCHDOG=trigger` for one: every control
character of every line is replaced before sending.

systemd stops the service with SIGTERM (SIGINT from a terminal) and reloads it with SIGHUP
(`ExecReload=`, `systemctl reload edge-agent`).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from collections.abc import Callable

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """`text` with every control character (newline, CR, NUL, escape) made a space."""
    return CONTROL_CHARS.sub(" ", text)


def handle_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None], reload: Callable[[], None] | None) -> None:
    """SIGTERM and SIGINT call `stop`, SIGHUP `reload`. Left alone where the loop cannot take
    signals (not the main thread: tests running the kiosk in a thread)."""
    for sig, handler in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, reload)):
        if handler is None:
            continue
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError, ValueError):
            pass


class SystemdNotifier:
    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        self._addr: str | None = None
        self._sock: socket.socket | None = None
        if addr:
            self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # never blocking: a receiver that reads nothing (PID 1 stalled, a socket nobody
            # serves) filled its queue and the next WATCHDOG=1 froze the event loop, presses
            # and SIGTERM with it; a message that does not fit is dropped instead
            self._sock.setblocking(False)
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_s: float | None = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 else None
        self._watchdog_at = 0.0

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> None:
        if self._sock is None or self._addr is None:
            return
        try:
            self._sock.sendto("\n".join(one_line(line) for line in lines).encode(), self._addr)
        except OSError:
            pass  # systemd went away or its queue is full (BlockingIOError): nothing useful to do

    def watchdog(self, now: float) -> None:
        """WATCHDOG=1 at most every third of systemd's WatchdogSec; the caller calls it (on its
        tick, `now` on time.monotonic()) only while the kiosk is healthy."""
        if self.watchdog_s and now - self._watchdog_at >= self.watchdog_s / 3:
            self.send("WATCHDOG=1")
            self._watchdog_at = now

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
