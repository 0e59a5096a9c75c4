"""Reconnects: whether a conversation whose agent link dropped is reopened, after what delay, or given up.

Sans-I/O bookkeeping for `Conversation`: times are monotonic seconds passed in, the jitter comes
from the conversation's injected `random.Random`, and the limits from its current `Timing` (passed
to each call, so a config reload applies at once). A loss starts a reconnect window; attempts
back off exponentially with full jitter up to `backoff_cap_s`. A link that lived at least
`min_link_life_s` before it dropped counts as a new fault (fresh window and backoff), so a server
that accepts and drops at once never gets a fast retry. Each conversation may be reconnected at
most `max_reconnects` times.
"""

from __future__ import annotations

import random
from typing import Literal

from edge_agent.core.timing import Timing

Verdict = Literal["retry", "window_passed", "too_many"]
"""What a loss leads to: reopen after `backoff_s`, or give up (window over, or reconnect limit)."""


class Reconnects:
    """The reconnect state of one conversation (`reset` at each start)."""

    def __init__(self) -> None:
        self.lost_at: float | None = None
        """When the current fault began (None: the link has not been lost in this conversation)."""
        self.attempt = 0
        """Reopen attempts in the current fault (the backoff's exponent)."""
        self.count = 0
        """Links that became ready again after a loss in this conversation."""
        self._ready_at: float | None = None

    def reset(self) -> None:
        self.lost_at = None
        self.attempt = 0
        self.count = 0
        self._ready_at = None

    def ready(self, now: float) -> bool:
        """A link became ready; True when it replaces a lost one (a reconnect). The backoff and
        the window restart only once this link has lived (see `lost`)."""
        reconnected = self.lost_at is not None
        self._ready_at = now
        if reconnected:
            self.count += 1
        return reconnected

    def lost(self, now: float, t: Timing, fault_since: float | None = None) -> Verdict:
        """The live link dropped (not fatally): reopen it, or give up. `fault_since`: when the
        fault began if not now (a conversation never ready: at the press, so a server that
        answers nothing holds the kiosk for the window, not the dead-link timeout and then the
        window: 45 s for a 30 s window)."""
        if self._ready_at is not None and now - self._ready_at >= t.min_link_life_s:
            self.lost_at = None  # it lived: a new fault, with a fresh window and backoff
            self.attempt = 0
        self._ready_at = None
        if self.lost_at is None:
            self.lost_at = now if fault_since is None else fault_since
        if now - self.lost_at >= t.reconnect_window_s:
            return "window_passed"
        if self.count >= t.max_reconnects:
            return "too_many"
        self.attempt += 1
        return "retry"

    def window_passed(self, now: float, t: Timing) -> bool:
        """A fault is on and its reconnect window is over (checked on every tick while connecting)."""
        return self.lost_at is not None and now - self.lost_at >= t.reconnect_window_s

    def backoff_s(self, t: Timing, rng: random.Random) -> float:
        """The delay before the current attempt: exponential, capped, with full jitter."""
        base: float = min(t.backoff_cap_s, t.backoff_base_s * 2.0 ** max(0, self.attempt - 1))
        return base * (0.5 + float(rng.random()))  # full jitter around the nominal delay
