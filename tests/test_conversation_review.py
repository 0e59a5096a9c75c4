"""A helper's review of the Conversation with the agent link's Downlink (2026-12-06): each test
of a defect failed before its fix; the two marked "A guard" keep the rule a fix must not break."""

from __future__ import annotations

import random

import downfuzz

from edge_agent.agent.downlink import EARLY_AUDIO_BYTES, Downlink
from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.timing import Timing


def latencies(actions: list[c.Action]) -> list[float]:
    return [a.fields["ms"] for a in actions if isinstance(a, c.Notify) and a.kind == "response_latency"]


def test_push_to_talk_a_hold_spoken_through_from_before_the_press_is_no_silent_hang_up() -> None:
    """Push-to-talk: "a silent long hold hangs up", "a long hold with speech is just talking".
    A visitor who starts a sentence a moment before pressing the button (the gate opens on
    their voice then, while the button is still up) and talks through the hold without a pause
    the gate's hang-over would end got no new "speech" from the gate during the hold: the
    release after `hold_s` was taken for a silent long hold and hung up on them mid-question,
    the agent never answering."""
    conv = c.Conversation(Timing(push_to_talk=True), rng=random.Random(1))
    conv.handle(c.Talk(True), 0.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 0.1)
    conv.handle(c.Talk(False), 0.5)
    conv.handle(c.VisitorSpeech(True), 1.9)  # the visitor starts talking...
    conv.handle(c.Talk(True), 2.0)  # ...and presses as they do
    acts = conv.handle(c.Talk(False, long=True), 4.0)  # and talked on until here
    assert conv.state == c.LISTENING and not [a for a in acts if isinstance(a, c.StoreEnd)]


def test_push_to_talk_a_first_hold_spoken_through_does_not_end_the_new_conversation() -> None:
    """The same at the start: the visitor already talking when they press the button (the
    gate open on them) had the conversation they had just started ended at the release."""
    conv = c.Conversation(Timing(push_to_talk=True), rng=random.Random(1))
    conv.handle(c.VisitorSpeech(True), 0.0)
    conv.handle(c.Talk(True), 0.1)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 0.3)
    conv.handle(c.Talk(False, long=True), 2.5)
    assert conv.state == c.LISTENING


def test_push_to_talk_a_silent_long_hold_still_hangs_up_after_speech_that_ended() -> None:
    """A guard: speech that ended before the hold does not count for it; a silent long hold
    still hangs up."""
    conv = c.Conversation(Timing(push_to_talk=True), rng=random.Random(1))
    conv.handle(c.Talk(True), 0.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 0.1)
    conv.handle(c.VisitorSpeech(True), 0.2)
    conv.handle(c.VisitorSpeech(False), 0.4)
    conv.handle(c.Talk(False), 0.5)
    conv.handle(c.Talk(True), 2.0)
    conv.handle(c.Talk(False, long=True), 4.0)
    assert conv.state == c.ENDING


def test_a_reconnect_is_not_counted_as_the_agents_reply_latency() -> None:
    """Turns: "the latency from `start_answering` to its first audio". The agent said
    `start_answering`, the link dropped before its audio, and the reply was lost with the dead
    socket (the reopen clears the speaker, as a `clear` does, which ends a reply's start). The
    first audio of the continued session, seconds of reconnect later, was told as that reply's
    latency: the `response_latency` event, the `response_latency_ms` metric and Home Assistant's
    statistics showed the reconnect as a slow agent."""
    conv = c.Conversation(Timing(reconnect_window_s=30.0), rng=random.Random(1))
    conv.handle(c.Press(long=True), 0.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 0.1)
    conv.handle(c.FromAgent(conv.link_id, p.StartAnswering()), 1.0)
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.2)
    assert conv.state == c.CONNECTING
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 9.0)
    assert latencies(conv.handle(c.AgentAudio(conv.link_id, b"\x00\x00"), 9.5)) == []
    conv.handle(c.FromAgent(conv.link_id, p.StartAnswering()), 12.0)
    assert latencies(conv.handle(c.AgentAudio(conv.link_id, b"\x00\x00"), 12.25)) == [250.0]


def test_seeded_fuzz_of_the_conversation_with_its_downlink_holds_its_invariants() -> None:
    """tests/downfuzz.py: the Conversation with each link's Downlink in the loop and a model of
    the speaker (it found the reconnect told as a reply latency above)."""
    for seed in range(40):
        downfuzz.run(seed)


def test_early_audio_past_the_bound_is_not_played_spliced_and_shifted() -> None:
    """Downlink: audio before `onready` is kept up to EARLY_AUDIO_BYTES, "beyond this it is
    dropped". A message that did not fit was dropped, but a smaller one after it still fitted and
    was kept: at `onready` the visitor heard the greeting jump, and when the dropped message had
    an odd length (the protocol allows any chunk size) every sample after the splice was made of
    two neighbours' bytes: noise. Past the bound, the rest of the early audio goes too."""
    played: list[bytes] = []
    down = Downlink(played.append, lambda msg: None, lambda what, level: None)
    down.audio(b"\x01\x00" * ((EARLY_AUDIO_BYTES - 1000) // 2))  # nearly 10 s of greeting
    down.audio(b"\x02" * 1001)  # does not fit: dropped (odd)
    down.audio(b"\x03\x00" * 400)  # would fit, but follows the hole
    down.ready_now()
    assert b"".join(played) == b"\x01\x00" * ((EARLY_AUDIO_BYTES - 1000) // 2)


def test_after_a_clear_early_audio_is_kept_again() -> None:
    """A guard: a `clear` before `onready` drops what was held, and the reply after it is a new
    one, held again (not dropped as past the bound)."""
    played: list[bytes] = []
    down = Downlink(played.append, lambda msg: None, lambda what, level: None)
    down.audio(b"\x01\x00" * (EARLY_AUDIO_BYTES // 2))
    down.audio(b"\x02\x00")  # over the bound: dropped
    down.message(p.Clear())
    down.audio(b"\x03\x00" * 4)
    down.ready_now()
    assert b"".join(played) == b"\x03\x00" * 4


def test_an_agent_calling_a_function_is_not_an_idle_conversation() -> None:
    """The agent's `onfunction` (a lookup, a booking) is the agent at work on what the visitor
    asked, who waits in silence meanwhile: it counts as activity as its transcripts do. It did
    not, so a call that took most of `idle_timeout_s` after the visitor's question hung up on
    them just before the answer came."""
    conv = c.Conversation(Timing(idle_timeout_s=10.0), rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 0.1)
    conv.handle(c.VisitorSpeech(True), 1.0)
    conv.handle(c.VisitorSpeech(False), 2.0)
    conv.handle(c.FromAgent(conv.link_id, p.FunctionCall("lookup", {"q": "opening hours"})), 9.0)
    assert conv.handle(c.Tick(), 12.5) == []  # 10.5 s after the visitor's words, 3.5 s after the call
    assert conv.state == c.LISTENING
    assert c.StoreEnd("s1", "idle") in conv.handle(c.Tick(), 19.0)  # 10 s after the call: idle
