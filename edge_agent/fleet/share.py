"""SessionShare: a fleet's kiosks remember conversations together, through the MQTT broker.

With `[session] share = true`, every kiosk publishes, retained, the newest session of each
(agent, slot) it starts or ends, and follows the others' (wire formats: pointer.py).

A person who badges in at kiosk B after talking at kiosk A continues A's session: B filed A's
pointer in its own SessionStore when it arrived (or, after being offline, when it reconnected
and the broker handed it the retained pointers). Newest wins: a pointer is filed only when its
`started_at` (ties: the larger session id) is newer than what the store has for that slot, or it
was made knowing that one (continues it, or `replaces` it: a fresh start), whatever the clocks. The
broker keeps whichever pointer was published last, which after a race or a reconnect may be the
older one; the kiosk that started the newer session sees that and publishes its own again, so
the retained pointer converges on the newest (only the owner answers: no storms).

`forget` leaves, retained beside each slot's pointer, a Forgotten naming the slot's sessions
this kiosk knew, and clears the pointer; every kiosk that hears one deletes those sessions and
every one continuing them (also one offline at the forget, when it is back) and refuses them
when they are published again (forgetmemory.py keeps what is needed for that). A conversation
started since is not named: it is not touched, even on a kiosk whose clock is behind.

Incoming pointers are untrusted: topic levels, payload size, session id charset and length are
checked, timestamps from the future are clamped to now; a bad one is counted and dropped. They
arrive on paho's thread and are coalesced per slot (newest kept) into a bounded pending table;
the event loop files them into the store in batches (one transaction each), so a catch-up of
100 000 retained pointers never blocks the loop for long (filing.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial

from edge_agent.core.slots import is_label
from edge_agent.fleet.filing import FilingQueue
from edge_agent.fleet.forget import Slots, forgets_of
from edge_agent.fleet.forgetmemory import ForgetMemory
from edge_agent.fleet.owed import OwedSends
from edge_agent.fleet.ownpointers import OwnPointers, stays_newest
from edge_agent.fleet.pointer import MAX_FORGOTTEN_IDS, Filed, Forgotten, Pointer, ShareError, forgotten_topic, pointer_topic, slot_of
from edge_agent.fleet.sharebus import RESEND_BATCH, RESEND_PACE_S, Bus, LatestWait, send_paced, timer

__all__ = ["Filed", "Forgotten", "Pointer", "SessionShare", "ShareError", "forgotten_topic", "pointer_topic"]


log = logging.getLogger(__name__)

RESEND_AFTER_S = 30.0
"""After a (re)connect, this kiosk's own pointers the broker has not sent back as retained within
this long are published again: a broker that lost its retained messages (restarted without
persistence, replaced) held none of them, and a person was not recognised at the next kiosk. Long
enough for a catch-up of 100 000 pointers to arrive first, so a newer pointer of another kiosk is
not overwritten by an older one of ours (it would be corrected back, but churn for nothing)."""


class SessionShare:
    """Publishes this kiosk's newest sessions and files the fleet's. `post` runs a callable on
    the event loop (thread-safe); `file` and `forget_slots` are store calls made there."""

    def __init__(
        self,
        bus: Bus,
        prefix: str,
        device_id: str,
        agents: Iterable[str],
        post: Callable[[Callable[[], None]], None],
        file: Callable[[list[Filed]], int],
        forget_slots: Callable[[list[tuple[str, str, tuple[str, ...] | None]]], list[tuple[str, ...]] | None],
        clock: Callable[[], float] = time.time,
        clear: Callable[[list[tuple[str, str, Forgotten]]], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        later: Callable[[float, Callable[[], None]], None] | None = None,
        own: Iterable[tuple[str, str, Pointer]] = (),
    ) -> None:
        """`monotonic` and `later` (run a callable after so many seconds, on any thread) pace the
        corrections (owed.py) and the resend after a connect; a daemon timer thread by default.
        `own`: (agent, slot, pointer) of the slots whose newest session the store says is ours
        (`SessionStore.own_newest`), defended as if published by this run: one held offline went
        with paho's queue at a restart, and the fleet never heard of the conversation here."""
        self.bus = bus
        self.prefix = prefix
        self.device_id = device_id
        self._post = post
        self._clock = clock
        self._clear = clear or self._clear_on_bus
        self._lock = threading.Lock()
        self.forgets = ForgetMemory()
        self._mine = OwnPointers()
        self._unheard_forgets: set[tuple[str, str]] = set()  # our forgets the broker has not sent back since the last connect
        self._unheard: set[tuple[str, str]] = set()  # ours the broker has not sent back since the last connect
        self._connects = 0
        self._monotonic = monotonic
        self._later = later or timer
        self.counts = dict.fromkeys(("published", "unsent", "held", "received", "filed", "rejected", "dropped", "corrected", "corrections_held", "forgotten", "covered", "cleared"), 0)
        self.owed = OwedSends(monotonic, self._later, self._pay_owed, self.counts)
        self._filing = FilingQueue(self._lock, post, file, forget_slots, self._deleted, self.counts)
        self._resend_wait = LatestWait(self._resend_unheard, self._later, monotonic)
        self.agents: list[str] = []
        for agent in agents:
            self.add_agent(agent)
        for agent, slot, pointer in own:
            if agent in self.agents:
                self._mine.put((agent, slot), replace(pointer, kiosk=device_id))
        bus.when_connected(self._connected)

    def add_agent(self, agent: str) -> None:
        """Shares the sessions of `agent` too (at start, and when a reload names another agent:
        the reload's conversations went to an agent whose sessions were neither published nor
        followed, and a person no longer continued at the next kiosk until a restart)."""
        if agent in self.agents:
            return
        if not is_label(agent):
            log.warning("session share: agent %r is not usable as a topic level; its sessions stay on this kiosk", agent)
            return
        self.agents = [*self.agents, agent]  # (read on paho's thread: replaced whole, never changed in place)
        self.bus.follow(pointer_topic(self.prefix, agent, "+"), self.on_message)
        self.bus.follow(forgotten_topic(self.prefix, agent, "+"), self.on_message)

    # ------------------------------------------------------------------ a (re)connect (paho's thread)
    def _connected(self) -> None:
        """Subscribed again: the broker now sends back what it retained; ours it does not send
        within RESEND_AFTER_S are published again (`_resend_unheard`)."""
        with self._lock:
            self._connects += 1
            self._unheard = self._mine.slots()
            self._unheard_forgets = set(self.forgets.ours)
        if self._unheard or self._unheard_forgets:
            self._resend_wait.start(RESEND_AFTER_S)  # one wait: connected again meanwhile, the newest connect's

    def _resend_unheard(self) -> None:
        with self._lock:
            connect = self._connects
            # ours the broker did not send back (restarted without persistence), our forgets first: a
            # kiosk offline at the forget would come back to none, keep the sessions and publish them again
            resend = [(where, True) for where in sorted(self._unheard_forgets)] + [(where, False) for where in self._unheard]
            self._unheard, self._unheard_forgets = set(), set()
        send_paced(resend, partial(self._resend_one, connect), self._later, RESEND_BATCH, RESEND_PACE_S)

    def _resend_one(self, connect: int, item: tuple[tuple[str, str], bool]) -> bool | None:
        """Our forget or pointer of a slot published again (`send_paced`: RESEND_BATCH at a time; at
        once, a busy kiosk's overflowed the status connection's queue and most were dropped):
        False when the queue was full, None when connected again meanwhile or offline (the next
        connect's timer resends)."""
        (where, forget) = item
        with self._lock:
            if connect != self._connects or not self.bus.online():
                return None
            ours = self.forgets.ours.get(where) if forget else None
            mine = None if forget else self._mine.get(where)
            if ours is None and mine is None:
                return True  # nothing of ours there any more
            self.counts["corrected"] += 1
            if mine is not None:
                sent = self.bus.send(pointer_topic(self.prefix, *where), mine.to_wire(), True) is not False
                self.counts["published"] += sent
                return sent
            known = self.forgets.known(where)
            ids = tuple(dict.fromkeys((ours or ()) + ((known.sessions or ()) if known else ())))[:MAX_FORGOTTEN_IDS]
            return self._send_forget(where, Forgotten(self._clock(), self.device_id, ids))  # (a newer pointer's owner corrects)

    # ------------------------------------------------------------------ ours (event loop)
    def announce(self, agent: str, slot: str, pointer: Pointer) -> None:
        """A session this kiosk started (or ended): publish it as the slot's newest."""
        if agent not in self.agents:
            return
        # a session continuing itself (its id kept) continues nothing: its own echo read as a newer one
        cont = None if pointer.continued_from == pointer.session_id else pointer.continued_from
        replaces = None if cont is not None or pointer.replaces == pointer.session_id else pointer.replaces
        pointer = Pointer(pointer.session_id, pointer.started_at, pointer.ended_at, cont, self.device_id, replaces)
        with self._lock:
            self._mine.put((agent, slot), pointer)
        self._send(agent, slot, pointer)

    def ended(self, session_id: str, ended_at: float) -> None:
        with self._lock:
            where = self._mine.slot_of(session_id)
            mine = self._mine.get(where) if where else None
        if where is not None and mine is not None and mine.session_id == session_id:
            self.announce(*where, Pointer(mine.session_id, mine.started_at, ended_at, mine.continued_from, replaces=mine.replaces))

    def forget(self, slots: Slots) -> int:
        """Forgets these slots' sessions fleet-wide (and every one this kiosk published): a
        retained Forgotten naming them beside each slot's pointer, whose retained copy is cleared;
        returns how many slots. `clear` sends them (the kiosk's: a client of its own, whose queue
        holds them all, where the reporter's bounded one would drop most)."""
        with self._lock:
            targets = dict(slots)
            for where, mine in self._mine.items():
                targets[where] = (mine.session_id, *targets.get(where, ()))
            for where, ids in targets.items():  # the slot's retained forget is one message: this one
                known = self.forgets.known(where)  # replaces it, and names what it named too
                if known is not None and known.sessions:
                    targets[where] = (*ids, *known.sessions)
            self._mine.clear()
        # every agent the store holds sessions of, as `edge-agent sessions --forget`: one no longer
        # configured here (an agent id changed) was shared with the fleet all the same
        forgets = forgets_of(targets, self._clock(), self.device_id)
        with self._lock:
            for agent, slot, forgotten in forgets:
                self.forgets.sent((agent, slot), forgotten)
        self._clear(forgets)
        return len(forgets)

    def _clear_on_bus(self, forgets: list[tuple[str, str, Forgotten]]) -> None:
        with self._lock:
            for agent, slot, forgotten in forgets:
                self._send_forget((agent, slot), forgotten)

    def _send_forget(self, where: tuple[str, str], forgotten: Forgotten) -> bool:
        """A forget, then the slot's pointer cleared: the empty pointer right after it reads as
        its clearing, not as a forget of the whole slot (ForgetMemory.is_clearing), also heard before it (lock held).
        False when the bounded queue took not the forget."""
        self.forgets.sending(where)
        sent = self.bus.send(forgotten_topic(self.prefix, *where), forgotten.to_wire(), True)
        self.bus.send(pointer_topic(self.prefix, *where), b"", True)
        return sent is not False

    def _send(self, agent: str, slot: str, pointer: Pointer) -> None:
        """Publishes now, or, offline, after the next connect (`_resend_unheard`): handed to paho
        offline, it went out on reconnect before the broker's retained messages came back, over
        a forget of that slot sent meanwhile, which this kiosk then never heard."""
        if not self.bus.online():
            self.counts["held"] += 1
            return
        sent = self.bus.send(pointer_topic(self.prefix, agent, slot), pointer.to_wire(), True)
        self.counts["published" if sent else "unsent"] += 1

    # ------------------------------------------------------------------ theirs (paho's thread)
    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:  # retained: replayed at a subscribe
        self.counts["received"] += 1
        where, is_forget = slot_of(topic, self.prefix, self.agents)
        if where is None:
            self.counts["rejected"] += 1
            return
        try:
            if is_forget:
                read: Pointer | Forgotten = Forgotten.from_wire(payload, self._clock())
            else:
                read = Pointer.from_wire(payload, self._clock()) if payload else Forgotten(self._clock())
        except ShareError as exc:
            self.counts["rejected"] += 1
            log.debug("session share: dropped a message on %s: %s", topic, exc)
            return
        with self._lock:
            if retained and isinstance(read, Pointer):
                self.forgets.retained_pointer(where, read, self._monotonic())
            # the broker kept a pointer of ours naming a session this forget names (paho sent it after
            # the forget's clearing; we restarted before its echo): none here to defend, ours to clear
            stale = retained and isinstance(read, Forgotten) and self._mine.get(where) is None and self.forgets.retained_covered(where, read, self._monotonic()) == self.device_id
            if isinstance(read, Forgotten) and self.forgets.is_clearing(where, read, self._monotonic(), retained):
                # the clearing of the pointer by the forget just heard, which did it all; a
                # conversation of ours it did not name is published again in its place
                mine = self._mine.get(where)
                if mine is not None:
                    self._correct(where, mine)
                return
            first_since_connect = where in self._unheard  # the first of the slot heard since a connect: what the broker retained
            if not is_forget:
                self._unheard.discard(where)  # the broker holds one for it: the rules below decide
            if isinstance(read, Forgotten):
                if is_forget:
                    self._unheard_forgets.discard(where)
                self._forgotten(where, read)
                self._keep_ours(where, read)
                if stale:
                    self._publish_forget(where)
                first = self._filing.add_forget(where, read)
            else:
                if self.forgets.covers(where, read.session_id, read.continued_from):
                    self.counts["covered"] += 1  # one of its sessions, published again from before the forget was heard
                    # refused too: what continues it (paho held a chain of them for a kiosk whose link was down)
                    self.forgets.remember(where, Forgotten(self._clock(), None, (read.session_id,)))
                    if read.kiosk == self.device_id:  # ours, sent from before we heard the forget: retained for good,
                        mine = self._mine.get(where)  # unless ours started since goes over it (it was held offline)
                        if mine is None:
                            self._publish_forget(where)
                        else:
                            self._correct(where, mine)
                    return
                if not self._is_news(where, read, self._mine.get(where), first_since_connect):
                    return
                first = self._filing.add_pointer(where, read)
        if first:
            self._post(self._filing.drain)

    def _is_news(self, where: tuple[str, str], pointer: Pointer, mine: Pointer | None, retained: bool) -> bool:
        """Whether another kiosk's pointer is to be filed, given ours for that slot (lock held)."""
        if mine is not None and stays_newest(mine, pointer):
            # the broker holds an older pointer than ours, or kept an older copy of ours over a
            # connect (its end held back offline; a live echo of our start, after the end, is not)
            if mine.rank > pointer.rank or mine.follows(pointer.session_id) or (retained and mine != pointer):
                self._correct(where, mine)
            return False
        self._mine.drop(where)  # filed past ours (merge_shared): no longer ours to defend
        return True

    def _correct(self, where: tuple[str, str], mine: Pointer) -> None:
        """Publishes our pointer over an older one, within the corrections limit; else owes it (lock held)."""
        if not self.owed.within(where):
            return
        self.counts["corrected"] += 1
        self._send(*where, mine)

    def _pay_owed(self) -> None:
        """The corrections and forgets held back, as the limit allows (the rest wait again): the
        last stale pointer of a flood does not stay retained."""
        with self._lock:
            owed, owed_forgets = self.owed.take_owed()
            for where in sorted(owed_forgets):
                self._publish_forget(where)
            for where in sorted(owed):
                mine = self._mine.get(where)
                if mine is not None:
                    self._correct(where, mine)

    def _forgotten(self, where: tuple[str, str], forgotten: Forgotten) -> None:
        """A forget of this slot heard (lock held): a pointer it covers, waiting to be filed or
        ours to defend, is let go; one naming sessions is remembered, so that those sessions,
        published again later (by a kiosk that had not heard it yet), are not filed again."""
        self._filing.let_go(where, forgotten)
        mine = self._mine.get(where)
        if mine is not None and forgotten.covers(mine.session_id, mine.continued_from):
            self._mine.drop(where)
            if forgotten.sessions is not None and where not in self._unheard and self.owed.within(where, forget=True):
                # the broker held ours (heard back since the connect): a kiosk back online sends
                # what paho held before it hears the forget, and that pointer stayed retained,
                # naming a forgotten session for good; cleared as the forget clears (it first)
                self.counts["cleared"] += 1
                self._send_forget(where, forgotten)
        self.forgets.remember(where, forgotten)  # (one naming sessions)
        self.counts["forgotten"] += 1

    def _keep_ours(self, where: tuple[str, str], heard: Forgotten) -> None:
        """A slot's retained forget is one message: another kiosk's forget of the slot replaced
        ours, naming what it knew, not what we named; a kiosk offline through both came back to
        hear only the later one and kept the sessions of ours. Ours is published again joined
        with it (lock held), when the two fit in one forget, cleared as every forget (without its
        empty pointer, every kiosk owed it a clearing and took an admin's forget of the slot for it)."""
        ours = self.forgets.ours.get(where)
        if heard.sessions is None or not ours or set(ours) <= set(heard.sessions):
            return
        joined = tuple(dict.fromkeys(heard.sessions + ours))
        if len(joined) > MAX_FORGOTTEN_IDS or not self.owed.within(where, forget=True):  # held back: owed (it was lost)
            return
        self.counts["corrected"] += 1
        self._send_forget(where, Forgotten(self._clock(), self.device_id, joined))

    # ------------------------------------------------------------------ filing (event loop)
    def _deleted(self, slots: list[tuple[tuple[str, str], tuple[str, ...], Forgotten]]) -> None:
        """The ids a forget deleted here, some of them continuing a named one some links down the
        chain: remembered with the slot's forget (refused when published again, and what continues
        them), and a pointer of ours among them is no longer ours to defend or publish again. Links
        the forget did not name are published with it (`_publish_forget`): a kiosk that never saw
        a middle link files the last one from the retained pointer otherwise (a fleet model's find)."""
        with self._lock:
            for where, ids, forgotten in slots:
                mine = self._mine.get(where)
                ours = mine is not None and mine.session_id in ids
                if ours:
                    self._mine.drop(where)
                self.forgets.remember(where, Forgotten(self._clock(), None, ids[:MAX_FORGOTTEN_IDS]))
                learned = forgotten.sessions is not None and not set(ids) <= set(forgotten.sessions)
                if learned or (ours and where not in self._unheard):
                    # ours continued a named one (sent by paho from before the forget was heard):
                    # the broker holds it, and the forget there does not name it
                    self._publish_forget(where)

    def _publish_forget(self, where: tuple[str, str]) -> None:
        """The slot's forgets heard, joined, published as a forget of ours, then its pointer
        cleared (so the empty pointer reads as the forget's clearing), within the corrections
        limit; held back, owed and sent when it allows (lock held)."""
        known = self.forgets.known(where)
        if known is None or not known.sessions:
            return
        if not self.owed.within(where, forget=True):
            return
        self.counts["cleared"] += 1
        forgotten = Forgotten(self._clock(), self.device_id, known.sessions[:MAX_FORGOTTEN_IDS])
        self.forgets.sent(where, forgotten)  # ours: published again when another's replaces it, or the broker lost it
        self._send_forget(where, forgotten)

    @property
    def pending(self) -> int:
        return len(self._filing)
