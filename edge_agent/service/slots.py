"""The kiosk's slot wiring: what names a slot (extra buttons, a badge reader), the agent
settings a slot's conversation is opened with, and fleet session sharing.

Kept out of `Kiosk` so it stays glue: these functions get what they need passed in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from edge_agent.core.config import Settings
from edge_agent.core.config_agent import AgentSettings
from edge_agent.core.ports import Reporter
from edge_agent.core.slots import BadgeKeyer, Target
from edge_agent.core.store import SessionStore
from edge_agent.errors import StoreError
from edge_agent.hardware.button import Button

if TYPE_CHECKING:  # the fleet's share is imported only with `session.share` on (memory: see make_share)
    from edge_agent.fleet.pointer import Pointer
    from edge_agent.fleet.share import Filed, Forgotten, SessionShare

log = logging.getLogger("edge_agent")


def slot_inputs(settings: Settings) -> list[Button]:
    """The `[[buttons]]` GPIO buttons and the `[badge]` reader, besides the main button."""
    inputs: list[Button] = []
    if settings.buttons:
        from edge_agent.hardware.gpio import GpioButton

        for i, extra in enumerate(settings.buttons):
            inputs.append(GpioButton(replace(settings.button, pin=extra.pin), Target(extra.slot, extra.agent_id), key=f"buttons[{i}].pin"))
    badge = settings.badge
    if badge.device and badge.secret:
        from edge_agent.hardware.badge import BadgeReader

        inputs.append(BadgeReader(badge, BadgeKeyer(badge.secret)))
    return inputs


KIOSK_WIDE_CONFIG = frozenset({"privacy_settings"})
"""`[agent.config]` keys that are the kiosk's choice, not its agent's: sent to every agent (Data
Opt-Out set for the kiosk must hold for a `[[buttons]]` agent too)."""


def link_settings(settings: Settings, agent_id: str | None, slot: str) -> AgentSettings | None:
    """Agent settings for a conversation of (agent_id, slot), or None when the configured ones
    serve as they are: another agent id, and the slot key in the metadata if asked for. Another
    agent gets none of `[agent.config]`, the configured agent's overrides (its prompt, voice,
    language: a `[[buttons]]` French agent was sent the English one's and spoke English) but its
    KIOSK_WIDE_CONFIG; the kiosk's `[agent.metadata]` goes with every agent."""
    agent, key = settings.agent, settings.session.slot_metadata_key
    if agent_id is None and not key:
        return None
    config = agent.config
    if agent_id is not None and agent_id != agent.agent_id:  # the kiosk's privacy choice goes to every agent
        config = {name: value for name, value in config.items() if name in KIOSK_WIDE_CONFIG}
    return replace(agent, agent_id=agent_id or agent.agent_id, metadata={**agent.metadata, key: slot} if key else agent.metadata, config=config)


def make_share(settings: Settings, reporter: Reporter, store: SessionStore, post: Callable[[Callable[[], None]], None], on_forgotten: Callable[[str, str], None]) -> SessionShare | None:
    """SessionShare on the reporter's MQTT connection, when `session.share` is on; a fleet-wide
    forget of one (agent, slot) reaching this kiosk is told to `on_forgotten(agent, slot)`."""
    if not settings.session.share or not hasattr(reporter, "follow"):
        return None
    # imported here: the share's modules (~0.2 MB traced) are not loaded while it is off
    from edge_agent.fleet.forget import clear_pointers
    from edge_agent.fleet.share import SessionShare

    bus: Any = reporter

    def file(rows: list[Filed]) -> int:
        try:
            return store.merge_shared(rows)
        except StoreError as exc:  # the kiosk keeps working with what it has
            log.error("shared sessions not filed: %s", exc)
            return 0

    def forget_slots(slots: list[tuple[str, str, tuple[str, ...] | None]]) -> list[tuple[str, ...]] | None:
        """A forget naming sessions touches a conversation of its slot only when it deleted some
        (the broker hands every forget back at each reconnect: the conversation running then is
        not one of them); `sessions` None (an empty retained pointer) is the whole slot. The ids
        deleted of each slot (None: unknown, the store failed) go back to the share, which refuses
        them when they are published again (a chain continuing a named one)."""
        try:
            deleted: list[tuple[str, ...]] | None = store.forget_slots(slots)
        except StoreError as exc:
            log.error("%s", exc)
            deleted = None
        if deleted is None or any(deleted):
            log.info("shared sessions of %d slots forgotten (fleet-wide forget)", len(slots) if deleted is None else sum(map(bool, deleted)))
        for i, (agent, slot, sessions) in enumerate(slots):
            if deleted is None or deleted[i] or sessions is None:
                on_forgotten(agent, slot)
        return deleted

    def clear_now(forgets: list[tuple[str, str, Forgotten]]) -> None:
        try:
            log.info("forget: %s", clear_pointers(settings.mqtt, forgets))
        except Exception as exc:  # its own thread: a traceback there said nothing of the forget
            log.error("forget: the fleet's shared pointers were not cleared: %s", exc)

    def clear(forgets: list[tuple[str, str, Forgotten]]) -> None:  # off the loop: it waits for the broker
        threading.Thread(target=clear_now, args=(forgets,), name="forget-shared", daemon=True).start()

    agents = [settings.agent.agent_key, *(b.agent_id for b in settings.buttons if b.agent_id)]
    return SessionShare(bus, settings.mqtt.topic_prefix, settings.device.id, agents, post, file, forget_slots, clear=clear, own=own_pointers(store))


def own_pointers(store: SessionStore) -> list[tuple[str, str, Pointer]]:
    """(agent, slot, pointer) of each slot whose newest session this kiosk started or resumed, as it
    published them (`SessionShare`'s `own`); none when the store fails (the kiosk goes on)."""
    from edge_agent.fleet.ownpointers import MINE_REMEMBERED
    from edge_agent.fleet.pointer import Pointer

    try:
        rows = store.own_newest(MINE_REMEMBERED)
    except StoreError as exc:
        log.error("the sessions started here are not published again: %s", exc)
        return []
    # a session resumed here (its id kept: it continued itself) was published naming no predecessor
    # (`announce`); rebuilt naming what it first continued, it differed from the broker's copy of the
    # same pointer and was published again as a correction, one per resumed slot at every restart
    return [
        (s.agent, s.slot, Pointer(s.id, s.started_at, s.ended_at, s.continued_from, replaces=replaces) if s.resumed_at is None else Pointer(s.id, s.resumed_at, s.ended_at)) for s, replaces in rows
    ]


def slot_metrics(inputs: list[Button], share: SessionShare | None) -> dict[str, Any]:
    """Badge reader and session sharing counters for the metrics, when those are on."""
    out: dict[str, Any] = {}
    for b in inputs:
        counts = getattr(b, "counts", None)
        if counts is not None:
            out.update(badge_scans=counts["accepted"], badge_rejected=sum(counts[k] for k in ("too_short", "too_long", "bad_chars", "timeouts", "flood")))
    if share is not None:
        counts = share.counts
        out.update(shared_filed=counts["filed"], shared_rejected=counts["rejected"] + counts["dropped"], shared_unsent=counts["unsent"])
        out.update(shared_forgets=counts["forgotten"], shared_forgotten_refused=counts["covered"])
    return out
