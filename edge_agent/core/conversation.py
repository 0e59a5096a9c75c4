"""Conversation: the kiosk's sans-I/O state machine.

Fed events (button, gate, agent link, playback, clock ticks) through `handle(event, now)`, it
returns a list of actions (open/close the link, store a session, play, earcons, notifications).
It never touches sockets, threads, files or the clock itself: `now` is a monotonic time in
seconds passed in, and randomness (reconnect jitter) comes from an injected `random.Random`.

    idle -> connecting -> listening <-> speaking -> ending -> idle      (and error -> idle)

From the press, and while a lost link is reopened, the visitor's audio is held rather than thrown
away (`holding`) and sent in order at `onready` (`HeldAudio`): nobody loses a first word to the
connection being set up.

Every link attempt has an id; events from an older attempt are ignored, so a late close or
frame from a socket we already gave up on can never move the conversation.

Every start names a slot (and optionally an agent other than the configured one): None means
the kiosk's default slot. Which session it continues is `core/resume.py`'s to say. A start for
another slot during a conversation ends that one first ("switched") and starts the new one at
once; a press for the same slot (or naming none) ends it, as a press always did.

What each link asks for, a refused continuation's fresh retry and a lost link reopened (with
backoff, within a window, a bounded number of times) are `core/linkattempts.py`'s and
`core/reconnect.py`'s; starts are rate limited by `core/startlimit.py`; who may speak when
(push-to-talk, half duplex, the agent's reply) and when it went quiet is `core/turns.py`'s; the
timers and limits are a `Timing` (`core/timing.py`); whose it is, a `Whose` (`core/slots.py`).
"""

from __future__ import annotations

import random

from edge_agent.core import protocol as p
from edge_agent.core.events import (
    Action,
    AgentAudio,
    CloseLink,
    Earcon,
    End,
    Event,
    FromAgent,
    HeldAudio,
    Initiated,
    LinkDown,
    LinkReady,
    NewVisitor,
    Notify,
    OpenLink,
    Play,
    Playback,
    PlaybackDrained,
    Press,
    SessionsForgotten,
    Start,
    StateChanged,
    StoreEnd,
    StoreReloaded,
    StoreStart,
    Talk,
    Tick,
    VisitorSpeech,
)
from edge_agent.core.linkattempts import LinkAttempts
from edge_agent.core.resume import Recall, ResumeMemory
from edge_agent.core.sessionrecord import Foreign, SessionRecord
from edge_agent.core.slots import DEFAULT_SLOT, Whose
from edge_agent.core.startlimit import StartLimit
from edge_agent.core.timing import Timing
from edge_agent.core.turns import Turns

__all__ = [
    "CONNECTING", "ENDING", "ERROR", "IDLE", "LISTENING", "SPEAKING", "STATES", "Action",
    "AgentAudio", "CloseLink", "Conversation", "Earcon", "End", "Event", "FromAgent", "HeldAudio",
    "Initiated", "LinkDown", "LinkReady", "NewVisitor", "Notify", "OpenLink", "Play", "Playback", "PlaybackDrained", "Press",
    "SessionsForgotten", "Start", "StateChanged", "StoreEnd", "StoreReloaded",
    "StoreStart", "Talk", "Tick", "VisitorSpeech",
]
"""The events and actions are re-exported: callers write `c.Press`, `c.OpenLink`."""

IDLE, CONNECTING, LISTENING, SPEAKING, ENDING, ERROR = "idle", "connecting", "listening", "speaking", "ending", "error"
STATES = (IDLE, CONNECTING, LISTENING, SPEAKING, ENDING, ERROR)


class Conversation:
    """The kiosk's conversation logic. `last_session_id`/`last_active_age_s` (of the default
    slot) come from the store at start; `recall` looks up other slots (and newer shared ones)."""

    def __init__(
        self,
        timing: Timing,
        last_session_id: str | None = None,
        last_active_age_s: float | None = None,
        rng: random.Random | None = None,
        slot: str = DEFAULT_SLOT,
        recall: Recall | None = None,
        foreign: Foreign | None = None,
        own_agent_id: str | None = None,
        aged_at: float | None = None,
    ) -> None:
        """`recall`: another slot's newest stored session; `foreign`: an id held for another;
        `own_agent_id`: the configured agent's id, which a start may name (a button's
        `agent_id`): the same agent as None, so a forget of its slot finds the conversation;
        `aged_at`: the monotonic time `last_active_age_s` was read (it grows from there)."""
        self.t = timing
        self.rng = rng or random.Random()
        self.state = IDLE
        self.link_id = 0
        self.record = SessionRecord(ResumeMemory(last_session_id, last_active_age_s, slot, recall, aged_at), foreign)
        """The session this conversation is in, and its storing (core/sessionrecord.py)."""
        self.whose = Whose(slot, own_agent_id)  # the current (or last) conversation's slot and agent, the kiosk's defaults
        self._started_at = 0.0
        self._state_since = 0.0
        self._links = LinkAttempts()  # what each link asks for, its reconnects, the fresh retry
        self._turns = Turns()  # who may speak, and when the conversation went quiet
        self._starts = StartLimit(timing)

    # ------------------------------------------------------------------ queries
    @property
    def session_id(self) -> str | None:
        """The platform session of the current (or last) conversation, once `onready` named it."""
        return self.record.session_id

    @property
    def continued_from(self) -> str | None:
        """The session the current one continues (None: a fresh one)."""
        return self.record.continued_from

    def published_ids(self) -> tuple[str | None, str | None]:
        """(session, continued from) as states and events may name them: neither once the
        conversation is off the record (forgotten meanwhile, or in another's session); the
        conversation itself still knows them, to reconnect to its session."""
        return (None, None) if self.record.off_record else (self.session_id, self.continued_from)

    @property
    def streaming(self) -> bool:
        """True while the socket is ready for uplink audio (gated frames or silence)."""
        return self.state in (LISTENING, SPEAKING)

    @property
    def holding(self) -> bool:
        """True from the press, and from a lost link, until `onready`: captured audio is held
        (see core/backlog.py) and sent in order once the agent is ready, so the visitor's first
        words (or the words said during a reconnect) reach it."""
        return self.state == CONNECTING

    def mic_open(self, now: float) -> bool:
        """Whether captured audio may go up now (or be held for the link being opened), or
        digital silence must replace it."""
        return (self.streaming or self.holding) and self._turns.mic_open(self.t, self.state == SPEAKING, now)

    def continuation_candidate(self, now: float, slot: str | None = None, agent_id: str | None = None) -> str | None:
        """The session a short press for this slot (default: the kiosk's) would continue now."""
        if not self.t.resume:
            return None
        return self.record.resume.candidate(now, self.t.resume_within_s, self.whose.agent(agent_id), slot or self.whose.default_slot)

    def reconfigure(self, timing: Timing, default_slot: str, own_agent_id: str | None = None) -> None:
        """New timers, default slot and agent id (a config reload while idle); the start rate
        limit keeps what it has spent."""
        self.t = timing
        self.record.resume.agent_renamed(self.whose.own_agent_id, own_agent_id)
        self.whose.reconfigure(default_slot, own_agent_id)

    def start_wait_s(self, now: float) -> float:
        """Seconds until the start rate limit lets a conversation start again (0: now)."""
        return self._starts.wait_s(now)

    @property
    def starts_refused(self) -> int:
        """Starts refused by the rate limit or for a gone microphone (a metric; MQTT command results read it)."""
        return self._starts.refused

    @property
    def mic_gone(self) -> bool:
        """The microphone is gone: every start is refused (core/startlimit.py)."""
        return self._starts.mic_gone

    @mic_gone.setter
    def mic_gone(self, gone: bool) -> None:
        self._starts.mic_gone = gone

    # ------------------------------------------------------------------ dispatch
    def handle(self, event: Event, now: float) -> list[Action]:
        out: list[Action] = []
        handler = getattr(self, "_on_" + type(event).__name__)
        handler(event, now, out)
        return out

    def _go(self, state: str, now: float, out: list[Action]) -> None:
        if state != self.state:
            self.state = state
            self._state_since = now
            out.append(StateChanged(state, *self.published_ids(), self.whose.slot))

    def _open(self, now: float, out: list[Action], cont: str | None, delay_s: float = 0.0) -> None:
        self.link_id += 1
        self._links.requested, self._links.initiated = cont, False
        out.append(OpenLink(self.link_id, cont, delay_s, self.whose.agent_id, self.whose.slot))
        self._go(CONNECTING, now, out)

    def _begin(self, fresh: bool, origin: str, now: float, out: list[Action], slot: str | None = None, agent_id: str | None = None, allowed: bool = False) -> None:
        """A new conversation; `allowed`: the start limit was already asked (a switch asks first)."""
        if not allowed and not self._starts.allow(origin, now, self.t, out):
            return
        cont = None if fresh else self.continuation_candidate(now, slot, agent_id)
        self.whose.take(slot, agent_id)
        self.record.begin()
        self._links.begin(now)
        self._turns.begin(now)
        self._started_at = now
        out.append(NewVisitor())
        out.append(Earcon("press"))
        out.append(Notify("conversation_requested", {"fresh": fresh, "continue_session_id": cont, "origin": origin, **self.whose.fields()}))
        self._open(now, out, cont)

    def _finish(self, reason: str, now: float, out: list[Action]) -> None:
        """Ends the conversation: store, close, earcon, then wait in `ending` for the socket."""
        self.record.end(reason, self.whose.agent_id, self.whose.slot, now, out)
        out.append(Notify("conversation_ended", {"reason": reason, "session_id": self.session_id, "duration_s": round(now - self._started_at, 3), **self.whose.fields()}))
        out.append(Playback("clear"))
        out.append(HeldAudio("drop"))
        out.append(CloseLink(self.link_id))
        out.append(Earcon("ended"))
        self._turns.visitor_speaking = False
        self._go(ENDING, now, out)

    def _fail(self, error: str, now: float, out: list[Action], code: str = "agent") -> None:
        self.record.end("error", self.whose.agent_id, self.whose.slot, now, out)
        out.append(Notify("error", {"code": code, "message": error}))
        out.append(Playback("clear"))
        out.append(HeldAudio("drop"))
        out.append(CloseLink(self.link_id))
        out.append(Earcon("error"))
        self._go(ERROR, now, out)

    # ------------------------------------------------------------------ button & commands
    def _on_Press(self, ev: Press, now: float, out: list[Action]) -> None:
        out.append(Notify("button", {"long": ev.long, "origin": ev.origin, "state": self.state, "slot": ev.slot or self.whose.default_slot}))
        if self.state in (IDLE, ERROR, ENDING):  # ENDING: the old socket's late events are stale
            self._begin(ev.long, ev.origin, now, out, ev.slot, ev.agent_id)
        elif self.state in (CONNECTING, LISTENING, SPEAKING):
            if self.whose.other(ev.slot, ev.agent_id):  # someone else: end theirs, start this one
                if not self._starts.allow(ev.origin, now, self.t, out):
                    return  # a start refused ends nothing: it cut the one talking off for no one
                self._finish("switched", now, out)
                self._begin(ev.long, ev.origin, now, out, ev.slot, ev.agent_id, allowed=True)
            else:
                self._finish("button" if ev.origin == "button" else ev.origin, now, out)

    def _on_Start(self, ev: Start, now: float, out: list[Action]) -> None:
        if self.state in (IDLE, ERROR, ENDING):
            self._begin(ev.fresh, ev.origin, now, out, ev.slot, ev.agent_id)

    def _on_End(self, ev: End, now: float, out: list[Action]) -> None:
        if self.state in (CONNECTING, LISTENING, SPEAKING):
            self._finish(ev.reason, now, out)

    def _on_Talk(self, ev: Talk, now: float, out: list[Action]) -> None:
        """Push-to-talk, as `_on_Press` for the start: another slot's button held during a
        conversation ends it and starts its own (its visitor's words never go into the other's
        session), and a release of a button that is not the conversation's changes nothing."""
        busy = self.state in (CONNECTING, LISTENING, SPEAKING)
        switched = False
        if busy and self.whose.other(ev.slot, ev.agent_id):
            if not ev.held or not self._starts.allow("button", now, self.t, out):
                return  # a release of another's button, or a start refused: the conversation goes on
            self._finish("switched", now, out)
            busy, switched = False, True
        self._turns.talk(ev.held, now)
        if ev.held:
            if not busy:  # ENDING too: the old socket's late events are stale (as for a press)
                self._begin(False, "button", now, out, ev.slot, ev.agent_id, allowed=switched)
        elif ev.long and not self._turns.spoke_while_held and busy:
            self._finish("button", now, out)

    def _on_SessionsForgotten(self, ev: SessionsForgotten, now: float, out: list[Action]) -> None:
        target = None if ev.slot is None else (ev.agent_id, ev.slot)
        self.record.resume.forget(target)
        if target is None or target == (self.whose.agent_id, self.whose.slot):  # not another slot's sessions
            self.record.forgotten(live=self.state in (CONNECTING, LISTENING, SPEAKING))
            self._links.request_forgotten = True  # a reconnect before onready asks for no wiped session

    def _on_StoreReloaded(self, ev: StoreReloaded, now: float, out: list[Action]) -> None:
        self.record.resume.reloaded(ev.session_id, ev.age_s, self.whose.default_slot, now)

    # ------------------------------------------------------------------ link
    def _on_LinkReady(self, ev: LinkReady, now: float, out: list[Action]) -> None:
        if ev.link_id != self.link_id or self.state != CONNECTING:
            return
        self.record.ready(ev.session_id, self._links.requested, self.whose.agent_id, self.whose.slot, now, out)
        self._turns.activity_at = now
        named = None if self.record.off_record else ev.session_id  # another's (or forgotten): not published as this one's
        self._links.ready(now, named, self.published_ids()[1], self.whose.fields(), out)
        self._go(LISTENING, now, out)

    def _on_Initiated(self, ev: Initiated, now: float, out: list[Action]) -> None:
        if ev.link_id == self.link_id and self.state == CONNECTING:
            self._links.initiated = True

    def _on_LinkDown(self, ev: LinkDown, now: float, out: list[Action]) -> None:
        if ev.link_id != self.link_id:
            return
        if self.state == ENDING:
            self._go(IDLE, now, out)
            return
        if self.state not in (CONNECTING, LISTENING, SPEAKING):
            return
        unready = not self._links.was_ready  # no link of this conversation said onready yet
        if ev.fatal or (ev.server_closed and unready and self._links.closed_by_server()):
            self._refused(ev.error or "refused", now, out)
            return
        verdict = self._links.reconnects.lost(now, self._links.window_timing(self.t), self._links.since if unready else None)
        if verdict == "window_passed":
            if unready:
                self._not_ready(ev.error or "cannot connect", now, out)
            else:
                self._finish("link_lost", now, out)
                self._go(IDLE, now, out)  # the socket is already gone: nothing to wait for
            return
        if verdict == "too_many":
            self._fail(f"gave up after {self._links.reconnects.count} reconnects in this conversation, the link keeps dropping (last: {ev.error})", now, out, "reconnect_limit")
            return
        self._turns.link_lost(now, self.t, self.state == SPEAKING)  # the reopen's clear: no pause, no reply started
        self._open(now, out, *self._links.reopen(self.session_id, self.published_ids()[0], ev.error, self.t, self.rng, out))

    def _not_ready(self, error: str, now: float, out: list[Action]) -> None:
        """The window passed with no `onready`: a refusal when the current attempt's `initiate`
        reached the server (it had the request and kept silent: once more, fresh), else (the
        network never let it through) the failure it was; a fresh try there only doubled the wait."""
        if self._links.initiated:
            self._refused("never ready", now, out, error)
        else:
            self._fail(error, now, out)

    def _refused(self, error: str, now: float, out: list[Action], message: str | None = None) -> None:
        """A link refused before the first `onready`: asked for once more, fresh (LinkAttempts.refused), or a failure."""
        if self._links.refused(self.session_id, error, self.whose.fields(), out, now, self.record.off_record):
            self._open(now, out, None)
        else:
            self._fail(message or error, now, out)

    # ------------------------------------------------------------------ agent messages
    def _on_FromAgent(self, ev: FromAgent, now: float, out: list[Action]) -> None:
        if ev.link_id != self.link_id:
            return
        msg = ev.message
        if isinstance(msg, p.OnReady) and self.streaming:  # a second one on the live link
            if self.record.renamed(msg.session_id, self.whose.agent_id, self.whose.slot, now, out):
                shown, previous = self.published_ids()
                out.append(Notify("session_changed", {"session_id": shown, "previous": previous, **self.whose.fields()}))
                out.append(StateChanged(self.state, shown, previous, self.whose.slot))
        elif isinstance(msg, p.OnReady):
            self._on_LinkReady(LinkReady(ev.link_id, msg.session_id), now, out)
        elif isinstance(msg, p.SessionEnded) and self.state == CONNECTING:  # before onready: no drop to reconnect after
            if self._links.was_ready:  # a reconnect mid-conversation: the agent ended it meanwhile
                self._finish("agent", now, out)
            else:  # refused: a continuation is asked for once more, fresh; a key, an agent or a quota is not
                self._refused("ended before onready", now, out, "the agent ended the session before it was ready")
        elif not self.streaming:
            return
        elif isinstance(msg, p.SessionEnded):
            self._finish("agent", now, out)
        elif self._turns.agent_said(msg, now, out):  # a clear
            self._stop_speaking(now, out)

    def _on_AgentAudio(self, ev: AgentAudio, now: float, out: list[Action]) -> None:
        if ev.link_id != self.link_id or not self.streaming or len(ev.pcm) < 2:  # under a sample: nothing plays, nothing drains
            return
        self._turns.agent_audio(ev.pcm, now, out)
        self._go(SPEAKING, now, out)

    def _stop_speaking(self, now: float, out: list[Action]) -> None:
        if self.state == SPEAKING:
            self._turns.agent_stopped(now, self.t)
            self._go(LISTENING, now, out)

    def _on_PlaybackDrained(self, ev: PlaybackDrained, now: float, out: list[Action]) -> None:
        self._stop_speaking(now, out)

    def _on_VisitorSpeech(self, ev: VisitorSpeech, now: float, out: list[Action]) -> None:
        self._turns.heard(ev.active, now)

    # ------------------------------------------------------------------ time
    def _on_Tick(self, ev: Tick, now: float, out: list[Action]) -> None:
        if (self.state == ENDING and now - self._state_since >= self.t.ending_timeout_s) or (self.state == ERROR and now - self._state_since >= self.t.error_hold_s):
            self._go(IDLE, now, out)
        elif self.streaming:
            if now - self._started_at >= self.t.max_duration_s:
                self._finish("max_duration", now, out)
            elif self._turns.idle(now, self.t, self.state == LISTENING):
                self._finish("idle", now, out)
        elif self.state == CONNECTING and self._links.reconnects.window_passed(now, self._links.window_timing(self.t)):
            self._on_LinkDown(LinkDown(self.link_id, "reconnect window passed"), now, out)
        elif self.state == CONNECTING and self._links.never_ready(now, self.t):
            self._not_ready(f"the agent did not say onready within {self._links.window_timing(self.t).reconnect_window_s:g} s", now, out)
