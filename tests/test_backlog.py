"""The backlog (audio held while the agent link opens) and the Conversation's decisions about it:
pure, no sockets, no clock."""

from __future__ import annotations

import random

from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.backlog import Backlog
from edge_agent.core.timing import Timing


def frames(n: int, start: int = 0) -> list[bytes]:
    """`n` distinct 30 ms frames (16 kHz int16: 960 bytes)."""
    return [bytes([i % 256]) * 960 for i in range(start, start + n)]


def test_backlog_keeps_order_and_drops_the_oldest_beyond_its_bound_counting_them() -> None:
    b = Backlog(max_ms=300, frame_ms=30)  # 10 frames
    b.add(frames(4))
    b.add(tuple(frames(8, 4)))
    assert len(b) == 10 and b.held_ms == 300
    assert b.dropped == 2 and b.held == 12
    assert b.take() == frames(10, 2)  # the newest ten, oldest first
    assert len(b) == 0 and b.take() == []
    b.add(frames(3))
    assert len(b.take()) == 3 and len(b) == 0
    assert b.dropped == 2  # thrown away at the end is not "dropped by the bound"


def test_backlog_bounds_the_audio_held_not_the_pieces_it_comes_in() -> None:
    """A press sends the start of a frame ahead of it (`CaptureFeed.lead`): a frame can come as
    two or three pieces, and the bound is still `max_ms` of audio, the oldest dropped first."""
    b = Backlog(max_ms=300, frame_ms=30)
    pieces = [f[:320] for f in frames(10)] + [f[320:] for f in frames(10)]
    b.add(pieces)
    assert b.held_ms == 300 and b.dropped == 0 and len(b) == 20
    b.add([bytes([7]) * 320])  # 10 ms more: the oldest 10 ms piece goes
    assert b.held_ms == 300 and b.dropped == 1
    assert b.take()[0] == pieces[1]
    b.add([bytes(960 * 11)])  # a piece longer than the bound is not held at all
    assert len(b) == 0 and b.dropped == 2


def test_backlog_of_zero_holds_nothing_and_counts_everything() -> None:
    b = Backlog(max_ms=0, frame_ms=30)
    b.add(frames(5))
    assert len(b) == 0 and b.dropped == 5 and b.take() == []


def make(**timing: object) -> c.Conversation:
    return c.Conversation(Timing(**timing), rng=random.Random(1))  # type: ignore[arg-type]


def kinds(actions: list[c.Action]) -> list[str]:
    return [type(a).__name__ + (f":{a.command}" if isinstance(a, c.HeldAudio) else f":{a.name}" if isinstance(a, c.Earcon) else "") for a in actions]


def test_audio_is_held_from_the_press_and_sent_at_onready_before_the_ready_earcon() -> None:
    conv = make()
    assert not conv.holding and not conv.mic_open(0.0)
    conv.handle(c.Press(), 0.0)
    assert conv.holding and conv.mic_open(0.05)  # the visitor's first words are kept, not silenced
    acts = conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 0.9)
    k = kinds(acts)
    assert "HeldAudio:send" in k and k.index("HeldAudio:send") < k.index("Earcon:ready")
    assert isinstance(acts[0], c.StoreStart)  # still stored before anything else
    assert not conv.holding and conv.streaming


def test_held_audio_is_dropped_when_the_conversation_ends_before_the_agent_is_ready() -> None:
    conv = make()
    conv.handle(c.Press(), 0.0)
    acts = conv.handle(c.Press(), 0.5)  # the visitor changed their mind
    assert c.HeldAudio("drop") in acts and not conv.holding
    conv = make()
    conv.handle(c.Press(), 0.0)
    acts = conv.handle(c.LinkDown(conv.link_id, "http_403", fatal=True), 0.2)
    assert c.HeldAudio("drop") in acts and conv.state == c.ERROR and not conv.mic_open(0.3)


def test_a_reconnect_holds_what_the_visitor_says_for_the_continued_session() -> None:
    conv = make(duplex_tail_s=0.3)
    conv.handle(c.Press(), 0.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 0.1)
    conv.handle(c.AgentAudio(conv.link_id, b"\1\0" * 160), 1.0)
    assert conv.state == c.SPEAKING
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1006"), 2.0)
    assert conv.holding and c.HeldAudio("drop") not in acts
    assert not conv.mic_open(2.1)  # the agent's last words still ring: the duplex tail holds
    assert conv.mic_open(2.4)
    acts = conv.handle(c.FromAgent(conv.link_id, p.OnReady("s2")), 3.0)
    assert c.HeldAudio("send") in acts and conv.streaming


def test_push_to_talk_holds_silence_unless_the_button_is_held() -> None:
    conv = make(push_to_talk=True)
    conv.handle(c.Talk(held=True), 0.0)
    assert conv.holding and conv.mic_open(0.1)
    conv.handle(c.Talk(held=False), 0.2)
    assert conv.holding and not conv.mic_open(0.3)
