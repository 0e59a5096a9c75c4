"""ForgetMemory: what a kiosk keeps in memory of the fleet's forgets, bounded.

- the forgets heard, per slot (joined): their sessions, and whatever continues them, are not
  filed again when published again (a kiosk back online sends what paho held before it hears
  the forget);
- the forgets this kiosk sent itself, per slot: published again when the broker lost them
  (restarted without persistence) or when another kiosk's forget of the slot replaced ours;
- when a forget naming sessions was last heard, per slot, and how many of those forgets' empty
  pointers are still to come: each is its forget's own clearing of the pointer, not an older
  kiosk's forget of the whole slot; and the slots
  whose forget this kiosk sent and has not heard back: an empty pointer heard first is its own
  clearing (the link dropped between the two, and the forget comes back retained, after it).

Plain data, no I/O and no lock: SessionShare (share.py) holds its lock around every call.
"""

from __future__ import annotations

from collections import OrderedDict

from edge_agent.fleet.pointer import Forgotten, Pointer

Where = tuple[str, str]
"""(agent, slot)"""

IDS_REMEMBERED = 65536
"""Session ids of the forgets heard kept in memory (about 12 MB at most); the oldest forgets go
first (the broker hands all of them back at every connect, so a restart loses nothing). Bounded in
ids, not forgets: anyone who may write `_sessions/#` can send forgets of 32 ids of 128 characters."""
OURS_REMEMBERED = 4096
"""Slots of this kiosk's own forgets kept in memory."""
CLEARED_WITHIN_S = 10.0
"""An empty pointer heard this soon after a Forgotten of its slot is that forget's own clearing of
the retained pointer (`clear_pointers` sends the two back to back), not an older kiosk's forget
of the whole slot: taken as one, it deleted on every kiosk hearing it live a conversation of that
slot started since, which the forget does not name (a helper's find, 2026-12-06)."""
NAMED_REMEMBERED = 200_000
"""Slots whose last named forget's time is kept (a flood of forgets: the oldest go)."""


class ForgetMemory:
    def __init__(self) -> None:
        self.heard: OrderedDict[Where, Forgotten] = OrderedDict()
        self.ids = 0
        """Session ids in `heard`."""
        self.ours: OrderedDict[Where, tuple[str, ...]] = OrderedDict()
        self.named_at: OrderedDict[Where, tuple[float, int]] = OrderedDict()
        """When a forget naming sessions was last heard (monotonic s), for CLEARED_WITHIN_S, and how
        many such forgets' clearings (empty pointers) have not been heard yet: a kiosk clearing its
        own pointer on hearing a forget sends a second forget and empty, and the broker may take
        them interleaved (forget, forget, empty, empty); only the first empty was a clearing, the
        second deleted a conversation started since (the fleet model's seed 609)."""
        self.retained_at: OrderedDict[Where, tuple[float, Pointer]] = OrderedDict()
        """The pointer the broker retained for a slot, heard at a (re)subscribe within CLEARED_WITHIN_S
        (monotonic s): whether the slot's retained forget, replayed after it, still has its clearing
        to come (`is_clearing`), and whose it is (`retained_covered`)."""
        self.unheard_sent: OrderedDict[Where, None] = OrderedDict()
        """Slots whose forget (then empty pointer) this kiosk sent, no forget of them heard since."""

    def known(self, where: Where) -> Forgotten | None:
        return self.heard.get(where)

    def covers(self, where: Where, session_id: str, continued_from: str | None) -> bool:
        known = self.heard.get(where)
        return known is not None and known.covers(session_id, continued_from)

    def remember(self, where: Where, forgotten: Forgotten) -> None:
        """Joins a forget naming sessions to the slot's remembered ones, IDS_REMEMBERED at most."""
        if forgotten.sessions is None:
            return
        known = self.heard.pop(where, None)
        kept = forgotten if known is None else known.joined(forgotten)
        self.heard[where] = kept
        self.ids += len(kept.sessions or ()) - len(known.sessions or () if known else ())
        while self.ids > IDS_REMEMBERED:
            _, gone = self.heard.popitem(last=False)
            self.ids -= len(gone.sessions or ())

    def sent(self, where: Where, forgotten: Forgotten) -> None:
        """A forget of ours: known at once (before we hear it back), and ours to keep retained."""
        self.remember(where, forgotten)
        self.sending(where)
        self.ours.pop(where, None)
        self.ours[where] = forgotten.sessions or ()
        while len(self.ours) > OURS_REMEMBERED:
            self.ours.popitem(last=False)

    def sending(self, where: Where) -> None:
        """A forget of this slot sent (ours, or another's published again), its empty pointer after it."""
        self.unheard_sent.pop(where, None)
        self.unheard_sent[where] = None
        while len(self.unheard_sent) > OURS_REMEMBERED:
            self.unheard_sent.popitem(last=False)

    def retained_pointer(self, where: Where, pointer: Pointer, now: float) -> None:
        """A pointer the broker replayed at a (re)subscribe (before the forgets: subscribed first)."""
        self._expire(now)
        self.retained_at.pop(where, None)
        self.retained_at[where] = (now, pointer)
        if len(self.retained_at) > NAMED_REMEMBERED:
            self.retained_at.popitem(last=False)

    def retained_covered(self, where: Where, forgotten: Forgotten, now: float) -> str | None:
        """The kiosk of the pointer the broker replayed beside this forget (replayed too) when the
        forget names its session: a pointer of a forgotten session the broker keeps for good unless
        its owner clears it (sent from before that kiosk heard the forget, after its clearing)."""
        self._expire(now)
        beside = self.retained_at.get(where)
        if beside is None or forgotten.sessions is None or not forgotten.covers(beside[1].session_id, beside[1].continued_from):
            return None
        return beside[1].kiosk

    def _expire(self, now: float) -> None:
        while self.named_at and next(iter(self.named_at.values()))[0] < now - CLEARED_WITHIN_S:
            self.named_at.popitem(last=False)
        while self.retained_at and next(iter(self.retained_at.values()))[0] < now - CLEARED_WITHIN_S:
            self.retained_at.popitem(last=False)

    def is_clearing(self, where: Where, forgotten: Forgotten, now: float, retained: bool = False) -> bool:
        """Notes a forget heard at `now`; True for an empty pointer (a forget of the whole slot)
        heard within CLEARED_WITHIN_S of a forget naming sessions whose clearing is still to come
        (one empty for each such forget), or before the one this kiosk sent: that forget's own
        clearing. A kiosk whose link dropped once the broker had its forget heard
        its own clearing live on reconnect, before the retained forget: as a forget of the whole
        slot, it deleted a conversation started since and published a forget naming it. A forget
        `retained` (the broker's copy, replayed at a subscribe) owes none when the broker retained no
        pointer beside it, or a fresh start it does not name (a conversation started since): its
        clearing came before, and every kiosk connecting ignored an admin's forget of the slot for
        CLEARED_WITHIN_S after. One beside a pointer it names, or a continuation (perhaps of one it
        names, links down), owes one: the kiosk may have subscribed between the forget and its
        clearing, which deleted there the whole slot."""
        self._expire(now)
        if forgotten.sessions is not None:
            self.unheard_sent.pop(where, None)
            beside = self.retained_at.pop(where, (0.0, None))[1] if retained else None
            if retained and (beside is None or (beside.continued_from is None and not forgotten.covers(beside.session_id, None))):
                return False
            _, owed = self.named_at.pop(where, (now, 0))
            self.named_at[where] = (now, owed + 1)
            if len(self.named_at) > NAMED_REMEMBERED:
                self.named_at.popitem(last=False)
            return False
        sent = where in self.unheard_sent
        self.unheard_sent.pop(where, None)
        named = self.named_at.get(where)
        if named is None:
            return sent
        if named[1] > 1:
            self.named_at[where] = (named[0], named[1] - 1)  # (in place: the table stays in time order)
        else:
            del self.named_at[where]
        return True
