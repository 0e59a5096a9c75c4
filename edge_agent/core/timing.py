"""Timing: the timers and limits of a conversation, in seconds (from SessionSettings and AudioSettings).

A plain frozen dataclass: `Conversation` and the bookkeeping it delegates to (`core/reconnect.py`,
`core/resume.py`) read it; the daemon builds it from the settings (`service/assembly.py`) and
swaps it on a config reload.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """The timers a Conversation needs, in seconds (from SessionSettings and AudioSettings)."""

    idle_timeout_s: float = 30.0
    max_duration_s: float = 600.0
    reconnect_window_s: float = 30.0
    resume: bool = True
    resume_within_s: float = 7 * 86400.0
    duplex_half: bool = True
    duplex_tail_s: float = 0.3
    push_to_talk: bool = False
    ending_timeout_s: float = 2.0
    error_hold_s: float = 5.0
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 5.0
    start_burst: int = 10
    starts_per_minute: float = 6.0
    """Conversation starts, whatever asks for them (button, MQTT): a token bucket of
    `start_burst` refilled at this rate; a start beyond it is refused (`starts_refused`)."""
    max_reconnects: int = 10
    """Times one conversation may be reconnected (each a new session on the platform); the loss
    after that ends it with an error. Attempts that never connect are bounded by the backoff and
    `reconnect_window_s` instead."""
    min_link_life_s: float = 10.0
    """A link must have been ready this long before its loss resets the backoff and the
    reconnect window: a server that accepts and drops at once does not get a fast retry."""
