"""Found by a seeded model-based fuzzer of a whole fleet (a helper's review, 2026-12-06;
tests/sharefuzz.py): real SessionShares and SessionStores on an in-memory broker with MQTT's
retained semantics, shrunk by hand; each failed before its fix."""

from __future__ import annotations

import json

import pytest
import sharefuzz as sf

from edge_agent.fleet import owed

MODES = [(mode, flush) for mode in ("client", "bus") for flush in (True, False)]


def _fleet(mode: str, flush: bool) -> sf.Fleet:
    fleet = sf.Fleet(0, n=2, clear_mode=mode, reorder=False, flush_first=flush, restarts=False)
    for k in fleet.kiosks:
        k.skew = 0.0
    return fleet


def _back_and_nothing_held(fleet: sf.Fleet, flush: bool) -> None:
    """Kiosk 1 comes back: no kiosk holds a session, and the fleet keeps its promises."""
    fleet.reconnect(1, flush)
    fleet.quiesce()
    assert sf.held(fleet) == [[], []]
    assert fleet.check() == []


@pytest.mark.parametrize(("mode", "flush"), MODES)
def test_a_second_forget_of_a_slot_does_not_undo_the_first_for_a_kiosk_offline_through_both(mode: str, flush: bool) -> None:
    """Kiosk 1 has the person's s0 and goes offline. Kiosk 0 forgets (names s0); the person talks
    again (s1) and kiosk 0 forgets again (names s1). The slot's retained Forgotten is one message:
    the second overwrote the first, and kiosk 1, back, heard only "s1" and kept s0 for good
    (README: deleted "on every kiosk that hears it, also one offline at the forget, when it is back")."""
    fleet = _fleet(mode, flush)
    try:
        s0 = fleet.start(0, "p0")
        fleet.quiesce(reconnect=False)
        assert sf.held(fleet) == [[s0], [s0]]
        fleet.drop(1, True)
        fleet.forget(0)
        fleet.quiesce(reconnect=False)
        fleet.start(0, "p0")
        fleet.quiesce(reconnect=False)
        fleet.forget(0)
        fleet.quiesce(reconnect=False)
        _back_and_nothing_held(fleet, flush)
    finally:
        fleet.close()


@pytest.mark.parametrize(("mode", "flush"), MODES)
def test_a_forgotten_conversation_continued_twice_while_the_link_was_silently_down_is_refused_everywhere(mode: str, flush: bool) -> None:
    """Kiosk 1 holds s0; its link drops and paho has not noticed yet. Kiosk 0 forgets s0. At kiosk 1
    the person continues s0 (s1), then s1 (s2): paho queues both pointers and sends them on
    reconnect. Kiosk 0 refused s1 (it continues s0) but filed s2 (it continues s1, which it never
    stored), and the broker kept s2 retained for good: README, "what paho held for it while
    offline may still go out on its return, and is refused everywhere"; the forgotten sessions
    "and every one continuing them, however far down the chain ... are never filed again"."""
    fleet = _fleet(mode, flush)
    try:
        fleet.start(0, "p0")
        fleet.quiesce(reconnect=False)
        fleet.drop(1, False)  # paho has not noticed: online() is still True
        fleet.forget(0)
        fleet.quiesce(reconnect=False)
        fleet.continue_newest(1, "p0")
        fleet.continue_newest(1, "p0")
        fleet.reconnect(1, flush)
        fleet.quiesce()
        assert sf.held(fleet) == [[], []]
        retained = fleet.broker.retained.get("fleet/_sessions/agent-1/p0")
        assert retained is None, json.loads(retained)
        assert fleet.check() == []
    finally:
        fleet.close()


@pytest.mark.parametrize("seed", range(8))
def test_a_seeded_fleet_keeps_its_promises(seed: int) -> None:
    """The fuzzer, a few seeds (well under 5 s): at quiescence no kiosk holds a forgotten session
    nor does the broker retain one, kiosks agree on each slot's newest, nothing raised."""
    fleet = sf.run(seed, 120, restarts=False)
    try:
        assert fleet.violations == []
    finally:
        fleet.close()


@pytest.mark.parametrize(("mode", "flush"), MODES)
def test_a_forget_survives_a_broker_restarted_without_persistence(mode: str, flush: bool) -> None:
    """Kiosk 1 has s0 and is offline. Kiosk 0 forgets s0; the broker restarts without persistence
    (the case RESEND_AFTER_S exists for: pointers are published again 30 s after a connect) and
    loses the retained forget. Kiosk 1, back, heard no forget, kept s0 for good and, 30 s later,
    published it again: the forgotten person was back on the broker (README: "also one offline at
    the forget, when it is back")."""
    fleet = _fleet(mode, flush)
    try:
        fleet.start(1, "p0")
        fleet.quiesce(reconnect=False)
        fleet.drop(1, True)
        fleet.forget(0)
        fleet.quiesce(reconnect=False)
        fleet.restart_broker()
        fleet.reconnect(0, flush)
        fleet.quiesce(reconnect=False)
        _back_and_nothing_held(fleet, flush)
    finally:
        fleet.close()


@pytest.mark.parametrize("seed", [29, 80, 106, 117, 124, 131, 136])
def test_a_chain_continued_before_the_forget_was_heard_is_forgotten_everywhere(seed: int) -> None:
    """Seeds the fleet model failed on: a kiosk continued the named session twice (s5 -> s9 ->
    s10) before it heard the forget, and a kiosk that never saw the middle link filed the last one
    from the retained pointer (it cannot know s10 continues a forgotten one). The kiosk that
    deletes the chain now publishes the links it learned with the forget, owed when the
    corrections limit holds it back (it did so only for its own pointer, best effort)."""
    fleet = sf.run(seed, 150, restarts=False, skew=False)
    try:
        assert fleet.violations == []
    finally:
        fleet.close()



def test_a_forget_replaced_while_the_corrections_limit_is_spent_is_published_again_when_it_allows() -> None:
    """Seed 27 of the fleet model with skewed clocks (150 steps, no broker restarts): kiosk 0 forgot
    s0 while kiosk 2 (s0's owner) was offline; kiosk 1, offline since before s0, forgot a later s3
    of the slot, and its forget, sent on its return, replaced kiosk 0's on the broker. Kiosk 0
    publishes the two joined, but its corrections limit was spent (in the seed, a correction
    ping-pong; here, a flood of stale pointers on a slot it owns), and the joined forget was dropped,
    not owed: kiosk 2, back, heard only "s3", kept s0 for good and published it again (README:
    deleted "also on one offline at the forget, when it is back")."""
    fleet = sf.Fleet(0, n=3, clear_mode="bus", reorder=False, flush_first=True, restarts=False, skew=False)
    try:
        fleet.drop(1, True)
        s0 = fleet.start(2, "p0")
        fleet.quiesce(reconnect=False)
        fleet.drop(2, True)
        fleet.forget(0)
        fleet.quiesce(reconnect=False)
        fleet.start(0, "p1")
        fleet.quiesce(reconnect=False)
        fleet.start(1, "p0")
        fleet.forget(1)
        for j in range(owed.CORRECTIONS_BURST + 2):  # stale pointers on kiosk 0's slot, each corrected
            stale = sf.Pointer(f"x{j}", sf.BASE - 1000 + j, None, None, "rogue")
            fleet.broker.publish(f"{sf.PREFIX}/_sessions/{sf.AGENT}/p1", stale.to_wire(), True)
        while fleet.kiosks[0].bus.inbox:
            fleet.deliver(0)
        fleet.reconnect(1, True)  # its forget reaches the broker before the retained one comes back
        fleet.quiesce(reconnect=False)
        fleet.reconnect(2, True)
        fleet.quiesce()
        assert s0 not in [sid for held in sf.held(fleet) for sid in held]
        assert fleet.check() == []
    finally:
        fleet.close()


@pytest.mark.parametrize(("seed", "opts"), [(30, {"skew": False}), (156, {"skew": False}), (27, {"restarts": False})])
def test_a_seeded_fleet_whose_corrections_limit_was_spent_forgets_everywhere(seed: int, opts: dict[str, bool]) -> None:
    """Seeds the fleet model failed on (150 steps): a kiosk whose forget another kiosk's replaced
    on the broker had spent its corrections limit (resends after a broker restart; with skew, a
    ping-pong the model's frozen clock made) and dropped the joined forget instead of owing it; a
    kiosk offline through both kept the sessions (30 and 156 fail before the fix in share.py)."""
    fleet = sf.run(seed, 150, **opts)
    try:
        assert fleet.violations == []
    finally:
        fleet.close()


@pytest.mark.parametrize(("seed", "opts"), [(191, {"restarts": False}), (163, {})])
def test_a_skewed_fleet_agrees_on_each_slots_newest(seed: int, opts: dict[str, bool]) -> None:
    """Seeds the fleet model failed on with skewed clocks (150 steps): two pointers from a kiosk whose
    clock is ahead, heard one after the other by one whose clock is behind, were clamped to one
    same `now` (the model's clock stood still while messages were handled: sharefuzz.HANDLING_S)
    and ranked by id, not arrival; kiosks disagreed on the slot's newest. A real clock moves on."""
    fleet = sf.run(seed, 150, **opts)
    try:
        assert fleet.violations == []
    finally:
        fleet.close()


def test_a_kiosk_that_hears_its_own_forgets_clearing_before_the_forget_keeps_a_conversation_started_since() -> None:
    """Seed 91 of the fleet model (200 steps, skew, no broker restarts), shrunk: kiosk 0's link
    dropped after the broker took its forget and before it took the forget's clearing (an empty
    pointer). Back, kiosk 0 heard the clearing live before the retained forget came back, took it
    for a forget of the whole slot (ForgetMemory.is_clearing knew only forgets heard), deleted the
    conversations it had started since, and published a forget naming them; another kiosk's forget
    replaced that one on the broker, and a kiosk offline meanwhile kept them (README: "a
    conversation started since is never caught by one")."""
    fleet = sf.Fleet(0, n=2, clear_mode="bus", reorder=False, flush_first=True, restarts=False, skew=False)
    try:
        fleet.start(0, "p0")
        fleet.quiesce()
        fleet.forget(0)
        fleet.broker_takes(0)  # the forget reaches the broker; its clearing is still on the wire
        s1 = fleet.start(0, "p0")  # the person after, a new conversation
        fleet.drop(0, True)
        fleet.reconnect(0, True)  # the clearing and s1 go out; heard live before the retained forget
        fleet.deliver(0)  # the clearing
        s2 = fleet.start(0, "p0")  # started before that was carried out
        fleet.quiesce()
        assert [s1 in held and s2 in held for held in sf.held(fleet)] == [True, True]
        assert not [f for _, f in fleet.broker.forgets_seen if s1 in (f.sessions or ()) or s2 in (f.sessions or ())]
        assert fleet.check() == []
    finally:
        fleet.close()


def test_an_own_forgotten_pointer_paho_sent_on_return_is_replaced_by_the_conversation_started_since() -> None:
    """Seed 53 of the fleet model (200 steps, skew, no broker restarts), shrunk: kiosk 1 continued
    s0 as s1 and its link dropped with the pointer in paho's queue; kiosk 0 forgot s0, kiosk 1
    forgot s1 offline (its clear_pointers failed) and started s2, held until a connect. Back, paho
    sent s1 first: kiosk 1 heard it as a forgotten session of its own, refused it, and cleared it
    only when it had no pointer of the slot; with s2 it did nothing (and s2, heard of as "the
    broker holds one for the slot", was not published again): the broker retained s1 for good."""
    fleet = sf.Fleet(0, n=2, clear_mode="client", reorder=False, flush_first=True, restarts=False, skew=False)
    try:
        s0 = fleet.start(0, "p0")
        fleet.quiesce()
        fleet.start(1, "p0", s0)
        fleet.drop(1, True)
        fleet.forget(0)
        fleet.quiesce(reconnect=False)
        fleet.forget(1)  # offline: NOT cleared, remembered as ours
        s2 = fleet.start(1, "p0")
        fleet.reconnect(1, True)
        fleet.quiesce()
        assert json.loads(fleet.broker.retained[f"{sf.PREFIX}/_sessions/{sf.AGENT}/p0"])["session_id"] == s2
        assert fleet.check() == []
    finally:
        fleet.close()


@pytest.mark.parametrize(("seed", "opts"), [(53, {"restarts": False}), (91, {"restarts": False})])
def test_a_skewed_fleet_of_200_steps_forgets_everywhere(seed: int, opts: dict[str, bool]) -> None:
    """Seeds the fleet model failed on with skewed clocks at 200 steps: 91 (above, the clearing
    heard first) and 53 (above, an own forgotten pointer sent by paho on return)."""
    fleet = sf.run(seed, 200, **opts)
    try:
        assert fleet.violations == []
    finally:
        fleet.close()


def _skewed(skews: list[float]) -> sf.Fleet:
    fleet = sf.Fleet(0, n=len(skews), clear_mode="bus", reorder=False, flush_first=True, restarts=False)
    for k, skew in zip(fleet.kiosks, skews, strict=True):
        k.skew = skew
    return fleet


def _newest(fleet: sf.Fleet, slot: str) -> list[str | None]:
    out = []
    for i, k in enumerate(fleet.kiosks):
        fleet.current = i
        s = k.store.newest(sf.AGENT, slot)
        out.append(s.id if s else None)
    return out


def test_a_kiosk_whose_own_pointer_another_kiosks_newer_one_beat_files_a_continuation_of_that_one() -> None:
    """Seed 60 of the fleet model (150 steps, skew, no broker restarts), shrunk: kiosk 0 published
    s0, then filed kiosk 1's newer s1 (kiosk 1's clock 120 s ahead: clamped to now), yet kept
    defending its own s0. Kiosk 2 (an hour behind) continued s1 as s2, which kiosk 0's store files
    as newest ("a continuation counts as started on arrival"); but its start ranks an hour before
    s0, so kiosk 0 refused it and corrected the broker back to s0, which kiosk 2 then clamped to now
    and filed over s2: kiosks disagreed on the slot's newest (README: only the owner of the newer
    pointer corrects; a kiosk whose own pointer is no longer the newest stops defending it)."""
    fleet = _skewed([0.0, 120.0, -3600.0])
    try:
        s0 = fleet.start(0, "p0")
        fleet.quiesce()
        s1 = fleet.start(1, "p0")
        fleet.quiesce()
        assert _newest(fleet, "p0") == [s1, s1, s1]
        s2 = fleet.continue_newest(2, "p0")
        fleet.quiesce()
        assert fleet.kiosks[0].share.counts["corrected"] == 0  # s0 is no longer the newest: not defended
        assert _newest(fleet, "p0") == [s2, s2, s2]
        assert s0 != s2
        assert fleet.check() == []
    finally:
        fleet.close()


def test_a_session_heard_again_from_a_kiosk_ahead_is_not_moved_past_the_one_continuing_it() -> None:
    """Seed 253 of the fleet model (150 steps, skew; clocks 0, -2 s, -1 h, -1 h), shrunk (it failed
    before the fix for seed 60 too): kiosk 2, an hour behind, continued kiosk 1's s5 as s8. Kiosk 1
    had corrected the broker back to s5 before it heard s8; heard again, s5's start (in the future
    for kiosks 2 and 3) was clamped to a later now, and their stores moved s5 past s8, which continues
    it; kiosk 2 did not even correct the broker, and kiosks disagreed on the slot's newest (README:
    "a session that continues the slot's newest is newer whatever the kiosks' clocks say")."""
    ops: list[tuple[object, ...]] = [
        ("start", 3, "p1", None, "s0"), ("take", 3), ("deliver", 2), ("start", 1, "p1", None, "s1"), ("take", 1), ("deliver", 2),
        ("start", 2, "p1", None, "s2"), ("start", 2, "p1", None, "s3"), ("take", 2), ("take", 2), ("deliver", 2), ("drop", 1, False),
        ("start", 1, "p1", "s1", "s5"), ("reconnect", 1, True), ("deliver", 2), ("deliver", 2), ("post", 2), ("start", 2, "p1", "s5", "s8"),
    ]  # fmt: skip
    fleet = sf.replay(253, ops)
    try:
        assert [k.skew for k in fleet.kiosks] == [0.0, -2.0, -3600.0, -3600.0]
        assert _newest(fleet, "p1") == ["s8"] * 4
        assert fleet.violations == []
    finally:
        fleet.close()
