"""The Millis WebSocket protocol as tiny dataclasses with to/from wire, and nothing else.

Text frames are JSON `{"method": ..., "data": ..., "payload": ...}`; binary frames are raw
16 kHz mono int16 little-endian PCM. `parse_server_text` never lets a bad frame escape as
anything but `ProtocolError`; unknown methods come back as `Unknown` so callers can log them.
See docs of the vendor client summarised in the README.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from edge_agent.errors import NotReadyError, ProtocolError

MAX_TEXT_FRAME_CHARS = 256 * 1024
"""Text frames beyond this are rejected before JSON parsing (a server bug must not eat memory)."""

MAX_PONG_MS = 2**53
"""A pong echoes the kiosk's own clock in ms (about 1.7e12): anything outside 0..2**53 (where a
float still holds every ms) is no time of ours, and a 400-digit one cannot even be subtracted."""

SESSION_ID_CHARS = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
"""What a session id may be: it is stored, logged, put in STATUS= for systemd and published over
MQTT, so a server's id with a newline, a control character, a space or a megabyte of text is
refused. The protocol documents no format (docs/millis-protocol.md): a UUID, hex, or base64 in
either alphabet (`+/=` as well as `-_`) passes; refused, every session of such a platform failed.
The fleet's pointers check ids with the same pattern (fleet/pointer.py)."""


@dataclass(frozen=True)
class Initiate:
    public_key: str = field(repr=False)
    agent_id: str | None = None
    agent_config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    include_metadata_in_prompt: bool = False
    continue_session_id: str | None = None

    def to_wire(self) -> str:
        agent: dict[str, Any] = {}
        if self.agent_id:
            agent["agent_id"] = self.agent_id
        if self.agent_config:
            agent["agent_config"] = self.agent_config
        data: dict[str, Any] = {"public_key": self.public_key, "agent": agent}
        if self.metadata:
            data["metadata"] = self.metadata
            data["include_metadata_in_prompt"] = self.include_metadata_in_prompt
        if self.continue_session_id:
            data["session_continuation"] = {"session_id": self.continue_session_id}
        return json.dumps({"method": "initiate", "data": data}, separators=(",", ":"))

    @classmethod
    def from_wire(cls, msg: object) -> Initiate:
        """Used by the simulator, as strict as the documented shape (docs/millis-protocol.md,
        "Client to server"): `data.public_key` a string, `data.agent` an object with a string
        `agent_id` and/or an object `agent_config`, and the optional `metadata` (an object),
        `include_metadata_in_prompt` (true or false) and `session_continuation` (an object with a
        string `session_id`). ProtocolError names the first field that is not: a simulator that
        took a malformed initiate (coercing or ignoring a field) hid the kiosk's mistake until a
        real server refused it."""
        data = msg.get("data") if isinstance(msg, dict) else None
        if not isinstance(msg, dict) or msg.get("method") != "initiate" or not isinstance(data, dict):
            raise ProtocolError("expected an initiate message with a data object")
        agent, key = data.get("agent"), data.get("public_key")
        if not isinstance(key, str) or not key:
            raise ProtocolError("initiate: data.public_key must be a non-empty string")
        if not isinstance(agent, dict) or not ("agent_id" in agent or "agent_config" in agent):
            raise ProtocolError("initiate: data.agent must be an object with agent_id and/or agent_config")
        agent_id, config = agent.get("agent_id"), agent.get("agent_config")
        if "agent_id" in agent and (not isinstance(agent_id, str) or not agent_id):
            raise ProtocolError("initiate: data.agent.agent_id must be a non-empty string")
        if "agent_config" in agent and not isinstance(config, dict):
            raise ProtocolError("initiate: data.agent.agent_config must be an object")
        metadata = data.get("metadata")
        if "metadata" in data and not isinstance(metadata, dict):
            raise ProtocolError("initiate: data.metadata must be an object")
        include = data.get("include_metadata_in_prompt", False)
        if not isinstance(include, bool):
            raise ProtocolError("initiate: data.include_metadata_in_prompt must be true or false")
        cont = data.get("session_continuation")
        cont_id = cont.get("session_id") if isinstance(cont, dict) else None
        if "session_continuation" in data and (not isinstance(cont_id, str) or not cont_id):
            raise ProtocolError("initiate: data.session_continuation must be an object with a string session_id")
        return cls(
            public_key=key,
            agent_id=agent_id if isinstance(agent_id, str) else None,
            agent_config=config if isinstance(config, dict) else None,
            metadata=metadata if isinstance(metadata, dict) else None,
            include_metadata_in_prompt=include,
            continue_session_id=cont_id,
        )


def ping_to_wire(client_ms: int) -> str:
    """The official client's ping: its clock in ms, as a string; the pong echoes it."""
    return json.dumps({"method": "ping", "data": str(client_ms)})


@dataclass(frozen=True)
class OnReady:
    session_id: str


@dataclass(frozen=True)
class StartAnswering:
    pass


@dataclass(frozen=True)
class Clear:
    pass


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Unpause:
    pass


@dataclass(frozen=True)
class Pong:
    sent_ms: int


@dataclass(frozen=True)
class Transcript:
    text: str
    is_final: bool


@dataclass(frozen=True)
class ResponseText:
    text: str
    is_final: bool


@dataclass(frozen=True)
class FunctionCall:
    name: str
    params: Any


@dataclass(frozen=True)
class SessionEnded:
    pass


@dataclass(frozen=True)
class Unknown:
    method: str


ServerMessage = OnReady | StartAnswering | Clear | Pause | Unpause | Pong | Transcript | ResponseText | FunctionCall | SessionEnded | Unknown

_SIMPLE: dict[str, ServerMessage] = {
    "start_answering": StartAnswering(),
    "clear": Clear(),
    "pause": Pause(),
    "unpause": Unpause(),
    "onsessionended": SessionEnded(),
}


def _text_and_final(method: str, msg: dict[str, Any]) -> tuple[str, bool]:
    text = msg.get("data")
    if not isinstance(text, str):
        raise ProtocolError(f"{method}: data must be a string")
    payload = msg.get("payload")
    final = isinstance(payload, dict) and payload.get("is_final") is True  # JSON true only: the string "false" was final
    return text[:4096], final


def parse_server_text(text: str) -> ServerMessage:
    """One JSON text frame from the server -> a message; ProtocolError for anything malformed."""
    if len(text) > MAX_TEXT_FRAME_CHARS:
        raise ProtocolError(f"text frame of {len(text)} chars exceeds {MAX_TEXT_FRAME_CHARS}")
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"expected a JSON object, got {type(msg).__name__}")
    method = msg.get("method")
    if not isinstance(method, str):
        raise ProtocolError("missing or non-string 'method'")
    if method in _SIMPLE:
        return _SIMPLE[method]
    if method == "onready":
        payload = msg.get("payload")
        sid = payload.get("session_id") if isinstance(payload, dict) else None
        if not isinstance(sid, str) or not SESSION_ID_CHARS.fullmatch(sid):
            raise NotReadyError(f"onready without a usable payload.session_id (letters, digits and ._:+/=- up to 128 wanted): {str(sid)[:40]!r}")
        return OnReady(sid)
    if method == "pong":
        try:
            sent_ms = int(str(msg.get("data")))
        except ValueError:
            raise ProtocolError("pong data is not a number") from None
        if not 0 <= sent_ms <= MAX_PONG_MS:
            raise ProtocolError("pong data is not a time in ms")
        return Pong(sent_ms)
    if method == "ontranscript":
        return Transcript(*_text_and_final(method, msg))
    if method == "onresponsetext":
        return ResponseText(*_text_and_final(method, msg))
    if method == "onfunction":
        payload = msg.get("payload")
        name = payload.get("name") if isinstance(payload, dict) else None
        return FunctionCall(str(name)[:256], payload.get("params") if isinstance(payload, dict) else None)
    return Unknown(method[:64])


def server_to_wire(method: str, data: Any = None, payload: Any = None) -> str:
    """A server frame, for the simulator."""
    msg: dict[str, Any] = {"method": method}
    if data is not None:
        msg["data"] = data
    if payload is not None:
        msg["payload"] = payload
    return json.dumps(msg, separators=(",", ":"))
