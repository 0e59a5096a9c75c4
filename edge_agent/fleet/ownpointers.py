"""OwnPointers: the newest pointer this kiosk published per (agent, slot), which it defends.

SessionShare publishes the newest session of each slot it starts or ends and, when the broker
turns out to hold an older one, publishes its own again (only the owner corrects: no storms).
That needs what it published, by slot and by session id (an end names only the session), kept
bounded (MINE_REMEMBERED, oldest let go first). Not thread-safe: SessionShare's lock guards it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import ItemsView

from edge_agent.fleet.pointer import Pointer

MINE_REMEMBERED = 4096
"""Pointers this kiosk published that it keeps in memory to defend them (owner-corrects)."""

Where = tuple[str, str]


def stays_newest(mine: Pointer, heard: Pointer) -> bool:
    """Whether our pointer stays the slot's newest over one another kiosk published: never over
    one continuing ours, or started fresh in its place (`Pointer.follows`: newer whatever the clocks
    say, this kiosk's may run ahead: a correction took the person's later conversation back
    fleet-wide); always over the session ours continues
    or ours replaces (heard again, its time from the future is clamped to a later now each time);
    else by rank.
    Beaten, ours is no longer ours to defend: kept, it was corrected back over a continuation of the
    newer one, which the store files as the slot's newest (kiosks disagreed: a fleet model's seed 60)."""
    if heard.follows(mine.session_id):
        return False
    return mine.follows(heard.session_id) or mine.rank >= heard.rank


class OwnPointers:
    """This kiosk's published pointers by (agent, slot), and the slot of each by session id."""

    def __init__(self) -> None:
        self._by_slot: OrderedDict[Where, Pointer] = OrderedDict()
        self._slot_of: dict[str, Where] = {}

    def put(self, where: Where, pointer: Pointer) -> None:
        """`pointer` is the slot's newest of ours (the oldest slot let go past MINE_REMEMBERED).
        The session it replaces is no longer ours to name: kept by id, every conversation of a
        slot added one for good (a kiosk's single button: one per visitor, for months)."""
        replaced = self._by_slot.get(where)
        if replaced is not None and replaced.session_id != pointer.session_id and self._slot_of.get(replaced.session_id) == where:
            del self._slot_of[replaced.session_id]
        self._by_slot[where] = pointer
        self._by_slot.move_to_end(where)
        self._slot_of[pointer.session_id] = where
        while len(self._by_slot) > MINE_REMEMBERED:
            _, old = self._by_slot.popitem(last=False)
            self._slot_of.pop(old.session_id, None)

    def get(self, where: Where) -> Pointer | None:
        return self._by_slot.get(where)

    def slot_of(self, session_id: str) -> Where | None:
        return self._slot_of.get(session_id)

    def drop(self, where: Where) -> None:
        """The slot's pointer is no longer ours to defend (forgotten, or continued elsewhere)."""
        mine = self._by_slot.pop(where, None)
        if mine is not None:
            self._slot_of.pop(mine.session_id, None)

    def clear(self) -> None:
        self._by_slot.clear()
        self._slot_of.clear()

    def items(self) -> ItemsView[Where, Pointer]:
        return self._by_slot.items()

    def slots(self) -> set[Where]:
        return set(self._by_slot)

    def __contains__(self, where: object) -> bool:
        return where in self._by_slot

    def __len__(self) -> int:
        return len(self._by_slot)
