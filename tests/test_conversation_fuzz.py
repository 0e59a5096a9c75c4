"""What a seeded random fuzz of the Conversation found (a helper's review, 2026-12-06), each
shrunk by hand to its shortest sequence, and the fuzzer itself over a few seeds (tests/convfuzz.py;
the whole run: `PYTHONPATH=.:tests python tests/convfuzz.py 400 3000`). Each failed before its fix."""

from __future__ import annotations

import random

from convfuzz import run

from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.timing import Timing


def latencies(actions: list[c.Action]) -> list[float]:
    return [a.fields["ms"] for a in actions if isinstance(a, c.Notify) and a.kind == "response_latency"]


def test_a_start_answering_of_the_last_conversation_is_not_the_next_ones_reply_latency() -> None:
    """Turns: "the latency from `start_answering` to its first audio", of "the current
    conversation". The agent said `start_answering`, the visitor pressed before any audio came;
    an hour later the next visitor's first reply was told (event, `response_latency_ms` metric,
    Home Assistant's long-term statistics) as an hour-long latency."""
    conv = c.Conversation(Timing(), rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 0.1)
    conv.handle(c.FromAgent(conv.link_id, p.StartAnswering()), 1.0)
    conv.handle(c.Press(), 2.0)  # ends it before the reply's audio
    conv.handle(c.LinkDown(conv.link_id), 2.1)
    conv.handle(c.Press(long=True), 3600.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s2")), 3600.1)
    acts = conv.handle(c.AgentAudio(conv.link_id, b"\x00\x00"), 3600.5)  # a greeting: no start_answering in this one
    assert latencies(acts) == []
    conv.handle(c.FromAgent(conv.link_id, p.StartAnswering()), 3601.0)
    assert latencies(conv.handle(c.AgentAudio(conv.link_id, b"\x00\x00"), 3601.25)) == [250.0]


def test_a_drop_of_the_first_link_does_not_cut_the_first_onreadys_5_s_short() -> None:
    """FIRST_READY_MIN_S: "The least time a conversation's first `onready` gets, whatever
    `reconnect_window_s` says" (README: "the first `onready` of a press still gets at least
    5 s"). With a 3 s window a first link that never drops gets 5 s; one whose connect failed
    once at 0.3 s was retried, and the retry given up at 3 s, with the error earcon."""
    conv = c.Conversation(Timing(reconnect_window_s=3.0), rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    conv.handle(c.LinkDown(conv.link_id, "connect refused"), 0.3)  # retried
    assert conv.state == c.CONNECTING
    conv.handle(c.Initiated(conv.link_id), 0.6)
    conv.handle(c.Tick(), 3.0)
    conv.handle(c.Tick(), 4.9)
    assert conv.state == c.CONNECTING  # failed at 3.0 before
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 4.95)
    assert conv.state == c.LISTENING


def test_with_reconnects_off_a_drop_of_the_first_link_ends_the_press() -> None:
    """`reconnect_window_s = 0`: reconnects off, a drop ends the conversation, the first link's
    too (the 5 s floor of the first `onready` is for a link that stays up)."""
    conv = c.Conversation(Timing(reconnect_window_s=0.0), rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    conv.handle(c.LinkDown(conv.link_id, "connect refused"), 0.3)
    assert conv.state == c.ERROR


def test_the_never_ready_error_names_the_window_it_waited() -> None:
    """The window was 5 s (FIRST_READY_MIN_S); the error said "within 3 s"."""
    conv = c.Conversation(Timing(reconnect_window_s=3.0), rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    acts = conv.handle(c.Tick(), 5.0)
    assert [a.fields["message"] for a in acts if isinstance(a, c.Notify) and a.kind == "error"] == ["the agent did not say onready within 5 s"]


def test_seeded_fuzz_of_the_conversation_holds_its_invariants() -> None:
    for seed in range(24):
        run(seed, 1500)


def test_a_reload_that_changes_the_start_limit_keeps_what_was_spent() -> None:
    """`Conversation.reconfigure`: "the start rate limit keeps what it has spent". A reload that
    changed `starts_per_minute` (an operator lowering it during a flood of MQTT presses) gave
    the bucket back in full: a new burst of starts, each a socket and maybe a billed session."""
    conv = c.Conversation(Timing(start_burst=2, starts_per_minute=1.0), rng=random.Random(1))
    started = 0
    for i in range(3):  # two go, the third is refused
        started += bool([a for a in conv.handle(c.Start(fresh=True), 1.0 + i) if isinstance(a, c.NewVisitor)])
        conv.handle(c.End(), 1.05 + i)
        conv.handle(c.LinkDown(conv.link_id), 1.06 + i)
    assert (started, conv.starts_refused) == (2, 1)
    conv.reconfigure(Timing(start_burst=2, starts_per_minute=0.5), "default")
    acts = conv.handle(c.Start(fresh=True), 6.0)
    assert conv.state == c.IDLE and not [a for a in acts if isinstance(a, c.OpenLink)]
    assert conv.starts_refused == 2 and conv.start_wait_s(6.0) > 60.0
