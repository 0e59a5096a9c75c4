"""A seeded, model-based fuzzer of a whole fleet sharing sessions (fleet/share.py), in memory.

N kiosks, each a real SessionShare on a real SessionStore (a tmp dir), talk through an in-memory
MQTT broker that keeps retained messages per topic (an empty payload deletes one), delivers to
`+` subscribers in publish order, and loses connections: a kiosk's link can drop (paho notices
later or at once; what it is handed meanwhile is queued, QoS 1, and sent on reconnect), come back
(subscribe, connect hook, queued sends flushed, then the retained messages of its filters), and
the broker can restart losing every retained message. Each client's messages reach the broker in
order, but the broker picks which client's next (reordering between clients). `post` and `later`
are queues run by the scheduler; each kiosk has its own wall clock (skew), which the store reads
too (`storerows.time`).

`run(seed, steps)` drives random operations, then quiesces (everyone online, queues drained,
timers run) and checks the invariants; it returns a `Fleet` whose `violations` lists what broke.
Operations are recorded in `fleet.log` so a failure can be replayed and shrunk by hand.
"""

from __future__ import annotations

import heapq
import json
import random
import tempfile
import time as real_time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import edge_agent.core.storerows as storerows
import edge_agent.fleet.forgetmemory as forgetmemory
import edge_agent.fleet.ownpointers as ownpointers
from edge_agent.core.store import SessionStore
from edge_agent.fleet.forget import slot_sessions
from edge_agent.fleet.pointer import Forgotten, Pointer
from edge_agent.fleet.share import SessionShare
from edge_agent.service.slots import own_pointers

PREFIX, AGENT = "fleet", "agent-1"
BASE = 1_700_000_000.0
HANDLING_S = 1e-6
"""What handling one message or post takes: a kiosk's wall clock moves on between two of them, as a
real one does (a few ulps at BASE). With the clock standing still, two pointers from a kiosk whose
clock is ahead, arriving one after the other, were both clamped to the same `now` and ranked by
their ids, not by arrival (kiosks disagreed on a slot's newest), and an own pointer started at that
instant tied with one clamped to it, corrected back and forth until the corrections limit was spent."""


def matches(topic_filter: str, topic: str) -> bool:
    f, t = topic_filter.split("/"), topic.split("/")
    if len(f) != len(t):
        return False
    return all(a == "+" or a == b for a, b in zip(f, t, strict=True))


class Broker:
    """MQTT retained semantics, per topic the last retained message; subscribers in connect order."""

    def __init__(self) -> None:
        self.retained: dict[str, bytes] = {}
        self.clients: list[Client] = []
        self.forgets_seen: list[tuple[str, Forgotten]] = []  # every Forgotten that reached the broker

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        if topic.endswith("/forgotten") and payload:
            self.forgets_seen.append((topic, Forgotten.from_wire(payload, 1e12)))
        if retain:
            if payload:
                self.retained[topic] = payload
            else:
                self.retained.pop(topic, None)
        for c in self.clients:
            if c.link and c.subscribed:
                for f in c.filters:
                    if matches(f, topic):
                        c.inbox.append((topic, payload, False))
                        break

    def retained_for(self, topic_filter: str) -> list[tuple[str, bytes]]:
        return [(t, p) for t, p in sorted(self.retained.items()) if matches(topic_filter, t)]


class Client:
    """The Bus a SessionShare talks to (StatusReporter's paho client, modelled)."""

    def __init__(self, broker: Broker, name: str) -> None:
        self.broker, self.name = broker, name
        self.link = True  # the TCP connection is up
        self.noticed = True  # paho knows it is connected (online())
        self.subscribed = True
        self.filters: list[str] = []
        self.handlers: dict[str, Callable[[str, bytes, bool], None]] = {}
        self.hooks: list[Callable[[], None]] = []
        self.outbound: deque[tuple[str, bytes, bool]] = deque()  # on the wire, not yet at the broker
        self.queued: list[tuple[str, bytes, bool]] = []  # paho's queue while disconnected
        self.inbox: deque[tuple[str, bytes, bool]] = deque()  # at the client, not yet handed to on_message (retain flag)
        broker.clients.append(self)

    # Bus
    def send(self, topic: str, payload: bytes, retain: bool) -> bool:
        if self.link and self.noticed:
            self.outbound.append((topic, payload, retain))
        else:
            self.queued.append((topic, payload, retain))
        return True

    def follow(self, topic_filter: str, handler: Callable[[str, bytes, bool], None]) -> None:
        self.filters.append(topic_filter)
        self.handlers[topic_filter] = handler

    def when_connected(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)

    def online(self) -> bool:
        return self.noticed

    # link events
    def drop(self) -> None:
        """The link goes down; paho has not noticed yet. In-flight sends were not acked: resent."""
        self.link = False
        self.subscribed = False
        self.queued = list(self.outbound) + self.queued
        self.outbound.clear()
        self.inbox.clear()

    def notice(self) -> None:
        self.noticed = False

    def reconnect(self, flush_first: bool) -> None:
        self.link, self.noticed, self.subscribed = True, True, True
        for hook in self.hooks:  # on_connect: subscribe, then the hooks
            hook()
        queued, self.queued = self.queued, []
        if flush_first:  # what paho held reaches the broker before the retained messages come back
            for m in queued:
                self.broker.publish(*m)
        for f in self.filters:
            for t, p in self.broker.retained_for(f):
                self.inbox.append((t, p, True))  # the broker's stored copies: the retain flag set
        if not flush_first:
            self.outbound.extendleft(reversed(queued))

    def deliver(self) -> None:
        topic, payload, retained = self.inbox.popleft()
        for f in self.filters:
            if matches(f, topic):
                self.handlers[f](topic, payload, retained)
                return


class _KioskTime:
    """`time` for storerows: the wall clock of the kiosk whose code runs now."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def time(self) -> float:
        return self.fleet.wall(self.fleet.current)

    def __getattr__(self, name: str) -> Any:
        return getattr(real_time, name)


class Kiosk:
    def __init__(self, fleet: Fleet, i: int, skew: float, clear_mode: str) -> None:
        self.fleet, self.i, self.name = fleet, i, f"kiosk-{i}"
        self.skew = skew
        self.store = SessionStore(Path(fleet.tmp) / self.name)
        self.bus = Client(fleet.broker, self.name)
        self.posts: deque[Callable[[], None]] = deque()
        self.active: list[str] = []  # sessions started here, not ended
        self.clear_mode = clear_mode
        self.share = self._share()

    def _share(self, own: list[tuple[str, str, Pointer]] | None = None) -> SessionShare:
        fleet, i = self.fleet, self.i
        return SessionShare(
            self.bus, PREFIX, self.name, [AGENT], self.posts.append, self.store.merge_shared, self.store.forget_slots,
            clock=lambda: fleet.wall(i), monotonic=lambda: fleet.now,
            later=lambda delay, fn: fleet.later(i, delay, fn),
            clear=self._clear if self.clear_mode == "client" else None,
            own=own or (),
        )

    def restart(self) -> None:
        """The daemon restarts: paho's queue, what was on the wire, the loop's posts and the
        conversations go; the store is opened again, and the new share defends the slots whose
        newest is this kiosk's (`service.slots.own_pointers`, as `make_share` does). Offline
        until a reconnect."""
        self.bus.drop()
        self.fleet.broker.clients.remove(self.bus)
        self.store.close()
        self.store = SessionStore(Path(self.fleet.tmp) / self.name)
        self.bus = Client(self.fleet.broker, self.name)
        self.bus.link = self.bus.noticed = self.bus.subscribed = False
        self.posts.clear()
        self.active = []
        self.share = self._share(own_pointers(self.store))

    def _clear(self, forgets: list[tuple[str, str, Forgotten]]) -> None:
        """clear_pointers: a client of its own, connected now or not at all (then: NOT cleared)."""
        if not self.bus.link:
            self.fleet.log.append(("#clear-failed", self.i))
            return
        msgs: deque[tuple[str, bytes, bool]] = deque()
        for a, s, forgotten in forgets:
            msgs.append((f"{PREFIX}/_sessions/{a}/{s}/forgotten", forgotten.to_wire(), True))
            msgs.append((f"{PREFIX}/_sessions/{a}/{s}", b"", True))
        if msgs:
            self.fleet.side_clients.append(msgs)


class Fleet:
    def __init__(
        self, seed: int, n: int | None = None, *, reorder: bool = True, flush_first: bool | None = None, clear_mode: str | None = None,
        slots: int = 2, restarts: bool = True, slow: bool = False, skew: bool = True, kiosk_restarts: bool = False,
    ) -> None:
        self.restarts = restarts
        self.kiosk_restarts = kiosk_restarts  # off by default: the seeds' runs stay as they were
        self.slow = slow
        self.rng = random.Random(seed)
        self.tmpdir = tempfile.TemporaryDirectory(prefix="sharefuzz-")
        self.tmp = self.tmpdir.name
        self.now = 0.0
        self.current = 0
        self.seq = 0
        self.broker = Broker()
        self.timers: list[tuple[float, int, int, Callable[[], None]]] = []
        self.side_clients: list[deque[tuple[str, bytes, bool]]] = []
        self.log: list[tuple[Any, ...]] = []
        self.violations: list[str] = []
        self.reorder = reorder
        self.flush_first = flush_first
        self.sessions: dict[str, tuple[str, str | None, int]] = {}  # id: (slot, continued_from, kiosk)
        self.next_id = 0
        self.slots = [f"p{j}" for j in range(slots)]
        n = n or self.rng.randint(2, 4)
        skews = [0.0, -3600.0, 5.0, -2.0, 120.0] if skew else [0.0]
        mode = clear_mode or self.rng.choice(["client", "bus"])
        self.kiosks = [Kiosk(self, i, 0.0 if i == 0 else self.rng.choice(skews), mode) for i in range(n)]
        self._saved_time = storerows.time
        storerows.time = _KioskTime(self)  # type: ignore[assignment]

    def close(self) -> None:
        storerows.time = self._saved_time  # type: ignore[assignment]
        for k in self.kiosks:
            k.store.close()
        self.tmpdir.cleanup()

    # time
    def wall(self, i: int) -> float:
        return BASE + self.now + self.kiosks[i].skew

    def later(self, i: int, delay: float, fn: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.timers, (self.now + delay, self.seq, i, fn))

    def on(self, i: int, fn: Callable[[], Any]) -> Any:
        self.current = i
        return fn()

    # operations (each logged)
    def start(self, i: int, slot: str, cont: str | None = None, sid: str | None = None) -> str:
        k = self.kiosks[i]
        if sid is None:
            sid = f"s{self.next_id}"
            self.next_id += 1
        self.now += 0.01
        at = self.wall(i)
        self.sessions[sid] = (slot, cont, i)
        self.current = i
        newest = None if cont is not None else k.store.newest(AGENT, slot)  # a fresh start names it, as records.started does
        k.store.record_start(sid, AGENT, slot, cont, at, newest.id if newest else None)
        k.share.announce(AGENT, slot, Pointer(sid, at, None, cont, replaces=newest.id if newest and newest.id != sid else None))
        k.active.append(sid)
        self.log.append(("start", i, slot, cont, sid))
        return sid

    def continue_newest(self, i: int, slot: str) -> str | None:
        k = self.kiosks[i]
        self.current = i
        newest = k.store.newest(AGENT, slot)
        if newest is None:
            return None
        return self.start(i, slot, newest.id)

    def end(self, i: int, sid: str) -> None:
        k = self.kiosks[i]
        self.now += 0.01
        self.current = i
        k.store.record_end(sid, "button", self.wall(i))
        k.share.ended(sid, self.wall(i))
        k.active.remove(sid)
        self.log.append(("end", i, sid))

    def forget(self, i: int) -> None:
        k = self.kiosks[i]
        self.now += 0.01
        self.current = i
        slots = slot_sessions(k.store.recent(k.store.keep_sessions))
        k.share.forget(slots)
        k.store.forget()
        self.log.append(("forget", i))

    def drop(self, i: int, notice: bool) -> None:
        self.kiosks[i].bus.drop()
        if notice:
            self.kiosks[i].bus.notice()
        self.log.append(("drop", i, notice))

    def notice(self, i: int) -> None:
        self.kiosks[i].bus.notice()
        self.log.append(("notice", i))

    def reconnect(self, i: int, flush_first: bool) -> None:
        bus = self.kiosks[i].bus
        if bus.link and bus.noticed:
            return
        if bus.link:  # paho noticed only now: a reconnect all the same
            bus.drop()
        bus.noticed = False
        self.current = i
        bus.reconnect(flush_first)
        self.log.append(("reconnect", i, flush_first))

    def restart_broker(self) -> None:
        self.broker.retained.clear()
        for k in self.kiosks:
            if k.bus.link:
                k.bus.drop()
        self.side_clients.clear()  # their connections went too (clear_pointers said NOT cleared)
        self.log.append(("restart",))

    def restart_kiosk(self, i: int) -> None:
        """Kiosk i's daemon restarts: its timers go with it (`Kiosk.restart`)."""
        self.timers = [t for t in self.timers if t[2] != i]
        heapq.heapify(self.timers)
        self.current = i
        self.kiosks[i].restart()
        self.log.append(("restart_kiosk", i))

    def deliver(self, i: int) -> None:
        self.now += HANDLING_S
        self.current = i
        self.kiosks[i].bus.deliver()
        self.log.append(("deliver", i))

    def broker_takes(self, which: int) -> None:
        """The broker reads the next message of one client (`which` < N: a kiosk; else a side client)."""
        n = len(self.kiosks)
        if which < n:
            m = self.kiosks[which].bus.outbound.popleft()
        else:
            q = self.side_clients[which - n]
            m = q.popleft()
            if not q:
                del self.side_clients[which - n]
        self.broker.publish(*m)
        self.log.append(("take", which))

    def run_post(self, i: int) -> None:
        self.now += HANDLING_S
        self.current = i
        self.kiosks[i].posts.popleft()()
        self.log.append(("post", i))

    def tick(self, dt: float) -> None:
        self.now += dt
        while self.timers and self.timers[0][0] <= self.now:
            _, _, i, fn = heapq.heappop(self.timers)
            self.current = i
            fn()
        self.log.append(("tick", dt))

    # the scheduler
    def pending_work(self) -> list[tuple[Any, ...]]:
        work: list[tuple[Any, ...]] = []
        n = len(self.kiosks)
        for i, k in enumerate(self.kiosks):
            if k.bus.inbox:
                work.append(("deliver", i))
            if k.bus.outbound:
                work.append(("take", i))
            if k.posts:
                work.append(("post", i))
        for j in range(len(self.side_clients)):
            work.append(("take", n + j))
        return work

    def do(self, op: tuple[Any, ...]) -> None:
        name, *args = op
        getattr(self, {"deliver": "deliver", "take": "broker_takes", "post": "run_post"}[name])(*args)

    def step(self) -> None:
        rng = self.rng
        r = rng.random()
        work = self.pending_work()
        if work and r < 0.55:
            if not self.reorder:
                work.sort()
            self.do(rng.choice(work) if self.reorder else work[0])
            return
        i = rng.randrange(len(self.kiosks))
        k = self.kiosks[i]
        if self.kiosk_restarts and rng.random() < 0.03:
            self.restart_kiosk(i)
            return
        r = rng.random()
        if r < 0.25:
            self.start(i, rng.choice(self.slots))
        elif r < 0.45:
            self.continue_newest(i, rng.choice(self.slots))
        elif r < 0.58:
            if k.active:
                self.end(i, rng.choice(k.active))
        elif r < 0.64:
            self.forget(i)
        elif r < 0.72:
            if k.bus.link:
                self.drop(i, rng.random() < 0.5)
            elif k.bus.noticed:
                self.notice(i)
        elif r < 0.82:
            if not (k.bus.link and k.bus.noticed):
                self.reconnect(i, self.flush_first if self.flush_first is not None else rng.random() < 0.7)
        elif r < 0.83:
            if self.restarts:
                self.restart_broker()
        elif work and not self.slow:
            self.do(rng.choice(work))  # messages and posts take milliseconds: time moves on when they are done
        else:
            self.tick(rng.choice([0.1, 0.5, 2.0, 11.0, 31.0]))

    def quiesce(self, rounds: int = 200, reconnect: bool = True) -> None:
        for i, k in enumerate(self.kiosks):
            if reconnect and not (k.bus.link and k.bus.noticed):
                self.reconnect(i, self.flush_first if self.flush_first is not None else True)
        for _ in range(rounds):
            for _ in range(10_000):
                work = self.pending_work()
                if not work:
                    break
                self.do(sorted(work)[0] if not self.reorder else self.rng.choice(work))
            if not self.timers:
                break
            self.tick(max(0.0, self.timers[0][0] - self.now) + 0.001)
        if reconnect and (self.pending_work() or self.timers):
            self.violations.append("no quiescence: work or timers left after the rounds")

    # invariants
    def forgotten_closure(self) -> set[str]:
        named = {sid for _, f in self.broker.forgets_seen for sid in (f.sessions or ())}
        gone = set(named)
        changed = True
        while changed:
            changed = False
            for sid, (_, cont, _) in self.sessions.items():
                if sid not in gone and cont is not None and cont in gone:
                    gone.add(sid)
                    changed = True
        return gone

    def check(self) -> list[str]:
        v = self.violations
        gone = self.forgotten_closure()
        for i, k in enumerate(self.kiosks):
            self.current = i
            held = {s.id for s in k.store.recent(100_000)}
            bad = held & gone
            if bad:
                v.append(f"(a) kiosk-{i} holds forgotten sessions {sorted(bad)}")
        for slot in self.slots:
            newest = {}
            for i, k in enumerate(self.kiosks):
                self.current = i
                s = k.store.newest(AGENT, slot)
                newest[i] = s.id if s else None
            forgotten_slot = any(t.endswith(f"/{slot}/forgotten") for t, _ in self.broker.forgets_seen)
            if len(set(newest.values())) > 1 and not forgotten_slot:  # after a forget each falls back to what it had: not promised
                v.append(f"(b) kiosks disagree on {slot}'s newest: {newest}")
            ret = self.broker.retained.get(f"{PREFIX}/_sessions/{AGENT}/{slot}")
            rid = json.loads(ret)["session_id"] if ret else None
            if rid in gone:
                v.append(f"(c) the broker retains a pointer of forgotten {rid} on {slot}")
            agreed = set(newest.values())
            if len(agreed) == 1 and rid != next(iter(agreed)) and not forgotten_slot:
                v.append(f"(b2) broker's retained pointer on {slot} is {rid}, kiosks agree on {next(iter(agreed))}")
        for i, k in enumerate(self.kiosks):
            sh = k.share
            if sh.pending or sh.owed.corrections or sh.owed.forgets or len(sh._mine) > ownpointers.MINE_REMEMBERED or sh.forgets.ids > forgetmemory.IDS_REMEMBERED or len(sh.forgets.named_at) > 1000:
                v.append(f"(d) kiosk-{i} unbounded or undrained: pending={sh.pending} owed={sh.owed.corrections} mine={len(sh._mine)} ids={sh.forgets.ids}")
        return v


class Invalid(Exception):
    """A replayed operation that no longer makes sense (shrinking removed what it needed)."""


def replay(seed: int, ops: list[tuple[Any, ...]], **kw: Any) -> Fleet:
    """The same fleet (seed: N, skews, clear mode) driven by `ops` as logged, then quiesced and checked."""
    fleet = Fleet(seed, **kw)
    for op in ops:
        name, *args = op
        try:
            if name == "start":
                i, slot, cont, sid = args
                fleet.current = i
                newest = fleet.kiosks[i].store.newest(AGENT, slot)
                if cont is not None and (newest is None or newest.id != cont):
                    raise Invalid(op)  # a kiosk continues its newest session of the slot only
                fleet.start(i, slot, cont, sid)
            elif name == "end":
                if args[1] not in fleet.kiosks[args[0]].active:
                    raise Invalid(op)
                fleet.end(*args)
            elif name == "notice":
                if fleet.kiosks[args[0]].bus.link or not fleet.kiosks[args[0]].bus.noticed:
                    raise Invalid(op)
                fleet.notice(*args)
            elif name in ("deliver", "take", "post"):
                fleet.do((name, *args))
            elif name == "reconnect":
                fleet.reconnect(*args)
            elif name == "drop":
                if not fleet.kiosks[args[0]].bus.link:
                    raise Invalid(op)
                fleet.drop(*args)
            else:
                if name == "tick" and fleet.pending_work() and not fleet.slow:
                    raise Invalid(op)
                getattr(fleet, {"forget": "forget", "notice": "notice", "restart": "restart_broker", "restart_kiosk": "restart_kiosk", "tick": "tick"}[name])(*args)
        except (IndexError, KeyError, ValueError) as exc:
            raise Invalid(op) from exc
    fleet.quiesce()
    fleet.check()
    return fleet


def shrink(seed: int, ops: list[tuple[Any, ...]], kind: str, **kw: Any) -> list[tuple[Any, ...]]:
    """Removes operations (chunks, then one at a time) while a violation starting with `kind` remains."""
    ops = [op for op in ops if not op[0].startswith("#")]

    def bad(candidate: list[tuple[Any, ...]]) -> bool:
        try:
            f = replay(seed, candidate, **kw)
        except Invalid:
            return False
        except Exception:
            return False
        try:
            return any(v.startswith(kind) for v in f.violations)
        finally:
            f.close()

    chunk = max(1, len(ops) // 2)
    while chunk >= 1:
        i = 0
        while i < len(ops):
            cand = ops[:i] + ops[i + chunk :]
            if bad(cand):
                ops = cand
            else:
                i += chunk
        chunk //= 2
    return ops


def held(fleet: Fleet) -> list[list[str]]:
    """Each kiosk's stored session ids, newest first (read under that kiosk's own clock)."""
    out = []
    for i, k in enumerate(fleet.kiosks):
        fleet.current = i
        out.append([s.id for s in k.store.recent()])
    return out


def run(seed: int, steps: int = 200, **kw: Any) -> Fleet:
    fleet = Fleet(seed, **kw)
    try:
        for _ in range(steps):
            fleet.step()
        fleet.quiesce()
        fleet.check()
    except Exception as exc:  # (d) no exceptions
        import traceback

        fleet.violations.append(f"(d) exception: {exc!r}\n{traceback.format_exc()}")
    return fleet


if __name__ == "__main__":
    import sys

    seeds = range(int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else range(50)
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    opts = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    kinds: dict[str, int] = {}
    for seed in seeds:
        f = run(seed, steps, **opts)
        if f.violations:
            key = f.violations[0][:4]
            kinds[key] = kinds.get(key, 0) + 1
            print(seed, len(f.kiosks), f.kiosks[0].clear_mode, f.violations[:3])
        f.close()
    print("violations by kind:", kinds)
