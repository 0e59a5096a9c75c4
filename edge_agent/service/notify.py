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
import contextlib
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


def ignore_hangup(loop: asyncio.AbstractEventLoop | None) -> None:
    """SIGHUP ignored from now on (the daemon stops): the loop's handler taken away first, or the
    loop's close restores SIGHUP's default, which killed a process still exiting (systemd then
    reports the stop as `status=1/HUP`, failed, instead of exit 0)."""
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        if loop is not None:
            loop.remove_signal_handler(signal.SIGHUP)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


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
        self._held: tuple[str, ...] | None = None
        """A message that must arrive (READY=1) and did not fit: sent again before anything else."""
        self._status: str | None = None
        """The newest STATUS= line, where it did not fit: sent again (a later one replaces it)."""

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str, must_arrive: bool = False) -> None:
        """Sends `lines` as one message. Where the queue is full (PID 1 busy) a message is
        dropped, but one that `must_arrive` (READY=1: sent once, and systemd kills a unit that
        never sends it at TimeoutStartSec) is held, and so is the newest STATUS= (else
        `systemctl status` showed a state long gone): `flush` sends them, first."""
        if self._sock is None or self._addr is None:
            return
        if must_arrive:
            self._held = lines
            self.flush()
            return
        self.flush()
        sent = self._sendto(lines)
        status = [line for line in lines if line.startswith("STATUS=")]
        if status:
            self._status = None if sent else status[-1]

    def flush(self) -> None:
        """What was held (READY=1, the newest STATUS=) sent again; call it on every tick."""
        if self._sock is None or self._addr is None:
            return
        if self._held is not None and self._sendto(self._held):
            self._held = None
        if self._held is None and self._status is not None and self._sendto((self._status,)):
            self._status = None

    def _sendto(self, lines: tuple[str, ...]) -> bool:
        assert self._sock is not None and self._addr is not None
        try:
            self._sock.sendto("\n".join(one_line(line) for line in lines).encode(), self._addr)
        except BlockingIOError:
            return False  # its queue is full (PID 1 busy): dropped, or held when it must arrive
        except OSError:
            pass  # systemd went away: nothing useful to do
        return True

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
