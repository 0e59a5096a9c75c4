"""A helper's review of the badge path and of conversations that follow the person across the
fleet (2026-12-06): each test failed before its fix."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Broker, KioskThread, Observer, wait_for
from test_share import Bus, _cmd, _kiosk

from edge_agent.core import conversation as c
from edge_agent.core.store import SessionStore
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.fleet.share import Pointer, SessionShare, pointer_topic


def test_a_kiosk_remembers_only_its_newest_pointer_of_a_slot_not_every_session_it_ever_ran(tmp_path: Path) -> None:
    """Every conversation on the main button (one slot, a new session each) left its session id in
    the share's index of its own pointers, keyed to the slot, long after the slot's pointer was
    another: MINE_REMEMBERED bounded the slots, not the ids, so a kiosk's memory grew with every
    session it ever ran (a busy kiosk, a few hundred a day, for months)."""
    store = SessionStore(tmp_path)
    share = SessionShare(Bus(), "fleet", "kiosk-a", ["agent-1"], lambda fn: fn(), store.merge_shared, store.forget_slots)
    for i in range(5000):
        share.announce("agent-1", "default", Pointer(f"s-{i}", 1000.0 + i))
    still_indexed = sum(share._mine.slot_of(f"s-{i}") is not None for i in range(5000))
    assert still_indexed == 1, f"{still_indexed} session ids of one slot kept"
    assert share._mine.slot_of("s-4999") == ("agent-1", "default")


def test_the_end_of_a_continuation_that_kept_its_session_id_is_shared(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """A platform that continues a session under the same id (the store's `resumed_at`): the kiosk
    published Pointer(s, continued_from=s), heard its own pointer back, took it for another
    kiosk's continuation of its session (`stays_newest`: continuing ours is newer) and stopped
    defending its own. The conversation's end was never published: the fleet kept the pointer as
    open since its start, so the person walking to the next kiosk after a long talk was past
    `resume_within_s` there (aged from the start, not the end), and a broker that lost its
    retained pointers never got this one again."""
    sim.bad_session_id = "sess-kept"  # every session has this id: the platform keeps it on a continuation
    obs = Observer(broker.port)
    topic = pointer_topic("edge-agent", "agent-1", "visitor-7")
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            obs.wait("edge-agent/kiosk-a/availability", lambda p: p == b"online")
            for turn in range(2):
                since = len(obs.messages)
                heard = a.kiosk.share.counts["received"]
                _cmd(obs, "kiosk-a", action="press", slot="visitor-7")
                a.wait_state(c.LISTENING)
                obs.wait(topic, lambda p: json.loads(p)["ended_at"] is None, since=since)
                wait_for(lambda heard=heard: a.kiosk.share.counts["received"] > heard, 10, "the kiosk hearing its pointer back")
                _cmd(obs, "kiosk-a", action="end")
                a.wait_state(c.IDLE)
                end = obs.wait(topic, lambda p: json.loads(p)["ended_at"] is not None, timeout_s=5, since=since)
                assert json.loads(end)["session_id"] == "sess-kept", turn
            assert sim.sessions[-1].continued_from == "sess-kept"
    finally:
        obs.close()


def _waiting_kiosk(tmp_path: Path) -> tuple[SessionShare, SessionStore, Callable[[str, bytes], None], list[Callable[[], None]]]:
    """Kiosk C's share and store, its event loop busy (a catch-up being filed): what arrives waits
    in the pending table until the loop runs the posted filing (`run`)."""
    store = SessionStore(tmp_path)
    bus = Bus()
    posted: list[Callable[[], None]] = []
    share = SessionShare(bus, "fleet", "kiosk-c", ["agent-1"], posted.append, store.merge_shared, store.forget_slots, clock=lambda: 2000.0)
    return share, store, bus.handlers["fleet/_sessions/agent-1/+"], posted


def _run(posted: list[Callable[[], None]]) -> None:
    while posted:
        posted.pop(0)()


def _pointer(sid: str, started_at: float, kiosk: str, **extra: object) -> bytes:
    return json.dumps({"v": 1, "session_id": sid, "started_at": started_at, "kiosk": kiosk, **extra}).encode()


def test_a_continuation_heard_while_the_loop_is_busy_is_filed_whatever_the_clocks(tmp_path: Path) -> None:
    """The person talks at kiosk A (s-1), then continues at kiosk B, whose clock is behind (s-2,
    continuing s-1, started "before" it). Kiosk C heard both before its loop filed them (a
    catch-up of the fleet's pointers under way): the pending table kept the one with the later
    start and dropped the continuation, which the store files as the newest whatever the clocks
    say. C's next scan of that badge continued s-1: the person's talk at B was not in it."""
    _, store, heard, posted = _waiting_kiosk(tmp_path)
    topic = pointer_topic("fleet", "agent-1", "b-0123456789abcdef0123456789abcdef")
    heard(topic, _pointer("s-1", 1000.0, "kiosk-a"))
    heard(topic, _pointer("s-2", 990.0, "kiosk-b", continued_from="s-1"))
    _run(posted)
    newest = store.newest("agent-1", "b-0123456789abcdef0123456789abcdef")
    assert newest is not None and newest.id == "s-2", newest


def test_the_end_of_a_session_heard_while_the_loop_is_busy_is_filed(tmp_path: Path) -> None:
    """A's pointer of s-1 at its start, then at its end, both heard before C's loop filed them:
    equal in rank, the end was dropped as no newer than the start. C kept s-1 as open since its
    start, so a person who talked ten minutes at A was past `resume_within_s` at C (aged from the
    start) and got a stranger's fresh conversation."""
    _, store, heard, posted = _waiting_kiosk(tmp_path)
    topic = pointer_topic("fleet", "agent-1", "b-0123456789abcdef0123456789abcdef")
    heard(topic, _pointer("s-1", 1000.0, "kiosk-a"))
    heard(topic, _pointer("s-1", 1000.0, "kiosk-a", ended_at=1600.0))
    _run(posted)
    newest = store.newest("agent-1", "b-0123456789abcdef0123456789abcdef")
    assert newest is not None and newest.id == "s-1" and newest.ended_at == 1600.0, newest


def _busy_day(a: KioskThread, obs: Observer, n: int) -> None:
    """`n` people's conversations at kiosk `a` (its own badge slot each), 50 at a time, until the
    broker holds every pointer."""
    wait_for(a.kiosk.reporter.connected.is_set, 20, "the kiosk to connect")  # type: ignore[attr-defined]
    for start in range(0, n, 50):
        a.on_loop(lambda start=start: [a.kiosk.records.started(f"sess-{i}", "agent-1", f"b-{i:032x}", None) for i in range(start, start + 50)], 20)
        wait_for(lambda start=start: len({t for t, _, _, _ in obs.received()}) >= start + 50, 20, "the pointers published")


def _held_after_restart(broker: Broker, a: KioskThread, n: int, what: str, counted: Callable[[str], bool], timeout_s: float) -> None:
    """The broker restarted on its port with nothing retained: all `n` of kiosk `a`'s `what` (the
    topics `counted`) are published there again."""
    broker.kill()
    broker.start()
    late = Observer(broker.port, "edge-agent/_sessions/#")
    try:

        def held() -> int:
            return len({t for t, p, _, _ in late.received() if p and counted(t)})

        with contextlib.suppress(AssertionError):
            wait_for(lambda: held() >= n, timeout_s, f"the {what} published again")
        assert held() == n, f"{held()} of {n} {what} on the broker again; {a.kiosk.share.counts}"  # type: ignore[union-attr]
    finally:
        late.close()


def test_a_broker_that_lost_its_pointers_gets_every_one_of_a_busy_kiosk_again(tmp_path: Path, sim: AgentSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A badge kiosk that ran 600 people's conversations, its broker restarted without persistence:
    30 s after the reconnect it published all 600 pointers at once into its status connection,
    whose queue holds 200 (QoS 1: a message is queued until its PUBACK). Most were dropped (only
    counted as `unsent`), and those people were strangers at every other kiosk until they talked
    here again; the burst filled the queue that the kiosk's state and events share, too."""
    import edge_agent.fleet.share as share_module

    monkeypatch.setattr(share_module, "RESEND_AFTER_S", 1.0)
    n = 600
    broker = Broker(tmp_path).start()
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            obs = Observer(broker.port, "edge-agent/_sessions/#")
            try:
                _busy_day(a, obs, n)
            finally:
                obs.close()
            _held_after_restart(broker, a, n, "pointers", lambda t: True, 30)
    finally:
        broker.kill()


def test_a_broker_that_lost_its_forgets_gets_every_one_of_a_busy_kiosk_again(tmp_path: Path, sim: AgentSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """As above for the forgets: the badge kiosk forgot its 600 people (`forget_sessions`), and its
    broker restarted without persistence. It published its forgets again all at once, a forget
    and an empty pointer each, 1 200 messages into a queue of 200: most were dropped, and a kiosk
    that was offline at the forget came back to no forget of those people, kept their sessions
    and published them to the fleet again."""
    import edge_agent.fleet.share as share_module

    monkeypatch.setattr(share_module, "RESEND_AFTER_S", 1.0)
    n = 600
    broker = Broker(tmp_path).start()
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            obs = Observer(broker.port, "edge-agent/_sessions/#")
            try:
                _busy_day(a, obs, n)
                a.on_loop(a.kiosk.records.forget, 20)
                wait_for(lambda: len({t for t, _, _, _ in obs.received() if t.endswith("/forgotten")}) >= n, 30, "the forgets")
            finally:
                obs.close()
            _held_after_restart(broker, a, n, "forgets", lambda t: t.endswith("/forgotten"), 40)
    finally:
        broker.kill()
