"""SessionRecords: where the kiosk keeps the record of its sessions, and what it says when that fails.

A session is recorded in the local SessionStore and, with `session.share` on, announced to the
fleet as the slot's newest (fleet/share.py). A storage fault must not stop a conversation: a
failed write is logged and reported as an `error` event (`code: store`) and the conversation goes
on. The store falls back to memory on a fault and moves a corrupt file aside; `check` reports
each change once (`store_corrupt`, `store_unavailable`, then `store_recovered` when it is back on
disk) and calls `on_change` when the store went to memory or back to disk. Like `AudioWatch`, it
gets what it needs passed in and runs on the daemon's loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.core.ratelimit import TokenBucket
from edge_agent.core.store import SessionStore, StoredSession
from edge_agent.errors import StoreError
from edge_agent.fleet.commands import CommandError

if TYPE_CHECKING:  # the share's modules load only with `session.share` on (service/slots.py)
    from edge_agent.fleet.share import SessionShare

log = logging.getLogger("edge_agent")

FORGETS_BURST, FORGET_EVERY_S = 3, 10.0
"""Wipes of the store (`forget_sessions` over MQTT): three at once, then one per 10 s; more are
refused ("rate limited"). Each wipe deletes, checkpoints the WAL and VACUUMs, all synced, on the
daemon's loop: a flood of 1 000 commands held the loop (audio, the watchdog's ping) for 3-12 s
here, longer on an SD card, where the unit's 15 s watchdog would kill the kiosk."""


class SessionRecords:
    """Records sessions in `store` (and `share`, when on); reports through `notify`."""

    def __init__(
        self, store: SessionStore, share: SessionShare | None, notify: Callable[[str, dict[str, Any]], None], on_change: Callable[[], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store, self.share = store, share
        self._clock = clock
        self._forgets = TokenBucket(FORGETS_BURST, 1.0 / FORGET_EVERY_S, clock())
        self._notify, self._on_change = notify, on_change
        self._fault: str | None = None  # the fault last reported
        self._moved: Path | None = None  # the corrupt file last reported as moved aside

    def started(self, session_id: str, agent: str, slot: str, continued_from: str | None) -> None:
        now = time.time()
        # a fresh start names the slot's newest it knew (`Pointer.replaces`): ranked by the kiosks'
        # clocks, a kiosk whose clock ran ahead kept its older session and sent it again, and the
        # person's new conversation was lost to the fleet
        replaced = None if continued_from is not None or self.share is None else self._newest(agent, slot, quiet=True)
        replaces = replaced.id if replaced else None  # (the store and announce drop one naming the session itself)
        self._write(self.store.record_start, session_id, agent, slot, continued_from, now, replaces)
        if self.share is not None:
            from edge_agent.fleet.pointer import Pointer  # loaded already: the share imports it

            self.share.announce(agent, slot, Pointer(session_id, now, None, continued_from, replaces=replaces))

    def ended(self, session_id: str, reason: str) -> None:
        now = time.time()
        self._write(self.store.record_end, session_id, reason, now)
        if self.share is not None:
            self.share.ended(session_id, now)

    def newest(self, agent: str, slot: str) -> tuple[str, float] | None:
        """The newest stored session of (agent, slot), with its wall-clock age (None on a fault)."""
        newest = self._newest(agent, slot)
        return (newest.id, time.time() - newest.last_active_at) if newest else None

    def _newest(self, agent: str, slot: str, quiet: bool = False) -> StoredSession | None:
        """`quiet`: a fault is not logged (a write that follows reports it)."""
        try:
            return self.store.newest(agent, slot)
        except StoreError as exc:
            if not quiet:
                log.error("%s", exc)
            return None

    def foreign(self, session_id: str, agent: str, slot: str) -> bool:
        """The store holds `session_id` for another (agent, slot) than this one (False when it
        holds no such id, or on a fault)."""
        try:
            held = self.store.get(session_id)
        except StoreError as exc:
            log.error("%s", exc)
            return False
        return held is not None and (held.agent, held.slot) != (agent, slot)

    def forget(self) -> int:
        """Wipes the store (and moved-aside copies) and the fleet's copies (empty retained
        pointers); returns how many sessions the store held. CommandError beyond FORGETS_BURST /
        FORGET_EVERY_S (nothing is wiped: the wipe before is a few seconds old)."""
        now = self._clock()
        if not self._forgets.take(now):
            raise CommandError(f"rate limited: the sessions were forgotten moments ago; next forget in {self._forgets.wait_s(now):.0f} s")
        if self.share is not None:
            from edge_agent.fleet.forget import slot_sessions  # loaded already: the share imports it

            try:
                slots = slot_sessions(self.store.recent(self.store.keep_sessions))
            except StoreError:
                slots = {}  # an unusable store: at least the pointers this kiosk published
            self.share.forget(slots)
        return self.store.forget()

    def _write(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except StoreError as exc:  # the conversation goes on; the operator hears about it
            log.error("%s", exc)
            self._notify("error", {"code": "store", "message": str(exc)})
        self.check()

    def check(self) -> None:
        """Reports a corrupt file moved aside, and the store going to memory (a storage fault)
        or back to disk, once each."""
        moved, fault = self.store.recovered_from, self.store.fault
        if moved != self._moved and moved is not None:
            self._notify("error", {"code": "store_corrupt", "message": f"state file moved to {moved}"})
        self._moved = moved
        if fault == self._fault:
            return
        self._fault = fault
        if fault is not None:
            self._notify("error", {"code": "store_unavailable", "message": f"{fault}; sessions kept in memory, retrying every {self.store.retry_s:.0f} s"})
        else:
            self._notify("store_recovered", {"path": str(self.store.path)})
        self._on_change()
