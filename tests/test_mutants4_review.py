"""Pins found by mutation-testing fleet/commands.py and core/slots.py: what a kiosk accepts and
refuses from untrusted MQTT commands, slot labels and badge secrets, at the exact boundaries."""

from __future__ import annotations

import json

import pytest

from edge_agent.core.slots import BadgeKeyer, SlotError, check_slot, is_label
from edge_agent.fleet.commands import Command, CommandError, parse_command

# The documented contract, spelled out (not imported) so a changed constant is caught.
MAX_COMMAND_BYTES = 4096
MAX_SLOT_CHARS = 64
MIN_SECRET_BYTES = 16


def _padded(size: int) -> bytes:
    """A valid `ping` command padded with JSON whitespace to exactly `size` bytes."""
    body = b'{"action": "ping"}'
    return body + b" " * (size - len(body))


def test_command_size_limit_is_exact() -> None:
    """A command of MAX_COMMAND_BYTES is taken and one byte more is refused before any JSON
    parsing: the bound on what an attacker can make the kiosk decode."""
    assert parse_command(_padded(MAX_COMMAND_BYTES)) == Command("ping")
    with pytest.raises(CommandError, match="larger than"):
        parse_command(_padded(MAX_COMMAND_BYTES + 1))


def test_a_command_without_slot_or_id_is_accepted() -> None:
    """The plainest command (no id, no slot) runs: the id and slot checks apply only when present."""
    assert parse_command(b'{"action": "end"}') == Command("end")
    assert parse_command(b'{"action": "press", "id": "abc"}') == Command("press", "abc")
    assert parse_command(b'{"action": "press", "id": 7}') == Command("press", 7)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe",
        b"not json",
        b'["action", "press"]',
        b'"press"',
        b"{}",
        b'{"action": 1}',
        b'{"action": "reboot"}',
        b'{"action": "press", "shell": "rm -rf /"}',
        b'{"action": "press", "id": true}',
        b'{"action": "press", "id": 1.5}',
        b'{"action": "press", "id": {"a": 1}}',
        b'{"action": "press", "id": [1]}',
        b'{"action": "press", "id": "' + b"x" * 129 + b'"}',
        b'{"action": "press", "id": ' + b"9" * 129 + b"}",
    ],
)
def test_malformed_commands_are_refused_with_a_command_error(payload: bytes) -> None:
    """Non-JSON, non-objects, a missing/non-string/unknown action, an unknown field and a
    wrong-typed or oversized id are each a CommandError (never another exception, never run)."""
    with pytest.raises(CommandError):
        parse_command(payload)


def test_id_length_limit_is_exact() -> None:
    """An id of 128 characters is kept for the reply; 129 is refused."""
    assert parse_command(json.dumps({"action": "ping", "id": "x" * 128}).encode()).id == "x" * 128
    with pytest.raises(CommandError):
        parse_command(json.dumps({"action": "ping", "id": "x" * 129}).encode())


def test_a_refusal_carries_its_message_and_the_commands_id() -> None:
    """The refusal names what was wrong and echoes the id, so the sender can match the reply."""
    with pytest.raises(CommandError) as err:
        parse_command(b'{"action": "reboot", "id": "r1"}')
    assert err.value.command_id == "r1" and "unknown action" in str(err.value)


def test_slot_label_length_limit_is_exact() -> None:
    """A slot label of MAX_SLOT_CHARS is a usable topic level; one more is not."""
    assert check_slot("x" * MAX_SLOT_CHARS) == "x" * MAX_SLOT_CHARS
    assert parse_command(json.dumps({"action": "press", "slot": "x" * MAX_SLOT_CHARS}).encode()).slot == "x" * MAX_SLOT_CHARS
    assert not is_label("x" * (MAX_SLOT_CHARS + 1))


@pytest.mark.parametrize("bad", ["a b", "a\nb", "a\x00", "a/b", "a+", "#", ".", "..", "x\n", "é"])
def test_slot_labels_with_a_bad_char_are_refused(bad: str) -> None:
    """Only letters, digits and `_ . -` (whole label, trailing newline included), and never `.`/`..`:
    a slot becomes an MQTT topic level and a store key."""
    assert not is_label(bad)
    with pytest.raises(SlotError):
        check_slot(bad)


def test_badge_secret_length_limit_is_exact() -> None:
    """A badge secret shorter than MIN_SECRET_BYTES is refused (badge keys would be guessable);
    one of exactly that length is taken."""
    with pytest.raises(SlotError):
        BadgeKeyer(b"k" * (MIN_SECRET_BYTES - 1))
    assert BadgeKeyer(b"k" * MIN_SECRET_BYTES).slot_for("x").startswith("b-")


@pytest.mark.parametrize("action", ["long_press", "end", "forget_sessions", "forget_echo_grade", "ping"])
def test_a_slot_on_an_action_that_takes_none_is_refused(action: str) -> None:
    """Only press, resume and new name a slot; a slot elsewhere is refused, not silently ignored."""
    with pytest.raises(CommandError, match="'slot' goes with"):
        parse_command(json.dumps({"action": action, "slot": "x"}).encode())


def test_deeply_nested_json_within_the_size_limit_is_a_command_error() -> None:
    """4096 bytes of `[[[...]]]` exhaust the JSON decoder's recursion: a refusal, not a crash of
    the MQTT callback."""
    with pytest.raises(CommandError, match="not JSON"):
        parse_command(b"[" * 2048 + b"]" * 2048)


def test_invalid_utf8_inside_a_json_string_is_refused() -> None:
    """Bytes that are not UTF-8 are refused whole, never decoded with replacement characters."""
    with pytest.raises(CommandError, match="not JSON"):
        parse_command(b'{"action": "ping", "id": "\xff"}')


def test_badge_key_is_hmac_sha256_known_answer() -> None:
    """The key is `b-` + 32 hex of HMAC-SHA256(secret, id): pinned with a known answer so every
    kiosk of the fleet derives the same key and the algorithm cannot be weakened silently."""
    assert BadgeKeyer(b"k" * 16).slot_for("04:A2:19:7F") == "b-0fc7f83e510fa1a9fcf791b5578dee06"


def test_badge_ids_that_differ_only_outside_ascii_get_different_keys() -> None:
    """The id is hashed as UTF-8 in full: a lossy encoding would give two badges one key, so one
    holder could continue the other's conversation."""
    keyer = BadgeKeyer(b"k" * 16)
    assert keyer.slot_for("Zo\u0115-1") != keyer.slot_for("Zo?-1")
    assert keyer.slot_for("Zo\u0115-1") != keyer.slot_for("Zo\u012d-1")
