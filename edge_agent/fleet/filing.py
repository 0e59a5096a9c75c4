"""FilingQueue: the fleet's pointers and forgets a SessionShare (share.py) heard, waiting to be
carried out in the store.

They arrive on paho's thread and are coalesced per slot (newest kept: `waiting`; forgets joined)
into a bounded table; the event loop files them into the store in batches (one transaction each),
so a catch-up of 100 000 retained pointers never blocks the loop for long. Not thread-safe by
itself: SessionShare's lock guards it, and `drain` takes that lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from edge_agent.fleet.pointer import Filed, Forgotten, Pointer, waiting

MAX_PENDING = 200_000
"""Distinct slots waiting to be filed; beyond this, pointers are dropped (counted)."""
BATCH = 256
"""Pointers filed per turn of the event loop (one SQLite transaction)."""

Where = tuple[str, str]


class FilingQueue:
    """Pointers and forgets heard, per slot, until `drain` carries them out on the event loop."""

    def __init__(
        self,
        lock: threading.Lock,
        post: Callable[[Callable[[], None]], None],
        file: Callable[[list[Filed]], int],
        forget_slots: Callable[[list[tuple[str, str, tuple[str, ...] | None]]], list[tuple[str, ...]] | None],
        deleted: Callable[[list[tuple[Where, tuple[str, ...], Forgotten]]], None],
        counts: dict[str, int],
    ) -> None:
        """`lock`: SessionShare's; `post`, `file`, `forget_slots`: as SessionShare's; `deleted`
        hears the ids a batch of forgets deleted; `counts["dropped"]` and `counts["filed"]` count."""
        self._lock = lock
        self._post = post
        self._file = file
        self._forget_slots = forget_slots
        self._deleted = deleted
        self._counts = counts
        self.pointers: dict[Where, Pointer] = {}
        self.forgets: dict[Where, Forgotten] = {}

    def __len__(self) -> int:
        return len(self.pointers) + len(self.forgets)

    def add_forget(self, where: Where, forgotten: Forgotten) -> bool:
        """Joined with the slot's forget waiting, if any (lock held); True when the queue was
        empty before it (a `drain` to post), False also when it is full (dropped, counted)."""
        first = not (self.pointers or self.forgets)
        had = self.forgets.get(where)
        if had is None and len(self.forgets) >= MAX_PENDING:
            self._counts["dropped"] += 1  # (what it names is remembered all the same)
            return False
        self.forgets[where] = forgotten if had is None else had.joined(forgotten)
        return first

    def add_pointer(self, where: Where, pointer: Pointer) -> bool:
        """Kept when newer than the slot's pointer waiting (lock held); True when the queue was
        empty before it (a `drain` to post), False also when it is full (dropped, counted)."""
        pending = self.pointers.get(where)
        filed = pointer if pending is None else waiting(pending, pointer)
        if filed is None:
            return False
        if pending is None and len(self.pointers) >= MAX_PENDING:
            self._counts["dropped"] += 1
            return False
        first = not (self.pointers or self.forgets)
        self.pointers[where] = filed
        return first

    def let_go(self, where: Where, forgotten: Forgotten) -> None:
        """A forget of the slot heard: a pointer waiting that it covers is not filed (lock held)."""
        pending = self.pointers.get(where)
        if pending is not None and forgotten.covers(pending.session_id, pending.continued_from):
            del self.pointers[where]

    def drain(self) -> None:
        """Carries out up to BATCH pending forgets, then files up to BATCH pending pointers (a
        pointer after a forget of its slot is newer than it); posts itself again while more are
        waiting (a catch-up of retained forgets is paced like one of pointers)."""
        with self._lock:
            forgets = [self.forgets.popitem() for _ in range(min(BATCH, len(self.forgets)))]
            batch = []
            for _ in range(min(BATCH, len(self.pointers))):
                where = next(iter(self.pointers))
                batch.append((where, self.pointers.pop(where)))
            more = bool(self.pointers or self.forgets)
        try:
            if forgets:  # one transaction for the batch: a durable commit each held the loop for seconds
                deleted = self._forget_slots([(agent, slot, forgotten.sessions) for (agent, slot), forgotten in forgets])
                if deleted:
                    self._deleted([(where, ids, forgotten) for (where, forgotten), ids in zip(forgets, deleted, strict=True) if ids])
            if batch:
                self._counts["filed"] += self._file([(a, s, p.session_id, p.continued_from, p.started_at, p.ended_at, p.replaces) for (a, s), p in batch])
        finally:
            if more:
                self._post(self.drain)
