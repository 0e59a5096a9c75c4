"""Seed 609 of the fleet model (tests/sharefuzz.py, 150 steps, with and without broker restarts):
a forget's second clearing read as a forget of the whole slot (a helper's review, 2026-12-07).

A kiosk whose own pointer the broker held clears it again when it hears a forget of it (forget,
then empty pointer: share.py `_forgotten`), so one forget is often followed by two forget/empty
pairs. When the broker took them interleaved (forget A, forget B, empty A, empty B), a third
kiosk marked the slot "named forget heard" twice but took only the first empty as a clearing:
the second read as an older kiosk's forget of the whole slot. It deleted the conversation the
kiosk had started since (which no forget named: README, "The fleet remembers": "a conversation
of that slot started since that the forget did not name" is not touched) and then published a
forget naming it, so the whole fleet forgot a person's new conversation; a kiosk offline at that
moment kept it (the model's invariant (a))."""

from __future__ import annotations

from typing import Any

import pytest
import sharefuzz as sf

SHRUNK_609: list[tuple[Any, ...]] = [
    ("start", 2, "p0", None, "s0"), ("take", 2), ("deliver", 3), ("deliver", 2), ("deliver", 1), ("start", 3, "p1", None, "s1"),
    ("take", 3), ("start", 1, "p0", None, "s2"), ("deliver", 2), ("take", 1), ("start", 3, "p1", None, "s3"), ("deliver", 2),
    ("take", 3), ("deliver", 3), ("deliver", 1), ("deliver", 3), ("end", 1, "s2"), ("deliver", 1), ("post", 3), ("take", 1),
    ("deliver", 2), ("deliver", 2), ("forget", 3), ("deliver", 1), ("deliver", 1), ("take", 3), ("deliver", 1), ("deliver", 2),
    ("take", 3), ("start", 2, "p0", None, "s5"), ("deliver", 1), ("take", 1), ("take", 3), ("deliver", 1), ("deliver", 2),
    ("deliver", 1), ("deliver", 2), ("take", 2), ("take", 1), ("deliver", 2), ("take", 2), ("deliver", 1), ("deliver", 2),
    ("deliver", 2), ("deliver", 1), ("post", 2), ("start", 1, "p0", None, "s12"), ("post", 1), ("deliver", 2), ("deliver", 1),
    ("take", 2), ("take", 1), ("drop", 1, True),
]
"""Seed 609's 150 steps (restarts=False), shrunk with `sf.shrink(609, ops, "(a)")`."""


@pytest.mark.parametrize("restarts", [True, False])
def test_seed_609_shrunk_leaves_no_kiosk_holding_a_forgotten_session(restarts: bool) -> None:
    fleet = sf.replay(609, SHRUNK_609, restarts=restarts)
    try:
        assert fleet.violations == []
        # s5 (kiosk 2) was started after kiosk 3's forget, which named s2 of that slot, and s12
        # (kiosk 1) after that: neither is forgotten; s5 used to be, fleet-wide, by kiosk 2
        held = sf.held(fleet)
        assert [ids[0] for ids in held] == ["s12"] * 4 and "s5" in held[2]
        assert all("s5" not in (f.sessions or ()) for _, f in fleet.broker.forgets_seen)
    finally:
        fleet.close()


@pytest.mark.parametrize("mode", ["bus", "client"])
def test_a_forgets_second_clearing_does_not_forget_a_conversation_started_since(mode: str) -> None:
    """Kiosk 1's pointer s0 is the retained one; kiosk 0 forgets (names s0, clears the pointer).
    Kiosk 1 hears the forget and clears its own pointer again (forget, empty), its forget reaching
    the broker between kiosk 0's forget and empty. Kiosk 2 hears forget, forget, empty: s0 is gone;
    the person starts a new conversation s1 at kiosk 2; then kiosk 2 hears the second empty, the
    clearing of kiosk 1's forget. It used to take it for a forget of the whole slot: s1 deleted
    there and forgotten fleet-wide."""
    fleet = sf.Fleet(0, n=3, clear_mode=mode, reorder=False, flush_first=True, restarts=False)
    for k in fleet.kiosks:
        k.skew = 0.0
    try:
        s0 = fleet.start(1, "p0")
        fleet.quiesce(reconnect=False)
        assert sf.held(fleet) == [[s0]] * 3
        fleet.forget(0)
        forgetter = 3 if mode == "client" else 0  # clear_pointers' own client, or kiosk 0's bus
        fleet.do(("take", forgetter))  # kiosk 0's forget
        fleet.do(("deliver", 1))  # kiosk 1 hears it: its retained pointer cleared again (forget, empty)
        assert fleet.kiosks[1].share.counts["cleared"] == 1
        fleet.do(("take", 1))  # kiosk 1's forget
        fleet.do(("take", forgetter))  # kiosk 0's empty pointer
        fleet.do(("take", 1))  # kiosk 1's empty pointer
        k2 = fleet.kiosks[2]
        for _ in range(3):  # forget, forget, empty
            fleet.do(("deliver", 2))
        while k2.posts:
            fleet.do(("post", 2))
        assert sf.held(fleet)[2] == []
        s1 = fleet.start(2, "p0")  # the person talks again, at kiosk 2
        fleet.do(("deliver", 2))  # kiosk 1's empty pointer: the clearing of its forget
        fleet.quiesce(reconnect=False)
        assert sf.held(fleet) == [[s1]] * 3
        assert fleet.check() == []
        assert all(s1 not in (f.sessions or ()) for _, f in fleet.broker.forgets_seen)
    finally:
        fleet.close()
