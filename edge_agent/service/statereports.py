"""StateReports: what leaves the kiosk about its state changes, bounded in rate.

Each change of the conversation's state is a log line, the retained MQTT `state` and a systemd
`STATUS=` line. The agent's server drives two of them with every frame it sends (agent audio:
speaking; a `clear`: listening), so a hostile one could make thousands of each a second (2 000
audio/clear pairs: 4 000 log lines, 4 000 retained publishes and 4 000 STATUS= lines in 1.6 s).
Reports pass `burst` at once, then `per_s` a second (a conversation makes a few per turn); a
change held back is not lost: the newest one goes out at the next tick the bucket allows, saying
how many were left out, so the retained state and STATUS= always end on the kiosk's own.
"""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.core.events import StateChanged
from edge_agent.core.ratelimit import TokenBucket

BURST = 20
PER_S = 2.0


class StateReports:
    """`report(change, left_out)` for each change let through; `flush` runs from the tick."""

    def __init__(self, report: Callable[[StateChanged, int], None], burst: int = BURST, per_s: float = PER_S) -> None:
        self._report = report
        self._bucket = TokenBucket(burst, per_s)
        self._held: StateChanged | None = None
        self._left_out = 0
        self.left_out = 0
        """Changes never reported (a newer one replaced them while held)."""

    def changed(self, change: StateChanged, now: float) -> None:
        """A state change at `now` (time.monotonic()): reported now, or held for `flush`."""
        if self._held is None and self._bucket.take(now):
            self._report(change, 0)
            return
        if self._held is not None:  # replaced by a newer one: never reported
            self._left_out += 1
            self.left_out += 1
        self._held = change

    def flush(self, now: float, force: bool = False) -> None:
        """Reports the newest held change once the bucket allows (at once with `force`)."""
        held = self._held
        if held is not None and (force or self._bucket.take(now)):
            left_out, self._held, self._left_out = self._left_out, None, 0
            self._report(held, left_out)
