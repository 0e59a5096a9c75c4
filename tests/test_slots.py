"""Slots: keys from badges, config of badges and several buttons, the conversation's rules for
whose conversation a start is, and a kiosk with two GPIO buttons (gpiozero MockFactory pins),
one per language."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import KioskThread, kiosk_settings, toml_dump, wait_for
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from edge_agent.cli import main
from edge_agent.core import config
from edge_agent.core import conversation as c
from edge_agent.core.slots import BadgeKeyer, SlotError, check_slot, is_label
from edge_agent.core.timing import Timing
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.errors import EX_CONFIG, ConfigError
from edge_agent.fleet.commands import Command


def test_badge_keys_are_keyed_hashes() -> None:
    one, two = BadgeKeyer(b"a" * 16), BadgeKeyer(b"b" * 16)
    key = one.slot_for("04:A2:19:7F")
    assert key == one.slot_for("04:A2:19:7F") and key != two.slot_for("04:A2:19:7F") and key != one.slot_for("04:A2:19:7E")
    assert key.startswith("b-") and len(key) == 34 and is_label(key)  # a topic level; no operator's slot (check_slot)
    assert "a" * 16 not in repr(one)
    with pytest.raises(SlotError):
        BadgeKeyer(b"short")
    for bad in ("", "a/b", "+", "#", "..", "x" * 65, "naïve"):
        with pytest.raises(SlotError):
            check_slot(bad)


def test_badge_buttons_and_share_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret"
    secret.write_text("0123456789abcdef0123\n")
    s = config.from_dict({"badge": {"device": "/dev/input/by-id/x", "secret_file": str(secret)}, "buttons": [{"pin": 5, "slot": "en"}, {"pin": 6, "agent_id": "agent-fr"}]})
    assert s.badge.secret is None  # read only by what runs the reader (`sessions`, `gate` never need it)
    assert s.badge.with_secret().secret == b"0123456789abcdef0123" and "0123456789" not in repr(s.badge.with_secret())
    assert [(b.pin, b.slot, b.agent_id) for b in s.buttons] == [(5, "en", None), (6, None, "agent-fr")]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"badge": {"device": "/dev/input/x"}}, "badge.secret_file"),
        ({"badge": {"min_length": 10, "max_length": 5}}, "badge.max_length"),
        ({"buttons": [{"slot": "x"}]}, r"buttons\[0\].pin"),
        ({"buttons": [{"pin": 17}]}, r"buttons\[0\].pin"),
        ({"buttons": [{"pin": 5}, {"pin": 5}]}, r"buttons\[1\].pin"),
        ({"buttons": [{"pin": 5, "slot": "a b"}]}, r"buttons\[0\].slot"),
        ({"buttons": [{"pin": 5, "colour": "red"}]}, r"buttons\[0\].colour"),
        ({"buttons": [{"pinn": 5}]}, r"buttons\[0\].pinn: unknown key \(did you mean pin\?\)"),  # not "pin: missing"
        ({"buttons": {"pin": 5}}, "buttons"),
        ({"session": {"share": True}}, "session.share"),
        ({"session": {"slot": "a/b"}}, "session.slot"),
        ({"session": {"slot": "b-0123"}}, "session.slot"),  # a badge holder's key: a scan's only
        ({"buttons": [{"pin": 5, "slot": "b-0123"}]}, r"buttons\[0\].slot"),
        ({"device": {"id": "_sessions"}}, "device.id"),
    ]
    for data, key in bad:
        with pytest.raises(ConfigError, match=key):
            config.from_dict(data)
    short = tmp_path / "short"
    short.write_text("too short\n")
    for path in (tmp_path / "missing", short):  # found out by what reads it: run (validate_for_run) and doctor
        with pytest.raises(ConfigError, match=r"badge\.secret_file"):
            config.from_dict({"badge": {"device": "/dev/input/x", "secret_file": str(path)}}).badge.with_secret()
    # a badge reader without its secret stops the daemon with one line and exit 78
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"badge": {"device": "/dev/input/by-id/reader"}}))
    assert main(["run", "-c", str(cfg)]) == EX_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "badge.secret_file" in err[0]


def _conv(stored: dict[tuple[str | None, str], tuple[str, float]]) -> c.Conversation:
    return c.Conversation(Timing(), "s-default", 10.0, recall=lambda agent, slot: stored.get((agent, slot)))


def _ready(conv: c.Conversation, sid: str, now: float) -> list[c.Action]:
    return conv.handle(c.LinkReady(conv.link_id, sid), now)


def test_each_slot_continues_its_own_newest_session() -> None:
    stored = {(None, "b-alice"): ("s-alice", 60.0), (None, "default"): ("s-default", 10.0), ("agent-fr", "default"): ("s-fr", 5.0)}
    conv = _conv(stored)
    acts = conv.handle(c.Press(origin="badge", slot="b-alice"), 0.0)
    assert c.OpenLink(1, "s-alice", 0.0, None, "b-alice") in acts
    assert any(isinstance(a, c.Notify) and a.kind == "conversation_requested" and a.fields["slot"] == "b-alice" for a in acts)
    acts = _ready(conv, "s-alice-2", 1.0)
    assert acts[0] == c.StoreStart("s-alice-2", "s-alice", None, "b-alice")
    assert c.StateChanged(c.LISTENING, "s-alice-2", "s-alice", "b-alice") in acts
    # the main button (no slot) ends it, like any press
    acts = conv.handle(c.Press(), 2.0)
    ended = [a for a in acts if isinstance(a, c.Notify) and a.kind == "conversation_ended"]
    assert ended[0].fields["reason"] == "button" and ended[0].fields["slot"] == "b-alice"
    conv.handle(c.LinkDown(conv.link_id), 2.1)
    # what this process learnt wins for its slot; the store answers for the others
    stored[(None, "b-alice")] = ("s-alice-2", 0.0)
    assert conv.continuation_candidate(3.0, "b-alice") == "s-alice-2"
    assert conv.continuation_candidate(3.0) == "s-default"
    assert conv.continuation_candidate(3.0, agent_id="agent-fr") == "s-fr"
    # another kiosk shared a newer session of alice's: the store's answer replaces ours
    stored[(None, "b-alice")] = ("s-alice-elsewhere", 1.0)
    assert conv.continuation_candidate(4.0, "b-alice") == "s-alice-elsewhere"
    # the MQTT `new` for a slot starts fresh there
    acts = conv.handle(c.Start(fresh=True, slot="b-alice"), 5.0)
    assert c.OpenLink(conv.link_id, None, 0.0, None, "b-alice") in acts


def test_someone_else_during_a_conversation_ends_it_and_starts_theirs() -> None:
    conv = _conv({(None, "b-bob"): ("s-bob", 30.0)})
    conv.handle(c.Press(origin="badge", slot="b-alice"), 0.0)
    _ready(conv, "s-alice", 0.5)
    acts = conv.handle(c.Press(origin="badge", slot="b-bob"), 1.0)
    kinds = [(type(a).__name__, getattr(a, "kind", None)) for a in acts]
    assert ("StoreEnd", None) in kinds and kinds.index(("Notify", "conversation_ended")) < kinds.index(("Notify", "conversation_requested"))
    assert c.StoreEnd("s-alice", "switched") in acts and c.OpenLink(conv.link_id, "s-bob", 0.0, None, "b-bob") in acts
    assert conv.state == c.CONNECTING and conv.whose.slot == "b-bob"
    # bob's badge again during his own conversation: it ends, like a press
    _ready(conv, "s-bob-2", 1.5)
    conv.handle(c.Press(origin="badge", slot="b-bob"), 2.0)
    assert conv.state == c.ENDING
    # a button for another agent during a conversation switches too
    conv.handle(c.Press(), 3.0)
    _ready(conv, "s-d", 3.1)
    conv.handle(c.Press(agent_id="agent-fr"), 4.0)
    assert conv.state == c.CONNECTING and conv.whose.agent_id == "agent-fr" and conv.whose.slot == "default"


def test_slot_commands_through_the_kiosk(tmp_path: Path, sim: AgentSimulator) -> None:
    settings = kiosk_settings(tmp_path, sim.url, session={"slot": "lobby"})
    replies: list[dict[str, Any]] = []
    with KioskThread(settings) as k:
        run = lambda cmd: k.loop.call_soon_threadsafe(k.kiosk.run_command, cmd, replies.append)  # noqa: E731
        run(Command("resume", "r1", "guest-1"))
        k.wait_state(c.LISTENING)
        first = sim.sessions[-1]
        run(Command("new", "r2", "guest-1"))  # busy: refused, nothing changes
        wait_for(lambda: len(replies) == 2, 20, "two replies")
        assert replies[1]["ok"] is False and "busy" in replies[1]["error"]
        run(Command("press", "r3"))
        k.wait_state(c.IDLE)
        run(Command("press", "r4"))  # no slot: the kiosk's own slot, not the guest's
        k.wait_state(c.LISTENING)
        assert sim.sessions[-1].continued_from is None and k.kiosk.conversation.whose.slot == "lobby"
        run(Command("press", "r5", "guest-1"))  # another slot mid-conversation: switched
        wait_for(lambda: len(sim.sessions) == 3 and k.state == c.LISTENING, 10, "guest-1 again")
        assert sim.sessions[-1].continued_from == first.session_id
        slots = {(s.id, s.slot, s.end_reason) for s in k.on_loop(k.kiosk.store.recent)}  # the store's connection is the loop's
        assert (sim.sessions[1].session_id, "lobby", "switched") in slots and (first.session_id, "guest-1", "mqtt") in slots


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    factory = MockFactory()
    old = Device.pin_factory
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = old


def _tap(pins: MockFactory, pin: int) -> None:
    pins.pin(pin).drive_low()
    time.sleep(0.05)
    pins.pin(pin).drive_high()


def test_two_buttons_one_per_language(tmp_path: Path, sim: AgentSimulator, pins: MockFactory) -> None:
    buttons = [{"pin": 5, "slot": "english"}, {"pin": 6, "slot": "french", "agent_id": "agent-fr"}]
    settings = kiosk_settings(tmp_path, sim.url, button={"bounce_s": 0.0}, buttons=buttons)
    with KioskThread(settings) as k:
        _tap(pins, 5)
        k.wait_state(c.LISTENING)
        english = sim.sessions[-1]
        assert english.initiate["data"]["agent"]["agent_id"] == "agent-1" and k.kiosk.conversation.whose.slot == "english"
        _tap(pins, 6)  # the other language's button mid-conversation: switch
        wait_for(lambda: len(sim.sessions) == 2 and k.state == c.LISTENING, 10, "the French conversation")
        assert sim.sessions[-1].initiate["data"]["agent"]["agent_id"] == "agent-fr"
        _tap(pins, 6)  # the same button again: it ends
        k.wait_state(c.IDLE)
        _tap(pins, 5)
        wait_for(lambda: len(sim.sessions) == 3 and k.state == c.LISTENING, 10, "English again")
        assert sim.sessions[-1].continued_from == english.session_id
        rows = {s.id: (s.agent, s.slot) for s in k.on_loop(k.kiosk.store.recent)}
        assert rows[sim.sessions[1].session_id] == ("agent-fr", "french")

