"""Findings of a seeded fuzzer (a helper's review, 2026-12-06; tests/outfuzz.py) of the audio between the capture and
the socket: Conversation, Backlog, Uplink, Outbox and CaptureFeed for real; the socket, the link's
task and the gate faked at the I/O boundary, on a real event loop."""

from __future__ import annotations

import asyncio
import random

import outfuzz as o


class _GateStaysOpen:
    def random(self) -> float:
        return 0.99  # the fake gate neither closes nor (closed) opens on its own


async def _script(steps: list[str]) -> o.Harness:
    h = o.Harness(random.Random(0), backlog_ms=5000)
    async with o.faked(h, clock=False):
        h.gate.rng = _GateStaysOpen()  # type: ignore[assignment]
        h.gate.is_open = True
        for step in steps:
            if step == "paused":
                h.uplink.link.ws.paused = True  # type: ignore[union-attr]
            else:
                h.do(step)
            for _ in range(3):
                await asyncio.sleep(0)
        await h.settle()
        h.check_end()
    return h


def test_held_audio_of_a_link_that_dies_under_flow_control_right_after_onready_is_not_lost_beyond_the_queues_second() -> None:
    """README, "The first words": "what the visitor says while the kiosk reconnects is held and
    sent to the continued session once it is ready [...] What was already in the dead socket is
    lost with it (at most the uplink queue's second)." The 1.8 s held since the press went into
    the outbox at `onready` (bypassing the live queue's bound); the socket was congested, the link
    died: all 60 frames were lost, uncounted (neither held_dropped nor uplink_dropped), though
    only the one batch written before the drain (8 frames) had reached the socket."""
    h = asyncio.run(_script(["press"] + ["frame"] * 60 + ["connect", "paused", "ready", "drop"] + ["frame"] * 3 + ["connect", "ready"] + ["frame"] * 3))
    sent = [n for n, _ in h.sent_order[1]]
    assert sent == sorted(set(sent))
    assert len(set(range(66)) - set(sent)) <= o.QUEUE_FRAMES + o.BATCH_FRAMES, f"lost {sorted(set(range(66)) - set(sent))}"


def test_seeded_fuzz_of_the_uplink_audio_holds_every_invariant() -> None:
    """A few seeds x steps of tests/outfuzz.py (about 2 s): see outfuzz.INVARIANTS."""
    for seed in range(40):
        o.run(seed, 1500, 5000)  # the default backlog_ms: seed 8 found the first finding
