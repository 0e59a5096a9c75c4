"""Fleet memory: session pointers shared through the broker. Pure rules first (validation, newest
wins, the owner corrects an older retained pointer), then real kiosks on a real mosquitto: a
conversation started on A for slot X continues on B, also across two bridged brokers, a kiosk
that was offline catches up, and `forget` clears the fleet's copies."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker, KioskThread, Observer, kiosk_settings, wait_for

import edge_agent.core.store as store_module
import edge_agent.core.storerows as storerows
import edge_agent.service.records as records
from edge_agent.core import conversation as c
from edge_agent.core.store import SessionStore
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.fleet.commands import CommandError, parse_command
from edge_agent.fleet.forget import clear_pointers, forgets_of, slot_sessions
from edge_agent.fleet.owed import CORRECTION_EVERY_S, CORRECTIONS_BURST
from edge_agent.fleet.pointer import MAX_POINTER_BYTES, Forgotten, forgotten_topic
from edge_agent.fleet.share import Pointer, SessionShare, ShareError, pointer_topic

FAST = {"ping_interval_s": 1.0, "connect_timeout_s": 2.0}


class Bus:
    """An in-memory stand-in for the broker side, to test the sharing rules alone."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []
        self.handlers: dict[str, Callable[[str, bytes], None]] = {}

    def send(self, topic: str, payload: bytes, retain: bool) -> None:
        self.sent.append((topic, payload, retain))

    def follow(self, topic_filter: str, handler: Callable[[str, bytes, bool], None]) -> None:
        self.handlers[topic_filter] = handler

    def when_connected(self, hook: Callable[[], None]) -> None:
        self.connected = hook

    up = True

    def online(self) -> bool:
        return self.up


def _share(tmp_path: Path, now: float = 1_000_000.0) -> tuple[SessionShare, Bus, SessionStore]:
    store = SessionStore(tmp_path)
    bus = Bus()
    share = SessionShare(bus, "fleet", "kiosk-a", ["agent-1", "bad/agent"], lambda fn: fn(), store.merge_shared, store.forget_slots, clock=lambda: now)
    return share, bus, store


def _wire(sid: str, started_at: float, **extra: Any) -> bytes:
    return json.dumps({"v": 1, "session_id": sid, "started_at": started_at, **extra}).encode()


def test_pointers_are_validated_and_future_times_clamped() -> None:
    now = 1_000.0
    p = Pointer.from_wire(_wire("s-1", 5_000.0, ended_at=9_000.0, kiosk="k2"), now)
    assert p.started_at == now and p.ended_at == now and p.kiosk == "k2"
    bad_ones = (
        b"",
        b"[]",
        b"{",
        _wire("a b", 1.0),
        _wire("x" * 129, 1.0),
        b'{"session_id": "s", "started_at": NaN}',
        _wire("s", -1),
        _wire("s", True),
        _wire("s", 1.0, kiosk="a/b"),
        b"x" * (MAX_POINTER_BYTES + 1),
    )
    for bad in bad_ones:
        with pytest.raises(ShareError):
            Pointer.from_wire(bad, now)
    assert Pointer.from_wire(Pointer("s:2", 10.0, 12.0, "s:1", "k").to_wire(), now) == Pointer("s:2", 10.0, 12.0, "s:1", "k")


def test_newest_wins_ties_by_id_and_bad_topics_are_dropped(tmp_path: Path) -> None:
    share, bus, store = _share(tmp_path)
    assert list(bus.handlers) == ["fleet/_sessions/agent-1/+", "fleet/_sessions/agent-1/+/forgotten"]  # an agent key that is no topic level is not shared
    on = bus.handlers["fleet/_sessions/agent-1/+"]
    on("fleet/_sessions/agent-1/alice", _wire("s-old", 100.0))
    on("fleet/_sessions/agent-1/alice", _wire("s-new", 200.0, ended_at=250.0))
    on("fleet/_sessions/agent-1/alice", _wire("s-older", 150.0))
    newest = store.newest("agent-1", "alice")
    assert newest is not None and newest.id == "s-new" and newest.ended_at == 250.0
    on("fleet/_sessions/agent-1/alice", _wire("s-b", 200.0))  # same time: the larger id wins, everywhere
    on("fleet/_sessions/agent-1/alice", _wire("s-a", 200.0))
    assert store.newest("agent-1", "alice").id == "s-new"  # type: ignore[union-attr]
    for topic in ("fleet/_sessions/agent-2/alice", "fleet/_sessions/agent-1/a/b", "fleet/_sessions/agent-1/..", "fleet/_sessions/agent-1/alice/forgotten/x"):
        on(topic, _wire("s-x", 300.0))
    assert share.counts["rejected"] == 4 and store.newest("agent-2", "alice") is None


def test_a_flood_of_stale_pointers_is_corrected_within_a_limit_and_the_last_one_still_is(tmp_path: Path) -> None:
    """Anyone who may write `_sessions/#` floods a slot this kiosk owns with an older pointer: each
    was answered with ours, one for one, into the bounded queue the kiosk's state and events share
    (a helper's attack on a real broker dropped 7 945 of them). Now CORRECTIONS_BURST at once, then
    one per CORRECTION_EVERY_S; the slot is owed one, sent when the limit allows, so the flood's
    last stale pointer does not stay retained."""
    store = SessionStore(tmp_path)
    bus, now, waiting = Bus(), [0.0], []
    share = SessionShare(
        bus, "fleet", "kiosk-a", ["agent-1"], lambda fn: fn(), store.merge_shared, store.forget_slots,
        clock=lambda: 1_000_000.0, monotonic=lambda: now[0], later=lambda delay_s, fn: waiting.append((delay_s, fn)),
    )
    share.announce("agent-1", "bob", Pointer("s-mine", 500.0))
    topic = pointer_topic("fleet", "agent-1", "bob")
    on = bus.handlers["fleet/_sessions/agent-1/+"]
    for _ in range(5_000):
        on(topic, _wire("s-stale", 400.0, kiosk="kiosk-z"))
    ours = [p for t, p, _ in bus.sent[1:]]
    assert len(ours) == CORRECTIONS_BURST and {json.loads(p)["session_id"] for p in ours} == {"s-mine"}
    assert share.counts["corrections_held"] == 5_000 - CORRECTIONS_BURST
    assert [d for d, _ in waiting] == [CORRECTION_EVERY_S]  # one wait, however many were held
    now[0] += CORRECTION_EVERY_S
    waiting.pop()[1]()
    assert len(bus.sent) == 1 + CORRECTIONS_BURST + 1 and json.loads(bus.sent[-1][1])["session_id"] == "s-mine"
    assert not waiting  # nothing owed any more
    assert share.counts["corrected"] == CORRECTIONS_BURST + 1


def test_our_pointer_is_published_and_defended_and_forget_clears_it(tmp_path: Path) -> None:
    share, bus, store = _share(tmp_path)
    share.announce("agent-1", "bob", Pointer("s-mine", 500.0))
    share.ended("s-mine", 520.0)
    topic = pointer_topic("fleet", "agent-1", "bob")
    assert [(t, json.loads(p)["ended_at"], r) for t, p, r in bus.sent] == [(topic, None, True), (topic, 520.0, True)]
    # the broker hands back an older pointer (a kiosk that was offline): we publish ours again
    bus.handlers["fleet/_sessions/agent-1/+"](topic, _wire("s-stale", 400.0, kiosk="kiosk-z"))
    assert share.counts["corrected"] == 1 and json.loads(bus.sent[-1][1])["session_id"] == "s-mine"
    # an empty retained message (an older kiosk's forget) is a fleet-wide forget of that slot
    store.record_start("s-mine", "agent-1", "bob", None, 500.0)
    bus.handlers["fleet/_sessions/agent-1/+"](topic, b"")
    assert store.newest("agent-1", "bob") is None
    store.record_start("s-8", "agent-1", "carol", None, 590.0)
    store.record_start("s-9", "agent-1", "carol", "s-8", 600.0)
    # ours: a retained Forgotten beside the slot's pointer, naming its sessions, newest first; the pointer cleared
    assert share.forget(slot_sessions(store.recent())) == 1
    carol = pointer_topic("fleet", "agent-1", "carol")
    assert bus.sent[-2:] == [(forgotten_topic("fleet", "agent-1", "carol"), Forgotten(1_000_000.0, "kiosk-a", ("s-9", "s-8")).to_wire(), True), (carol, b"", True)]


def test_a_forget_deletes_the_sessions_it_names_and_refuses_them_published_again(tmp_path: Path) -> None:
    """Another kiosk's Forgotten deletes the sessions it names and those continuing them, and no
    other (a conversation started since, on a kiosk whose clock is behind, keeps its session); a
    named session published again afterwards (a kiosk back online, sending what paho held) is
    not filed; our own pointer of a forgotten session is no longer ours to defend."""
    share, bus, store = _share(tmp_path)
    on = bus.handlers["fleet/_sessions/agent-1/+"]
    forget = bus.handlers["fleet/_sessions/agent-1/+/forgotten"]
    dora, dora_forget = pointer_topic("fleet", "agent-1", "dora"), forgotten_topic("fleet", "agent-1", "dora")
    store.record_start("s-1", "agent-1", "dora", None, 700.0)
    store.record_start("s-2", "agent-1", "dora", "s-1", 710.0)  # continues the forgotten one (an offline kiosk)
    store.record_start("s-new", "agent-1", "dora", None, 100.0)  # started after the forget, clock behind
    share.announce("agent-1", "dora", Pointer("s-1", 700.0))
    forget(dora_forget, Forgotten(900.0, "kiosk-z", ("s-1",)).to_wire())
    assert [s.id for s in store.recent()] == ["s-new"] and share.counts["forgotten"] == 1
    on(dora, _wire("s-1", 700.0, ended_at=720.0, kiosk="kiosk-q"))  # published again: refused
    on(dora, _wire("s-2", 710.0, continued_from="s-1", kiosk="kiosk-q"))
    assert [s.id for s in store.recent()] == ["s-new"] and share.counts["covered"] == 2
    assert share.counts["corrected"] == 0  # s-1 was ours: nothing defended
    on(dora, _wire("s-3", 800.0, kiosk="kiosk-q"))  # a new one is filed
    assert store.newest("agent-1", "dora").id == "s-3"  # type: ignore[union-attr]
    # a forget with no session, a huge one, or one whose ids are not ids is refused and counted
    rejected = share.counts["rejected"]
    for bad in (b'{"v":1,"forgotten_at":1,"sessions":[]}', b'{"v":1,"forgotten_at":1,"sessions":["a b"]}', Forgotten(1.0, None, tuple(f"s{i}" for i in range(40))).to_wire(), b"", b"x" * 9000):
        forget(dora_forget, bad)
    assert share.counts["rejected"] == rejected + 5 and store.newest("agent-1", "dora") is not None
    with pytest.raises(ShareError):
        Forgotten.from_wire(b'{"v":1,"forgotten_at":"soon","sessions":["s-1"]}', 1e9)


def test_forgets_remembered_stay_bounded_under_a_flood(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone who may write `_sessions/#` can send forgets: distinct ones on one slot were joined
    without end (each join copying all the ids before), and forgets of 32 long ids on many slots
    were kept 16 384 slots deep (some 90 MB on a Pi with 512). Both are bounded in session ids."""
    import edge_agent.fleet.forgetmemory as forgetmemory
    from edge_agent.fleet.pointer import JOINED_IDS

    monkeypatch.setattr(forgetmemory, "IDS_REMEMBERED", 1000)
    share, bus, _ = _share(tmp_path)
    forget = bus.handlers["fleet/_sessions/agent-1/+/forgotten"]
    one = forgotten_topic("fleet", "agent-1", "x")
    for i in range(300):
        forget(one, Forgotten(900.0, "kiosk-z", tuple(f"s{i}-{j}" for j in range(32))).to_wire())
    kept = share.forgets.heard[("agent-1", "x")].sessions
    assert kept is not None and len(kept) == JOINED_IDS and kept[0] == "s299-0"  # the newest kept
    for i in range(200):
        forget(forgotten_topic("fleet", "agent-1", f"p{i}"), Forgotten(900.0, "kiosk-z", tuple(f"p{i}-{j}" for j in range(32))).to_wire())
    assert sum(len(f.sessions or ()) for f in share.forgets.heard.values()) <= 1000
    assert ("agent-1", "p199") in share.forgets.heard and ("agent-1", "p0") not in share.forgets.heard  # the oldest went


def test_a_conversation_that_ends_offline_has_its_end_published_after_the_connect(tmp_path: Path) -> None:
    """Handed to paho offline, a pointer went out on reconnect before the broker's retained
    messages came back (over a forget sent meanwhile). Now it waits for the connect, and the
    copy the broker kept (the conversation's start) is corrected to its end; a live echo of our
    start arriving after our end (no connect between) is no reason to publish again."""
    share, bus, _ = _share(tmp_path)
    on = bus.handlers["fleet/_sessions/agent-1/+"]
    topic = pointer_topic("fleet", "agent-1", "eve")
    share.announce("agent-1", "eve", Pointer("s-1", 500.0))
    started = bus.sent[-1][1]
    share.ended("s-1", 520.0)
    on(topic, started)  # the start's echo, after the end went out
    assert len(bus.sent) == 2 and share.counts["corrected"] == 0
    share.announce("agent-1", "eve", Pointer("s-2", 600.0))
    bus.up = False  # the broker link goes down
    share.ended("s-2", 620.0)
    assert len(bus.sent) == 3 and share.counts["held"] == 1  # not handed to paho
    bus.up = True
    bus.connected()
    on(topic, bus.sent[-1][1])  # the broker kept the start
    assert len(bus.sent) == 4 and json.loads(bus.sent[-1][1])["ended_at"] == 620.0


def test_our_pointer_the_broker_kept_over_a_forget_is_cleared(tmp_path: Path) -> None:
    """A kiosk back online sends what paho held for it (its pointer) before it hears the
    retained forget: the broker then retains that pointer, naming a forgotten session, for good
    (every kiosk refuses it, but the broker keeps the id). Heard back and then forgotten, ours is
    cleared as the forget clears it: the forget first (so that the empty pointer is read as its
    clearing, not as a forget of the whole slot), then the empty pointer."""
    share, bus, _ = _share(tmp_path)
    on, forget = bus.handlers["fleet/_sessions/agent-1/+"], bus.handlers["fleet/_sessions/agent-1/+/forgotten"]
    topic, forget_topic = pointer_topic("fleet", "agent-1", "fay"), forgotten_topic("fleet", "agent-1", "fay")
    share.announce("agent-1", "fay", Pointer("s-1", 500.0))
    bus.connected()  # a reconnect
    on(topic, bus.sent[-1][1])  # the broker kept ours
    forgotten = Forgotten(900.0, "kiosk-z", ("s-1",)).to_wire()
    forget(forget_topic, forgotten)
    assert bus.sent[-2:] == [(forget_topic, forgotten, True), (topic, b"", True)] and share.counts["cleared"] == 1
    # a pointer of ours the broker has not handed back since the connect is not cleared
    share.announce("agent-1", "gus", Pointer("s-2", 600.0))
    bus.connected()
    sent = len(bus.sent)
    forget(forgotten_topic("fleet", "agent-1", "gus"), Forgotten(900.0, "kiosk-z", ("s-2",)).to_wire())
    assert len(bus.sent) == sent and share.counts["cleared"] == 1


def test_a_pointer_the_broker_link_could_not_take_shows_in_the_metrics(tmp_path: Path) -> None:
    """paho's queue full (a long broker outage): the pointer is not sent, and the fleet admin
    sees `shared_unsent` in the metrics instead of a person not recognised at the next kiosk."""
    from edge_agent.service.slots import slot_metrics

    share, bus, _ = _share(tmp_path)
    full = {"now": True}
    bus.send = lambda topic, payload, retain: bool(bus.sent.append((topic, payload, retain))) or not full["now"]  # type: ignore[method-assign]
    share.announce("agent-1", "bob", Pointer("s-1", 500.0))
    full["now"] = False
    share.announce("agent-1", "carol", Pointer("s-2", 501.0))
    assert slot_metrics([], share) == {"shared_filed": 0, "shared_rejected": 0, "shared_unsent": 1, "shared_forgets": 0, "shared_forgotten_refused": 0}


def test_mqtt_commands_take_a_slot_label() -> None:
    assert parse_command(b'{"action": "press", "slot": "room-4.b"}').slot == "room-4.b"
    assert parse_command(b'{"action": "new", "slot": "x"}').slot == "x"
    bad_ones = (
        b'{"action": "press", "slot": "a/b"}',
        b'{"action": "press", "slot": ""}',
        b'{"action": "press", "slot": 7}',
        b'{"action": "end", "slot": "x"}',
        b'{"action": "resume", "slot": "' + b"x" * 65 + b'"}',
    )
    for bad in bad_ones:
        with pytest.raises(CommandError):
            parse_command(bad)
    # a badge holder's key, read off the shared pointers (`_sessions/<agent>/b-...`), continued
    # that person's conversation from an MQTT press (an attacker's finding): badge scans only
    for action in ("press", "resume", "new"):
        with pytest.raises(CommandError, match="badge holders'"):
            parse_command(b'{"action": "%s", "slot": "b-0123456789abcdef0123456789abcdef"}' % action.encode())


# ----------------------------------------------------------------------------- real kiosks, real broker
def _kiosk(tmp_path: Path, name: str, sim: AgentSimulator, port: int, **session: Any) -> Any:
    root = tmp_path / name
    root.mkdir()
    settings = kiosk_settings(
        root,
        sim.url,
        agent=FAST,
        device={"id": name},
        session={"share": True, **session},
        mqtt={"enabled": True, "host": "127.0.0.1", "port": port, "discovery": False, "keepalive_s": 5},
    )
    return KioskThread(settings)


def _cmd(obs: Observer, kiosk: str, **cmd: Any) -> None:
    obs.client.publish(f"edge-agent/{kiosk}/cmd", json.dumps(cmd), qos=1)


def _newest(k: KioskThread, slot: str) -> Any:
    """The kiosk's newest session for `slot`, read on its loop (its store's connection is the loop's)."""
    return k.on_loop(lambda: k.kiosk.store.newest("agent-1", slot))


def _converse(k: KioskThread, sim: AgentSimulator, obs: Observer, name: str, slot: str) -> Any:
    """One conversation on kiosk `name` for `slot`, started and ended over MQTT; its SimSession."""
    obs.wait(f"edge-agent/{name}/availability", lambda p: p == b"online")
    before = len(sim.sessions)
    _cmd(obs, name, action="press", slot=slot)
    k.wait_state(c.LISTENING)
    session = wait_for(lambda: len(sim.sessions) > before and sim.sessions[-1], 20, "the session")
    _cmd(obs, name, action="end")
    k.wait_state(c.IDLE)
    return session


def test_a_person_continues_on_another_kiosk_and_forget_clears_the_fleet(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    obs = Observer(broker.port)
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a, _kiosk(tmp_path, "kiosk-b", sim, broker.port) as b:
            first = _converse(a, sim, obs, "kiosk-a", "visitor-7")
            state = obs.wait("edge-agent/kiosk-a/state", lambda p: json.loads(p)["state"] == "listening")
            assert json.loads(state)["slot"] == "visitor-7"
            pointer = json.loads(obs.wait("edge-agent/_sessions/agent-1/visitor-7"))
            assert pointer["session_id"] == first.session_id and pointer["kiosk"] == "kiosk-a"
            wait_for(lambda: _newest(b, "visitor-7"), 20, "B to know the session")
            second = _converse(b, sim, obs, "kiosk-b", "visitor-7")
            assert second.continued_from == first.session_id  # the person continued at kiosk B
            # and back at A: A learnt B's newer session
            third = _converse(a, sim, obs, "kiosk-a", "visitor-7")
            assert third.continued_from == second.session_id
            # another slot on A is another thread; the default slot is untouched
            other = _converse(a, sim, obs, "kiosk-a", "visitor-8")
            assert other.continued_from is None
            # forget on B (once B knows how visitor-8's conversation ended): the retained pointers
            # go, and A forgets the slots too
            wait_for(lambda: (n := _newest(b, "visitor-8")) is not None and n.ended_at, 20, "B to know visitor-8")
            mark = len(obs.messages)
            _cmd(obs, "kiosk-b", action="forget_sessions", id="f1")
            obs.wait("edge-agent/kiosk-b/cmd/result", lambda p: b'"f1"' in p)
            wait_for(lambda: _newest(a, "visitor-7") is None and _newest(a, "visitor-8") is None, 20, "A to forget")
            # A's retained state (idle, naming its last session, visitor-8's) names none now: it
            # kept naming it on every kiosk but B, and `edge-agent fleet` showed it
            assert other.session_id is not None
            a_state = obs.wait("edge-agent/kiosk-a/state", lambda p: json.loads(p)["session_id"] is None, timeout_s=10, since=mark)
            assert json.loads(a_state)["state"] == "idle"
            fresh = _converse(a, sim, obs, "kiosk-a", "visitor-7")
            assert fresh.continued_from is None
    finally:
        obs.close()
    late = Observer(broker.port, "edge-agent/_sessions/#")
    try:
        late.settle()  # every retained pointer is in: only the one after the forget is left
        left = {t: json.loads(p) for t, p, r, _ in late.received()}
        assert left.pop("edge-agent/_sessions/agent-1/visitor-7")["session_id"] == fresh.session_id
        # and the forgets, naming what B knew of each slot
        forgets = {t: (f["kiosk"], f["sessions"]) for t, f in left.items()}
        assert forgets == {
            "edge-agent/_sessions/agent-1/visitor-7/forgotten": ("kiosk-b", [third.session_id, second.session_id, first.session_id]),
            "edge-agent/_sessions/agent-1/visitor-8/forgotten": ("kiosk-b", [other.session_id]),
        }
    finally:
        late.close()


def test_a_kiosk_offline_during_a_forget_forgets_when_it_is_back(tmp_path: Path, sim: AgentSimulator, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kiosk B talked with visitor-9 and owns that slot's pointer; its link to the broker is down
    while kiosk A forgets. The forget was an empty retained message, gone from the broker at
    once: B, back, never heard it, kept the session and (the broker holding no pointer of its
    own, as after a broker restart) published it again, so the whole fleet knew the forgotten
    person once more. Now the forget stays retained in the slot's place, and B forgets on return;
    a kiosk that was not running at all (C) forgets when it starts."""
    import edge_agent.fleet.share as share_module
    from edge_agent.devtools.faultproxy import FaultProxyThread

    monkeypatch.setattr(share_module, "RESEND_AFTER_S", 1.0)
    obs = Observer(broker.port)
    proxy_thread = FaultProxyThread("127.0.0.1", broker.port)
    proxy = proxy_thread.__enter__()
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a, _kiosk(tmp_path, "kiosk-b", sim, proxy.port) as b:
            with _kiosk(tmp_path, "kiosk-c", sim, broker.port) as c_kiosk:
                talked = _converse(b, sim, obs, "kiosk-b", "visitor-9")
                for k in (a, c_kiosk):
                    wait_for(lambda k=k: (n := _newest(k, "visitor-9")) is not None and n.id == talked.session_id, 20, "the fleet to know visitor-9")
            proxy.mode = "refuse"  # B's link to the broker goes down; C is switched off
            proxy_thread.cut()
            wait_for(lambda: not b.kiosk.reporter.connected.is_set(), 20, "B to notice")  # type: ignore[attr-defined]
            _cmd(obs, "kiosk-a", action="forget_sessions", id="f9")
            obs.wait("edge-agent/kiosk-a/cmd/result", lambda p: b'"f9"' in p)
            forget_seen = json.loads(obs.wait("edge-agent/_sessions/agent-1/visitor-9/forgotten"))
            assert forget_seen["kiosk"] == "kiosk-a" and forget_seen["sessions"] == [talked.session_id]
            assert _newest(b, "visitor-9") is not None  # B could not have heard it yet
            mark = len(obs.messages)
            proxy.mode = "pass"
            wait_for(lambda: _newest(b, "visitor-9") is None, 20, "B, back, to forget visitor-9")
            time.sleep(2.0)  # past RESEND_AFTER_S
            # what paho held for B may have gone out again on its return: no kiosk files it
            assert _newest(a, "visitor-9") is None and _newest(b, "visitor-9") is None
            assert len(obs.find("edge-agent/_sessions/agent-1/visitor-9", since=mark)) <= 2, "B kept publishing the forgotten pointer"
            late = Observer(broker.port, "edge-agent/_sessions/#")
            try:
                late.settle()  # and the broker keeps no pointer naming the forgotten session
                assert [t for t, p, _, _ in late.received() if t == "edge-agent/_sessions/agent-1/visitor-9"] == []
            finally:
                late.close()
        with KioskThread(c_kiosk.kiosk.settings) as c_back:
            wait_for(lambda: _newest(c_back, "visitor-9") is None, 20, "C, started again, to forget visitor-9")
    finally:
        obs.close()
        proxy_thread.__exit__(None, None, None)


def test_a_fleet_wide_forget_of_many_slots_is_a_few_transactions_not_one_each(tmp_path: Path, sim: AgentSimulator) -> None:
    """A forget of 10 000 slots (an empty retained pointer each, as an older kiosk, an admin's
    script or anyone who may write `_sessions/#` sends them): each posted its own callable to
    the loop, a durable one-row DELETE each (synchronous=FULL), and held the loop 1.5 s here (an
    SD card's fsyncs far longer), the audio and the commands with it (a helper's attack,
    2026-12-06). Now they are coalesced per slot and done BATCH to a transaction."""
    n = 10_000
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", extra="max_queued_messages 0").start()  # the kiosk gets all of them
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port, keep_sessions=n + 100) as k:
            wait_for(k.kiosk.reporter.connected.is_set, 20, "the kiosk to connect")  # type: ignore[attr-defined]
            now = time.time()
            k.on_loop(lambda: k.kiosk.store.merge_shared([("agent-1", f"p{i}", f"sess-{i}", None, now - 100.0, None) for i in range(n)]), 60)
            durable: list[str] = []  # each a commit to the card: COMMIT, or a write outside a transaction
            db = k.kiosk.store._db
            db.set_trace_callback(lambda sql: durable.append(sql) if sql.startswith("COMMIT") or (sql.startswith("DELETE") and not db.in_transaction) else None)
            obs = Observer(broker.port, "edge-agent/_none")
            try:
                wait_for(obs.client.is_connected, 10, "the forgetter to connect")
                for i in range(n):
                    obs.client.publish(pointer_topic("edge-agent", "agent-1", f"p{i}"), b"", qos=0)
                wait_for(lambda: not k.on_loop(k.kiosk.store.slots), 60, "every slot forgotten")
            finally:
                obs.close()
                db.set_trace_callback(None)
    finally:
        broker.kill()
    # batches are as full as the loop finds them (messages still arriving: fewer), never one a slot
    assert len(durable) <= n // 20, f"{len(durable)} durable writes for a forget of {n} slots"


def test_a_broker_that_lost_its_retained_pointers_gets_them_again(tmp_path: Path, sim: AgentSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker restarted without persistence (or replaced) holds no pointer: a kiosk republished
    one only to correct an older one, never into nothing, so a person who talked at kiosk A was a
    stranger at every kiosk that (re)joined later. Now A publishes again those of its pointers
    the broker did not send back within RESEND_AFTER_S of a reconnect."""
    import edge_agent.fleet.share as share_module

    monkeypatch.setattr(share_module, "RESEND_AFTER_S", 1.0)
    broker = Broker(tmp_path).start()
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            obs = Observer(broker.port)
            try:
                first = _converse(a, sim, obs, "kiosk-a", "visitor-7")
                obs.wait("edge-agent/_sessions/agent-1/visitor-7", lambda p: p and json.loads(p)["ended_at"] is not None)
            finally:
                obs.close()
            broker.kill()
            broker.start()  # the same port, nothing retained
            late = Observer(broker.port, "edge-agent/_sessions/#")
            try:
                pointer = json.loads(late.wait("edge-agent/_sessions/agent-1/visitor-7", timeout_s=20))
                assert pointer["session_id"] == first.session_id and pointer["kiosk"] == "kiosk-a"
            finally:
                late.close()
            # and a pointer the broker does hold (here: sent back after the reconnect) is not sent twice
            assert a.kiosk.share.counts["corrected"] == 1, str(a.kiosk.share.counts)  # type: ignore[union-attr]
    finally:
        broker.kill()


def test_an_offline_kiosk_catches_up_from_retained_pointers(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    obs = Observer(broker.port)
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            first = _converse(a, sim, obs, "kiosk-a", "pat")
            obs.wait("edge-agent/_sessions/agent-1/pat", lambda p: b'"ended_at":null' not in p)
        with _kiosk(tmp_path, "kiosk-b", sim, broker.port) as b:  # B was not running until now
            wait_for(lambda: _newest(b, "pat"), 20, "B to catch up")
            assert _converse(b, sim, obs, "kiosk-b", "pat").continued_from == first.session_id
    finally:
        obs.close()


BRIDGE_TOPICS = "edge-agent/_sessions/# both 1"


def test_bridged_brokers_carry_a_person_between_kiosks(tmp_path: Path, sim: AgentSimulator) -> None:
    (tmp_path / "b1").mkdir()
    (tmp_path / "b2").mkdir()
    one = Broker(tmp_path / "b1").start()
    two = Broker(tmp_path / "b2", extra=f"connection to-one\naddress 127.0.0.1:{one.port}\ntopic {BRIDGE_TOPICS}\ncleansession true\n").start()
    obs1, obs2 = Observer(one.port), Observer(two.port)
    try:

        def bridged() -> bool:  # a probe (for an agent no kiosk follows) crosses the bridge
            obs1.client.publish("edge-agent/_sessions/probe/x", b"{}")
            return bool(obs2.find("edge-agent/_sessions/probe/x"))

        wait_for(bridged, 10, "the bridge to connect")
        with _kiosk(tmp_path, "kiosk-a", sim, one.port) as a, _kiosk(tmp_path, "kiosk-b", sim, two.port) as b:
            first = _converse(a, sim, obs1, "kiosk-a", "traveller")
            wait_for(lambda: _newest(b, "traveller"), 20, "the pointer across the bridge")
            second = _converse(b, sim, obs2, "kiosk-b", "traveller")
            assert second.continued_from == first.session_id
            wait_for(lambda: (n := _newest(a, "traveller")) is not None and n.id == second.session_id, 20, "and back")
    finally:
        obs1.close()
        obs2.close()
        two.kill()
        one.kill()


def test_sessions_forget_on_the_command_line_clears_the_shared_pointers(tmp_path: Path, broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import toml_dump

    from edge_agent.cli import main

    store = SessionStore(tmp_path / "state")
    store.record_start("s-1", "agent-1", "dana", None, 100.0)
    store.close()
    obs = Observer(broker.port, "edge-agent/_sessions/#")
    wait_for(obs.client.is_connected, 5, "the observer")
    obs.client.publish("edge-agent/_sessions/agent-1/dana", _wire("s-1", 100.0), qos=1, retain=True).wait_for_publish(5)
    cfg = tmp_path / "c.toml"
    mqtt = {"enabled": True, "host": "127.0.0.1", "port": broker.port}
    cfg.write_text(toml_dump({"device": {"state_dir": str(tmp_path / "state")}, "session": {"share": True}, "mqtt": mqtt}))
    try:
        assert main(["sessions", "--forget", "-c", str(cfg)]) == 0
        assert "cleared 1 shared session pointers" in capsys.readouterr().out
        wait_for(lambda: b"" in obs.find("edge-agent/_sessions/agent-1/dana"), 20, "the empty retained pointer")
    finally:
        obs.close()
    late = Observer(broker.port, "edge-agent/_sessions/#")
    try:
        late.settle()  # a retained pointer would have come before the marker
        (topic, payload, _, _), *rest = late.received()  # only the forget, naming the session
        assert topic == "edge-agent/_sessions/agent-1/dana/forgotten" and not rest
        assert json.loads(payload)["kiosk"] is None and json.loads(payload)["sessions"] == ["s-1"]
    finally:
        late.close()


def test_shared_sessions_count_against_keep_sessions_and_a_resumed_id_moves_forward(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, keep_sessions=3)
    filed = store.merge_shared([("agent-1", f"p{i}", f"s-{i}", None, 100.0 + i, None) for i in range(5)])
    assert filed == 5 and sorted(s.slot for s in store.recent()) == ["p2", "p3", "p4"]  # the newest kept
    store.record_start("s-local", "agent-1", "p4", None, 200.0)  # this kiosk continued p4 later
    assert store.merge_shared([("agent-1", "p4", "s-4", None, 150.0, 160.0)]) == 0
    assert store.newest("agent-1", "p4").id == "s-local"  # type: ignore[union-attr]
    store.merge_shared([("agent-1", "p4", "s-4", None, 300.0, None)])  # s-4 was resumed elsewhere at 300
    assert store.newest("agent-1", "p4").id == "s-4"  # type: ignore[union-attr]
    store.close()


def test_a_retained_pointer_with_a_time_no_float_can_hold_is_rejected_and_counted(tmp_path: Path, sim: AgentSimulator, broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    """Whoever may publish on `_sessions` can leave a pointer whose time is a 400-digit integer
    (it fits in MAX_POINTER_BYTES); it replays at every connect. It is a bad pointer like any
    other: counted, dropped, one debug line, not a traceback per delivery from paho's thread."""
    obs = Observer(broker.port)
    huge = "1" + "0" * 400
    bad = {
        "edge-agent/_sessions/agent-1/mallory": f'{{"v":1,"session_id":"s-1","started_at":{huge}}}'.encode(),
        "edge-agent/_sessions/agent-1/trudy": f'{{"v":1,"session_id":"s-2","started_at":-{huge}}}'.encode(),
    }
    try:
        wait_for(obs.client.is_connected, 5, "the observer")
        for topic, payload in bad.items():
            assert len(payload) <= MAX_POINTER_BYTES
            obs.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
        with caplog.at_level(logging.INFO), _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            share = a.kiosk.share
            assert share is not None
            wait_for(lambda: share.counts["received"] >= 2, 20, "the retained pointers")
            assert share.counts["rejected"] == 2, share.counts
            assert _newest(a, "mallory") is None and _newest(a, "trudy") is None
        assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    finally:
        obs.close()


@pytest.mark.slow
def test_forgetting_another_slot_leaves_the_running_conversation_on_the_record(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """An empty retained pointer forgets that one slot fleet-wide. It used to put whatever
    conversation the kiosk was running, for any slot, off the record (and forget its last
    session): one empty message on someone else's slot, and this visitor's session was never
    stored, so their next press started afresh."""
    obs = Observer(broker.port)
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            obs.wait("edge-agent/kiosk-a/availability", lambda p: p == b"online")
            share = a.kiosk.share
            assert share is not None
            sim.onready_delay_s = 2.0  # the forget comes while the kiosk waits for onready
            _cmd(obs, "kiosk-a", action="press", slot="alice")
            a.wait_state(c.CONNECTING)
            obs.client.publish("edge-agent/_sessions/agent-1/bob", b"", qos=1, retain=True).wait_for_publish(5)
            wait_for(lambda: share.counts["forgotten"] >= 1, 20, "the forget of bob's slot")
            a.on_loop(lambda: None)  # the forget, posted to the loop, has run
            assert a.state == c.CONNECTING
            a.wait_state(c.LISTENING)
            sim.onready_delay_s = 0.0
            running = a.kiosk.conversation.session_id
            assert running is not None
            _cmd(obs, "kiosk-a", action="end")
            a.wait_state(c.IDLE)
            stored = _newest(a, "alice")
            assert stored is not None and stored.id == running
            again = _converse(a, sim, obs, "kiosk-a", "alice")
            assert again.continued_from == running
    finally:
        obs.close()


def test_a_forgotten_slot_whose_button_names_the_configured_agent_is_not_continued(tmp_path: Path, sim: AgentSimulator) -> None:
    """A `[[buttons]]` entry may name the configured agent by its id. The fleet's forget of
    (agent-1, lobby) reaches the conversation as the configured agent (None), while the button's
    conversation kept "agent-1": the two never matched, and the next press of that button
    continued the forgotten session from the process's memory (found by an attacker)."""
    with KioskThread(kiosk_settings(tmp_path, sim.url)) as k:  # agent.agent_id = "agent-1"
        kiosk = k.kiosk
        k.send(c.Press(slot="lobby", agent_id="agent-1"))
        k.wait_state(c.LISTENING)
        sid = kiosk.conversation.session_id
        assert sid and kiosk.store.newest("agent-1", "lobby").id == sid
        k.send(c.Press(slot="lobby", agent_id="agent-1"))  # the same button again: ends it
        wait_for(lambda: k.state == c.IDLE, 10, "idle")
        assert k.on_loop(lambda: kiosk.conversation.continuation_candidate(kiosk.clock(), "lobby", "agent-1")) == sid
        k.on_loop(lambda: (kiosk.store.forget_slot("agent-1", "lobby"), kiosk._slot_forgotten("agent-1", "lobby")))
        assert k.on_loop(lambda: kiosk.conversation.continuation_candidate(kiosk.clock(), "lobby", "agent-1")) is None


# ----------------------------------------------------------------------------- a kiosk whose clock runs ahead (a helper's attack, 2026-12-06), each failed before its fix
AHEAD_S = 600.0


def _quiet(obs: Observer, kiosks: list[KioskThread], topic: str) -> None:
    """Until no new pointer comes: every kiosk has handled each one the observer saw (and sent what
    it answers, under its share's lock) and filed it."""
    while True:
        seen = len(obs.find(topic))
        for k in kiosks:
            share = k.kiosk.share
            assert share is not None
            wait_for(lambda share=share, seen=seen: share.counts["received"] >= seen, 20, "the kiosk to receive every pointer")
            with share._lock:  # an answer (a correction) is sent inside on_message, under it
                pass
        obs.settle()
        if len(obs.find(topic)) == seen:
            break
    for k in kiosks:
        wait_for(lambda k=k: k.kiosk.share.pending == 0, 10, "the pointers filed")  # type: ignore[union-attr]
        k.on_loop(lambda: None)


class _SkewedClock:
    """The `time` module as kiosk A's code sees it (the store, its rows, the records): its wall
    clock AHEAD_S ahead, on its loop's thread only (kiosk B runs in the same process)."""

    def __init__(self, holder: dict[str, threading.Thread]) -> None:
        self._holder = holder

    def time(self) -> float:
        return time.time() + (AHEAD_S if threading.current_thread() is self._holder.get("a") else 0.0)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def _a_ahead_and_b(tmp_path: Path, sim: AgentSimulator, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[KioskThread, KioskThread, Observer]]:
    """Kiosks A (its wall clock AHEAD_S ahead) and B sharing sessions, and an observer of the broker."""
    real = time.time
    holder: dict[str, threading.Thread] = {}
    for module in (records, store_module, storerows):
        monkeypatch.setattr(module, "time", _SkewedClock(holder))
    obs = Observer(broker.port)
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            holder["a"] = a._thread
            assert a.kiosk.share is not None
            a.kiosk.share._clock = lambda: real() + AHEAD_S  # its share reads the same (skewed) wall clock
            with _kiosk(tmp_path, "kiosk-b", sim, broker.port) as b:
                yield a, b, obs
    finally:
        obs.close()


def test_a_kiosk_whose_clock_runs_ahead_does_not_take_back_the_persons_later_conversation(
    tmp_path: Path, sim: AgentSimulator, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kiosk A's wall clock runs 10 minutes ahead (a Pi has no battery clock; README). A person
    talks at A (session S1, started_at A's "now" + 10 min), then at B, continuing S1 as S2. B files
    A's pointer clamped to its own now, so S2 ranks newer there, as it should. But A sees S2's
    pointer as older than its own and "corrects" it by publishing S1 again; B files that with the
    start clamped to *now* again, moving S1 ahead of S2: the person's next conversation (at B, or
    anywhere) continues S1, and what they said at B is lost."""
    with _a_ahead_and_b(tmp_path, sim, broker, monkeypatch) as (a, b, obs):
        first = _converse(a, sim, obs, "kiosk-a", "pat")
        wait_for(lambda: (n := _newest(b, "pat")) is not None and n.id == first.session_id and n.ended_at, 20, "B to know how S1 ended")
        second = _converse(b, sim, obs, "kiosk-b", "pat")
        assert second.continued_from == first.session_id
        wait_for(lambda: (n := b.on_loop(lambda: b.kiosk.store.get(second.session_id))) is not None and n.ended_at, 20, "B to store S2's end")
        obs.wait("edge-agent/_sessions/agent-1/pat", lambda p: json.loads(p)["session_id"] == second.session_id and json.loads(p)["ended_at"] is not None)
        _quiet(obs, [a, b], "edge-agent/_sessions/agent-1/pat")  # whatever A answers has reached B
        third = _converse(b, sim, obs, "kiosk-b", "pat")
        assert third.continued_from == second.session_id, f"the person's conversation at B ({second.session_id}) was lost: B continued {third.continued_from} (A's, first={first.session_id})"


def test_a_kiosk_whose_clock_runs_ahead_follows_the_persons_conversations_elsewhere(
    tmp_path: Path, sim: AgentSimulator, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kiosk A's clock 10 minutes ahead. The person talks at A (S1), twice at B (S2 continues S1,
    S3 continues S2), and comes back to A: A ranked every pointer by B's start, 10 minutes
    "older" than its own S1, so for those 10 minutes it continued S1 (or S2) and the person's
    conversation at B was not followed. A session that continues the slot's newest is newer,
    whatever the kiosks' clocks say."""
    with _a_ahead_and_b(tmp_path, sim, broker, monkeypatch) as (a, b, obs):
        first = _converse(a, sim, obs, "kiosk-a", "pat")
        wait_for(lambda: (n := _newest(b, "pat")) is not None and n.id == first.session_id and n.ended_at, 20, "B to know how S1 ended")
        second = _converse(b, sim, obs, "kiosk-b", "pat")
        wait_for(lambda: (n := b.on_loop(lambda: b.kiosk.store.get(second.session_id))) is not None and n.ended_at, 20, "B to store S2's end")
        third = _converse(b, sim, obs, "kiosk-b", "pat")
        obs.wait("edge-agent/_sessions/agent-1/pat", lambda p: json.loads(p)["session_id"] == third.session_id and json.loads(p)["ended_at"] is not None)
        _quiet(obs, [a, b], "edge-agent/_sessions/agent-1/pat")
        back = _converse(a, sim, obs, "kiosk-a", "pat")
        assert back.continued_from == third.session_id, f"back at A the person continued {back.continued_from}, not their last one {third.session_id} (S1={first.session_id})"


def test_a_forget_deletes_the_whole_continuation_chain_not_only_the_first_link(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """(A helper's attack, 2026-12-06.) Kiosk A knew visitor-c's session s-1 and forgets it fleet-wide. Kiosk B, offline meanwhile,
    had continued the person's conversation twice: s-2 continues s-1, s-3 continues s-2 (each
    carries the earlier turns). B, back, hears the retained forget naming s-1: it deleted s-1 and
    s-2 (continuing a named one) but kept s-3, went on defending its pointer, and the person's
    forgotten conversation was continued again, at B and (the pointer republished) fleet-wide."""
    obs = Observer(broker.port)
    try:
        with _kiosk(tmp_path, "kiosk-b", sim, broker.port) as b:
            wait_for(b.kiosk.reporter.connected.is_set, 20, "B to connect")  # type: ignore[attr-defined]
            now = time.time()

            def talked() -> None:
                r = b.kiosk.records
                r.started("s-1", "agent-1", "visitor-c", None)
                r.started("s-2", "agent-1", "visitor-c", "s-1")
                r.started("s-3", "agent-1", "visitor-c", "s-2")
                r.ended("s-3", "button")

            b.on_loop(talked)
            obs.wait(pointer_topic("edge-agent", "agent-1", "visitor-c"), lambda p: p and json.loads(p)["session_id"] == "s-3" and json.loads(p)["ended_at"])
            # A's forget, exactly as A sends it (it knew only s-1)
            topic = forgotten_topic("edge-agent", "agent-1", "visitor-c")
            obs.client.publish(topic, Forgotten(now, "kiosk-a", ("s-1",)).to_wire(), qos=1, retain=True)
            wait_for(lambda: b.on_loop(lambda: b.kiosk.store.get("s-1")) is None, 10, "B to forget s-1")
            time.sleep(0.5)
            left = b.on_loop(lambda: [s.id for s in b.kiosk.store.recent() if s.slot == "visitor-c"])
            assert left == [], f"the forgotten conversation lives on at B as {left}"
            assert ("agent-1", "visitor-c") not in b.kiosk.share._mine, "B still defends (and republishes) the forgotten chain's pointer"  # type: ignore[union-attr]
    finally:
        obs.close()


def test_a_forget_racing_a_new_conversation_elsewhere_leaves_that_conversation_on_the_record(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """Kiosk A forgets visitor-r's slot, naming the session it knew (s-old). At the same moment
    kiosk B starts a new conversation of that slot (not continuing a forgotten one), which A
    had not heard of. Forgets name sessions so that such a conversation is not touched (README),
    but A also clears the retained pointer with an empty message, which every kiosk hearing it
    live takes as a forget of the WHOLE slot: B deleted its new session and put its running
    conversation off the record."""
    obs = Observer(broker.port)
    try:
        with _kiosk(tmp_path, "kiosk-b", sim, broker.port) as b:
            obs.wait("edge-agent/kiosk-b/availability", lambda p: p == b"online")
            before = len(sim.sessions)
            _cmd(obs, "kiosk-b", action="press", slot="visitor-r")
            b.wait_state(c.LISTENING)
            fresh = wait_for(lambda: len(sim.sessions) > before and sim.sessions[-1], 20, "the session")
            wait_for(lambda: (n := _newest(b, "visitor-r")) is not None and n.id == fresh.session_id, 10, "B to store it")
            # kiosk A's forget, through the very code A runs (it knew s-old only)
            said = clear_pointers(b.kiosk.settings.mqtt, forgets_of({("agent-1", "visitor-r"): ("s-old",)}, time.time(), "kiosk-a"))
            assert said.startswith("cleared"), said
            obs.wait(forgotten_topic("edge-agent", "agent-1", "visitor-r"))
            time.sleep(1.0)
            assert not b.kiosk.conversation.record.off_record, "B's new conversation went off the record"
            n = _newest(b, "visitor-r")
            assert n is not None and n.id == fresh.session_id, "B deleted its new conversation's session"
            _cmd(obs, "kiosk-b", action="end")
            b.wait_state(c.IDLE)
    finally:
        obs.close()


def test_forget_sessions_over_mqtt_tells_the_fleet_of_every_slot_the_command_line_would(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """`edge-agent sessions --forget` leaves a retained forget for every (agent, slot) in the store;
    the MQTT `forget_sessions` only for the agents the kiosk is configured with now. A kiosk whose
    agent id was changed (or a `[[buttons]]` agent removed) still holds, and wipes, the sessions
    of the old agent, which the fleet shared: over MQTT the other kiosks were never told, and kept
    the person's conversations."""
    obs = Observer(broker.port)
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            obs.wait("edge-agent/kiosk-a/availability", lambda p: p == b"online")
            now = time.time()
            a.on_loop(lambda: a.kiosk.store.record_start("s-old-agent", "agent-old", "visitor-o", None, now - 60))
            _cmd(obs, "kiosk-a", action="forget_sessions", id="f-o")
            obs.wait("edge-agent/kiosk-a/cmd/result", lambda p: b'"f-o"' in p)
            assert a.on_loop(lambda: a.kiosk.store.get("s-old-agent")) is None  # wiped here
            seen = obs.wait(forgotten_topic("edge-agent", "agent-old", "visitor-o"), timeout_s=5)
            assert json.loads(seen)["sessions"] == ["s-old-agent"]
    finally:
        obs.close()
