"""A helper's review of the fleet-wide forget (2026-12-07, forgets3).

1. A named forget with no empty pointer after it (a retained forget the broker replays at every
   connect, or the joined forget `_keep_ours` publishes again) left its slot owing a "clearing"
   for CLEARED_WITHIN_S: a real forget of the whole slot within that window (an empty retained
   pointer, as an admin's `mosquitto_pub -r -n` or a kiosk from before 2026-12-06 sends it) was
   taken for that clearing and ignored, and the kiosk kept the conversation the admin forgot.
2. A forget a kiosk publishes for the links it learned (`_publish_forget`) was not its own to keep:
   when another kiosk's forget not naming those links replaced it on the broker, nobody published
   them again, and a kiosk offline through both kept the forgotten conversation's last link."""

from __future__ import annotations

import json
import time
from pathlib import Path

import sharefuzz as sf
from conftest import Broker, Observer, wait_for
from test_share import _cmd, _converse, _kiosk, _newest

from edge_agent.devtools.simulator import AgentSimulator


def test_an_admins_forget_of_a_slot_right_after_a_kiosk_connects_is_not_ignored(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """visitor-1 was forgotten once (the slot's retained forget names s1), then talked again at
    kiosk A (s2, the retained pointer). Kiosk B starts: the broker hands it the retained forget and
    the pointer, and B files s2. The admin forgets the slot (`mosquitto_pub -r -n` on its pointer).
    B used to take that empty pointer for the clearing of the retained forget it had just heard
    (replayed, with no clearing of its own after it) and kept s2, the conversation forgotten."""
    obs = Observer(broker.port)
    topic = "edge-agent/_sessions/agent-1/visitor-1"
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            first = _converse(a, sim, obs, "kiosk-a", "visitor-1")
            _cmd(obs, "kiosk-a", action="forget_sessions", id="f1")
            obs.wait("edge-agent/kiosk-a/cmd/result", lambda p: b'"f1"' in p)
            assert json.loads(obs.wait(f"{topic}/forgotten"))["sessions"] == [first.session_id]
            second = _converse(a, sim, obs, "kiosk-a", "visitor-1")
            assert second.continued_from is None
            obs.wait(topic, lambda p: p and json.loads(p)["session_id"] == second.session_id)
            with _kiosk(tmp_path, "kiosk-b", sim, broker.port) as b:
                wait_for(lambda: (n := _newest(b, "visitor-1")) is not None and n.id == second.session_id, 20, "B to file s2")
                b_share = b.kiosk.share
                assert b_share is not None
                heard = b_share.counts["received"]
                obs.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # the admin's forget of the slot
                wait_for(lambda: _newest(a, "visitor-1") is None, 20, "A to forget the slot")
                wait_for(lambda: b_share.counts["received"] > heard, 5, "B to hear the admin's forget")
                time.sleep(0.5)  # (handled on paho's thread, then posted to the loop)
                b.on_loop(lambda: None)
                assert _newest(b, "visitor-1") is None, "B kept the conversation the admin forgot"
    finally:
        obs.close()


def _fleet(n: int) -> sf.Fleet:
    fleet = sf.Fleet(0, n=n, clear_mode="bus", reorder=False, flush_first=True, restarts=False, skew=False)
    for k in fleet.kiosks:
        k.skew = 0.0
    return fleet


def _settle(fleet: sf.Fleet, *kiosks: int) -> None:
    """Everything in flight for these kiosks (deliveries, posts, the broker taking their sends), in order."""
    for _ in range(10_000):
        work = sorted(w for w in fleet.pending_work() if w[1] in kiosks)
        if not work:
            return
        fleet.do(work[0])
    raise AssertionError("no quiescence")


def test_an_admins_forget_of_a_slot_after_a_forget_joined_again_is_not_ignored() -> None:
    """Kiosk 0 forgets s0; kiosk 1, offline and never having known s0, starts s1 and forgets it.
    Back online, its forget replaces kiosk 0's on the broker, and kiosk 0 publishes the two joined
    (`_keep_ours`), with no empty pointer after it: every kiosk then owed that forget a clearing for
    10 s. The person talks at kiosk 2 (s2); the admin clears the slot (an empty retained pointer).
    Every kiosk took it for that clearing: s2 stayed everywhere, and kiosk 2 put it back on the
    broker (a clearing of a slot it owns is corrected)."""
    fleet = _fleet(3)
    try:
        fleet.drop(1, True)
        s0 = fleet.start(0, "p0")
        fleet.end(0, s0)
        _settle(fleet, 0, 2)
        fleet.forget(0)
        _settle(fleet, 0, 2)
        fleet.start(1, "p0")
        fleet.forget(1)
        fleet.reconnect(1, True)
        _settle(fleet, 0, 1, 2)
        assert sf.held(fleet) == [[], [], []]
        s2 = fleet.start(2, "p0")
        _settle(fleet, 0, 1, 2)
        assert sf.held(fleet) == [[s2]] * 3
        fleet.broker.publish(f"{sf.PREFIX}/_sessions/{sf.AGENT}/p0", b"", True)  # the admin's `mosquitto_pub -r -n`
        _settle(fleet, 0, 1, 2)
        fleet.quiesce()
        assert sf.held(fleet) == [[], [], []], "kiosks kept the conversation the admin forgot"
        assert f"{sf.PREFIX}/_sessions/{sf.AGENT}/p0" not in fleet.broker.retained
        assert fleet.check() == []
    finally:
        fleet.close()


def test_a_forget_of_learned_links_replaced_by_another_is_published_again() -> None:
    """Kiosk 1's link is down unnoticed; it continues s0 twice (s1, s2: paho holds both pointers).
    Kiosk 2 forgets s0. Kiosk 1 is back: s1 and s2 reach the broker, then it hears the forget,
    deletes the chain and publishes a forget naming the links it learned (s1, s2). Kiosk 3, back
    for a moment in between, filed s2 from the retained pointer (never having seen s1). Kiosk 0,
    offline through all that, started s3 and forgets (s3 and s0): its forget replaces kiosk 1's,
    which nobody published again, and kiosk 3, back, kept s2, the person's forgotten conversation."""
    fleet = _fleet(4)
    try:
        s0 = fleet.start(1, "p0")
        fleet.end(1, s0)
        fleet.quiesce(reconnect=False)
        fleet.drop(1, False)
        fleet.drop(0, True)
        fleet.drop(3, True)
        s1 = fleet.continue_newest(1, "p0")
        s2 = fleet.continue_newest(1, "p0")
        assert s1 is not None and s2 is not None
        fleet.forget(2)
        _settle(fleet, 2)
        fleet.reconnect(1, True)  # s1, s2 reach the broker; the forget comes back to kiosk 1
        fleet.reconnect(3, True)
        _settle(fleet, 3)
        assert sf.held(fleet)[3] == [s2]  # the retained pointer: s2, continuing s1 it never saw
        fleet.drop(3, True)
        _settle(fleet, 1, 2)
        assert sf.held(fleet)[1] == []
        fleet.start(0, "p0")
        fleet.forget(0)
        fleet.reconnect(0, True)
        _settle(fleet, 0, 1, 2)
        fleet.quiesce()
        assert fleet.check() == [], "a kiosk kept a session a forget named"
        assert sf.held(fleet) == [[], [], [], []]
    finally:
        fleet.close()


def test_a_kiosk_subscribing_between_a_forget_and_its_clearing_keeps_what_the_forget_did_not_name() -> None:
    """What the fix above must not break: kiosk 2, offline, started s1 (the person's conversation
    after s0, which kiosk 1 never heard of). Kiosk 1 forgets s0 (forget, then empty pointer, from a
    client of its own); kiosk 2 connects between the two: the broker replays the forget, retained,
    beside s0's pointer, and then the empty comes live. It is that forget's clearing, not a forget of
    the whole slot: s1 stays (README: a session the forgetting kiosk never heard of is not forgotten)."""
    fleet = sf.Fleet(0, n=3, clear_mode="client", reorder=False, flush_first=True, restarts=False, skew=False)
    for k in fleet.kiosks:
        k.skew = 0.0
    try:
        s0 = fleet.start(0, "p0")
        fleet.end(0, s0)
        fleet.quiesce(reconnect=False)
        fleet.drop(2, True)
        s1 = fleet.start(2, "p0")
        fleet.forget(1)
        fleet.do(("take", 3))  # the forget reaches the broker
        fleet.reconnect(2, True)  # kiosk 2 subscribes: s0's pointer and the forget, retained
        _settle(fleet, 2)
        fleet.do(("take", 3))  # the forget's clearing, live
        _settle(fleet, 2)
        assert sf.held(fleet)[2] == [s1]
        fleet.quiesce()
        assert fleet.check() == []
        assert all(s1 in ids for ids in sf.held(fleet))
    finally:
        fleet.close()
