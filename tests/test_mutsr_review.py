"""Mutation review of core/sessionrecord.py, the survivors `mutants3` left unjudged (helper
`mutsr`, 2026-12-07).

Each test kills a mutant that the tests touching the session record let survive (the pure
conversation ones, and the daemon's privacy, forget, resume, hostile-server and link-attack ones),
where the mutant changes what a visitor, an operator or the store sees (one, the forget's, only
the conversation's public state). Pure: events in, actions and state out; no store,
so which session a press continues is the conversation's own memory (`ResumeMemory`), as it is
with a store too for a session this process ran (its age is on the monotonic clock).
"""

from __future__ import annotations

import random
from typing import Any

from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.sessionrecord import MAX_RENAMES, Foreign
from edge_agent.core.timing import Timing

WITHIN_S = 60.0  # resume_within_s of these tests: a press within it continues the last session


def make(foreign: Foreign | None = None) -> c.Conversation:
    return c.Conversation(Timing(resume_within_s=WITHIN_S), rng=random.Random(1), foreign=foreign)


def of(actions: list[c.Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def say(conv: c.Conversation, msg: p.ServerMessage, now: float) -> list[c.Action]:
    return conv.handle(c.FromAgent(conv.link_id, msg), now)


def continues(conv: c.Conversation, now: float) -> str | None:
    """The session a short press at `now` asks the agent to continue."""
    opened: list[c.OpenLink] = of(conv.handle(c.Press(), now), c.OpenLink)
    assert len(opened) == 1, opened
    return opened[0].continue_session_id


def ended(conv: c.Conversation, now: float) -> None:
    conv.handle(c.End(), now)
    conv.handle(c.LinkDown(conv.link_id), now + 0.1)
    assert conv.state == c.IDLE


def test_a_conversation_longer_than_the_resume_window_is_continued_from_its_end() -> None:
    """The resume window counts from when the conversation ended, not from its `onready`: a
    visitor who talked for 100 s and comes back 30 s later continues it (a mutant deleting the
    end's `remember` kept the `onready` time, and that visitor got a fresh session)."""
    conv = make()
    conv.handle(c.Press(), 0.0)
    say(conv, p.OnReady("s1"), 0.1)
    ended(conv, 100.0)
    assert continues(conv, 130.0) == "s1"


def test_a_session_left_for_anothers_on_a_reconnect_is_continued_from_that_reconnect() -> None:
    """A reconnect whose `onready` names a session held for another slot stores the conversation's
    own session as ended there, and a press within the resume window of that moment continues it
    (a mutant deleting that `remember` kept the first `onready`'s time: a fresh session)."""
    conv = make(foreign=lambda sid, agent, slot: sid == "alices")
    conv.handle(c.Press(), 0.0)
    say(conv, p.OnReady("s1"), 0.1)
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 100.0)
    assert conv.state == c.CONNECTING
    acts = say(conv, p.OnReady("alices"), 100.5)
    assert [(e.session_id, e.reason) for e in of(acts, c.StoreEnd)] == [("s1", "reconnected")]
    ended(conv, 101.0)
    assert continues(conv, 150.0) == "s1"


def test_a_reconnect_to_the_same_session_does_not_store_it_as_ended() -> None:
    """A reconnect whose `onready` names the conversation's own session again is the same
    conversation going on: no `StoreEnd` (a mutant dropping `previous != session_id` stored it as
    ended "reconnected" mid-conversation, and the fleet was told it ended), one `StoreEnd` at
    the real end with its reason."""
    conv = make()
    conv.handle(c.Press(), 0.0)
    say(conv, p.OnReady("s1"), 0.1)
    conv.handle(c.LinkDown(conv.link_id, "close_1006"), 5.0)
    assert conv.state == c.CONNECTING
    acts = say(conv, p.OnReady("s1"), 5.5)
    assert of(acts, c.StoreEnd) == []
    assert conv.session_id == "s1" and conv.state == c.LISTENING
    acts = conv.handle(c.End(), 9.0)
    assert [(e.session_id, e.reason) for e in of(acts, c.StoreEnd)] == [("s1", "command")]


def test_a_conversation_in_anothers_session_takes_no_rename_as_its_own() -> None:
    """A conversation whose first `onready` named a session held for another runs off the record
    with no session of its own: a further `onready` naming some other id is not a rename of it (a
    mutant dropping `previous is None` took it: a `session_changed` event and a state publish
    naming nothing, and the next reconnect asked the agent for that id)."""
    conv = make(foreign=lambda sid, agent, slot: sid == "alices")
    conv.handle(c.Press(), 0.0)
    say(conv, p.OnReady("alices"), 0.1)
    assert conv.session_id is None and conv.state == c.LISTENING
    acts = say(conv, p.OnReady("s9"), 1.0)
    assert [a for a in of(acts, c.Notify) if a.kind == "session_changed"] == [] and of(acts, c.StateChanged) == []
    assert conv.session_id is None
    reopened = of(conv.handle(c.LinkDown(conv.link_id, "close_1006"), 2.0), c.OpenLink)
    assert [o.continue_session_id for o in reopened] == [None]


def test_a_forget_after_the_conversation_ended_drops_its_ids() -> None:
    """Forgotten once ended, the last conversation's ids are gone from the conversation itself,
    not only from what it publishes (`session_id` is public: the demo reads it). A mutant that took
    every forget as one of a live conversation kept the wiped ids in memory until the next press
    (hidden by `published_ids`, so no event or state showed it)."""
    conv = make()
    conv.handle(c.Press(), 0.0)
    say(conv, p.OnReady("s1"), 0.1)
    ended(conv, 5.0)
    conv.handle(c.Press(), 6.0)
    say(conv, p.OnReady("s2"), 6.1)
    ended(conv, 9.0)
    assert (conv.session_id, conv.continued_from) == ("s2", "s1")
    conv.handle(c.SessionsForgotten(), 10.0)
    assert (conv.session_id, conv.continued_from) == (None, None)
    assert conv.published_ids() == (None, None)


def test_refused_renames_to_anothers_sessions_count_once_each_against_the_cap() -> None:
    """Each `onready` naming a session held for another counts once against MAX_RENAMES: after
    MAX_RENAMES - 1 of them a real rename is still taken and stored (a mutant counting
    them twice refused it silently: the kiosk kept an id the platform had moved on from)."""
    conv = make(foreign=lambda sid, agent, slot: sid.startswith("held-"))
    conv.handle(c.Press(), 0.0)
    say(conv, p.OnReady("s1"), 0.1)
    for i in range(MAX_RENAMES - 1):
        say(conv, p.OnReady(f"held-{i}"), 1.0 + i)
    acts = say(conv, p.OnReady("s2"), 9.0)
    assert conv.session_id == "s2"
    assert [(s.session_id, s.continued_from) for s in of(acts, c.StoreStart)] == [("s2", "s1")]


def test_renames_past_the_cap_are_not_told_as_session_changes() -> None:
    """Past MAX_RENAMES a server naming a new id in every frame changes nothing: no
    `session_changed` event nor state publish per frame (a mutant answering "changed" there
    published both, with the unchanged ids, for every frame)."""
    conv = make()
    conv.handle(c.Press(), 0.0)
    say(conv, p.OnReady("s0"), 0.1)
    for i in range(MAX_RENAMES):
        say(conv, p.OnReady(f"r{i}"), 1.0 + i)
    kept = conv.session_id
    acts = [a for i in range(20) for a in say(conv, p.OnReady(f"x{i}"), 10.0 + i)]
    assert conv.session_id == kept
    assert [a for a in of(acts, c.Notify) if a.kind == "session_changed"] == [] and of(acts, c.StateChanged) == []
