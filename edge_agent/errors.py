"""The exception tree: one root so callers can catch everything edge-agent raises on purpose."""

from __future__ import annotations


class EdgeAgentError(Exception):
    """Root of every error edge-agent raises deliberately."""


class ConfigError(EdgeAgentError):
    """A configuration value is missing or invalid; the message names the key.

    The CLI turns this into one line on stderr and exit code 78 (EX_CONFIG), which the
    systemd unit lists in RestartPreventExitStatus so a bad config cannot restart-loop.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
        self.more: tuple[ConfigError, ...] = ()
        """Problems in other sections of the same file, found by the same read (`config.from_dict`):
        an installer fixing one at a time met the next only at the next try."""
        self.notes: tuple[str, ...] = ()
        """What else the read found that is no error: sections of the file it read past."""

    @staticmethod
    def together(problems: list[ConfigError], notes: tuple[str, ...] = ()) -> ConfigError:
        """The first of `problems` (not empty) carrying the others in `more`, and `notes`."""
        first = problems[0]
        first.more, first.notes = tuple(problems[1:]), notes
        return first

    def all(self) -> tuple[ConfigError, ...]:
        """This problem and the others found with it."""
        return (self, *self.more)

    def shown(self) -> list[str]:
        """The problems to report, one a line: the first SHOWN_MAX, then how many more. A 1 MiB
        config of 100000 unknown keys printed 100000 lines, and a rejected reload logged one of
        2.9 MB (journald splits it, and its rate limit then drops the kiosk's own lines)."""
        found = self.all()
        lines = [str(e) for e in found[:SHOWN_MAX]]
        if len(found) > SHOWN_MAX:
            lines.append(f"and {len(found) - SHOWN_MAX} more problems in the same file")
        return lines

    def every(self) -> str:
        """Those `shown` on one line (a log line), `; ` between."""
        return "; ".join(self.shown())


SHOWN_MAX = 10
"""Config problems (or ignored sections) reported one by one; past them only how many more."""


class UsageError(EdgeAgentError):
    """A command-line argument names something unusable (a `--state-dir` that is not there);
    the CLI reports one line and exit code 2 (EX_USAGE), as argparse does for a malformed one."""


class AudioError(EdgeAgentError):
    """An audio device could not be opened or failed while running."""


class AgentError(EdgeAgentError):
    """The agent link failed; `fatal` tells whether retrying can help."""

    def __init__(self, message: str, *, fatal: bool = False, code: str = "agent") -> None:
        super().__init__(message)
        self.fatal = fatal
        self.code = code


class ProtocolError(AgentError):
    """A frame from the agent server could not be understood (it is logged and skipped)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fatal=False, code="protocol")


class NotReadyError(ProtocolError):
    """The server's `onready` named no session id the kiosk can use: fatal before the session is
    ready, as a retry gets the same answer and every retry may start a session the platform bills
    (a bad id was retried four times in 2 s). Any other bad frame, before onready or after, is
    skipped: one garbled frame on a reconnect must not end the visitor's conversation."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.fatal = True


class StoreError(EdgeAgentError):
    """The session store could not be read or written."""


EX_CONFIG = 78
"""sysexits.h EX_CONFIG: configuration error."""
EX_USAGE = 2
"""What argparse exits with for a bad command line, and the CLI for a `UsageError`."""
