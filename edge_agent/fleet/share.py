"""SessionShare: a fleet's kiosks remember conversations together, through the MQTT broker.

With `[session] share = true`, every kiosk publishes, retained, the newest session of each
(agent, slot) it starts or ends, and follows the others':

    <prefix>/_sessions/<agent>/<slot>    retained, QoS = mqtt.qos
    {"v": 1, "session_id": "...", "continued_from": "..." | null,
     "started_at": <unix s>, "ended_at": <unix s> | null, "kiosk": "<device id>"}

A person who badges in at kiosk B after talking at kiosk A continues A's session: B filed A's
pointer in its own SessionStore when it arrived (or, after being offline, when it reconnected
and the broker handed it the retained pointers). Newest wins: a pointer is filed only when its
`started_at` (ties: the larger session id) is newer than what the store has for that slot. The
broker keeps whichever pointer was published last, which after a race or a reconnect may be the
older one; the kiosk that started the newer session sees that and publishes its own again, so
the retained pointer converges on the newest (only the owner answers: no storms).

An empty retained message on a pointer topic means "forgotten": `forget` sends one for every
slot this kiosk knows, and every kiosk that sees one deletes that slot's sessions. A kiosk
offline during a forget keeps its copies until its own `forget`.

Incoming pointers are untrusted: topic levels, payload size, session id charset and length are
checked, timestamps from the future are clamped to now; a bad one is counted and dropped. They
arrive on paho's thread and are coalesced per slot (newest kept) into a bounded pending table;
the event loop files them into the store in batches (one transaction each), so a catch-up of
100 000 retained pointers never blocks the loop for long.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from edge_agent.core.config import SHARED_SESSIONS_LEVEL
from edge_agent.core.config_mqtt import MqttSettings
from edge_agent.core.ratelimit import TokenBucket
from edge_agent.core.slots import is_label
from edge_agent.errors import EdgeAgentError

log = logging.getLogger(__name__)

MAX_POINTER_BYTES = 512
MAX_PENDING = 200_000
"""Distinct slots waiting to be filed; beyond this, pointers are dropped (counted)."""
BATCH = 256
"""Pointers filed per turn of the event loop (one SQLite transaction)."""
RESEND_AFTER_S = 30.0
"""After a (re)connect, this kiosk's own pointers the broker has not sent back as retained within
this long are published again: a broker that lost its retained messages (restarted without
persistence, replaced) held none of them, and a person was not recognised at the next kiosk. Long
enough for a catch-up of 100 000 pointers to arrive first, so a newer pointer of another kiosk is
not overwritten by an older one of ours (it would be corrected back, but churn for nothing)."""
CORRECTIONS_BURST, CORRECTION_EVERY_S = 10, 1.0
"""Older pointers corrected (this kiosk's own published again over them): ten at once, then one
a second; a slot whose correction the limit held back is owed one, sent when the limit allows
(`corrections_held` counts them). Anyone who may write `_sessions/#` (every kiosk, on a locked-down
broker) could otherwise flood a slot this kiosk owns with a stale pointer, each answered one for
one into the bounded queue the kiosk's state and events share: a helper's attack dropped 7 945
of them, a whole conversation's state and events among them."""
MINE_REMEMBERED = 4096
"""Pointers this kiosk published that it keeps in memory to defend them (owner-corrects)."""
_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class ShareError(EdgeAgentError):
    """A pointer that cannot be used."""


class Bus(Protocol):
    """The MQTT side SessionShare needs (StatusReporter in the kiosk)."""

    def send(self, topic: str, payload: bytes, retain: bool) -> bool: ...

    def follow(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None: ...

    def when_connected(self, hook: Callable[[], None]) -> None: ...


@dataclass(frozen=True)
class Pointer:
    session_id: str
    started_at: float
    ended_at: float | None = None
    continued_from: str | None = None
    kiosk: str | None = None

    @property
    def rank(self) -> tuple[float, str]:
        """Newest wins; equal start times are settled by the session id, the same everywhere."""
        return (self.started_at, self.session_id)

    def to_wire(self) -> bytes:
        data = {"v": 1, "session_id": self.session_id, "continued_from": self.continued_from, "started_at": self.started_at, "ended_at": self.ended_at, "kiosk": self.kiosk}
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_wire(cls, payload: bytes, now: float) -> Pointer:
        """Validates an untrusted pointer; future timestamps are clamped to `now`."""
        if len(payload) > MAX_POINTER_BYTES:
            raise ShareError(f"pointer larger than {MAX_POINTER_BYTES} bytes")
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ShareError("pointer is not JSON") from None
        if not isinstance(data, dict):
            raise ShareError("pointer is not a JSON object")
        sid, cont, kiosk = data.get("session_id"), data.get("continued_from"), data.get("kiosk")
        if not isinstance(sid, str) or not _SESSION_ID.fullmatch(sid):
            raise ShareError("bad session_id")
        if cont is not None and (not isinstance(cont, str) or not _SESSION_ID.fullmatch(cont)):
            raise ShareError("bad continued_from")
        if kiosk is not None and (not isinstance(kiosk, str) or not is_label(kiosk)):
            raise ShareError("bad kiosk")
        started_at = _time(data.get("started_at"), now)
        if started_at is None:
            raise ShareError("bad started_at")
        ended_at = _time(data.get("ended_at"), now)
        if ended_at is not None and ended_at < started_at:
            ended_at = started_at
        return cls(sid, started_at, ended_at, cont, kiosk)


def finite_number(value: Any) -> float | None:
    """A finite number from anyone's message, else None (a string, a bool, nan, a JSON integer of
    hundreds of digits, which no float holds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _time(value: Any, now: float) -> float | None:
    at = finite_number(value)
    return None if at is None or at <= 0 else min(at, now)


def _timer(delay_s: float, fn: Callable[[], None]) -> None:
    timer = threading.Timer(delay_s, fn)
    timer.daemon = True
    timer.start()


def pointer_topic(prefix: str, agent: str, slot: str) -> str:
    return f"{prefix}/{SHARED_SESSIONS_LEVEL}/{agent}/{slot}"


Filed = tuple[str, str, str, str | None, float, float | None]
"""(agent, slot, session_id, continued_from, started_at, ended_at), as SessionStore.merge_shared takes them."""


class SessionShare:
    """Publishes this kiosk's newest sessions and files the fleet's. `post` runs a callable on
    the event loop (thread-safe); `file` and `forget_slot` are store calls made there."""

    def __init__(
        self,
        bus: Bus,
        prefix: str,
        device_id: str,
        agents: Iterable[str],
        post: Callable[[Callable[[], None]], None],
        file: Callable[[list[Filed]], int],
        forget_slot: Callable[[str, str], None],
        clock: Callable[[], float] = time.time,
        clear: Callable[[list[tuple[str, str]]], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        later: Callable[[float, Callable[[], None]], None] | None = None,
    ) -> None:
        """`monotonic` and `later` (run a callable after so many seconds, on any thread) pace the
        corrections (CORRECTIONS_BURST) and the resend after a connect; a daemon timer thread by default."""
        self.bus = bus
        self.prefix = prefix
        self.device_id = device_id
        self._post = post
        self._file = file
        self._forget_slot = forget_slot
        self._clock = clock
        self._clear = clear or self._clear_on_bus
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Pointer] = {}
        self._mine: OrderedDict[tuple[str, str], Pointer] = OrderedDict()
        self._mine_ids: dict[str, tuple[str, str]] = {}
        self._unheard: set[tuple[str, str]] = set()  # ours the broker has not sent back since the last connect
        self._connects = 0
        self._monotonic = monotonic
        self._later = later or _timer
        self._corrections = TokenBucket(CORRECTIONS_BURST, 1.0 / CORRECTION_EVERY_S, monotonic())
        self._owed: set[tuple[str, str]] = set()  # slots whose correction the limit held back
        self._owed_waiting = False  # a `later` call will pay them
        self.counts = dict.fromkeys(("published", "unsent", "received", "filed", "rejected", "dropped", "corrected", "corrections_held", "forgotten"), 0)
        self.agents = []
        for agent in dict.fromkeys(agents):
            if is_label(agent):
                self.agents.append(agent)
                bus.follow(pointer_topic(prefix, agent, "+"), self.on_message)
            else:
                log.warning("session share: agent %r is not usable as a topic level; its sessions stay on this kiosk", agent)
        bus.when_connected(self._connected)

    # ------------------------------------------------------------------ a (re)connect (paho's thread)
    def _connected(self) -> None:
        """Subscribed again: the broker now sends back what it retained; ours it does not send
        within RESEND_AFTER_S are published again (`_resend_unheard`)."""
        with self._lock:
            self._connects += 1
            connect = self._connects
            self._unheard = set(self._mine)
        if self._unheard:
            self._later(RESEND_AFTER_S, lambda: self._resend_unheard(connect))

    def _resend_unheard(self, connect: int) -> None:
        with self._lock:
            if connect != self._connects:  # connected again meanwhile: that connect's timer decides
                return
            resend = [(where, self._mine[where]) for where in self._unheard if where in self._mine]
            self._unheard = set()
        for where, pointer in resend:
            self.counts["corrected"] += 1
            self._send(*where, pointer)

    # ------------------------------------------------------------------ ours (event loop)
    def announce(self, agent: str, slot: str, pointer: Pointer) -> None:
        """A session this kiosk started (or ended): publish it as the slot's newest."""
        if agent not in self.agents:
            return
        pointer = Pointer(pointer.session_id, pointer.started_at, pointer.ended_at, pointer.continued_from, self.device_id)
        with self._lock:
            self._mine[(agent, slot)] = pointer
            self._mine.move_to_end((agent, slot))
            self._mine_ids[pointer.session_id] = (agent, slot)
            while len(self._mine) > MINE_REMEMBERED:
                _, old = self._mine.popitem(last=False)
                self._mine_ids.pop(old.session_id, None)
        self._send(agent, slot, pointer)

    def ended(self, session_id: str, ended_at: float) -> None:
        with self._lock:
            where = self._mine_ids.get(session_id)
            mine = self._mine.get(where) if where else None
        if where is not None and mine is not None and mine.session_id == session_id:
            self.announce(*where, Pointer(mine.session_id, mine.started_at, ended_at, mine.continued_from))

    def forget(self, slots: Iterable[tuple[str, str]]) -> int:
        """Clears the retained pointers of these slots (and every one this kiosk published);
        returns how many. `clear` sends the empty messages (the kiosk's: a client of its own,
        whose queue holds them all, where the reporter's bounded one would drop most)."""
        with self._lock:
            targets = set(slots) | set(self._mine)
            self._mine.clear()
            self._mine_ids.clear()
        targets = {(a, s) for a, s in targets if a in self.agents and is_label(s)}
        self._clear(sorted(targets))
        return len(targets)

    def _clear_on_bus(self, targets: list[tuple[str, str]]) -> None:
        for agent, slot in targets:
            self.bus.send(pointer_topic(self.prefix, agent, slot), b"", True)

    def _send(self, agent: str, slot: str, pointer: Pointer) -> None:
        sent = self.bus.send(pointer_topic(self.prefix, agent, slot), pointer.to_wire(), True)
        self.counts["published" if sent else "unsent"] += 1

    # ------------------------------------------------------------------ theirs (paho's thread)
    def on_message(self, topic: str, payload: bytes) -> None:
        self.counts["received"] += 1
        where = self._slot_of(topic)
        if where is None:
            self.counts["rejected"] += 1
            return
        if not payload:
            self._forgotten(where)
            return
        try:
            pointer = Pointer.from_wire(payload, self._clock())
        except ShareError as exc:
            self.counts["rejected"] += 1
            log.debug("session share: dropped a pointer on %s: %s", topic, exc)
            return
        with self._lock:
            self._unheard.discard(where)  # the broker holds one for it: the rules below decide
            mine = self._mine.get(where)
            if mine is not None and pointer.continued_from == mine.session_id:
                # it continues ours: newer whatever the clocks say (this kiosk's may run ahead), so
                # no correction (it took the person's later conversation back fleet-wide); the
                # store files it past ours (merge_shared), and ours is no longer ours to defend
                del self._mine[where]
                self._mine_ids.pop(mine.session_id, None)
                mine = None
            if mine is not None and mine.rank >= pointer.rank:
                if mine.rank > pointer.rank:  # the broker holds an older pointer than ours
                    self._correct(where, mine)
                return
            pending = self._pending.get(where)
            if pending is not None and pending.rank >= pointer.rank:
                return
            if pending is None and len(self._pending) >= MAX_PENDING:
                self.counts["dropped"] += 1
                return
            first = not self._pending
            self._pending[where] = pointer
        if first:
            self._post(self._drain)

    def _correct(self, where: tuple[str, str], mine: Pointer) -> None:
        """Publishes our pointer over an older one, within CORRECTIONS_BURST; else owes it (lock held)."""
        if not self._corrections.take(self._monotonic()):
            self.counts["corrections_held"] += 1
            self._owed.add(where)
            if not self._owed_waiting:
                self._owed_waiting = True
                self._later(CORRECTION_EVERY_S, self._pay_owed)
            return
        self.counts["corrected"] += 1
        self._send(*where, mine)

    def _pay_owed(self) -> None:
        """The corrections held back, as the limit allows (the rest wait again): the last stale
        pointer of a flood does not stay retained."""
        with self._lock:
            self._owed_waiting = False
            owed, self._owed = self._owed, set()
            for where in sorted(owed):
                mine = self._mine.get(where)
                if mine is not None:
                    self._correct(where, mine)

    def _slot_of(self, topic: str) -> tuple[str, str] | None:
        head = f"{self.prefix}/{SHARED_SESSIONS_LEVEL}/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 2 or parts[0] not in self.agents or not is_label(parts[1]):
            return None
        return parts[0], parts[1]

    def _forgotten(self, where: tuple[str, str]) -> None:
        with self._lock:
            self._unheard.discard(where)
            self._pending.pop(where, None)
            mine = self._mine.pop(where, None)
            if mine is not None:
                self._mine_ids.pop(mine.session_id, None)
        self.counts["forgotten"] += 1
        self._post(lambda: self._forget_slot(*where))

    # ------------------------------------------------------------------ filing (event loop)
    def _drain(self) -> None:
        """Files up to BATCH pending pointers; posts itself again while more are waiting."""
        with self._lock:
            batch = []
            for _ in range(min(BATCH, len(self._pending))):
                where = next(iter(self._pending))
                batch.append((where, self._pending.pop(where)))
            more = bool(self._pending)
        try:
            if batch:
                self.counts["filed"] += self._file([(a, s, p.session_id, p.continued_from, p.started_at, p.ended_at) for (a, s), p in batch])
        finally:
            if more:
                self._post(self._drain)

    @property
    def pending(self) -> int:
        return len(self._pending)


def clear_pointers(settings: MqttSettings, slots: Iterable[tuple[str, str]], timeout_s: float = 10.0) -> str:
    """`edge-agent sessions --forget` with sharing on: empty retained pointers for these slots,
    sent from the command line (the daemon's `forget_sessions` does the same from the kiosk)."""
    from edge_agent.fleet.status import make_client

    targets = [(a, s) for a, s in slots if is_label(a) and is_label(s)]
    if not targets:
        return "no shared session pointers to clear"
    client = make_client(settings, f"edge-agent-forget-{os.getpid()}-{int(time.time() * 1000) % 100000}")  # one id each: kiosks forgetting at once took each other's over
    try:
        client.connect(settings.host, settings.port, keepalive=30)
    except OSError as exc:
        return f"shared pointers NOT cleared: cannot reach {settings.host}:{settings.port} ({exc}); send forget_sessions over MQTT later"
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            return f"shared pointers NOT cleared: {settings.host}:{settings.port} did not accept the connection"
        infos = [client.publish(pointer_topic(settings.topic_prefix, a, s), b"", qos=1, retain=True) for a, s in targets]
        for info in infos:
            info.wait_for_publish(timeout_s)
        unsent = sum(not info.is_published() for info in infos)  # the wait ends at the timeout too
    except (RuntimeError, ValueError) as exc:
        return f"shared pointers NOT all cleared: {exc}"
    finally:
        client.disconnect()
        client.loop_stop()
    if unsent:
        return f"shared pointers NOT all cleared: {unsent} of {len(targets)} unconfirmed by the broker within {timeout_s:g} s; send forget_sessions over MQTT later"
    return f"cleared {len(targets)} shared session pointers"
