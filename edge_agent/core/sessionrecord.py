"""SessionRecord: which platform session a conversation is in, and what of it the kiosk keeps.

Part of the sans-I/O `Conversation` (core/conversation.py): it turns the session ids the agent
names (`onready`, also after a reconnect, and a second `onready` on a live link) into the store's
actions (`StoreStart`, `StoreEnd`) and tells `ResumeMemory` (core/resume.py) which session the
next short press continues. A conversation whose sessions were forgotten meanwhile (an MQTT
`forget_sessions`) is off the record: nothing of it is stored or remembered.

A second `onready` naming another session on a live link is the platform's latest word on the
conversation: the vendor's own client keeps the newest id, so the kiosk stores it and continues
it next time (it kept the first, and the next press asked for a session the platform had moved
on from). Each such change is a store write: a server repeating it with a new id in every frame
would wear the SD card, so a conversation takes at most MAX_RENAMES of them.

An id the kiosk holds for another conversation target (another slot: a badge holder's, another
agent's) is never taken for this one (`Foreign`, the store's answer): a server naming it in a
second `onready` is refused, and a conversation whose `onready` names it (the first, or one after
a reconnect) runs off the record without ever calling it its own: not in its state, and not
asked for by its next reconnect. Taken, the next anonymous press continued the badge holder's
private conversation.
"""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.core.events import Action, Notify, StoreEnd, StoreStart
from edge_agent.core.resume import ResumeMemory

Foreign = Callable[[str, "str | None", str], bool]
"""(session id, agent_id or None for the configured agent, slot) -> the kiosk holds that id for
another (agent, slot): the configured agent named by its own id is the same agent."""

MAX_RENAMES = 3
"""Session ids a live link may move to in one conversation (a second `onready` each)."""


class SessionRecord:
    """The current conversation's session id, the one it continued, and their storing."""

    def __init__(self, resume: ResumeMemory, foreign: Foreign | None = None) -> None:
        self.resume = resume
        self.foreign = foreign
        self.session_id: str | None = None
        self.continued_from: str | None = None
        self.off_record = False
        """The sessions were forgotten during this conversation: none of it is kept."""
        self.renames = 0

    def begin(self) -> None:
        """A new conversation: no session yet."""
        self.session_id = self.continued_from = None
        self.off_record = False
        self.renames = 0

    def ready(self, session_id: str, requested: str | None, agent_id: str | None, slot: str, now: float, out: list[Action]) -> None:
        """The link's first `onready` (of the conversation, or after a reconnect): `requested` is
        the session the link asked to continue. Stored before any other action."""
        previous = self.session_id
        self.continued_from = requested
        if self._foreign(session_id, agent_id, slot):
            # never this conversation's id: not in its state, not asked for by its next reconnect
            # (which asks for `previous`, its own, or what the press asked for); its own session
            # so far is stored as ended, and the rest is kept out of the store and the next press
            why = f"the agent named session {session_id}, which this kiosk holds for another slot or agent: this conversation is not stored"
            out.append(Notify("error", {"code": "agent_session_of_another", "message": why}))
            if previous is not None and not self.off_record:
                out.append(StoreEnd(previous, "reconnected"))
                self.resume.remember(previous, agent_id, slot, now)
            self.off_record = True
            return
        self.session_id = session_id
        if self.off_record:
            return
        if previous is not None and previous != session_id:
            out.append(StoreEnd(previous, "reconnected"))
        self.resume.remember(session_id, agent_id, slot, now)
        out.insert(0, StoreStart(session_id, requested, agent_id, slot))

    def renamed(self, session_id: str, agent_id: str | None, slot: str, now: float, out: list[Action]) -> bool:
        """A further `onready` on the live link: True when the conversation moved to
        `session_id` (the old one stored as ended "replaced", the new one as continuing it)."""
        previous = self.session_id
        if previous is None or session_id == previous:
            return False  # the same id again: nothing changed
        if self.renames < MAX_RENAMES and self._foreign(session_id, agent_id, slot):
            self.renames += 1
            out.append(Notify("error", {"code": "agent_renames", "message": f"the agent named session {session_id}, which this kiosk holds for another slot or agent; keeping {previous}"}))
            return False
        if self.renames >= MAX_RENAMES:
            if self.renames == MAX_RENAMES:  # said once
                self.renames += 1
                out.append(Notify("error", {"code": "agent_renames", "message": f"the agent named a new session id more than {MAX_RENAMES} times in one conversation; keeping {previous}"}))
            return False
        self.renames += 1
        self.session_id, self.continued_from = session_id, previous
        if not self.off_record:
            out.append(StoreEnd(previous, "replaced"))
            self.resume.remember(session_id, agent_id, slot, now)
            out.append(StoreStart(session_id, previous, agent_id, slot))
        return True

    def _foreign(self, session_id: str, agent_id: str | None, slot: str) -> bool:
        """The kiosk holds `session_id` for another (agent, slot) than this conversation's."""
        return self.foreign is not None and self.foreign(session_id, agent_id, slot)

    def end(self, reason: str, agent_id: str | None, slot: str, now: float, out: list[Action]) -> None:
        """The conversation ended: its session stored as ended and remembered for the next press."""
        if self.off_record:  # forgotten meanwhile: nothing of it is kept or reported as state
            self.session_id = self.continued_from = None
        elif self.session_id is not None:
            out.append(StoreEnd(self.session_id, reason))
            self.resume.remember(self.session_id, agent_id, slot, now)

    def forgotten(self, live: bool) -> None:
        """The sessions were forgotten: a live conversation goes on off the record, and an ended
        one's ids are dropped."""
        if live:
            self.off_record = True
        else:
            self.session_id = self.continued_from = None
