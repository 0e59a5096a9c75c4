"""OwedSends: the limit on what a kiosk publishes over the fleet's retained messages, and what
that limit held back, owed until it allows.

Corrections (this kiosk's pointer published again over an older one) and forgets published again
(joined with another kiosk's that replaced ours, or the clearing of our own pointer) answer what
others publish: anyone who may write `_sessions/#` could otherwise make a kiosk answer one for one
into the bounded queue its state and events share. Ten at once, then one a second
(CORRECTIONS_BURST, CORRECTION_EVERY_S). What the limit holds back is owed, not dropped: a forget
lost there left a kiosk offline through two forgets keeping the sessions of the first (a fleet
model's find). Not thread-safe: SessionShare's lock guards it; `pay` runs on the `later` thread.
"""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.core.ratelimit import TokenBucket

CORRECTIONS_BURST, CORRECTION_EVERY_S = 10, 1.0
"""Older pointers corrected (this kiosk's own published again over them): ten at once, then one
a second; a slot whose correction the limit held back is owed one, sent when the limit allows
(`corrections_held` counts them). Anyone who may write `_sessions/#` (every kiosk, on a locked-down
broker) could otherwise flood a slot this kiosk owns with a stale pointer, each answered one for
one into the bounded queue the kiosk's state and events share: a helper's attack dropped 7 945
of them, a whole conversation's state and events among them."""

Where = tuple[str, str]


class OwedSends:
    """The corrections limit, and the slots whose correction or forget it held back."""

    def __init__(self, monotonic: Callable[[], float], later: Callable[[float, Callable[[], None]], None], pay: Callable[[], None], counts: dict[str, int]) -> None:
        """`pay` (it takes the caller's lock, then `take_owed`) runs CORRECTION_EVERY_S after a send
        was held back, through `later`; `counts["corrections_held"]` counts those."""
        self._monotonic = monotonic
        self._later = later
        self._pay = pay
        self._counts = counts
        self._bucket = TokenBucket(CORRECTIONS_BURST, 1.0 / CORRECTION_EVERY_S, monotonic())
        self.corrections: set[Where] = set()
        """Slots whose correction the limit held back."""
        self.forgets: set[Where] = set()
        """Slots whose forget the limit held back."""
        self._waiting = False  # a `later` call will pay them

    def within(self, where: Where, forget: bool = False) -> bool:
        """A token taken; else `where` is owed a correction (a forget), paid when the limit allows."""
        if self._bucket.take(self._monotonic()):
            return True
        self._counts["corrections_held"] += 1
        (self.forgets if forget else self.corrections).add(where)
        if not self._waiting:
            self._waiting = True
            self._later(CORRECTION_EVERY_S, self._pay)
        return False

    def take_owed(self) -> tuple[set[Where], set[Where]]:
        """(corrections, forgets) owed, handed over to be paid (within the limit again)."""
        self._waiting = False
        owed = (self.corrections, self.forgets)
        self.corrections, self.forgets = set(), set()
        return owed
