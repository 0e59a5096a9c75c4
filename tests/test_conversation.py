"""The Conversation state machine, fed events only: no sockets, no threads, no clock."""

from __future__ import annotations

import random

import pytest

from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.timing import Timing


def make(**timing: object) -> c.Conversation:
    return c.Conversation(Timing(**timing), rng=random.Random(1))  # type: ignore[arg-type]


def of(actions: list[c.Action], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def states(actions: list[c.Action]) -> list[str]:
    return [a.state for a in of(actions, c.StateChanged)]


def ready(conv: c.Conversation, sid: str = "s1", now: float = 0.1) -> list[c.Action]:
    return conv.handle(c.FromAgent(conv.link_id, p.OnReady(sid)), now)


def talking(sid: str = "s1", **timing: object) -> c.Conversation:
    conv = make(**timing)
    conv.handle(c.Press(), 0.0)
    ready(conv, sid)
    return conv


def test_press_opens_a_link_and_onready_stores_the_session_first() -> None:
    conv = make()
    acts = conv.handle(c.Press(), 0.0)
    assert states(acts) == ["connecting"]
    (open_,) = of(acts, c.OpenLink)
    assert open_.continue_session_id is None and open_.delay_s == 0
    acts = ready(conv, "s1")
    assert isinstance(acts[0], c.StoreStart) and acts[0] == c.StoreStart("s1", None)
    assert states(acts) == ["listening"]
    assert conv.streaming and conv.mic_open(0.2)


def test_short_press_continues_the_newest_session_long_press_does_not() -> None:
    conv = c.Conversation(Timing(), last_session_id="old", last_active_age_s=60.0)
    (open_,) = of(conv.handle(c.Press(), 0.0), c.OpenLink)
    assert open_.continue_session_id == "old"
    ready(conv, "new")
    conv.handle(c.Press(), 1.0)
    conv.handle(c.LinkDown(conv.link_id), 1.1)
    (open_,) = of(conv.handle(c.Press(), 2.0), c.OpenLink)
    assert open_.continue_session_id == "new"  # the session just had, not the one from the store
    conv.handle(c.Press(), 2.1)
    conv.handle(c.LinkDown(conv.link_id), 2.2)
    (open_,) = of(conv.handle(c.Press(long=True), 3.0), c.OpenLink)
    assert open_.continue_session_id is None


@pytest.mark.parametrize(("age_s", "resume", "expect"), [(10.0, True, "old"), (4000.0, True, None), (10.0, False, None), (-30.0, True, "old"), (-86400.0, True, None)])
def test_continuation_respects_resume_and_age(age_s: float, resume: bool, expect: str | None) -> None:
    conv = c.Conversation(Timing(resume=resume, resume_within_s=3600.0), "old", age_s)
    (open_,) = of(conv.handle(c.Press(), 0.0), c.OpenLink)
    assert open_.continue_session_id == expect


def test_age_counts_on_the_monotonic_clock_for_sessions_of_this_process() -> None:
    conv = talking("s1", resume_within_s=100.0)
    conv.handle(c.Press(), 1.0)
    conv.handle(c.LinkDown(conv.link_id), 1.1)
    assert conv.continuation_candidate(50.0) == "s1"
    assert conv.continuation_candidate(102.0) is None


def test_press_during_conversation_ends_it_and_stores_the_end() -> None:
    conv = talking("s1")
    acts = conv.handle(c.Press(), 5.0)
    assert c.StoreEnd("s1", "button") in acts
    assert of(acts, c.CloseLink) == [c.CloseLink(conv.link_id)]
    assert c.Playback("clear") in acts
    assert states(acts) == ["ending"]
    assert states(conv.handle(c.LinkDown(conv.link_id), 5.1)) == ["idle"]


def test_press_while_connecting_cancels_without_a_session() -> None:
    conv = make()
    conv.handle(c.Press(), 0.0)
    acts = conv.handle(c.Press(), 0.05)
    assert states(acts) == ["ending"] and of(acts, c.CloseLink) and not of(acts, c.StoreEnd)
    # the socket of the cancelled attempt may still say onready: it must not revive anything
    assert ready(conv, "late", 0.1) == []
    assert states(conv.handle(c.LinkDown(conv.link_id), 0.2)) == ["idle"]


def test_a_press_while_ending_starts_the_next_conversation_at_once() -> None:
    conv = talking("s1")
    conv.handle(c.Press(), 1.0)
    assert conv.state == "ending"
    old = conv.link_id
    (open_,) = of(conv.handle(c.Press(), 1.2), c.OpenLink)
    assert open_.continue_session_id == "s1" and conv.state == "connecting"
    assert conv.handle(c.LinkDown(old), 1.3) == []  # the old socket closing late changes nothing
    ready(conv, "s2", 1.4)
    assert conv.state == "listening" and conv.continued_from == "s1"


def test_ending_gives_up_waiting_for_the_socket() -> None:
    conv = talking()
    conv.handle(c.Press(), 1.0)
    assert conv.handle(c.Tick(), 2.0) == []
    assert states(conv.handle(c.Tick(), 3.1)) == ["idle"]


def test_agent_audio_plays_and_speaking_returns_to_listening_when_drained() -> None:
    conv = talking()
    conv.handle(c.FromAgent(conv.link_id, p.StartAnswering()), 1.0)
    acts = conv.handle(c.AgentAudio(conv.link_id, b"\x01\x00" * 160), 1.25)
    assert of(acts, c.Play) == [c.Play(b"\x01\x00" * 160)]
    assert states(acts) == ["speaking"]
    (lat,) = [a for a in of(acts, c.Notify) if a.kind == "response_latency"]
    assert lat.fields["ms"] == 250.0
    assert not conv.mic_open(1.3)  # half duplex: the agent must not hear itself
    assert states(conv.handle(c.PlaybackDrained(), 2.0)) == ["listening"]
    assert not conv.mic_open(2.1)  # the tail
    assert conv.mic_open(2.31)


def test_full_duplex_keeps_the_mic_open_while_speaking() -> None:
    conv = talking(duplex_half=False)
    conv.handle(c.AgentAudio(conv.link_id, b"\x00\x01"), 1.0)
    assert conv.state == "speaking" and conv.mic_open(1.0)


def test_clear_pause_unpause_reach_the_speaker_at_once() -> None:
    conv = talking()
    conv.handle(c.AgentAudio(conv.link_id, b"\x00\x01"), 1.0)
    assert c.Playback("pause") in conv.handle(c.FromAgent(conv.link_id, p.Pause()), 1.1)
    assert c.Playback("unpause") in conv.handle(c.FromAgent(conv.link_id, p.Unpause()), 1.2)
    acts = conv.handle(c.FromAgent(conv.link_id, p.Clear()), 1.3)
    assert acts[0] == c.Playback("clear") and states(acts) == ["listening"]


def test_onsessionended_while_speaking_ends_with_reason_agent() -> None:
    conv = talking("s1")
    conv.handle(c.AgentAudio(conv.link_id, b"\x00\x01"), 1.0)
    acts = conv.handle(c.FromAgent(conv.link_id, p.SessionEnded()), 1.5)
    assert c.StoreEnd("s1", "agent") in acts and states(acts) == ["ending"]


def test_onsessionended_before_onready_fails_the_conversation_without_reconnecting() -> None:
    """A server that ends the session before it is ready (it refused it: a key, an agent, a quota)
    was taken for a dropped network: the link closed, the kiosk reconnected and asked again,
    13 times in its 30 s window (each `initiate` a new session), then failed with no reason."""
    conv = make()
    conv.handle(c.Press(), 0.0)
    link = conv.link_id
    acts = conv.handle(c.FromAgent(link, p.SessionEnded()), 0.2)
    assert states(acts) == ["error"] and of(acts, c.CloseLink) == [c.CloseLink(link)]
    (error,) = [n for n in of(acts, c.Notify) if n.kind == "error"]
    assert "ended the session before it was ready" in error.fields["message"]
    assert of(acts, c.OpenLink) == [] and of(acts, c.StoreStart) == [] and of(acts, c.StoreEnd) == []
    assert of(conv.handle(c.LinkDown(link, None), 0.3), c.OpenLink) == []  # the socket closing after it: no reconnect
    # reconnecting mid-conversation (a network drop), the agent ends the session before onready:
    # the conversation is over, as when it says so while streaming
    conv = talking("s1")
    conv.handle(c.LinkDown(conv.link_id, "drop"), 1.0)
    assert conv.state == c.CONNECTING
    acts = conv.handle(c.FromAgent(conv.link_id, p.SessionEnded()), 1.5)
    assert states(acts) == ["ending"] and c.StoreEnd("s1", "agent") in acts and of(acts, c.OpenLink) == []


def test_a_refused_continuation_is_asked_again_once_as_a_fresh_session() -> None:
    """Refused before onready while asking to continue a stored session: once, a fresh one is
    asked for (the stored id may be what the platform refused); refused again, it fails."""
    for refusal in (lambda link: c.LinkDown(link, "close_4004", fatal=True), lambda link: c.FromAgent(link, p.SessionEnded())):
        conv = c.Conversation(Timing(), "old", 1.0)
        (open_,) = of(conv.handle(c.Press(), 0.0), c.OpenLink)
        assert open_.continue_session_id == "old"
        acts = conv.handle(refusal(conv.link_id), 0.2)
        (again,) = of(acts, c.OpenLink)
        assert again.continue_session_id is None and conv.state == c.CONNECTING and of(acts, c.Earcon) == []
        assert [n.fields["session_id"] for n in of(acts, c.Notify) if n.kind == "continuation_refused"] == ["old"]
        assert states(conv.handle(refusal(conv.link_id), 0.4)) == ["error"]  # no continuation to blame: fails
    # a fresh press refused is the key's or the agent's doing: no second try
    conv = make()
    conv.handle(c.Press(long=True), 0.0)
    assert states(conv.handle(c.LinkDown(conv.link_id, "close_4001", fatal=True), 0.2)) == ["error"]


def test_idle_timeout_counts_from_the_last_activity() -> None:
    conv = talking("s1", idle_timeout_s=10.0)
    conv.handle(c.VisitorSpeech(True), 5.0)
    assert conv.handle(c.Tick(), 30.0) == []  # the visitor is still talking
    conv.handle(c.VisitorSpeech(False), 31.0)
    assert conv.handle(c.Tick(), 40.9) == []
    acts = conv.handle(c.Tick(), 41.0)
    assert c.StoreEnd("s1", "idle") in acts and states(acts) == ["ending"]


def test_agent_audio_counts_as_activity() -> None:
    conv = talking("s1", idle_timeout_s=10.0)
    conv.handle(c.AgentAudio(conv.link_id, b"\x00\x01"), 9.0)
    conv.handle(c.PlaybackDrained(), 12.0)
    assert conv.handle(c.Tick(), 21.0) == []
    assert states(conv.handle(c.Tick(), 22.0)) == ["ending"]


def test_max_duration_ends_even_a_lively_conversation() -> None:
    conv = talking("s1", max_duration_s=60.0)
    conv.handle(c.VisitorSpeech(True), 1.0)
    assert conv.handle(c.Tick(), 59.0) == []
    acts = conv.handle(c.Tick(), 60.0)
    assert c.StoreEnd("s1", "max_duration") in acts


def test_link_lost_reconnects_with_the_current_session_then_gives_up() -> None:
    conv = talking("s1", reconnect_window_s=10.0)
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1006"), 2.0)
    (open_,) = of(acts, c.OpenLink)
    assert open_.continue_session_id == "s1" and open_.delay_s > 0
    assert c.Earcon("reconnecting") in acts and states(acts) == ["connecting"]
    acts = ready(conv, "s2", 2.5)
    assert acts[0] == c.StoreStart("s2", "s1") and c.StoreEnd("s1", "reconnected") in acts
    assert [a.kind for a in of(acts, c.Notify)] == ["reconnected"]
    # a second drop continues the newest id; failures past the window end it cleanly
    (open_,) = of(conv.handle(c.LinkDown(conv.link_id, "timeout"), 3.0), c.OpenLink)
    assert open_.continue_session_id == "s2"
    conv.handle(c.LinkDown(conv.link_id, "refused"), 8.0)
    acts = conv.handle(c.LinkDown(conv.link_id, "refused"), 13.5)
    assert c.StoreEnd("s2", "link_lost") in acts and conv.state == "idle"
    (open_,) = of(conv.handle(c.Press(), 20.0), c.OpenLink)
    assert open_.continue_session_id == "s2"


def test_a_first_connect_that_never_gets_ready_gives_up_at_the_window_from_the_press() -> None:
    """A server that answers nothing: the dead-link timeout (15 s) dropped the first link, and
    the reconnect window began only then, so the visitor waited 45 s for a 30 s window."""
    conv = make(reconnect_window_s=30.0)
    conv.handle(c.Press(), 0.0)
    assert of(conv.handle(c.LinkDown(conv.link_id, "dead"), 15.0), c.OpenLink)  # still within the window
    conv.handle(c.Tick(), 29.9)
    assert conv.state == c.CONNECTING
    assert states(conv.handle(c.Tick(), 30.0)) == ["error"]


def test_reconnect_window_also_expires_on_the_clock() -> None:
    conv = talking("s1", reconnect_window_s=5.0)
    conv.handle(c.LinkDown(conv.link_id), 1.0)
    assert conv.handle(c.Tick(), 5.9) == []
    acts = conv.handle(c.Tick(), 6.1)
    assert c.StoreEnd("s1", "link_lost") in acts and conv.state == "idle"


def test_fatal_refusal_goes_to_error_without_retry_and_recovers() -> None:
    conv = make()
    conv.handle(c.Press(), 0.0)
    acts = conv.handle(c.LinkDown(conv.link_id, "http_401", fatal=True), 0.2)
    assert states(acts) == ["error"] and not of(acts, c.OpenLink)
    assert [a.fields["message"] for a in of(acts, c.Notify) if a.kind == "error"] == ["http_401"]
    assert states(conv.handle(c.Tick(), 5.3)) == ["idle"]
    conv2 = make()
    conv2.handle(c.Press(), 0.0)
    conv2.handle(c.LinkDown(conv2.link_id, "http_403", fatal=True), 0.1)
    assert states(conv2.handle(c.Press(), 1.0)) == ["connecting"]  # a press retries from error


def test_stale_events_from_an_old_link_are_ignored() -> None:
    conv = talking("s1")
    old = conv.link_id
    conv.handle(c.LinkDown(old, "close_1006"), 1.0)
    assert conv.handle(c.AgentAudio(old, b"\x00\x01"), 1.1) == []
    assert conv.handle(c.FromAgent(old, p.SessionEnded()), 1.2) == []
    assert conv.handle(c.LinkDown(old), 1.3) == []
    assert conv.state == "connecting"


def test_audio_and_messages_when_idle_change_nothing() -> None:
    conv = make()
    for ev in (c.AgentAudio(0, b"\x00\x01"), c.FromAgent(0, p.Clear()), c.PlaybackDrained(), c.Tick(), c.End(), c.LinkDown(0)):
        assert conv.handle(ev, 1.0) == [] and conv.state == "idle"


def test_explicit_start_and_end_commands() -> None:
    conv = c.Conversation(Timing(), "old", 1.0)
    (open_,) = of(conv.handle(c.Start(fresh=False), 0.0), c.OpenLink)
    assert open_.continue_session_id == "old"
    assert conv.handle(c.Start(), 0.1) == []  # already busy: a second start changes nothing
    ready(conv, "s1", 0.2)
    acts = conv.handle(c.End("command"), 1.0)
    assert c.StoreEnd("s1", "command") in acts


def test_forgotten_sessions_are_not_continued() -> None:
    conv = c.Conversation(Timing(), "old", 1.0)
    conv.handle(c.SessionsForgotten(), 0.0)
    (open_,) = of(conv.handle(c.Press(), 0.1), c.OpenLink)
    assert open_.continue_session_id is None


def test_a_reconnect_after_a_forget_while_connecting_asks_for_no_forgotten_session() -> None:
    """The operator's forget lands while a short press still connects to the last visitor's
    session, and the network drops before `onready`: the reconnect asked the platform for the
    session just wiped (what the first attempt had asked for), continuing a forgotten
    conversation. The first attempt's request is gone; no later one names it."""
    conv = c.Conversation(Timing(reconnect_window_s=30.0), "old", 1.0, rng=random.Random(1))
    (open_,) = of(conv.handle(c.Press(), 0.0), c.OpenLink)
    assert open_.continue_session_id == "old"
    conv.handle(c.SessionsForgotten(), 0.5)
    (open_,) = of(conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0), c.OpenLink)
    assert open_.continue_session_id is None
    acts = ready(conv, "new-1", 2.0)
    assert conv.state == c.LISTENING and not of(acts, c.StoreStart)  # off the record, as the forget said


def test_a_forget_of_another_slot_while_connecting_changes_nothing_of_this_one() -> None:
    conv = c.Conversation(Timing(reconnect_window_s=30.0), "old", 1.0, rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    conv.handle(c.SessionsForgotten(slot="b-alice"), 0.5)
    (open_,) = of(conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0), c.OpenLink)
    assert open_.continue_session_id == "old"


def test_push_to_talk_opens_the_mic_only_while_held() -> None:
    conv = make(push_to_talk=True, idle_timeout_s=10.0)
    acts = conv.handle(c.Talk(True), 0.0)
    assert states(acts) == ["connecting"]
    ready(conv, "s1", 0.1)
    assert conv.mic_open(0.2)
    conv.handle(c.VisitorSpeech(True), 0.5)
    conv.handle(c.VisitorSpeech(False), 0.9)
    conv.handle(c.Talk(False, long=True), 1.0)  # a long hold with speech is just talking
    assert not conv.mic_open(1.1) and conv.state == "listening"
    assert states(conv.handle(c.Tick(), 11.0)) == ["ending"]


def test_push_to_talk_a_silent_long_hold_hangs_up() -> None:
    conv = make(push_to_talk=True)
    conv.handle(c.Talk(True), 0.0)
    ready(conv, "s1", 0.1)
    conv.handle(c.Talk(False), 0.5)
    conv.handle(c.Talk(True), 2.0)
    acts = conv.handle(c.Talk(False, long=True), 4.0)
    assert c.StoreEnd("s1", "button") in acts


def test_push_to_talk_another_slots_button_never_talks_into_this_session() -> None:
    """Push-to-talk `[[buttons]]` of two slots: B held after A let go started nothing, and the
    mic opened on A's session with A's agent (B's words into A's conversation). Now B's hold ends
    A's conversation and starts B's, as a press does; A's late release changes nothing of B's."""
    conv = make(push_to_talk=True)
    conv.handle(c.Talk(True, slot="en"), 0.0)
    ready(conv, "sess-en", 0.1)
    conv.handle(c.Talk(False, slot="en"), 1.0)
    acts = conv.handle(c.Talk(True, slot="de", agent_id="agent-de"), 2.0)
    assert c.StoreEnd("sess-en", "switched") in acts
    (open_,) = of(acts, c.OpenLink)
    assert open_.agent_id == "agent-de" and conv.whose.slot == "de" and states(acts)[-1] == "connecting"
    ready(conv, "sess-de", 2.1)
    assert conv.mic_open(2.2) and conv.session_id == "sess-de"
    # both held at once: A's release (another slot's) leaves B talking
    conv.handle(c.Talk(False, long=True, slot="en"), 3.0)
    assert conv.mic_open(3.1) and conv.state == "listening"
    conv.handle(c.Talk(False, slot="de", agent_id="agent-de"), 3.5)
    assert not conv.mic_open(3.6)


def test_push_to_talk_held_while_the_last_conversation_is_ending_starts_the_next() -> None:
    """The agent ended the session and the socket is closing (ENDING, ~2 s): a hold then did
    nothing, and the visitor talked to nobody with no earcon; a press starts from ENDING, so a hold does."""
    conv = make(push_to_talk=True)
    conv.handle(c.Talk(True), 0.0)
    ready(conv, "s1", 0.1)
    conv.handle(c.Talk(False), 1.0)
    conv.handle(c.FromAgent(conv.link_id, p.SessionEnded()), 2.0)
    assert conv.state == "ending"
    acts = conv.handle(c.Talk(True), 2.5)
    assert of(acts, c.OpenLink) and conv.state == "connecting"


def test_transcripts_become_notifications() -> None:
    conv = talking()
    acts = conv.handle(c.FromAgent(conv.link_id, p.Transcript("hello", True)), 1.0)
    assert [(a.kind, a.fields) for a in of(acts, c.Notify)] == [("transcript", {"text": "hello"})]
    assert conv.handle(c.FromAgent(conv.link_id, p.ResponseText("hi", False)), 1.1) == []


def test_each_start_tells_the_gate_a_new_visitor_comes_but_a_reconnect_does_not() -> None:
    """The gate scopes the visitor's voice level to a conversation (audio/gate.py `new_visitor`)."""
    conv = make(reconnect_window_s=10.0)
    assert of(conv.handle(c.Press(), 0.0), c.NewVisitor) == [c.NewVisitor()]
    ready(conv, "s1")
    assert of(conv.handle(c.LinkDown(conv.link_id, "lost"), 1.0), c.NewVisitor) == []  # the same visitor
    conv.handle(c.End(), 2.0)
    conv.handle(c.LinkDown(conv.link_id), 2.1)
    assert of(conv.handle(c.Start(), 3.0), c.NewVisitor) == [c.NewVisitor()]


def test_a_second_onready_naming_another_session_is_stored_and_continued_next_time() -> None:
    """The platform's latest word on the conversation (the vendor's client keeps the newest id):
    the kiosk ignored it and the next press asked for the session the platform had moved on from."""
    conv = talking("s1")
    acts = ready(conv, "s2", now=5.0)
    assert of(acts, c.StoreEnd) == [c.StoreEnd("s1", "replaced")]
    assert of(acts, c.StoreStart) == [c.StoreStart("s2", "s1", None, "default")]
    assert [a.fields for a in of(acts, c.Notify) if a.kind == "session_changed"] == [{"session_id": "s2", "previous": "s1", "slot": "default"}]
    assert of(acts, c.StateChanged) == [c.StateChanged("listening", "s2", "s1", "default")]  # the retained state names it
    assert conv.state == c.LISTENING and not of(acts, c.Earcon)  # no new conversation for the visitor
    assert ready(conv, "s2", now=6.0) == []  # the same id again changes nothing
    conv.handle(c.Press(), 10.0)
    conv.handle(c.LinkDown(conv.link_id), 10.1)
    (open_,) = of(conv.handle(c.Press(), 20.0), c.OpenLink)
    assert open_.continue_session_id == "s2"


def test_a_server_renaming_the_session_in_every_frame_costs_a_few_store_writes() -> None:
    from edge_agent.core.sessionrecord import MAX_RENAMES

    conv = talking("s1")
    acts = [a for i in range(50) for a in ready(conv, f"x{i}", now=1.0 + i)]
    assert len(of(acts, c.StoreStart)) == MAX_RENAMES
    errors = [a.fields for a in of(acts, c.Notify) if a.kind == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "agent_renames"
    assert conv.session_id == f"x{MAX_RENAMES - 1}"


def test_a_rename_of_a_forgotten_conversation_stores_nothing() -> None:
    conv = talking("s1")
    conv.handle(c.SessionsForgotten(), 1.0)
    acts = ready(conv, "s2", now=2.0)
    assert not of(acts, c.StoreStart) and not of(acts, c.StoreEnd)
    end = conv.handle(c.Press(), 3.0)
    assert not of(end, c.StoreEnd) and conv.continuation_candidate(4.0) is None


def test_an_id_held_for_another_slot_is_never_taken_for_this_conversation() -> None:
    """`owner` says whose a stored id is: a rename to another slot's id is refused, and a first
    `onready` naming one runs the conversation off the record (the next press continued it)."""
    held = {"alice-s": (None, "b-alice"), "s0": (None, "default")}

    def foreign(sid: str, agent_id: str | None, slot: str) -> bool:
        return sid in held and held[sid] != (agent_id, slot)

    conv = c.Conversation(Timing(), rng=random.Random(1), foreign=foreign)
    conv.handle(c.Press(), 0.0)
    ready(conv, "s1")
    acts = ready(conv, "alice-s", now=1.0)
    assert conv.session_id == "s1" and not of(acts, c.StoreStart) and not of(acts, c.StoreEnd)
    assert [a.fields["code"] for a in of(acts, c.Notify)] == ["agent_renames"]
    conv.handle(c.Press(), 2.0)
    conv.handle(c.LinkDown(conv.link_id), 2.1)
    conv.handle(c.Press(), 3.0)
    acts = ready(conv, "alice-s", now=3.1)  # the platform answers a fresh press with the badge's id
    assert not of(acts, c.StoreStart) and [a.fields["code"] for a in of(acts, c.Notify) if a.kind == "error"] == ["agent_session_of_another"]
    conv.handle(c.Press(), 4.0)
    assert conv.continuation_candidate(5.0) == "s1"  # not the badge holder's
    own = c.Conversation(Timing(), rng=random.Random(1), foreign=foreign, last_session_id="s0", last_active_age_s=5.0)
    own.handle(c.Press(), 0.0)
    assert of(ready(own, "s0"), c.StoreStart)  # its own slot's id, continued: stored as ever


def test_an_id_held_for_another_slot_is_never_called_this_conversations_nor_asked_for_on_reconnect() -> None:
    """An `onready` naming another slot's id (a badge holder's) ran the conversation off the
    record but still took the id for its own: the state (retained MQTT, STATUS=) named it as the
    default slot's session, the next reconnect asked the platform to continue it, and after a
    reconnect onto it the conversation's own session was never stored as ended."""
    held = {"alice-s": (None, "b-alice")}

    def foreign(sid: str, agent_id: str | None, slot: str) -> bool:
        return sid in held and held[sid] != (agent_id, slot)

    conv = c.Conversation(Timing(), rng=random.Random(1), foreign=foreign)
    conv.handle(c.Press(), 0.0)
    acts = ready(conv, "alice-s")  # the first onready
    assert [a.session_id for a in of(acts, c.StateChanged)] == [None] and conv.session_id is None
    assert [a.fields["session_id"] for a in of(acts, c.Notify) if a.kind == "conversation_started"] == [None]
    acts = conv.handle(c.LinkDown(conv.link_id, "network"), 1.0)
    assert of(acts, c.OpenLink)[0].continue_session_id is None  # what the press asked for, not hers
    again = c.Conversation(Timing(), rng=random.Random(1), foreign=foreign)
    again.handle(c.Press(), 0.0)
    ready(again, "s1")
    again.handle(c.LinkDown(again.link_id, "network"), 1.0)
    acts = again.handle(c.FromAgent(again.link_id, p.OnReady("alice-s")), 1.5)  # a reconnect onto hers
    assert [a.session_id for a in of(acts, c.StoreEnd)] == ["s1"] and again.session_id == "s1"
    acts = again.handle(c.LinkDown(again.link_id, "network"), 2.0)
    assert of(acts, c.OpenLink)[0].continue_session_id == "s1"
    acts = again.handle(c.Press(), 5.0)
    assert not of(acts, c.StoreEnd) and again.continuation_candidate(6.0) == "s1"


def test_agent_audio_shorter_than_a_sample_does_not_make_the_agent_speak() -> None:
    """A 1-byte binary frame moved the conversation to `speaking` (the mic muted, half duplex),
    but the speaker drops a half sample, so nothing played and nothing drained: the kiosk stayed
    `speaking` until the conversation's time ran out (found by an attacker)."""
    conv = talking("s1")
    acts = conv.handle(c.AgentAudio(conv.link_id, b"\x01"), 1.0)
    assert not of(acts, c.Play) and conv.state == c.LISTENING
    acts = conv.handle(c.AgentAudio(conv.link_id, b"\x01\x02\x03"), 1.1)
    assert of(acts, c.Play) and conv.state == c.SPEAKING


def test_a_forgotten_live_conversation_names_no_session_in_its_states_but_reconnects_to_its_own() -> None:
    """Forgotten while live, the conversation goes on off the record: every state and event it
    publishes after names no session (the retained state named the live one and the one it
    continued, which the forget had wiped), while a reconnect still asks for its own session."""
    conv = c.Conversation(Timing(), "s0", 5.0, rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    ready(conv, "s1")
    assert conv.published_ids() == ("s1", "s0")
    conv.handle(c.SessionsForgotten(), 1.0)
    assert conv.published_ids() == (None, None)
    acts = conv.handle(c.AgentAudio(conv.link_id, b"\x00\x00" * 160), 1.1)
    assert [(a.session_id, a.continued_from) for a in of(acts, c.StateChanged)] == [(None, None)]
    acts = conv.handle(c.LinkDown(conv.link_id, "network"), 2.0)
    assert of(acts, c.OpenLink)[0].continue_session_id == "s1"
    assert all(a.fields.get("session_id") is None for a in of(acts, c.Notify) if a.kind == "reconnecting")
    acts = ready(conv, "s1", now=3.0)
    assert all(a.fields.get("session_id") is None and a.fields.get("continued_from") is None for a in of(acts, c.Notify) if a.kind == "reconnected")


def test_a_reload_that_changes_the_agent_keeps_each_agents_session_its_own() -> None:
    """The configured agent is filed as None; a button naming it ("agent-a") too. A reload to
    agent.agent_id = "agent-b" handed agent-a's session to agent-b's next press, and the button
    naming agent-a no longer found it (found by an attacker)."""
    conv = c.Conversation(Timing(), rng=random.Random(1), own_agent_id="agent-a")
    conv.handle(c.Press(agent_id="agent-a"), 0.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s-a")), 0.1)
    conv.handle(c.Press(agent_id="agent-a"), 1.0)  # ends it
    conv.handle(c.LinkDown(conv.link_id), 1.1)
    assert conv.continuation_candidate(2.0) == "s-a"
    conv.reconfigure(conv.t, "default", "agent-b")  # SIGHUP
    assert conv.continuation_candidate(2.0) is None  # agent-b's press: fresh
    assert conv.continuation_candidate(2.0, agent_id="agent-a") == "s-a"  # the agent-a button's
    conv.reconfigure(conv.t, "default", "agent-a")  # and back
    assert conv.continuation_candidate(2.0) == "s-a"
    assert conv.continuation_candidate(2.0, agent_id="agent-b") is None


def test_a_reload_that_keeps_the_agent_leaves_a_forget_of_its_slot_working() -> None:
    """Every reload re-keyed the last conversation's agent from None (the configured agent) to
    its id: a fleet forget of the configured agent's slot then missed it, and the forgotten
    session stayed published (found by an attacker)."""
    conv = c.Conversation(Timing(), rng=random.Random(1), own_agent_id="agent-a")
    conv.handle(c.Press(), 0.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s-a")), 0.1)
    conv.handle(c.Press(), 1.0)  # ends it
    conv.handle(c.LinkDown(conv.link_id), 1.1)
    assert conv.published_ids()[0] == "s-a"
    conv.reconfigure(conv.t, "default", "agent-a")  # SIGHUP, agent.agent_id unchanged
    conv.handle(c.SessionsForgotten("default", None), 2.0)
    assert conv.published_ids() == (None, None)


@pytest.mark.parametrize("long", [False, True], ids=["continuing", "fresh"])
def test_a_drop_after_an_onready_naming_another_slots_session_reconnects(long: bool) -> None:
    """The controller alone (the loopback test is in test_resume_attacks): an `onready` naming the
    session this kiosk holds for another slot leaves the conversation off the record, with no id
    of its own. "No id" was read as "never ready": a drop past `reconnect_window_s` from the
    press was the end of a link that never came up (a short press: a refused continuation,
    retried fresh mid-talk; a long one: the error earcon) instead of a drop mid-conversation."""
    held_for_alice = lambda sid, agent_id, slot: sid == "alice-1" and slot != "b-alice"  # noqa: E731  # the store's answer
    conv = c.Conversation(Timing(reconnect_window_s=1.0), "visitor-1", 60.0, rng=random.Random(1), foreign=held_for_alice)
    conv.handle(c.Press(long=long), 5.0)  # the default slot
    acts = ready(conv, "alice-1", 5.1)
    assert [a.fields.get("code") for a in of(acts, c.Notify) if a.kind == "error"] == ["agent_session_of_another"]
    assert conv.state == c.LISTENING
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1006"), 9.0)  # 4 s into it
    assert of(acts, c.OpenLink) and conv.state == c.CONNECTING
    assert [a.kind for a in of(acts, c.Notify) if a.kind in ("continuation_refused", "error")] == []


def test_a_refused_switch_by_another_buttons_hold_leaves_the_conversation_alone() -> None:
    """(A helper's, 2026-12-06; the badge scan's case is in test_badge.py.) Push-to-talk, the start limit spent: holding another slot's button (a badge holder's
    conversation running) ended the badge holder's conversation and then was refused its own
    start. The sans-I/O rule, for Talk as for Press."""
    conv = c.Conversation(Timing(start_burst=1, starts_per_minute=0.1), recall=lambda agent, slot: None)
    conv.handle(c.Press(origin="badge", slot="b-alice"), 0.0)
    conv.handle(c.LinkReady(conv.link_id, "s-alice"), 0.5)
    acts = conv.handle(c.Talk(held=True, slot="en"), 1.0)
    ended = [a.fields["reason"] for a in acts if isinstance(a, c.Notify) and a.kind == "conversation_ended"]
    assert conv.state == c.LISTENING and conv.whose.slot == "b-alice" and ended == [], (conv.state, conv.whose.slot, ended)
    assert conv.starts_refused == 1
