"""The fleet's shared sessions on the wire: what one kiosk tells the others about a slot.

    <prefix>/_sessions/<agent>/<slot>              retained: the slot's newest session, a Pointer
    {"v": 1, "session_id": "...", "continued_from": "..." | null,
     "started_at": <unix s>, "ended_at": <unix s> | null, "kiosk": "<device id>",
     "replaces": "..."}                        (optional: a fresh start's predecessor, below)
    <prefix>/_sessions/<agent>/<slot>/forgotten    retained: the slot's forget, a Forgotten
    {"v": 1, "forgotten_at": <unix s>, "kiosk": "<device id>" | null, "sessions": ["...", ...]}

A Forgotten names the sessions it forgets (the forgetting kiosk's, newest first, at most
MAX_FORGOTTEN_IDS), not a time: kiosks' clocks disagree (a Pi without a battery clock boots in
the past), ids do not. It lives beside the pointer, not in its place, so no pointer published
later (a kiosk's own, sent again on reconnect from before it heard the forget) can take it off
the broker. Both are untrusted when they arrive: sizes, charsets and times are checked here,
once, and a bad one raises ShareError. SessionShare (share.py) holds the rules.

`replaces` names the slot's newest session the kiosk knew when it started a fresh one (a `new`
command, not a continuation): like `continued_from`, it was made knowing that session, so it is
newer whatever the kiosks' clocks say. Sent only by a fresh start (at most one of the two: the
pointer stays under MAX_POINTER_BYTES); older kiosks leave it out and ignore it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from edge_agent.core.config import SHARED_SESSIONS_LEVEL
from edge_agent.core.protocol import SESSION_ID_CHARS
from edge_agent.core.slots import is_label
from edge_agent.errors import EdgeAgentError

MAX_POINTER_BYTES = 512
MAX_FORGOTTEN_IDS = 32
"""Sessions a Forgotten names: a slot's newest (one person's continued conversations)."""
MAX_FORGOTTEN_BYTES = 8192
JOINED_IDS = 4 * MAX_FORGOTTEN_IDS
"""Session ids kept of one slot's forgets heard together (the newest first)."""
FORGOTTEN_LEVEL = "forgotten"


class ShareError(EdgeAgentError):
    """A pointer that cannot be used."""


@dataclass(frozen=True)
class Pointer:
    session_id: str
    started_at: float
    ended_at: float | None = None
    continued_from: str | None = None
    kiosk: str | None = None
    replaces: str | None = None

    def follows(self, session_id: str) -> bool:
        """Made knowing `session_id` was the slot's newest (continuing it, or started fresh in its
        place): newer than it whatever the kiosks' clocks say."""
        return self.session_id != session_id and session_id in (self.continued_from, self.replaces)

    @property
    def rank(self) -> tuple[float, str]:
        """Newest wins; equal start times are settled by the session id, the same everywhere."""
        return (self.started_at, self.session_id)

    def to_wire(self) -> bytes:
        data = {"v": 1, "session_id": self.session_id, "continued_from": self.continued_from, "started_at": self.started_at, "ended_at": self.ended_at, "kiosk": self.kiosk}
        if self.replaces is not None and self.continued_from is None:
            data["replaces"] = self.replaces
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_wire(cls, payload: bytes, now: float) -> Pointer:
        """Validates an untrusted pointer; future timestamps are clamped to `now`."""
        data = _object(payload, MAX_POINTER_BYTES)
        sid, cont, kiosk, replaces = data.get("session_id"), data.get("continued_from"), data.get("kiosk"), data.get("replaces")
        if not isinstance(sid, str) or not SESSION_ID_CHARS.fullmatch(sid):
            raise ShareError("bad session_id")
        if cont is not None and (not isinstance(cont, str) or not SESSION_ID_CHARS.fullmatch(cont)):
            raise ShareError("bad continued_from")
        if replaces is not None and (not isinstance(replaces, str) or not SESSION_ID_CHARS.fullmatch(replaces)):
            raise ShareError("bad replaces")
        if kiosk is not None and (not isinstance(kiosk, str) or not is_label(kiosk)):
            raise ShareError("bad kiosk")
        started_at = _time(data.get("started_at"), now)
        if started_at is None:
            raise ShareError("bad started_at")
        ended_at = _time(data.get("ended_at"), now)
        if ended_at is not None and ended_at < started_at:
            ended_at = started_at
        # a session continuing itself (the platform kept its id) continues nothing: read as continuing
        # ours, it took our own pointer's echo, or a resume of it elsewhere, for a newer session
        cont = None if cont == sid else cont
        return cls(sid, started_at, ended_at, cont, kiosk, None if replaces in (sid, cont) else replaces)


@dataclass(frozen=True)
class Forgotten:
    """A fleet-wide forget of one slot's sessions. `sessions` None: all of them (an empty
    retained pointer, as older kiosks and an admin's `mosquitto_pub -r -n` send it)."""

    forgotten_at: float
    kiosk: str | None = None
    sessions: tuple[str, ...] | None = None

    def covers(self, session_id: str, continued_from: str | None) -> bool:
        """Whether a session is one this forget forgets: named, or continuing one named (a
        kiosk offline at the forget continued the person's forgotten conversation)."""
        return self.sessions is None or session_id in self.sessions or (continued_from is not None and continued_from in self.sessions)

    def joined(self, other: Forgotten) -> Forgotten:
        """Both forgets at once (two arrived before either was filed)."""
        if self.sessions is None or other.sessions is None:
            return Forgotten(max(self.forgotten_at, other.forgotten_at), other.kiosk)
        joined = tuple(dict.fromkeys(other.sessions + self.sessions))[:JOINED_IDS]  # a flood on one slot stays bounded
        return Forgotten(max(self.forgotten_at, other.forgotten_at), other.kiosk, joined)

    def to_wire(self) -> bytes:
        data = {"v": 1, "forgotten_at": self.forgotten_at, "kiosk": self.kiosk, "sessions": list(self.sessions or ())}
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_wire(cls, payload: bytes, now: float) -> Forgotten:
        """Validates an untrusted forget: at least one and at most MAX_FORGOTTEN_IDS session ids."""
        data = _object(payload, MAX_FORGOTTEN_BYTES)
        at, kiosk, sessions = _time(data.get("forgotten_at"), now), data.get("kiosk"), data.get("sessions")
        if at is None:
            raise ShareError("bad forgotten_at")
        if kiosk is not None and (not isinstance(kiosk, str) or not is_label(kiosk)):
            raise ShareError("bad kiosk")
        if not isinstance(sessions, list) or not 0 < len(sessions) <= MAX_FORGOTTEN_IDS:
            raise ShareError(f"sessions must list 1 to {MAX_FORGOTTEN_IDS} session ids")
        if not all(isinstance(sid, str) and SESSION_ID_CHARS.fullmatch(sid) for sid in sessions):
            raise ShareError("bad session id in sessions")
        return cls(at, kiosk, tuple(dict.fromkeys(sessions)))


def _object(payload: bytes, limit: int) -> dict[str, Any]:
    if len(payload) > limit:
        raise ShareError(f"larger than {limit} bytes")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ShareError("not JSON") from None
    if not isinstance(data, dict):
        raise ShareError("not a JSON object")
    return data


def finite_number(value: Any) -> float | None:
    """A finite number from anyone's message, else None (a string, a bool, nan, a JSON integer of
    hundreds of digits, which no float holds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _time(value: Any, now: float) -> float | None:
    at = finite_number(value)
    return None if at is None or at <= 0 else min(at, now)


def waiting(pending: Pointer, heard: Pointer) -> Pointer | None:
    """What waits to be filed for a slot once `heard` arrives while `pending` waits (None: `pending`
    stays), as filing the two in turn would leave the store (`storerows.merge_pointer`): the same
    session's latest start and end (its end was dropped as no newer than its start, and the person
    aged from the start elsewhere), one continuing the other whatever the clocks say (the one with
    the later start was kept, and the person's conversation at a kiosk whose clock is behind lost),
    else the newer."""
    if heard.session_id == pending.session_id:
        ends = [t for t in (pending.ended_at, heard.ended_at) if t is not None]
        started, cont = max((pending.started_at, pending.continued_from), (heard.started_at, heard.continued_from), key=lambda p: p[0])
        joined = Pointer(heard.session_id, started, max(ends) if ends else None, cont, heard.kiosk, heard.replaces or pending.replaces)
        return None if joined == pending else joined
    if heard.follows(pending.session_id):
        return heard
    if pending.follows(heard.session_id):
        return None
    return heard if heard.rank > pending.rank else None


def pointer_topic(prefix: str, agent: str, slot: str) -> str:
    return f"{prefix}/{SHARED_SESSIONS_LEVEL}/{agent}/{slot}"


def forgotten_topic(prefix: str, agent: str, slot: str) -> str:
    return f"{pointer_topic(prefix, agent, slot)}/{FORGOTTEN_LEVEL}"


Filed = tuple[str, str, str, str | None, float, float | None, str | None]
"""(agent, slot, session_id, continued_from, started_at, ended_at, replaces), as SessionStore.merge_shared takes them."""


def slot_of(topic: str, prefix: str, agents: list[str]) -> tuple[tuple[str, str] | None, bool]:
    """(agent, slot) of a pointer's or a forget's topic under `prefix` for one of `agents` (None:
    neither, or a level that is no label), and whether it is a forget's."""
    head = f"{prefix}/{SHARED_SESSIONS_LEVEL}/"
    if not topic.startswith(head):
        return None, False
    parts = topic[len(head) :].split("/")
    is_forget = len(parts) == 3 and parts[2] == FORGOTTEN_LEVEL
    if len(parts) != 2 + is_forget or parts[0] not in agents or not is_label(parts[1]):
        return None, False
    return (parts[0], parts[1]), is_forget
