"""Millis messages to and from the wire; bad frames become ProtocolError, never a crash."""

from __future__ import annotations

import json

import pytest

from edge_agent import protocol as p
from edge_agent.errors import ProtocolError


def test_initiate_shape_matches_the_vendor_client() -> None:
    msg = json.loads(p.Initiate("pk", "agent-1", {"language": "en"}, {"site": "lobby"}, True, "prev").to_wire())
    assert msg == {
        "method": "initiate",
        "data": {
            "public_key": "pk",
            "agent": {"agent_id": "agent-1", "agent_config": {"language": "en"}},
            "metadata": {"site": "lobby"},
            "include_metadata_in_prompt": True,
            "session_continuation": {"session_id": "prev"},
        },
    }
    bare = json.loads(p.Initiate("pk", "agent-1").to_wire())["data"]
    assert set(bare) == {"public_key", "agent"}
    assert p.Initiate.from_wire(msg).continue_session_id == "prev"


def test_initiate_repr_hides_the_key() -> None:
    assert "secret-key" not in repr(p.Initiate("secret-key", "a"))


@pytest.mark.parametrize(
    ("frame", "expect"),
    [
        ('{"method":"onready","payload":{"session_id":"abc"}}', p.OnReady("abc")),
        ('{"method":"clear"}', p.Clear()),
        ('{"method":"pause"}', p.Pause()),
        ('{"method":"unpause"}', p.Unpause()),
        ('{"method":"start_answering"}', p.StartAnswering()),
        ('{"method":"onsessionended"}', p.SessionEnded()),
        ('{"method":"pong","data":"1234"}', p.Pong(1234)),
        ('{"method":"ontranscript","data":"hi","payload":{"is_final":true}}', p.Transcript("hi", True)),
        ('{"method":"onresponsetext","data":"yo"}', p.ResponseText("yo", False)),
        ('{"method":"onfunction","payload":{"name":"f","params":{"a":1}}}', p.FunctionCall("f", {"a": 1})),
        ('{"method":"ai_action","data":{"x":1}}', p.Unknown("ai_action")),
        ('{"method":"something_new"}', p.Unknown("something_new")),
    ],
)
def test_server_messages(frame: str, expect: p.ServerMessage) -> None:
    assert p.parse_server_text(frame) == expect


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[]",
        "42",
        '{"data":1}',
        '{"method":5}',
        '{"method":"onready"}',
        '{"method":"onready","payload":{"session_id":7}}',
        '{"method":"pong","data":"x"}',
        '{"method":"ontranscript","data":5}',
        "[" * 100000,
        "x" * (p.MAX_TEXT_FRAME_CHARS + 1),
    ],
)
def test_bad_frames_raise_protocol_error(frame: str) -> None:
    with pytest.raises(ProtocolError):
        p.parse_server_text(frame)
