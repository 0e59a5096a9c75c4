"""Events and actions of the Conversation: what is fed to it and what it asks the daemon to do.

Tiny frozen dataclasses, no logic: the daemon, the MQTT command path and the tests build the
events; the daemon carries out the actions (see core/conversation.py for the state machine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge_agent.core import protocol as p
from edge_agent.core.slots import DEFAULT_SLOT


# ----------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Press:
    """A button press: short continues the newest session, long starts fresh; during a
    conversation either one ends it. `origin` is 'button', 'badge' or 'mqtt' (for events).
    `slot`/`agent_id` name whose conversation it is (None: the kiosk's default)."""

    long: bool = False
    origin: str = "button"
    slot: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True)
class Start:
    """Explicit start (MQTT `resume` / `new`): ignored unless idle or in error."""

    fresh: bool = False
    origin: str = "mqtt"
    slot: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True)
class End:
    """Explicit end (MQTT `end`, SIGTERM): ignored when nothing is going on."""

    reason: str = "command"


@dataclass(frozen=True)
class Talk:
    """Push-to-talk button held (True) or released (False), for `button.mode = "hold"`.
    `long` on release: it was held for `hold_s` or more (a silent long hold hangs up)."""

    held: bool
    long: bool = False
    slot: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True)
class LinkReady:
    link_id: int
    session_id: str


@dataclass(frozen=True)
class Initiated:
    """The socket of attempt `link_id` is open and its `initiate` went out: from here the server
    has the request, and a window that passes without `onready` is its answer (LinkAttempts)."""

    link_id: int


@dataclass(frozen=True)
class LinkDown:
    """The socket of attempt `link_id` closed or could not be opened."""

    link_id: int
    error: str | None = None
    fatal: bool = False
    server_closed: bool = False
    """The server closed the socket itself, with a code that does not ask to try later (a
    refusal the protocol has no word for, when it comes before `onready`: LinkAttempts)."""


@dataclass(frozen=True)
class FromAgent:
    link_id: int
    message: p.ServerMessage


@dataclass(frozen=True)
class AgentAudio:
    link_id: int
    pcm: bytes


@dataclass(frozen=True)
class PlaybackDrained:
    """The speaker played the last queued agent sample."""


@dataclass(frozen=True)
class VisitorSpeech:
    """The gate opened (True) or closed (False)."""

    active: bool


@dataclass(frozen=True)
class Tick:
    """Periodic clock event for timeouts."""


@dataclass(frozen=True)
class SessionsForgotten:
    """The store was wiped: nothing is left to continue. A conversation running meanwhile goes
    on, but off the record: its session is neither stored nor continued by the next press.
    With `slot`, only that slot of `agent_id` (None: the kiosk's own agent) was forgotten (a
    fleet-wide forget of one slot): a conversation of another slot is not touched."""

    slot: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True)
class StoreReloaded:
    """The store is back on disk after a fault: its newest session (and its age in seconds)
    becomes the one to continue, unless this process has learnt a session since."""

    session_id: str | None
    age_s: float | None


Event = Press | Start | End | Talk | LinkReady | Initiated | LinkDown | FromAgent | AgentAudio | PlaybackDrained | VisitorSpeech | Tick | SessionsForgotten | StoreReloaded


# ----------------------------------------------------------------------------- actions
@dataclass(frozen=True)
class OpenLink:
    link_id: int
    continue_session_id: str | None
    delay_s: float = 0.0
    agent_id: str | None = None
    """None: the configured agent."""
    slot: str = DEFAULT_SLOT


@dataclass(frozen=True)
class CloseLink:
    link_id: int


@dataclass(frozen=True)
class StoreStart:
    session_id: str
    continued_from: str | None
    agent_id: str | None = None
    slot: str = DEFAULT_SLOT


@dataclass(frozen=True)
class StoreEnd:
    session_id: str
    reason: str


@dataclass(frozen=True)
class Play:
    pcm: bytes


@dataclass(frozen=True)
class Playback:
    """Speaker control: 'clear' drops everything queued, 'pause' / 'unpause' hold and resume."""

    command: str


@dataclass(frozen=True)
class Earcon:
    name: str


@dataclass(frozen=True)
class NewVisitor:
    """A conversation starts (a press or a start command): the speech gate forgets the previous
    visitor (their voice level) but keeps what it learned of the room."""


@dataclass(frozen=True)
class HeldAudio:
    """The audio held since the press (or since the link was lost): 'send' it to the link that
    just became ready, ahead of the live stream, or 'drop' it (the conversation ended first)."""

    command: str


@dataclass(frozen=True)
class Notify:
    """Something worth an event line / MQTT event; `kind` is a short code."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StateChanged:
    state: str
    session_id: str | None
    continued_from: str | None
    slot: str = DEFAULT_SLOT


Action = OpenLink | CloseLink | StoreStart | StoreEnd | Play | Playback | Earcon | NewVisitor | HeldAudio | Notify | StateChanged
