"""Millis messages to and from the wire; bad frames become ProtocolError, never a crash."""

from __future__ import annotations

import json

import pytest
from conftest import DATA

from edge_agent.core import protocol as p
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
        ('{"method":"ontranscript","data":"hi","payload":{"is_final":"false"}}', p.Transcript("hi", False)),  # a string is no true (it was)
        ('{"method":"ontranscript","data":"hi","payload":{"is_final":1}}', p.Transcript("hi", False)),
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
        '{"method":"pong","data":"-5"}',
        '{"method":"pong","data":' + "9" * 400 + "}",
        '{"method":"ontranscript","data":5}',
        "[" * 100000,
        "x" * (p.MAX_TEXT_FRAME_CHARS + 1),
    ],
)
def test_bad_frames_raise_protocol_error(frame: str) -> None:
    with pytest.raises(ProtocolError):
        p.parse_server_text(frame)


def test_uplink_deflate_compresses_silence_and_text_but_sends_speech_as_it_is() -> None:
    """Mixed compressed and uncompressed messages on one context must decode on a standard
    websockets server (RFC 7692 lets a sender leave any message uncompressed)."""
    import wave

    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Frame, Opcode

    from edge_agent.agent.deflate import UPLINK_DEFLATE, SilenceDeflate

    with wave.open(str(DATA / "kiosk_dev_quiet.wav")) as w:
        speech = w.readframes(w.getnframes())[32000 * 2 : 32000 * 2 + 960 * 20]
    client = SilenceDeflate(False, False, 12, 12, UPLINK_DEFLATE)
    server = PerMessageDeflate(False, False, 12, 12)  # websockets' own, as a server would run it
    silence = bytes(960)
    messages = [
        Frame(Opcode.TEXT, b'{"method":"initiate","data":{"public_key":"k"}}'),
        *[Frame(Opcode.BINARY, speech[i : i + 960]) for i in range(0, len(speech), 960)],
        *[Frame(Opcode.BINARY, silence) for _ in range(10)],
        Frame(Opcode.BINARY, speech[:960]),
        Frame(Opcode.BINARY, silence),
    ]
    for frame in messages:
        wire = client.encode(frame)
        audio_not_silence = frame.opcode is Opcode.BINARY and frame.data != silence
        assert wire.rsv1 is not audio_not_silence
        if audio_not_silence:
            assert wire.data == frame.data
        elif frame.data == silence:
            assert len(wire.data) < 20  # ~1 % of 960 bytes
        assert server.decode(wire).data == frame.data
