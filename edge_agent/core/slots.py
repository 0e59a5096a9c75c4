"""Slots: whose conversation a start is about, and how a badge becomes a slot key.

Sessions are filed per (agent, slot). A slot is `default` (one thread for the kiosk, as before),
an operator's label (a button's `slot`, an MQTT command's `"slot"`, used as given), or a
person's key derived from their badge. A raw badge id never leaves `BadgeKeyer`: it becomes
`b-` + the first 32 hex digits of HMAC-SHA256(fleet secret, id), so the store, the logs, MQTT
and the agent only ever see the key, the same key on every kiosk that shares the secret, and
nobody without the secret can tell which badge it was or test a guess.

Slot labels and agent keys are MQTT topic levels when sessions are shared, so both are limited
to letters, digits and `_ . -`, at most 64 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edge_agent.core.resume import rekeyed
from edge_agent.errors import EdgeAgentError

DEFAULT_SLOT = "default"
MAX_SLOT_CHARS = 64
BADGE_KEY_PREFIX = "b-"
BADGE_KEY_HEX = 32
"""128 bits of the HMAC: collisions between badges are out of reach for any fleet."""
MIN_SECRET_BYTES = 16

_LABEL = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_SLOT_CHARS}}}")


class SlotError(EdgeAgentError):
    """A slot label, agent key or badge secret that cannot be used."""


def is_label(text: str) -> bool:
    """True for a usable slot label or agent key (also a safe MQTT topic level)."""
    return bool(_LABEL.fullmatch(text)) and text not in (".", "..")


def check_slot(label: str) -> str:
    """An operator's slot label itself, or SlotError saying what a slot may contain. A badge
    holder's key (`b-`...) is no operator's label: only a scan of that badge starts it (an MQTT
    press naming a key read off the shared pointers continued that person's conversation)."""
    if not isinstance(label, str) or not is_label(label):
        shown = label[:40] if isinstance(label, str) else type(label).__name__
        raise SlotError(f"slot {shown!r} must be 1-{MAX_SLOT_CHARS} letters, digits, '_', '.' or '-'")
    if label.startswith(BADGE_KEY_PREFIX):
        raise SlotError(f"slot {label[:40]!r}: slots that start with {BADGE_KEY_PREFIX!r} are badge holders', started by a scan of the badge only")
    return label


@dataclass(frozen=True)
class Target:
    """What a start names: a slot and optionally an agent other than the configured one.
    None in a field means "the kiosk's default" (`session.slot`, `agent.agent_id`)."""

    slot: str | None = None
    agent_id: str | None = None


class Whose:
    """Whose the current (or last) conversation is, keyed as its sessions are filed: its `slot`
    and `agent_id`, and what a start that names neither means (the kiosk's `default_slot`, its
    configured agent `own_agent_id`). Sans-I/O bookkeeping for `Conversation`."""

    def __init__(self, default_slot: str, own_agent_id: str | None = None) -> None:
        self.default_slot = default_slot
        self.own_agent_id = own_agent_id
        self.slot = default_slot
        """The slot of the current (or last) conversation."""
        self.agent_id: str | None = None
        """Its agent: None for the configured one (`agent`)."""

    def agent(self, agent_id: str | None) -> str | None:
        """None for the configured agent, named or not: one agent, one key everywhere."""
        return None if agent_id == self.own_agent_id else agent_id

    def other(self, slot: str | None, agent_id: str | None) -> bool:
        """A start naming a slot or agent other than the running conversation's."""
        agent_id = self.agent(agent_id)
        return (slot is not None and slot != self.slot) or (agent_id is not None and agent_id != self.agent_id)

    def take(self, slot: str | None, agent_id: str | None) -> None:
        """A new conversation is the one a start names (None: the kiosk's default)."""
        self.slot = slot or self.default_slot
        self.agent_id = self.agent(agent_id)

    def fields(self) -> dict[str, Any]:
        """The slot (and a non-default agent) for events: a key, never a raw badge id."""
        return {"slot": self.slot, **({"agent_id": self.agent_id} if self.agent_id else {})}

    def reconfigure(self, default_slot: str, own_agent_id: str | None) -> None:
        """A config reload: a new default slot and configured agent id."""
        self.default_slot = default_slot
        self.agent_id = rekeyed(self.agent_id, self.own_agent_id, own_agent_id)  # the last conversation's, as now keyed
        self.own_agent_id = own_agent_id


class BadgeKeyer:
    """Turns raw badge ids into slot keys with the fleet's secret; holds the only copy of the
    secret in the process and never stores an id."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise SlotError(f"badge secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def __repr__(self) -> str:
        return "BadgeKeyer(secret=…)"

    def slot_for(self, badge_id: str) -> str:
        import hashlib  # here, not at the top: every command imports this module through the config
        import hmac

        digest = hmac.new(self._secret, badge_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return BADGE_KEY_PREFIX + digest[:BADGE_KEY_HEX]
