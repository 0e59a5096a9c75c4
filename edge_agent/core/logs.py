"""Log set-up for every command: stderr, the journal's format under systemd, quiet libraries.

Logs go to stderr, without our own timestamps when journald captures them (JOURNAL_STREAM is
set), each line led by its syslog priority then (`<4>` for a warning) so the journal files it so. The handler writes to its own duplicate of file descriptor 2, so log lines from any thread
still get out while audio/quiet.py points fd 2 at /dev/null for the moment PortAudio starts.
Library warnings (gpiozero's pin-factory fallbacks on a machine without GPIO) are shown only at
debug level, as log lines.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import IO

LEVELS = ("debug", "info", "warning", "error")


def printable(text: str, max_chars: int) -> str:
    """`text` from outside (a device's name, anyone's MQTT message) fit for one log or terminal
    line: what is not printable (newlines, escape codes, other control and format characters)
    as `?`, at most `max_chars` of it (a longer one ends in `...`)."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in text[:max_chars])
    return shown + "..." if len(text) > max_chars else shown


_dup_stderr: IO[str] | None = None


def log_stream() -> IO[str]:
    """A text stream on a duplicate of fd 2, made once; stderr itself when something replaced
    it (pytest's capture) or it has no file descriptor."""
    global _dup_stderr
    err: IO[str] = sys.stderr
    if err is not sys.__stderr__:
        return err
    if _dup_stderr is None:
        try:
            _dup_stderr = os.fdopen(os.dup(err.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
        except (OSError, ValueError, AttributeError):
            return err
    return _dup_stderr


SYSLOG_PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
"""A log level's syslog priority, the `<N>` prefix journald reads off a line of a service's
stderr (SyslogLevelPrefix=, on by default): without it every line was stored at info, and
`journalctl -u edge-agent -p warning` showed no warning or error."""


class JournalFormatter(logging.Formatter):
    """Lines for journald: the syslog priority first, no timestamp (the journal keeps its own)."""

    def format(self, record: logging.LogRecord) -> str:
        priority = SYSLOG_PRIORITIES.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return f"<{priority}>{super().format(record)}"


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=log_stream(), force=True)
    if os.environ.get("JOURNAL_STREAM"):
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JournalFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("websockets").setLevel(logging.WARNING)
    debug = level.lower() == "debug"
    logging.captureWarnings(debug)
    if not debug:
        warnings.filterwarnings("ignore", module=r"gpiozero(\.|$)")
