"""Mutation review of the conversation's pure helpers (helper `mutants3`, 2026-12-07).

core/turns.py, core/reconnect.py, core/resume.py, core/startlimit.py, core/linkattempts.py and
core/sessionrecord.py: each test kills a mutant
that every pure conversation test (test_conversation*.py, test_limits.py, test_backlog.py,
test_mutants_review.py, test_review_regressions.py) let survive, where the mutant changes what a
visitor or an operator would notice. Pure: events in (or a helper called), actions and state out.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core import resume
from edge_agent.core.reconnect import Reconnects
from edge_agent.core.resume import ResumeMemory, rekeyed
from edge_agent.core.sessionrecord import MAX_RENAMES
from edge_agent.core.startlimit import StartLimit
from edge_agent.core.timing import Timing

PCM = b"\x01\x00" * 160


def make(**timing: object) -> c.Conversation:
    return c.Conversation(Timing(**timing), rng=random.Random(1))  # type: ignore[arg-type]


def of(actions: list[c.Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def notes(actions: list[c.Action], kind: str) -> list[dict[str, Any]]:
    return [a.fields for a in of(actions, c.Notify) if a.kind == kind]


def talking(conv: c.Conversation, now: float = 0.0) -> c.Conversation:
    conv.handle(c.Press(), now)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), now + 0.1)
    return conv


def say(conv: c.Conversation, msg: p.ServerMessage, now: float) -> list[c.Action]:
    return conv.handle(c.FromAgent(conv.link_id, msg), now)


# ------------------------------------------------------------------ turns: the idle timeout
def test_push_to_talk_release_counts_as_activity_for_the_idle_timeout() -> None:
    """A visitor who holds the button for a long while after their last word (thinking, or
    reading something out slowly) and then lets go must get the agent's answer: the release is
    activity. Counted from their last word instead, the hang-up came at the first tick after the
    release, before the agent could reply."""
    conv = make(push_to_talk=True, idle_timeout_s=10.0)
    conv.handle(c.Talk(True), 0.0)
    say(conv, p.OnReady("s1"), 0.1)
    conv.handle(c.VisitorSpeech(True), 0.5)
    conv.handle(c.VisitorSpeech(False), 1.0)
    conv.handle(c.Talk(False, long=True), 20.0)  # held 19 s after their last word
    assert of(conv.handle(c.Tick(), 20.5), c.StateChanged) == []
    assert conv.state == c.LISTENING
    assert [a.state for a in of(conv.handle(c.Tick(), 30.0), c.StateChanged)] == [c.ENDING]


def test_a_long_reply_then_paused_is_not_hung_up_at_once() -> None:
    """The agent's audio is activity: a reply streamed for longer than the idle timeout and then
    paused (the agent waits for a tool, or the visitor's go-ahead) gets the full timeout from its
    last audio, not from `start_answering`, which cut it the moment it paused."""
    conv = talking(make(idle_timeout_s=10.0))
    say(conv, p.StartAnswering(), 1.0)
    for i in range(30):
        conv.handle(c.AgentAudio(conv.link_id, PCM), 1.5 + i)  # 30 s of reply
    say(conv, p.Pause(), 31.0)
    assert conv.handle(c.Tick(), 31.5) == []
    assert conv.state == c.SPEAKING
    assert [a.state for a in of(conv.handle(c.Tick(), 40.6), c.StateChanged)] == [c.ENDING]


def test_the_agent_starting_to_answer_counts_as_activity() -> None:
    """`start_answering` is the agent at work on the visitor's words: a reply whose first audio
    comes late (a slow model) gets the idle timeout from it, not from the visitor's last word,
    which hung up on the visitor just before the answer they waited for."""
    conv = talking(make(idle_timeout_s=10.0))
    conv.handle(c.VisitorSpeech(True), 1.0)
    conv.handle(c.VisitorSpeech(False), 2.0)
    say(conv, p.StartAnswering(), 9.0)
    assert conv.handle(c.Tick(), 12.5) == []
    assert conv.state == c.LISTENING


def test_the_agents_streamed_text_counts_as_activity() -> None:
    """The agent's text (transcripts, a text reply before or without audio) is the conversation
    going on: the idle timeout counts from it. Counted from the visitor's last word, a reply
    that came as text first was hung up on mid-way."""
    conv = talking(make(idle_timeout_s=10.0))
    conv.handle(c.VisitorSpeech(True), 1.0)
    conv.handle(c.VisitorSpeech(False), 2.0)
    say(conv, p.ResponseText("Let me look that", False), 9.0)
    assert conv.handle(c.Tick(), 12.5) == []
    assert conv.state == c.LISTENING


def test_the_agents_final_text_is_told_as_its_own_kind() -> None:
    """A final transcript of the visitor and a final text reply of the agent are different
    events: told both as `transcript`, the agent's words were shown as the visitor's."""
    conv = talking(make())
    acts = say(conv, p.Transcript("where is room 4?", True), 1.0) + say(conv, p.ResponseText("Second floor.", True), 2.0)
    assert [(a.kind, a.fields) for a in of(acts, c.Notify)] == [("transcript", {"text": "where is room 4?"}), ("response_text", {"text": "Second floor."})]


def test_a_reply_still_playing_is_not_hung_up_as_idle() -> None:
    """The idle timeout runs only while the agent listens (or is paused): a reply whose audio
    came fast and plays for longer than the timeout is not cut off while it plays."""
    conv = talking(make(idle_timeout_s=10.0))
    conv.handle(c.AgentAudio(conv.link_id, PCM), 1.0)  # 40 s of reply sent at once
    assert conv.handle(c.Tick(), 30.0) == []
    assert conv.state == c.SPEAKING


def test_a_held_push_to_talk_button_is_never_idle() -> None:
    """While the visitor holds the push-to-talk button they have the floor, speaking or not
    (gathering their words): the idle timeout does not hang up on a held button."""
    conv = make(push_to_talk=True, idle_timeout_s=10.0)
    conv.handle(c.Talk(True), 0.0)
    say(conv, p.OnReady("s1"), 0.1)
    assert conv.handle(c.Tick(), 25.0) == []
    assert conv.state == c.LISTENING


# ------------------------------------------------------------------ turns: push-to-talk
def test_a_long_release_never_seen_held_hangs_up_without_a_crash() -> None:
    """A release whose hold this process never saw (the button was down when the daemon started,
    or the conversation began from a plain press) is a silent long hold: it ends the conversation.
    Its "spoke while held" must have a value from the start; read unset, the event loop crashed."""
    conv = talking(make())
    acts = conv.handle(c.Talk(False, long=True), 5.0)
    assert [n["reason"] for n in notes(acts, "conversation_ended")] == ["button"]


# ------------------------------------------------------------------ turns: half duplex
def test_a_drop_while_listening_does_not_mute_the_visitor() -> None:
    """Under half duplex the microphone is muted for the tail only after the agent's voice: a link
    that drops while the agent listens keeps the visitor heard (their words are held for the
    reopened link). Muted there, the first words said into a reconnect were lost."""
    conv = talking(make(duplex_tail_s=2.0))
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 5.0)
    assert conv.state == c.CONNECTING
    assert conv.mic_open(5.1)


# ------------------------------------------------------------------ turns: reply latency
def test_a_reply_cleared_before_its_audio_tells_no_latency() -> None:
    """A `clear` drops the reply that `start_answering` began: audio after it (with no new
    `start_answering`) is no first audio of that reply, and must not be told as its latency
    (the `response_latency` metric would count the whole barge-in as the agent's slowness)."""
    conv = talking(make())
    say(conv, p.StartAnswering(), 1.0)
    say(conv, p.Clear(), 2.0)
    acts = conv.handle(c.AgentAudio(conv.link_id, PCM), 9.0)
    assert notes(acts, "response_latency") == []


def test_reply_latency_is_told_once_per_reply() -> None:
    """Only the first audio of a reply is its latency: telling it for every chunk flooded the
    fleet with events and pulled the latency metric towards the reply's length."""
    conv = talking(make())
    say(conv, p.StartAnswering(), 1.0)
    first = conv.handle(c.AgentAudio(conv.link_id, PCM), 1.23456)
    later = conv.handle(c.AgentAudio(conv.link_id, PCM), 1.4)
    assert [n["ms"] for n in notes(first, "response_latency")] == [234.6]  # to a tenth of a ms
    assert notes(later, "response_latency") == []


# ------------------------------------------------------------------ reconnects
def test_a_link_that_lived_gets_a_fresh_reconnect_window() -> None:
    """A drop after the link lived `min_link_life_s` is a new fault: its reconnect window starts
    at that drop. Counted from an earlier fault of the same conversation (a minute ago), the
    second drop was "window passed" at once and the visitor was hung up on with no reopen tried."""
    conv = talking(make(reconnect_window_s=30.0))
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0)
    say(conv, p.OnReady("s1"), 2.0)
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1006"), 60.0)
    assert len(of(acts, c.OpenLink)) == 1 and notes(acts, "conversation_ended") == []
    assert conv.state == c.CONNECTING


def test_each_conversation_starts_its_reconnects_at_the_first_attempt() -> None:
    """The backoff and the "reconnecting" earcon belong to one conversation: the next visitor's
    first drop is attempt 1 (short delay, earcon), whatever the last conversation went through.
    Carried over, it waited the long backoff of someone else's bad link, without the earcon."""
    conv = talking(make())
    for i in range(4):  # four quick drops before the link comes back
        conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0 + i)
    say(conv, p.OnReady("s1"), 6.0)
    conv.handle(c.Press(), 7.0)
    conv.handle(c.LinkDown(conv.link_id), 7.1)
    talking(conv, 100.0)
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1006"), 101.0)
    assert [n["attempt"] for n in notes(acts, "reconnecting")] == [1]
    assert c.Earcon("reconnecting") in acts
    (open_,) = of(acts, c.OpenLink)
    assert open_.delay_s < 0.5  # 0.25 s nominal, with jitter


def test_a_link_dropped_soon_after_ready_backs_off_further() -> None:
    """A link that dropped before it lived `min_link_life_s` is the same fault: the next attempt
    backs off further (attempt 2). Taken for a new fault, a server that accepts and drops at once
    got a fast retry forever, and the reconnect window never ran out."""
    conv = talking(make(), 100.0)
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 101.0)
    say(conv, p.OnReady("s1"), 101.5)
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1006"), 102.0)
    assert [n["attempt"] for n in notes(acts, "reconnecting")] == [2]


class _Mid(random.Random):
    """Jitter at its middle: the delay is the nominal one."""

    def random(self) -> float:
        return 0.5


def test_reconnect_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    """Nominal delays 0.25, 0.5, 1, 2, 4, then the 5 s cap: a dropped link is retried at once
    and then less and less often (a steeper curve left the visitor waiting in silence)."""
    t, r = Timing(), Reconnects()
    delays = []
    for attempt in range(1, 8):
        r.attempt = attempt
        delays.append(r.backoff_s(t, _Mid()))
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


# ------------------------------------------------------------------ resume: whose session a press continues
WEEK = 7 * 86400.0


def no_store(agent_id: str | None, slot: str) -> tuple[str, float] | None:
    return None  # a store that cannot say (a fault): only what this process knows counts


def test_an_agent_rename_keeps_other_agents_keys() -> None:
    """Renaming the configured agent re-files only the old and the new one: a badge button's
    own agent ("agent-x") keeps its key. Filed as None, its sessions became the configured
    agent's, and a plain press continued someone else's conversation with another agent."""
    assert rekeyed("agent-x", "agent-a", "agent-b") == "agent-x"
    assert rekeyed("agent-b", "agent-a", "agent-b") is None


def test_after_an_agent_rename_the_new_agent_does_not_continue_the_old_ones_session() -> None:
    """The session the store held at start was the old configured agent's: after a reload that
    names another agent, a plain press (the new agent) must not continue it; a button naming
    the old agent still may."""
    mem = ResumeMemory("old", 10.0, "default", no_store, aged_at=0.0)
    mem.agent_renamed("agent-a", "agent-b")
    assert mem.candidate(1.0, WEEK, None, "default") is None
    assert mem.candidate(1.0, WEEK, "agent-a", "default") == "old"


def test_forgetting_one_slot_keeps_the_other_slots_sessions() -> None:
    """A fleet-wide forget of one badge holder's slot wipes that slot only: the other visitors'
    conversations this process ran (and the one stored at start) are still continued."""
    mem = ResumeMemory("old", 10.0, "default", no_store, aged_at=0.0)
    mem.forget((None, "b-carol"))
    assert mem.candidate(1.0, WEEK, None, "default") == "old"
    mem.remember("s-alice", None, "b-alice", 1.0)
    mem.remember("s-bob", None, "b-bob", 2.0)
    mem.forget((None, "b-alice"))
    assert mem.candidate(3.0, WEEK, None, "b-alice") is None
    assert mem.candidate(3.0, WEEK, None, "b-bob") == "s-bob"


def test_once_this_process_ran_a_session_the_one_stored_at_start_is_the_stores_to_tell() -> None:
    """The default slot's session read at start is not continued on this process's word once it
    has run a conversation (any slot): from then on only the store says what is newest there.
    Kept, a session the store had since dropped (wiped, or out of retention) was continued while
    the store could not be read."""
    mem = ResumeMemory("old", 10.0, "default", no_store, aged_at=0.0)
    mem.remember("s-alice", None, "b-alice", 1.0)
    assert mem.candidate(2.0, WEEK, None, "default") is None


def test_the_slot_memory_is_bounded_and_drops_the_least_recent(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process remembers at most MAX_RAN slots (a badge kiosk's visitors must not grow it
    without end), and the one it drops is the slot used least recently, not a regular's."""
    monkeypatch.setattr(resume, "MAX_RAN", 2)
    mem = ResumeMemory(None, None, "default", no_store)
    mem.remember("s-a", None, "a", 1.0)
    mem.remember("s-b", None, "b", 2.0)
    mem.remember("s-a2", None, "a", 3.0)  # a again: now the most recent
    mem.remember("s-c", None, "c", 4.0)
    assert [mem.candidate(5.0, WEEK, None, s) for s in ("a", "b", "c")] == ["s-a2", None, "s-c"]


def test_a_session_this_process_ran_ages_on_the_monotonic_clock() -> None:
    """The session this process ran is as old as the monotonic time since it was last active,
    whatever the store's wall-clock age says after a clock step (NTP setting a Pi's clock days
    ahead): the visitor who pressed a minute ago is continued, within a 2 minute `resume_within_s`."""
    def stepped(agent_id: str | None, slot: str) -> tuple[str, float] | None:
        return ("s1", 10 * 86400.0)  # the same session, aged 10 days by the clock step

    mem = ResumeMemory(None, None, "default", stepped)
    mem.remember("s1", None, "default", 1000.0)
    assert mem.candidate(1060.0, 120.0, None, "default") == "s1"


def test_the_session_reloaded_from_the_store_is_the_configured_agents() -> None:
    """The store back after a fault names the newest session of the configured agent: it is
    filed under the configured agent even after a rename, never under the old agent's id
    (whose button would then continue the new agent's conversation)."""
    mem = ResumeMemory(None, None, "default", no_store)
    mem.agent_renamed("agent-a", "agent-b")
    mem.reloaded("s-b", 5.0, "default", 10.0)
    assert mem.candidate(11.0, WEEK, None, "default") == "s-b"
    assert mem.candidate(11.0, WEEK, "agent-a", "default") is None


# ------------------------------------------------------------------ the start rate limit
def test_a_flood_of_refused_starts_is_told_a_few_times_then_every_10_s() -> None:
    """Refused starts are told (event and error earcon) three times, then at most once per 10 s
    with how many were left out: a flood of presses must not flood the room and the fleet in
    turn. A rate-limit refusal says when to retry, not that the microphone is gone."""
    t = Timing(start_burst=1, starts_per_minute=0.6)
    limit, out = StartLimit(t), list[c.Action]()
    assert limit.allow("mqtt", 0.0, t, out) and out == []
    for now in (0.13, 0.2, 0.3, 0.4, 0.5, 9.5):
        assert not limit.allow("mqtt", now, t, out)
    told = notes(out, "start_refused")
    assert told[0] == {"origin": "mqtt", "retry_in_s": 99.9, "refused_since_last": 0}
    assert len(told) == 3 and out.count(c.Earcon("error")) == 3
    later: list[c.Action] = []
    assert not limit.allow("mqtt", 10.6, t, later)
    assert [n["refused_since_last"] for n in notes(later, "start_refused")] == [3]
    assert limit.refused == 7


def test_a_reloaded_start_rate_applies_exactly() -> None:
    """A reload that changes `starts_per_minute` refills at the new rate, no faster or slower:
    60 a minute is one start a second."""
    limit, fast = StartLimit(Timing(start_burst=1)), Timing(start_burst=1, starts_per_minute=60.0)
    out: list[c.Action] = []
    assert limit.allow("button", 0.0, fast, out)
    assert not limit.allow("button", 0.99, fast, out)
    assert limit.allow("button", 1.01, fast, out)


# ------------------------------------------------------------------ link attempts
def stored(**timing: object) -> c.Conversation:
    """A kiosk whose store holds session "old" (a second old): a short press continues it."""
    return c.Conversation(Timing(**timing), "old", 1.0, rng=random.Random(1))  # type: ignore[arg-type]


def test_every_conversation_may_retry_a_refused_continuation_fresh() -> None:
    """The fresh retry of a refused continuation is once per conversation, not once per process:
    after one conversation used it (and became ready), the next visitor's refused continuation
    is retried fresh too, not failed with the error earcon."""
    conv = stored()
    conv.handle(c.Press(), 10.0)
    conv.handle(c.LinkDown(conv.link_id, "close_4404", fatal=True), 10.5)
    say(conv, p.OnReady("s-new"), 11.0)
    conv.handle(c.Press(), 12.0)
    conv.handle(c.LinkDown(conv.link_id), 12.1)
    conv.handle(c.Press(), 20.0)  # continues s-new
    acts = conv.handle(c.LinkDown(conv.link_id, "close_4404", fatal=True), 20.5)
    assert [o.continue_session_id for o in of(acts, c.OpenLink)] == [None]
    assert conv.state == c.CONNECTING


def test_server_closes_that_refuse_a_continuation_are_counted_per_conversation() -> None:
    """One close by the server before `onready` may be a hiccup: the continuation is asked for
    again. A close in an earlier conversation does not count towards this one's two."""
    conv = stored()
    conv.handle(c.Press(), 10.0)
    conv.handle(c.LinkDown(conv.link_id, "close_1011", server_closed=True), 10.5)
    say(conv, p.OnReady("old"), 11.0)
    conv.handle(c.Press(), 12.0)
    conv.handle(c.LinkDown(conv.link_id), 12.1)
    conv.handle(c.Press(), 20.0)
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1011", server_closed=True), 20.5)
    assert [o.continue_session_id for o in of(acts, c.OpenLink)] == ["old"]


def test_a_forget_in_one_conversation_does_not_drop_the_next_ones_continuation() -> None:
    """A forget while one conversation connected makes its reconnects ask for no session; the
    next conversation's reconnect before `onready` asks for the session its press continued."""
    conv = stored()
    conv.handle(c.Press(), 10.0)
    conv.handle(c.SessionsForgotten(), 10.2)
    conv.handle(c.End(), 10.5)
    conv.handle(c.LinkDown(conv.link_id), 10.6)
    talking(conv, 30.0)  # ready as s1
    conv.handle(c.End(), 31.0)
    conv.handle(c.LinkDown(conv.link_id), 31.1)
    conv.handle(c.Press(), 40.0)  # continues s1
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1006"), 40.5)
    assert [o.continue_session_id for o in of(acts, c.OpenLink)] == ["s1"]


def test_server_closes_of_a_fresh_session_are_retried_not_failed() -> None:
    """Server closes before `onready` count as refusing a continuation only: a fresh session
    the server closes twice is reopened within the window, not failed at the second close."""
    conv = make()
    conv.handle(c.Press(long=True), 0.0)
    for now in (0.5, 1.5):
        acts = conv.handle(c.LinkDown(conv.link_id, "close_1011", server_closed=True), now)
        assert len(of(acts, c.OpenLink)) == 1 and notes(acts, "error") == []


def test_a_fresh_retry_gets_a_reconnect_window_of_its_own() -> None:
    """The fresh session asked for after a refused continuation has the whole window from the
    refusal: counted from the press (25 s of failed attempts before it), it failed at once."""
    conv = stored(reconnect_window_s=30.0)
    conv.handle(c.Press(), 0.0)
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0)
    conv.handle(c.LinkDown(conv.link_id, "close_4404", fatal=True), 25.0)
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1006"), 31.0)
    assert len(of(acts, c.OpenLink)) == 1 and conv.state == c.CONNECTING


def test_the_reconnecting_earcon_sounds_once_per_fault() -> None:
    """The "reconnecting" earcon tells the visitor once that the link is being reopened; every
    further attempt of the same fault is silent (a chime each retry is noise in the room)."""
    conv = talking(make())
    first = conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0)
    second = conv.handle(c.LinkDown(conv.link_id, "close_1006"), 2.0)
    assert c.Earcon("reconnecting") in first and c.Earcon("reconnecting") not in second


def test_the_first_ready_minimum_applies_before_onready_only_and_not_to_a_window_of_0() -> None:
    """A short reconnect window is stretched to FIRST_READY_MIN_S (5 s) only until the first
    `onready` (0.5 s cut a press off before a far server answered); once ready, the configured
    window holds; and a window of 0 (reconnects off) is not stretched at all."""
    conv = make(reconnect_window_s=0.5)
    conv.handle(c.Press(), 0.0)
    assert len(of(conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0), c.OpenLink)) == 1
    conv = talking(make(reconnect_window_s=3.0))
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0)
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 4.5)
    assert conv.state == c.IDLE
    conv = make(reconnect_window_s=0.0)
    conv.handle(c.Press(), 0.0)
    assert of(conv.handle(c.LinkDown(conv.link_id, "close_1006"), 0.5), c.OpenLink) == []


# ------------------------------------------------------------------ the session record
def test_a_conversation_after_a_forgotten_one_is_on_the_record_again() -> None:
    """A forget during one conversation keeps that one off the record; the next conversation is
    stored and continued as usual (kept off, no visitor's session was ever continued again).
    Each conversation also has its own MAX_RENAMES: one that used them does not refuse the
    next one's rename."""
    conv = talking(make())
    for i in range(4):
        say(conv, p.OnReady(f"r{i}"), 1.0 + i)
    conv.handle(c.SessionsForgotten(), 6.0)
    conv.handle(c.End(), 7.0)
    conv.handle(c.LinkDown(conv.link_id), 7.1)
    conv.handle(c.Press(long=True), 10.0)
    assert of(say(conv, p.OnReady("s2"), 10.1), c.StoreStart) != []
    assert [n["session_id"] for n in notes(say(conv, p.OnReady("s3"), 11.0), "session_changed")] == ["s3"]


def test_a_forgotten_conversation_stores_nothing_when_the_agent_names_a_foreign_session() -> None:
    """Forgotten mid-conversation, a conversation writes nothing more to the store: a reconnect
    whose `onready` names a session held for another slot must not store the forgotten one's end."""
    conv = talking(c.Conversation(Timing(), rng=random.Random(1), foreign=lambda sid, agent, slot: sid == "alices"))
    conv.handle(c.SessionsForgotten(), 1.0)
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 2.0)
    acts = say(conv, p.OnReady("alices"), 2.5)
    assert of(acts, c.StoreEnd) == [] and of(acts, c.StoreStart) == []


def test_a_server_renaming_to_foreign_sessions_is_told_a_bounded_number_of_times() -> None:
    """A hostile or broken server that keeps sending `onready` naming sessions the kiosk holds for
    other visitors is refused each time (the conversation keeps its own id), and said as an
    `agent_renames` error at most MAX_RENAMES times and once more, not once per frame: each error
    is an event, an MQTT publish and a journal line (a mutant dropping the count survived every
    other test; the store and the state were right either way)."""
    conv = talking(c.Conversation(Timing(), rng=random.Random(1), foreign=lambda sid, agent, slot: sid.startswith("held-")))
    own = conv.session_id
    told = [n for i in range(50) for n in notes(say(conv, p.OnReady(f"held-{i}"), 1.0 + 0.01 * i), "error") if n.get("code") == "agent_renames"]
    assert conv.session_id == own
    assert 1 <= len(told) <= MAX_RENAMES + 1, len(told)
