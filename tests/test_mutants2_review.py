"""Behaviour of the two untrusted-input parsers that no pure test pinned, found by mutation testing.

`core/protocol.py` (the Millis server's frames, and what the kiosk and the simulator put on the
wire) and `fleet/pointer.py` (session pointers and forgets other kiosks publish over MQTT): each
test here failed with one single change to those modules applied (a check deleted, a comparison
flipped, a bound moved by one) and passes on the code as it is. The socket tests (conformance,
fuzz against a live kiosk) caught some of these only minutes into a run, or not at all.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_agent.core import protocol as p
from edge_agent.errors import ProtocolError

# ---------------------------------------------------------------- core/protocol.py


def test_a_ping_is_the_vendor_clients_shape_and_its_pong_reads_back() -> None:
    """The kiosk's keepalive: `{"method": "ping", "data": "<ms>"}` with the clock as a string, as
    the official client sends it; the server echoes the string in a pong, which must read back as
    the same ms (the round trip times the link). Only a socket test looked at the ping."""
    wire = p.ping_to_wire(1_700_000_000_123)
    assert json.loads(wire) == {"method": "ping", "data": "1700000000123"}
    assert p.parse_server_text(json.dumps({"method": "pong", "data": json.loads(wire)["data"]})) == p.Pong(1_700_000_000_123)


def test_a_well_formed_frame_past_the_size_cap_is_refused_and_one_at_it_is_taken() -> None:
    """MAX_TEXT_FRAME_CHARS bounds what a server can make the kiosk parse and hold. The only test
    of it sent `x` * (cap + 1), which is no JSON: with the check gone it still raised (from the
    JSON parser), so a 256 KiB transcript of valid JSON went through unnoticed. A frame of
    exactly the cap is legal."""
    head, tail = '{"method":"ontranscript","data":"', '"}'
    at_cap = head + "a" * (p.MAX_TEXT_FRAME_CHARS - len(head) - len(tail)) + tail
    assert len(at_cap) == p.MAX_TEXT_FRAME_CHARS
    assert p.parse_server_text(at_cap) == p.Transcript("a" * 4096, False)
    over = head + "a" * (p.MAX_TEXT_FRAME_CHARS - len(head) - len(tail) + 1) + tail
    with pytest.raises(ProtocolError, match="exceeds"):
        p.parse_server_text(over)


def test_a_pong_is_taken_from_zero_up_to_two_to_the_53_and_not_one_past() -> None:
    """A pong echoes the kiosk's clock in ms; MAX_PONG_MS (2**53, where a float still holds
    every ms) is the last value taken. Tests only tried -5 and a 400-digit number, so the bound
    could move (2**54, 3**53) unseen."""
    pong = lambda v: p.parse_server_text(json.dumps({"method": "pong", "data": str(v)}))  # noqa: E731
    assert pong(0) == p.Pong(0) and pong(2**53) == p.Pong(2**53)
    for bad in (-1, 2**53 + 1):
        with pytest.raises(ProtocolError, match="not a time"):
            pong(bad)



def test_names_a_server_makes_up_are_cut_to_their_bounds() -> None:
    """An unknown method is logged and a function name is handed on and logged: a server's
    megabyte name is cut to 64 and 256 characters. Nothing pinned either bound."""
    assert p.parse_server_text(json.dumps({"method": "m" * 1000})) == p.Unknown("m" * 64)
    call = p.parse_server_text(json.dumps({"method": "onfunction", "payload": {"name": "f" * 1000, "params": [1]}}))
    assert call == p.FunctionCall("f" * 256, [1])

VALID_INITIATE: dict[str, Any] = {"public_key": "k", "agent": {"agent_id": "a"}}
BAD_INITIATES: list[Any] = [
    {"method": "ping", "data": VALID_INITIATE},
    {"method": "initiate", "data": "k"},
    ["initiate"],
    {"method": "initiate", "data": {"agent": {"agent_id": "a"}}},
    {"method": "initiate", "data": {"public_key": "", "agent": {"agent_id": "a"}}},
    {"method": "initiate", "data": {"public_key": 7, "agent": {"agent_id": "a"}}},
    {"method": "initiate", "data": {"public_key": "k"}},
    {"method": "initiate", "data": {"public_key": "k", "agent": {}}},
    {"method": "initiate", "data": {"public_key": "k", "agent": "a"}},
    {"method": "initiate", "data": {"public_key": "k", "agent": {"agent_id": 7}}},
    {"method": "initiate", "data": {"public_key": "k", "agent": {"agent_id": ""}}},
    {"method": "initiate", "data": {"public_key": "k", "agent": {"agent_id": "a", "agent_config": "prompt"}}},
    {"method": "initiate", "data": {**VALID_INITIATE, "metadata": "lobby"}},
    {"method": "initiate", "data": {**VALID_INITIATE, "metadata": None}},
    {"method": "initiate", "data": {**VALID_INITIATE, "metadata": {"x": 1}, "include_metadata_in_prompt": "true"}},
    {"method": "initiate", "data": {**VALID_INITIATE, "include_metadata_in_prompt": 1}},
    {"method": "initiate", "data": {**VALID_INITIATE, "session_continuation": "prev"}},
    {"method": "initiate", "data": {**VALID_INITIATE, "session_continuation": {"id": "prev"}}},
    {"method": "initiate", "data": {**VALID_INITIATE, "session_continuation": {"session_id": ""}}},
    {"method": "initiate", "data": {**VALID_INITIATE, "session_continuation": {"session_id": 7}}},
    {"method": "initiate", "data": {**VALID_INITIATE, "session_continuation": None}},
]


@pytest.mark.parametrize("msg", BAD_INITIATES, ids=range(len(BAD_INITIATES)))
def test_the_simulator_parser_refuses_each_initiate_the_documented_shape_has_no_place_for(msg: Any) -> None:
    """`Initiate.from_wire` is what makes the simulator as strict as the platform: a kiosk that
    sent a malformed initiate and a simulator that coerced it hid the mistake until a real server
    refused it. Only a socket test (one case each, through a live simulator) checked it; with any
    one of its checks deleted the pure suite passed. Each case is wrong in exactly one field."""
    with pytest.raises(ProtocolError, match="initiate"):
        p.Initiate.from_wire(msg)


@pytest.mark.parametrize(
    "initiate",
    [
        p.Initiate("pk", "agent-1"),
        p.Initiate("pk", None, {"prompt": "be brief"}),
        p.Initiate("pk", "agent-1", {"language": "en"}, {"site": "lobby"}, True, "Zm9v+YmFy/cXV4="),
        p.Initiate("pk", "agent-1", None, {"site": "lobby"}, False),
    ],
    ids=["id", "config", "all", "metadata not in prompt"],
)
def test_every_initiate_the_kiosk_sends_reads_back_as_itself(initiate: p.Initiate) -> None:
    """What the kiosk sends is what the simulator reads: no field dropped from the wire (a lost
    `include_metadata_in_prompt` False, a lost continuation) and none invented on the way back."""
    assert p.Initiate.from_wire(json.loads(initiate.to_wire())) == initiate


def test_server_to_wire_writes_only_the_fields_given_and_the_kiosk_reads_them_back() -> None:
    """The simulator's frames: `data` and `payload` only when given (a `"data": null` is no
    documented frame), compact JSON, and each one parsed by the kiosk as what was meant. Only the
    socket tests used it."""
    assert p.server_to_wire("clear") == '{"method":"clear"}'
    assert json.loads(p.server_to_wire("pong", "12")) == {"method": "pong", "data": "12"}
    frame = p.server_to_wire("ontranscript", "hi", {"is_final": True})
    assert json.loads(frame) == {"method": "ontranscript", "data": "hi", "payload": {"is_final": True}} and " " not in frame
    assert p.parse_server_text(frame) == p.Transcript("hi", True)
    assert p.parse_server_text(p.server_to_wire("onready", payload={"session_id": "s1"})) == p.OnReady("s1")


# ---------------------------------------------------------------- fleet/pointer.py

from edge_agent.fleet.pointer import (  # noqa: E402
    JOINED_IDS,
    MAX_FORGOTTEN_BYTES,
    MAX_FORGOTTEN_IDS,
    MAX_POINTER_BYTES,
    Forgotten,
    Pointer,
    ShareError,
    finite_number,
    slot_of,
    waiting,
)

NOW = 1_000_000.0


def _pointer(**fields: Any) -> bytes:
    return json.dumps({"v": 1, "session_id": "s-2", "started_at": 100.0, **fields}).encode()


@pytest.mark.parametrize(
    "fields",
    [
        {"continued_from": "a b"},
        {"continued_from": "x\n"},
        {"continued_from": 7},
        {"continued_from": ""},
        {"replaces": "a\x00b"},
        {"replaces": ["s-1"]},
        {"replaces": "x" * 129},
        {"kiosk": 5},
        {"kiosk": "a/b"},
        {"session_id": 12},
        {"session_id": None},
        {"started_at": 0},
        {"started_at": "100"},
        {"started_at": None},
        {"started_at": 10**400},
    ],
    ids=lambda f: repr(f)[:40],
)
def test_a_pointer_with_any_bad_field_is_refused(fields: dict[str, Any]) -> None:
    """Every id a pointer names is stored, continued by another kiosk and published again, so
    each must pass SESSION_ID_CHARS, not only `session_id`: with the check of `continued_from`
    or `replaces` gone, a newline or a NUL from one kiosk reached every store of the fleet. The
    start must be a finite time after the epoch (0 is none; a 400-digit integer holds no float)."""
    with pytest.raises(ShareError):
        Pointer.from_wire(_pointer(**fields), NOW)


def test_a_pointers_end_is_never_before_its_start_and_a_bad_end_is_none() -> None:
    """An end before the start (another kiosk's clock) reads as the start; an end that is no
    time (a string, nan, 0) as still running, not a refusal of the whole pointer."""
    assert Pointer.from_wire(_pointer(ended_at=50.0), NOW).ended_at == 100.0
    assert Pointer.from_wire(_pointer(ended_at=150.0), NOW).ended_at == 150.0
    for bad in ("150", 0, None, True):
        assert Pointer.from_wire(_pointer(ended_at=bad), NOW).ended_at is None
    assert Pointer.from_wire(_pointer(started_at=NOW + 5), NOW).started_at == NOW


def test_a_pointer_naming_itself_continues_and_replaces_nothing() -> None:
    """A session continuing itself (the platform kept its id) or replacing itself or the one it
    continues is read as neither: taken as a follower of our own session it beat it in
    `waiting` whatever the clocks, and a kiosk's echo of its own pointer displaced it."""
    got = Pointer.from_wire(_pointer(session_id="s-2", continued_from="s-2", replaces="s-2"), NOW)
    assert got.continued_from is None and got.replaces is None and not got.follows("s-2")
    got = Pointer.from_wire(_pointer(continued_from="s-1", replaces="s-1"), NOW)
    assert got.continued_from == "s-1" and got.replaces is None
    got = Pointer.from_wire(_pointer(replaces="s-1"), NOW)
    assert got.replaces == "s-1" and got.follows("s-1") and not got.follows("s-9")
    assert not Pointer("s-2", 1.0, None, "s-2", None, "s-2").follows("s-2")  # built, not read: still no follower of itself


def test_a_pointer_reads_back_as_itself_and_carries_replaces_only_for_a_fresh_start() -> None:
    """What a kiosk publishes is what the fleet reads (kiosk, end and `replaces` included), and
    `replaces` rides only on a fresh start: a continuation's pointer stays as older kiosks knew
    it and under MAX_POINTER_BYTES."""
    fresh = Pointer("s-2", 100.0, 150.0, None, "kiosk-a", "s-1")
    assert Pointer.from_wire(fresh.to_wire(), NOW) == fresh
    cont = json.loads(Pointer("s-2", 100.0, None, "s-1", "kiosk-a", "s-0").to_wire())
    assert "replaces" not in cont and cont["continued_from"] == "s-1"
    assert set(json.loads(Pointer("s-1", 1.0).to_wire())) == {"v", "session_id", "continued_from", "started_at", "ended_at", "kiosk"}
    longest = Pointer("x" * 128, 1.7e9, 1.7e9, None, "k" * 32, "y" * 128).to_wire()
    assert len(longest) <= MAX_POINTER_BYTES


def test_the_size_caps_refuse_one_byte_past_them_and_take_a_payload_at_them() -> None:
    """MAX_POINTER_BYTES and MAX_FORGOTTEN_BYTES are checked before any parsing: the largest
    legal payload is taken, one byte more is not (whatever it holds)."""
    pad = lambda raw, n: raw[:-1] + b" " * (n - len(raw)) + b"}"  # noqa: E731
    assert Pointer.from_wire(pad(_pointer(), MAX_POINTER_BYTES), NOW).session_id == "s-2"
    with pytest.raises(ShareError, match="larger"):
        Pointer.from_wire(pad(_pointer(), MAX_POINTER_BYTES + 1), NOW)
    forget = Forgotten(100.0, None, ("s-1",)).to_wire()
    assert Forgotten.from_wire(pad(forget, MAX_FORGOTTEN_BYTES), NOW).sessions == ("s-1",)
    with pytest.raises(ShareError, match="larger"):
        Forgotten.from_wire(pad(forget, MAX_FORGOTTEN_BYTES + 1), NOW)
    with pytest.raises(ShareError, match="JSON"):
        Pointer.from_wire(b'{"session_id": "\xff"}', NOW)


def _forget(**fields: Any) -> bytes:
    return json.dumps({"v": 1, "forgotten_at": 100.0, "kiosk": "kiosk-b", "sessions": ["s-1"], **fields}).encode()


@pytest.mark.parametrize(
    "fields",
    [
        {"sessions": []},
        {"sessions": None},
        {"sessions": "s-1"},
        {"sessions": [f"s-{i}" for i in range(MAX_FORGOTTEN_IDS + 1)]},
        {"sessions": ["s-1", "a b"]},
        {"sessions": ["s-1", 7]},
        {"kiosk": "a b"},
        {"kiosk": 1},
        {"forgotten_at": 0},
        {"forgotten_at": "1"},
        {"forgotten_at": float("inf")},
    ],
    ids=lambda f: repr(f)[:40],
)
def test_a_forget_with_any_bad_field_is_refused(fields: dict[str, Any]) -> None:
    """A forget deletes conversations on every kiosk, so it names 1..MAX_FORGOTTEN_IDS ids each
    of SESSION_ID_CHARS (every one, not only the first), from a kiosk that is a label, at a time
    that is one. An empty list must not read as "forget everything" (that is None, an admin's
    empty retained message, never a list)."""
    with pytest.raises(ShareError):
        Forgotten.from_wire(_forget(**fields), NOW)


def test_a_forget_of_the_most_ids_is_taken_deduplicated_and_clamped() -> None:
    """The largest legal forget is taken whole, duplicates dropped in order, a future time clamped."""
    ids = [f"s-{i}" for i in range(MAX_FORGOTTEN_IDS)]
    got = Forgotten.from_wire(_forget(sessions=ids, forgotten_at=NOW + 60), NOW)
    assert got.sessions == tuple(ids) and got.forgotten_at == NOW and got.kiosk == "kiosk-b"
    assert Forgotten.from_wire(_forget(sessions=["b", "a", "b"], kiosk=None), NOW) == Forgotten(100.0, None, ("b", "a"))
    assert Forgotten.from_wire(Forgotten(5.0, "k", ("a",)).to_wire(), NOW) == Forgotten(5.0, "k", ("a",))


def test_a_forget_covers_what_it_names_and_what_continues_it_nothing_else() -> None:
    """`covers` decides which conversations a kiosk deletes: a named session, or one continuing a
    named one; a session that merely continues nothing, or something unnamed, stays."""
    f = Forgotten(1.0, None, ("s-1",))
    assert f.covers("s-1", None) and f.covers("s-2", "s-1")
    assert not f.covers("s-2", None) and not f.covers("s-2", "s-9")
    assert Forgotten(1.0).covers("anything", None)


def test_joined_forgets_keep_every_id_newest_first_bounded_and_an_all_wins() -> None:
    """Two forgets heard together forget both (the newer's ids first, at most JOINED_IDS, the
    later time); joined with a forget of everything they forget everything."""
    a, b = Forgotten(5.0, "ka", ("a", "x")), Forgotten(3.0, "kb", ("b", "x"))
    assert a.joined(b) == Forgotten(5.0, "kb", ("b", "x", "a"))
    assert a.joined(Forgotten(2.0, "kc")) == Forgotten(5.0, "kc") and Forgotten(9.0).joined(a) == Forgotten(9.0, "ka")
    many = Forgotten(1.0, None, tuple(f"o{i}" for i in range(JOINED_IDS)))
    assert many.joined(Forgotten(1.0, None, ("n",))).sessions == ("n", *(f"o{i}" for i in range(JOINED_IDS - 1)))


def test_finite_number_takes_numbers_only() -> None:
    """Times from other kiosks: ints and floats only, finite, never a bool or a string."""
    assert finite_number(3) == 3.0 and finite_number(2.5) == 2.5
    for bad in (True, False, "3", None, float("nan"), float("-inf"), 10**400, [1]):
        assert finite_number(bad) is None


def test_waiting_keeps_the_followed_session_and_the_newer_else() -> None:
    """What is filed for a slot when pointers race: a follower wins whatever the clocks, the one
    followed never displaces its follower, and otherwise the later start (id on a tie) wins."""
    old, new = Pointer("s-1", 200.0), Pointer("s-2", 100.0, continued_from="s-1")
    assert waiting(old, new) == new and waiting(new, old) is None
    a, b = Pointer("s-a", 100.0), Pointer("s-b", 100.0)
    assert waiting(a, b) == b and waiting(b, a) is None and waiting(a, a) is None
    same = waiting(Pointer("s-1", 100.0, None, "s-0", "k1"), Pointer("s-1", 90.0, 150.0, None, "k2", "s-9"))
    assert same == Pointer("s-1", 100.0, 150.0, "s-0", "k2", "s-9")
    ended = waiting(Pointer("s-1", 100.0, None, None, "k1", "s-0"), Pointer("s-1", 100.0, 150.0, None, "k1"))
    assert ended == Pointer("s-1", 100.0, 150.0, None, "k1", "s-0")  # the end heard keeps what it replaces


def test_slot_of_takes_only_a_known_agents_label_slot_and_its_forget() -> None:
    """A topic maps to (agent, slot) only under the prefix, for a configured agent, with a slot
    that is a label, and `/forgotten` only as the fourth level."""
    agents = ["agent-1"]
    assert slot_of("f/_sessions/agent-1/alice", "f", agents) == (("agent-1", "alice"), False)
    assert slot_of("f/_sessions/agent-1/alice/forgotten", "f", agents) == (("agent-1", "alice"), True)
    bad = ("agent-2/alice", "agent-1", "agent-1/a b", "agent-1/alice/other", "agent-1/alice/forgotten/x")
    for topic in ("g/_sessions/agent-1/alice", *(f"f/_sessions/{rest}" for rest in bad)):
        assert slot_of(topic, "f", agents) == (None, False)


def test_the_fleet_wire_caps_are_the_ones_every_kiosk_version_agrees_on() -> None:
    """The caps are a contract between kiosks of different releases on one broker: one that
    publishes a 513-byte pointer or a 33-id forget has it refused by every older kiosk (the forget
    then forgets nothing there). Every test used the names, so a moved cap went unseen."""
    assert (MAX_POINTER_BYTES, MAX_FORGOTTEN_IDS, MAX_FORGOTTEN_BYTES) == (512, 32, 8192)
    assert json.loads(Pointer("s", 1.0).to_wire())["v"] == 1 and json.loads(Forgotten(1.0).to_wire())["v"] == 1
