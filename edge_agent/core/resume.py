"""ResumeMemory: which stored session a press for a given (agent, slot) continues.

Sans-I/O bookkeeping for `Conversation`. The session to continue is the newest of that (agent,
slot), asked of an injected `recall` (the store, which also holds what other kiosks shared) and
of what this process learnt itself: the last session it ran in each slot, timed on the monotonic
clock (so a wall-clock jump cannot expire it; it was kept for the last slot only). A session
older than `resume_within_s` is not continued, nor one whose wall-clock time lies ahead of the
kiosk's (FUTURE_TOLERANCE_S): its age is unknown.
The session this process ran beats a stored one that is older by those ages, or of no known age
(the store ranks by wall clock, which a reboot with the clock behind leaves wrong).
"""

from __future__ import annotations

from collections.abc import Callable

MAX_RAN = 1000
"""Slots whose last session this process remembers on the monotonic clock (a badge kiosk's
visitors of a day; about 200 bytes each)."""

Recall = Callable[[str | None, str], tuple[str, float] | None]
"""(agent_id or None, slot) -> (newest session id, wall-clock seconds since it was active)."""

FUTURE_TOLERANCE_S = 60.0
"""A stored session may look this far in the future (a clock stepped back by NTP) and still be
continued. Beyond, it was stored under a clock that ran ahead (a Pi has no battery clock; a bad
time server), and how old it really is cannot be told: continuing it could hand an old visitor's
conversation to a new one, whatever `resume_within_s` says, for as long as the clock is behind."""


def rekeyed(agent_id: str | None, old_agent_id: str | None, new_agent_id: str | None) -> str | None:
    """`agent_id` (None: the configured agent) as it is keyed once the configured agent changes
    from `old_agent_id` to `new_agent_id`: the old one by its id, the new one as None."""
    if old_agent_id == new_agent_id:
        return agent_id
    if agent_id is None:
        return old_agent_id
    return None if agent_id == new_agent_id else agent_id


class ResumeMemory:
    """The last session of this kiosk and where it belongs. `last_session_id`/`last_active_age_s`
    (of the default `slot`) come from the store at start, read at monotonic `aged_at`; `recall`
    looks up the others, and that same session's age as the store tells it now. Without a store
    to ask (a fault) its age grows from `aged_at`: it was held at its age at start, and the last
    visitor's conversation stayed open to a short press for as long as the kiosk ran unpressed,
    whatever `resume_within_s` said."""

    def __init__(self, last_session_id: str | None, last_active_age_s: float | None, slot: str, recall: Recall | None, aged_at: float | None = None) -> None:
        self.recall = recall
        self._last_id = last_session_id  # the store's newest of the default slot at start
        self._last_target: tuple[str | None, str] = (None, slot)
        self._last_age_s = last_active_age_s
        self._aged_at = aged_at  # monotonic time _last_age_s was read (None: not known, taken as now)
        self._ran: dict[tuple[str | None, str], tuple[str, float]] = {}
        """(agent_id, slot) -> the session this process ran there and the monotonic time it was
        learnt, every slot's (the newest MAX_RAN): only the last one's was kept, so after a clock
        step every other slot's conversation the kiosk held itself was of no known age, or too old."""

    def candidate(self, now: float, within_s: float, agent_id: str | None, slot: str) -> str | None:
        """The session a press for (agent_id, slot) would continue at `now`, if any."""
        known = self.recall(agent_id, slot) if self.recall is not None else None
        ran = self._ran.get((agent_id, slot))
        mine = ran[0] if ran is not None else self._last_id if self._last_target == (agent_id, slot) else None
        if ran is not None:  # learnt in this process: monotonic clock
            age = now - ran[1]
            if known is not None and known[0] != mine and not (-FUTURE_TOLERANCE_S <= known[1] < age):
                known = None  # the store's is older, or of no known age: this process ran the newest
        elif mine is not None and known is not None and known[0] == mine:
            age = known[1]  # from the store at start: its age as the store tells it now
        elif mine is not None and known is None:  # the store cannot say: its age at start, grown since
            age = (self._last_age_s or 0.0) + (now - self._aged_at if self._aged_at is not None else 0.0)
        if known is not None and (mine is None or known[0] != mine):  # another slot, or a newer
            mine, age = known  # session another kiosk shared
        if mine is None:
            return None
        return mine if -FUTURE_TOLERANCE_S <= age <= within_s else None

    def remember(self, session_id: str, agent_id: str | None, slot: str, now: float) -> None:
        """This process ran `session_id` for (agent_id, slot), last active at `now`."""
        self._last_id = None  # what the store held at start is the store's to tell from now on
        self._ran.pop((agent_id, slot), None)  # to the end: the newest last
        self._ran[(agent_id, slot)] = (session_id, now)
        if len(self._ran) > MAX_RAN:
            del self._ran[next(iter(self._ran))]

    def forget(self, target: tuple[str | None, str] | None = None) -> None:
        """The sessions were forgotten (with `target`, only those of that (agent_id, slot)):
        nothing of this process's own is continued there."""
        if target is None:
            self._ran.clear()
        else:
            self._ran.pop(target, None)
        if target is None or target == self._last_target:
            self._last_id = None
            self._last_age_s = None

    def agent_renamed(self, old_agent_id: str | None, new_agent_id: str | None) -> None:
        """The configured agent changed (a reload) from `old_agent_id` to `new_agent_id`: the
        configured agent is filed as None, so a session of the old one would be continued by the
        new one's press (and no longer by a button naming the old one); it is the old one's."""
        agent, slot = self._last_target
        self._last_target = (rekeyed(agent, old_agent_id, new_agent_id), slot)
        self._ran = {(rekeyed(a, old_agent_id, new_agent_id), s): ran for (a, s), ran in self._ran.items()}

    def reloaded(self, session_id: str | None, age_s: float | None, slot: str, now: float) -> None:
        """The store is back (after a fault): its newest session of the default `slot` (of age
        `age_s` at `now`), unless this process has run one since it started."""
        if not self._ran:
            self._last_id, self._last_age_s, self._aged_at = session_id, age_s, now
            self._last_target = (None, slot)
