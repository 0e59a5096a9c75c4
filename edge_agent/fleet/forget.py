"""Sending a fleet-wide forget: a retained Forgotten for each slot, naming the slot's sessions
(fleet/pointer.py), and the slot's retained pointer cleared; from the kiosk's `forget_sessions`
(SessionShare.forget, on a thread of its own) or from `edge-agent sessions --forget`."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable

from edge_agent.core.config_mqtt import MqttSettings
from edge_agent.core.slots import is_label
from edge_agent.core.storedsession import StoredSession
from edge_agent.fleet.pointer import MAX_FORGOTTEN_IDS, Forgotten, forgotten_topic, pointer_topic

Slots = dict[tuple[str, str], tuple[str, ...]]
"""(agent, slot): the ids of its sessions, newest first."""


def slot_sessions(sessions: Iterable[StoredSession]) -> Slots:
    """The ids of each (agent, slot)'s sessions, in the order given (the store's: newest first)."""
    slots: dict[tuple[str, str], list[str]] = {}
    for session in sessions:
        slots.setdefault((session.agent, session.slot), []).append(session.id)
    return {where: tuple(ids) for where, ids in slots.items()}


def forgets_of(slots: Slots, now: float, kiosk: str | None) -> list[tuple[str, str, Forgotten]]:
    """A Forgotten for each slot that can be named on the broker, naming its newest sessions."""
    return [(a, s, Forgotten(now, kiosk, tuple(dict.fromkeys(ids))[:MAX_FORGOTTEN_IDS])) for (a, s), ids in sorted(slots.items()) if is_label(a) and is_label(s) and ids]


def clear_pointers(settings: MqttSettings, forgets: list[tuple[str, str, Forgotten]], timeout_s: float = 10.0) -> str:
    """`edge-agent sessions --forget` with sharing on, and the kiosk's `forget_sessions` (on a
    thread of its own): each slot's retained Forgotten, and its retained pointer cleared."""
    from edge_agent.fleet.mqttclient import make_client

    if not forgets:
        return "no shared session pointers to clear"
    client = make_client(settings, f"edge-agent-forget-{os.getpid()}-{int(time.time() * 1000) % 100000}")  # one id each: kiosks forgetting at once took each other's over
    try:
        client.connect(settings.host, settings.port, keepalive=30)
    except OSError as exc:
        return f"shared pointers NOT cleared: cannot reach {settings.host}:{settings.port} ({exc}); send forget_sessions over MQTT later"
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            return f"shared pointers NOT cleared: {settings.host}:{settings.port} did not accept the connection"
        infos = []
        for a, s, forgotten in forgets:  # the forget first: a kiosk that hears only it forgets too
            infos.append(client.publish(forgotten_topic(settings.topic_prefix, a, s), forgotten.to_wire(), qos=1, retain=True))
            infos.append(client.publish(pointer_topic(settings.topic_prefix, a, s), b"", qos=1, retain=True))
        for info in infos:
            info.wait_for_publish(timeout_s)
        unsent = sum(not info.is_published() for info in infos)  # the wait ends at the timeout too
    except (RuntimeError, ValueError) as exc:
        return f"shared pointers NOT all cleared: {exc}"
    finally:
        client.disconnect()
        client.loop_stop()
    if unsent:
        return f"shared pointers NOT all cleared: {unsent} of {len(infos)} messages unconfirmed by the broker within {timeout_s:g} s; send forget_sessions over MQTT later"
    return f"cleared {len(forgets)} shared session pointers"
