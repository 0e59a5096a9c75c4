"""systemd notify protocol: a datagram to $NOTIFY_SOCKET (READY=1, STATUS=..., WATCHDOG=1).

A few clear lines instead of a dependency. Does nothing when not started by systemd. The
protocol is one `KEY=value` per line, so a value carrying a newline (a server's session id in a
STATUS= line, say) could add a line of its own, `WATCHDOG=trigger` for one: every control
character of every line is replaced before sending.
"""

from __future__ import annotations

import os
import re
import socket

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """`text` with every control character (newline, CR, NUL, escape) made a space."""
    return CONTROL_CHARS.sub(" ", text)


class SystemdNotifier:
    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        self._addr: str | None = None
        self._sock: socket.socket | None = None
        if addr:
            self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_s: float | None = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 else None

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> None:
        if self._sock is None or self._addr is None:
            return
        try:
            self._sock.sendto("\n".join(one_line(line) for line in lines).encode(), self._addr)
        except OSError:
            pass  # systemd went away or the socket is full: nothing useful to do

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
