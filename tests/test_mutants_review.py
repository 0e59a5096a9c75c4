"""Mutation review of core/conversation.py (helper `mutants`, 2026-12-07).

Each test kills mutants of the state machine that every other pure conversation test let survive
(test_conversation*.py, test_limits.py, test_backlog.py): behaviour a visitor or an operator
would notice but that no test pinned. Pure: events in, actions and state out.
"""

from __future__ import annotations

import random

from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.timing import Timing


def make(**timing: object) -> c.Conversation:
    return c.Conversation(Timing(**timing), rng=random.Random(1))  # type: ignore[arg-type]


def of(actions: list[c.Action], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def notes(actions: list[c.Action], kind: str) -> list[dict]:
    return [a.fields for a in of(actions, c.Notify) if a.kind == kind]


def ready(conv: c.Conversation, sid: str = "s1", now: float = 0.1) -> list[c.Action]:
    return conv.handle(c.FromAgent(conv.link_id, p.OnReady(sid)), now)


def talking(conv: c.Conversation, sid: str = "s1", now: float = 0.0, **press: object) -> c.Conversation:
    conv.handle(c.Press(**press), now)  # type: ignore[arg-type]
    ready(conv, sid, now + 0.1)
    return conv


def ended(conv: c.Conversation, now: float) -> None:
    """A press ends the conversation and its socket closes: idle again."""
    conv.handle(c.Press(), now)
    conv.handle(c.LinkDown(conv.link_id), now + 0.1)
    assert conv.state == c.IDLE


# ------------------------------------------------------------------ who a press is for
def test_a_press_naming_the_configured_agent_ends_the_conversation_not_switches() -> None:
    """A button whose config names the kiosk's own agent id is the same agent as one naming none:
    its press ends the conversation (a visitor hanging up), not a "switch" into a new one."""
    conv = talking(c.Conversation(Timing(), rng=random.Random(1), own_agent_id="agent-a"))
    acts = conv.handle(c.Press(agent_id="agent-a"), 1.0)
    assert [n["reason"] for n in notes(acts, "conversation_ended")] == ["button"]
    assert of(acts, c.OpenLink) == [] and conv.state == c.ENDING


def test_an_anonymous_press_ends_a_badge_holders_conversation() -> None:
    """A press naming no slot during a badge holder's conversation ends it, as a press always
    did; it must not be taken for "another slot" and switch into a default-slot conversation."""
    conv = talking(make(), origin="badge", slot="b-alice")
    acts = conv.handle(c.Press(), 1.0)
    assert [n["reason"] for n in notes(acts, "conversation_ended")] == ["button"]
    assert of(acts, c.OpenLink) == [] and conv.state == c.ENDING


def test_a_press_for_another_agent_on_the_same_slot_switches() -> None:
    """Another agent's button (same slot) during a conversation ends it and starts that agent's
    own at once: its visitor must not hang up the first and have to press again."""
    conv = talking(make())
    acts = conv.handle(c.Press(agent_id="agent-de"), 1.0)
    assert [n["reason"] for n in notes(acts, "conversation_ended")] == ["switched"]
    (open_,) = of(acts, c.OpenLink)
    assert open_.agent_id == "agent-de"
    assert notes(acts, "conversation_requested")[0]["agent_id"] == "agent-de"  # events name the agent


def test_a_switch_closes_and_stores_the_old_conversation_before_opening_the_new() -> None:
    """A press for another slot ends the running conversation first: its link closed (else a
    billed socket stays open) and its session stored as ended, before the new link opens."""
    conv = talking(make())
    old = conv.link_id
    acts = conv.handle(c.Press(slot="b-alice"), 1.0)
    kinds = [type(a).__name__ for a in acts if isinstance(a, (c.StoreEnd, c.CloseLink, c.OpenLink))]
    assert kinds == ["StoreEnd", "CloseLink", "OpenLink"]
    assert of(acts, c.StoreEnd)[0].session_id == "s1" and of(acts, c.CloseLink)[0].link_id == old


def test_the_button_event_names_the_pressed_slot() -> None:
    """The operator's `button` event says which slot was pressed (the default one for a plain press)."""
    conv = make()
    assert notes(conv.handle(c.Press(slot="b-alice"), 0.0), "button")[0]["slot"] == "b-alice"
    conv = make()
    assert notes(conv.handle(c.Press(), 0.0), "button")[0]["slot"] == conv.whose.default_slot


# ------------------------------------------------------------------ push-to-talk
def test_push_to_talk_holding_another_slot_when_idle_ends_nothing() -> None:
    """Idle, a hold of another slot's button starts its conversation: there is nothing running to
    end, so no "switched" end (a second conversation_ended and store write of the last one)."""
    conv = make(push_to_talk=True)
    conv.handle(c.Talk(True), 0.0)
    ready(conv, "s1", 0.1)
    conv.handle(c.Talk(False), 0.5)
    ended(conv, 1.0)
    acts = conv.handle(c.Talk(True, slot="en"), 2.0)
    assert notes(acts, "conversation_ended") == [] and of(acts, c.StoreEnd) == []
    assert of(acts, c.OpenLink)[0].slot == "en"


def test_push_to_talk_a_switch_spends_one_start_not_two() -> None:
    """Holding another slot's button asks the start limit once: asked twice, a kiosk with one
    start left ended the running conversation and then refused the new one."""
    conv = make(push_to_talk=True, start_burst=2, starts_per_minute=0.1)
    conv.handle(c.Talk(True), 0.0)
    ready(conv, "s1", 0.1)
    acts = conv.handle(c.Talk(True, slot="en"), 1.0)
    assert [o.slot for o in of(acts, c.OpenLink)] == ["en"] and notes(acts, "start_refused") == []


def test_push_to_talk_a_silent_long_release_after_the_conversation_ended_does_nothing() -> None:
    """The agent ended the conversation while the button was held: the release must not end it
    a second time (a second "ended" earcon, store write and close)."""
    conv = make(push_to_talk=True)
    conv.handle(c.Talk(True), 0.0)
    ready(conv, "s1", 0.1)
    conv.handle(c.FromAgent(conv.link_id, p.SessionEnded()), 1.0)
    conv.handle(c.LinkDown(conv.link_id), 1.1)
    assert conv.handle(c.Talk(False, long=True), 3.0) == [] and conv.state == c.IDLE


# ------------------------------------------------------------------ starts and what they tell
def test_a_start_is_heard_and_told() -> None:
    """A start plays the press earcon and tells the operator it was requested (fresh or not,
    what it continues, who asked): the visitor hears the press, the fleet sees it."""
    conv = c.Conversation(Timing(), "old", 60.0, rng=random.Random(1))
    acts = conv.handle(c.Press(origin="badge"), 0.0)
    assert c.Earcon("press") in acts
    assert notes(acts, "conversation_requested") == [{"fresh": False, "continue_session_id": "old", "origin": "badge", "slot": conv.whose.default_slot}]


def test_the_visitor_hears_an_end_and_an_error() -> None:
    """The "ended" earcon at an end, the "error" earcon at a failure: the visitor's only cue."""
    conv = talking(make())
    assert c.Earcon("ended") in conv.handle(c.Press(), 1.0)
    conv = talking(make())
    assert c.Earcon("error") in conv.handle(c.LinkDown(conv.link_id, "bad key", fatal=True), 1.0)


def test_a_failure_stores_the_sessions_end_and_the_next_press_continues_it() -> None:
    """A conversation that fails after `onready` still stores its session as ended (error) and
    remembers it: the next short press continues it, not an older one."""
    conv = talking(c.Conversation(Timing(), "older", 60.0, rng=random.Random(1)), "s1")
    acts = conv.handle(c.LinkDown(conv.link_id, "bad key", fatal=True), 1.0)
    assert c.StoreEnd("s1", "error") in acts and conv.state == c.ERROR
    assert conv.continuation_candidate(2.0) == "s1"


def test_conversation_started_names_the_session_and_the_one_it_continues() -> None:
    """`conversation_started` names the new session and, separately, the one it continued."""
    conv = c.Conversation(Timing(), "old", 60.0, rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    (started,) = notes(ready(conv, "new"), "conversation_started")
    assert (started["session_id"], started["continued_from"]) == ("new", "old")


def test_a_conversation_forgotten_while_connecting_names_no_session_when_it_starts() -> None:
    """Sessions forgotten (MQTT forget_sessions) while the link was opening: the conversation
    runs off the record, and its `conversation_started` event must not publish its session id."""
    conv = make()
    conv.handle(c.Press(), 0.0)
    conv.handle(c.SessionsForgotten(), 0.05)
    (started,) = notes(ready(conv, "s1"), "conversation_started")
    assert started["session_id"] is None


def test_a_gone_microphone_refuses_every_start() -> None:
    """With the microphone gone a press opens no link (the visitor would talk to nobody) and
    says why; the flag reads back as set."""
    conv = make()
    conv.mic_gone = True
    assert conv.mic_gone is True
    acts = conv.handle(c.Press(), 0.0)
    assert of(acts, c.OpenLink) == [] and notes(acts, "start_refused")[0]["reason"] == "microphone_gone"


def test_a_store_reload_gives_the_next_press_the_stores_newest_session() -> None:
    """The store came back after a fault with a newest session: the next short press continues it."""
    conv = make()
    conv.handle(c.StoreReloaded("s-old", 60.0), 0.0)
    (open_,) = of(conv.handle(c.Press(), 1.0), c.OpenLink)
    assert open_.continue_session_id == "s-old"


# ------------------------------------------------------------------ reload
def test_a_reload_changes_the_slot_of_the_next_press() -> None:
    """A config reload naming a new default slot: the next plain press is that slot's."""
    conv = make()
    conv.reconfigure(conv.t, "lobby")
    (open_,) = of(conv.handle(c.Press(), 0.0), c.OpenLink)
    assert open_.slot == "lobby"


def test_a_reload_to_the_last_conversations_agent_leaves_a_forget_of_its_slot_working() -> None:
    """The last conversation was with agent-b's button; a reload makes agent-b the configured
    agent (keyed None). A fleet forget of the configured agent's slot must then find it, or the
    forgotten session stays published in the retained state."""
    conv = c.Conversation(Timing(), rng=random.Random(1), own_agent_id="agent-a")
    talking(conv, "s-b", agent_id="agent-b")
    ended(conv, 1.0)
    conv.reconfigure(conv.t, "default", "agent-b")
    conv.handle(c.SessionsForgotten("default", None), 2.0)
    assert conv.published_ids() == (None, None)


# ------------------------------------------------------------------ timers
def test_max_duration_and_the_reported_duration_count_from_the_press() -> None:
    """A conversation started an hour into the kiosk's uptime gets its whole `max_duration_s`
    (counted from 0, it was cut off at its first tick) and reports its own duration."""
    conv = talking(make(max_duration_s=60.0), now=3600.0)
    assert conv.handle(c.Tick(), 3601.0) == [] and conv.state == c.LISTENING
    acts = conv.handle(c.Tick(), 3660.5)
    (end,) = notes(acts, "conversation_ended")
    assert end["reason"] == "max_duration" and end["duration_s"] == 60.5


def test_the_idle_timeout_counts_from_onready_not_from_the_press() -> None:
    """A slow connect (25 s) then 6 s of a visitor thinking is not 30 s of silence: the idle
    timeout starts when the agent is ready to listen."""
    conv = make(idle_timeout_s=30.0, reconnect_window_s=60.0)
    conv.handle(c.Press(), 0.0)
    ready(conv, "s1", 25.0)
    assert conv.handle(c.Tick(), 31.0) == [] and conv.state == c.LISTENING
    assert notes(conv.handle(c.Tick(), 55.5), "conversation_ended")[0]["reason"] == "idle"


def test_a_visitor_speaking_when_a_conversation_ended_does_not_keep_the_next_one_alive() -> None:
    """The gate was open on the visitor when the press ended the conversation: the next one
    must still end on idle, not run on to `max_duration_s` taken for someone speaking."""
    conv = talking(make(idle_timeout_s=30.0))
    conv.handle(c.VisitorSpeech(True), 1.0)
    ended(conv, 2.0)
    talking(conv, "s2", now=3.0)
    assert notes(conv.handle(c.Tick(), 34.0), "conversation_ended")[0]["reason"] == "idle"


def test_ending_and_error_are_held_until_their_timeouts() -> None:
    """`ending` waits for the socket (up to `ending_timeout_s`) and `error` is shown for
    `error_hold_s` (the error LED): a tick before either must not go idle."""
    conv = talking(make(ending_timeout_s=2.0), now=100.0)  # late in the kiosk's uptime: timed from the state's start
    conv.handle(c.Press(), 101.0)
    assert conv.handle(c.Tick(), 101.5) == [] and conv.state == c.ENDING
    assert conv.handle(c.Tick(), 103.5) and conv.state == c.IDLE
    conv = talking(make(error_hold_s=5.0), now=100.0)
    conv.handle(c.LinkDown(conv.link_id, "bad key", fatal=True), 101.0)
    assert conv.handle(c.Tick(), 102.0) == [] and conv.state == c.ERROR
    assert conv.handle(c.Tick(), 106.5) and conv.state == c.IDLE


def test_each_conversation_gets_its_own_connect_window() -> None:
    """The first link's window counts from this conversation's press, not the last one's: a
    press minutes after the last conversation must not fail at its first tick."""
    conv = talking(make(reconnect_window_s=30.0))
    ended(conv, 1.0)
    conv.handle(c.Press(), 100.0)
    assert conv.handle(c.Tick(), 100.5) == [] and conv.state == c.CONNECTING


def test_a_second_chunk_of_agent_audio_changes_no_state() -> None:
    """States are told only when they change: every chunk of the agent's reply republished
    `speaking` (an MQTT message per chunk)."""
    conv = talking(make())
    assert c.StateChanged in [type(a) for a in conv.handle(c.AgentAudio(conv.link_id, b"\0\0" * 80), 1.0)]
    assert of(conv.handle(c.AgentAudio(conv.link_id, b"\0\0" * 80), 1.01), c.StateChanged) == []


# ------------------------------------------------------------------ the link
def test_a_default_conversation_without_an_injected_rng_reconnects() -> None:
    """The daemon builds its Conversation with no `rng` (service/daemon.py): a lost link must
    still be reopened with a jittered backoff, not crash the event loop."""
    conv = talking(c.Conversation(Timing()))
    (open_,) = of(conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0), c.OpenLink)
    assert open_.continue_session_id == "s1" and open_.delay_s >= 0


def test_a_stale_links_onready_is_ignored_while_reconnecting() -> None:
    """LinkReady from a link already given up on must not make the new attempt `listening`."""
    conv = talking(make())
    old = conv.link_id
    conv.handle(c.LinkDown(old, "close_1006"), 1.0)
    assert conv.handle(c.LinkReady(old, "s1"), 1.1) == [] and conv.state == c.CONNECTING


def test_messages_before_onready_other_than_an_end_change_nothing() -> None:
    """A server that says something (a clear, a transcript) before `onready` neither ends the
    conversation nor takes it for a refusal."""
    conv = make()
    conv.handle(c.Press(), 0.0)
    for msg in (p.Clear(), p.Transcript("hi", True)):
        assert conv.handle(c.FromAgent(conv.link_id, msg), 0.05) == []
    assert conv.state == c.CONNECTING


def test_a_late_onsessionended_while_ending_changes_nothing() -> None:
    """The press ended the conversation; the agent's own `onsessionended` arriving on the closing
    link must not end it again (a second end event, store write and earcon)."""
    conv = talking(make())
    conv.handle(c.Press(), 1.0)
    assert conv.handle(c.FromAgent(conv.link_id, p.SessionEnded()), 1.1) == [] and conv.state == c.ENDING


def test_server_closes_mid_conversation_are_drops_not_refusals() -> None:
    """After `onready`, the server closing the socket (twice) is a lost link: it is reopened on
    the conversation's session each time, never taken for a refused continuation (an error)."""
    conv = talking(make())
    for now in (1.0, 2.0, 3.0):
        acts = conv.handle(c.LinkDown(conv.link_id, "close_1011", server_closed=True), now)
        assert [o.continue_session_id for o in of(acts, c.OpenLink)] == ["s1"] and notes(acts, "error") == []


def test_network_failures_before_onready_are_no_refusal_of_the_continuation() -> None:
    """Links that drop before `onready` without the server closing them (the network) keep
    asking for the session the press continues: only server closes count as its refusal."""
    conv = c.Conversation(Timing(), "old", 60.0, rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    for now in (0.5, 1.0, 1.5):
        acts = conv.handle(c.LinkDown(conv.link_id, "timeout"), now)
        assert [o.continue_session_id for o in of(acts, c.OpenLink)] == ["old"] and notes(acts, "continuation_refused") == []


def test_two_server_closes_before_onready_refuse_the_continuation_one_does_not() -> None:
    """One server close may be a hiccup (ask for the same session again); the second is the
    platform refusing the stored id: asked once more as a fresh session, not retried for the
    whole window and then failed with the error earcon."""
    conv = c.Conversation(Timing(), "old", 60.0, rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1000", server_closed=True), 0.5)
    assert [o.continue_session_id for o in of(acts, c.OpenLink)] == ["old"]
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1000", server_closed=True), 1.0)
    assert [o.continue_session_id for o in of(acts, c.OpenLink)] == [None] and len(notes(acts, "continuation_refused")) == 1


def _never_ready(initiated_link: str) -> list[c.Action]:
    """A press continuing "old" whose link never says onready (window 10 s); `initiated_link`:
    "current" (the server had its initiate), "stale" (only a given-up link's did) or "none"."""
    conv = c.Conversation(Timing(reconnect_window_s=10.0), "old", 60.0, rng=random.Random(1))
    conv.handle(c.Press(), 0.0)
    if initiated_link == "stale":
        old = conv.link_id
        conv.handle(c.LinkDown(old, "timeout"), 0.5)
        conv.handle(c.Initiated(old), 0.6)
    elif initiated_link == "current":
        conv.handle(c.Initiated(conv.link_id), 0.1)
    acts = conv.handle(c.Tick(), 10.5)
    assert conv.state in (c.CONNECTING, c.ERROR)
    return acts


def test_a_continuation_the_server_had_and_never_readied_is_retried_fresh() -> None:
    """The `initiate` reached the server and it kept silent: the stored session is taken as
    refused and asked for once more as a fresh one (the next press would fail on it for 7 days)."""
    acts = _never_ready("current")
    assert len(notes(acts, "continuation_refused")) == 1
    assert [o.continue_session_id for o in of(acts, c.OpenLink)] == [None]


def test_a_link_the_network_never_let_through_fails_without_a_fresh_retry() -> None:
    """No `initiate` reached the server (or only a given-up link's did): the failure it is, with
    the error earcon now; a fresh retry only doubled the visitor's wait."""
    for initiated_link in ("none", "stale"):
        acts = _never_ready(initiated_link)
        assert of(acts, c.OpenLink) == [] and notes(acts, "continuation_refused") == [], initiated_link
        assert c.Earcon("error") in acts


def test_an_end_says_what_ended_it() -> None:
    """The end reason names the press's origin (a badge scan, an MQTT command), "button" for
    the button: the operator tells a visitor hanging up from a remote end."""
    conv = talking(make())
    assert notes(conv.handle(c.Press(origin="badge"), 1.0), "conversation_ended")[0]["reason"] == "badge"
    conv = talking(make())
    assert notes(conv.handle(c.Press(), 1.0), "conversation_ended")[0]["reason"] == "button"


def test_ticks_long_after_a_conversation_change_nothing() -> None:
    """Idle, the clock runs on: the last conversation's connect window passing must not fail
    it now (an error earcon and event out of nowhere, minutes after the visitor left)."""
    conv = talking(make(reconnect_window_s=10.0))
    ended(conv, 1.0)
    assert conv.handle(c.Tick(), 100.0) == [] and conv.state == c.IDLE


def test_a_reconnect_window_passing_while_ending_does_not_cut_the_wait_for_the_socket() -> None:
    """Ended while reconnecting: `ending` waits its own `ending_timeout_s` for the socket; the
    reconnect window of the conversation that ended has no say any more."""
    conv = talking(make(reconnect_window_s=10.0, ending_timeout_s=60.0))
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0)
    conv.handle(c.Press(), 1.5)
    assert conv.handle(c.Tick(), 12.0) == [] and conv.state == c.ENDING


def test_the_reconnecting_event_names_the_conversations_session() -> None:
    """`reconnecting` tells the operator which session is being reopened (not the one it continued)."""
    conv = c.Conversation(Timing(), "old", 60.0, rng=random.Random(1))
    talking(conv, "new")
    (told,) = notes(conv.handle(c.LinkDown(conv.link_id, "close_1006"), 1.0), "reconnecting")
    assert told["session_id"] == "new"


def test_a_connect_that_never_came_up_reports_the_links_error() -> None:
    """The window passed with no link up: the error event carries the link's own error (what
    the operator needs to fix the network), "cannot connect" when it had none."""
    for error, expect in (("dns failure", "dns failure"), (None, "cannot connect")):
        conv = make(reconnect_window_s=10.0)
        conv.handle(c.Press(), 0.0)
        conv.handle(c.LinkDown(conv.link_id, "timeout"), 0.5)
        acts = conv.handle(c.LinkDown(conv.link_id, error), 11.0)
        assert [n["message"] for n in notes(acts, "error")] == [expect]
