"""LinkAttempts: the agent links one conversation opens, what each asks for and what comes of it.

Sans-I/O bookkeeping for `Conversation` (core/conversation.py), which keeps the states and each
attempt's id. An attempt asks to continue a session or not; the link that becomes ready is told
as the conversation's start or as a reconnect, and the audio held meanwhile goes first. A lost
link is reopened as `Reconnects` decides (core/reconnect.py), asking for the conversation's own
session. A continuation the platform refuses before the first `onready` is asked for once more,
as a fresh session: refused by a fatal close or `onsessionended`, by the server closing the
socket itself twice (SERVER_CLOSES_REFUSE), or by never saying `onready` to an `initiate` it had.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from edge_agent.core.events import Action, Earcon, HeldAudio, Notify, Playback
from edge_agent.core.reconnect import Reconnects
from edge_agent.core.timing import Timing

SERVER_CLOSES_REFUSE = 2
"""Closes by the server itself (`LinkDown.server_closed`) before the first `onready`, while
asking to continue a session, that count as the platform refusing it. The protocol names no
refusal: a server that no longer knows an id may close normally (1000) or as an error (1011).
Each retry asked for the same id for the whole reconnect window, the press failed, and so did
every press after it until `resume_within_s` (7 days) passed. One close alone may be a server's
hiccup; a close that asks to try later (1001, 1012-1014) is not counted."""

FIRST_READY_MIN_S = 5.0
"""The least time a conversation's first `onready` gets, whatever `reconnect_window_s` says: a
window of 0 (reconnects off, which the config accepts) or of a second failed every press at the
first tick, before a server a round trip or three away could answer."""


class LinkAttempts:
    """The link attempts of the current conversation (`begin` at each start)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        """The session the current attempt asks to continue (None: a fresh one)."""
        self.initiated = False
        """The current attempt's `initiate` went out on an open socket (`Initiated`)."""
        self.reconnects = Reconnects()
        self.since = 0.0
        """When the conversation (or its fresh retry) began connecting: the first link's window."""
        self._retried_fresh = False  # a refused continuation was retried as a fresh session
        self._server_closes = 0  # closes by the server before the first onready, asking to continue
        self.was_ready = False
        """A link of this conversation said `onready`: a loss from now on is a drop mid-conversation
        (also when its session id is not the conversation's own: one held for another slot)."""
        self.request_forgotten = False
        """The session the attempts asked for was forgotten meanwhile (`forget_sessions` while
        connecting): a reconnect asks for none, not for the wiped one again."""

    def begin(self, now: float) -> None:
        """A new conversation: no reconnects yet, and its fresh retry still to take."""
        self.reconnects.reset()
        self.since = now
        self._retried_fresh = False
        self._server_closes = 0
        self.was_ready = False
        self.request_forgotten = False

    def closed_by_server(self) -> bool:
        """The server closed the current attempt itself before the first `onready`: True when
        that makes SERVER_CLOSES_REFUSE closes of a continuation (take it as refused)."""
        if self.requested is None:
            return False
        self._server_closes += 1
        return self._server_closes >= SERVER_CLOSES_REFUSE

    def ready(self, now: float, session_id: str | None, continued_from: str | None, target: dict[str, Any], out: list[Action]) -> None:
        """The current attempt's `onready` (`session_id`, `continued_from` as the events may name them)."""
        self.was_ready = True
        if self.reconnects.ready(now):
            out.append(Notify("reconnected", {"session_id": session_id, "continued_from": continued_from}))
        else:
            out.append(Notify("conversation_started", {"session_id": session_id, "continued_from": continued_from, **target}))
        out.append(HeldAudio("send"))  # what the visitor said while we connected, before anything live
        out.append(Earcon("ready"))

    def reopen(self, session_id: str | None, shown_id: str | None, error: str | None, t: Timing, rng: random.Random, out: list[Action]) -> tuple[str | None, float]:
        """The lost link is reopened (`Reconnects.lost` said so): the session the next attempt
        asks for (the conversation's, else what the last one asked for) and the delay before it.
        `shown_id`: the conversation's session as the events may name it."""
        out.append(Playback("clear"))
        if self.reconnects.attempt == 1:
            out.append(Earcon("reconnecting"))
        out.append(Notify("reconnecting", {"attempt": self.reconnects.attempt, "error": error, "session_id": shown_id}))
        cont = session_id if session_id is not None else (None if self.request_forgotten else self.requested)
        return cont, self.reconnects.backoff_s(t, rng)

    def refused(self, session_id: str | None, error: str, target: dict[str, Any], out: list[Action], now: float, off_record: bool = False) -> bool:
        """A link that asked to continue a stored session was refused before the conversation's
        first `onready` (a close code, or `onsessionended`): once per conversation, it asks again
        for a fresh session. The platform may refuse an id it no longer knows (the protocol does
        not say); every short press failed on it, with the error earcon, until `resume_within_s`
        (7 days) passed. The fresh session, once ready, is the newest: the next press continues it.
        It gets a window of its own (`since`). False when there was no continuation to drop (the
        key, the agent or a quota refused)."""
        refused = self.requested
        if refused is None or session_id is not None or self.was_ready or self._retried_fresh:
            return False
        self._retried_fresh = True
        self.reconnects.reset()
        self.since = now
        shown = None if off_record else refused  # the sessions forgotten meanwhile: events name none
        out.append(Notify("continuation_refused", {"session_id": shown, "error": error, **target}))
        return True

    def never_ready(self, now: float, t: Timing) -> bool:
        """The conversation's first link has not said `onready` within `reconnect_window_s`: it
        gets the window a reconnect gets, so a server alive but never ready (pongs keep the link
        from looking dead) does not hold the kiosk connecting."""
        return self.reconnects.lost_at is None and now - self.since >= max(t.reconnect_window_s, FIRST_READY_MIN_S)

    def window_timing(self, t: Timing) -> Timing:
        """`t`, its reconnect window at least FIRST_READY_MIN_S until the conversation's first
        `onready` (as `never_ready` gives it), also after its first link dropped: a drop in the
        first second cut a 3 s window's retry off at 3 s, where a first link that did not drop
        had 5 s (a fuzzer's find, 2026-12-06). A window of 0 (reconnects off) stays 0."""
        if self.was_ready or not 0 < t.reconnect_window_s < FIRST_READY_MIN_S:
            return t
        return dataclasses.replace(t, reconnect_window_s=FIRST_READY_MIN_S)
