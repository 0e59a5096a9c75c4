"""The small interfaces the Kiosk drives besides audio and buttons, with do-nothing versions.

`Reporter` is where state, events and metrics go (MQTT's StatusReporter in production);
`Led` shows the conversation state (gpiozero's StatusLed in production); `describe` turns a
notification into the one line the log and the demo show.
"""

from __future__ import annotations

from typing import Any, Protocol


class Reporter(Protocol):
    """Where state, events and metrics go besides the log (MQTT's StatusReporter in production)."""

    def start(self) -> None: ...

    def state(self, state: str, session_id: str | None, continued_from: str | None, slot: str | None = None) -> None: ...

    def event(self, kind: str, fields: dict[str, Any]) -> None: ...

    def metrics(self, values: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullReporter:
    def start(self) -> None:
        pass

    def state(self, state: str, session_id: str | None, continued_from: str | None, slot: str | None = None) -> None:
        pass

    def event(self, kind: str, fields: dict[str, Any]) -> None:
        pass

    def metrics(self, values: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


PRIVATE_EVENTS = frozenset({"transcript", "response_text"})
"""What visitors and the agent said stays in the local log; it is not published to the fleet."""


class Led(Protocol):
    def show(self, state: str) -> None: ...

    def close(self) -> None: ...


class NullLed:
    def show(self, state: str) -> None:
        pass

    def close(self) -> None:
        pass


def describe(kind: str, f: dict[str, Any]) -> str:
    """One human line per notification, for the log and the demo."""
    if kind == "conversation_started":
        how = f"continuing {f['continued_from']}" if f.get("continued_from") else "new conversation"
        return f"session {f['session_id'] or '(off the record)'} ready ({how})"
    if kind == "conversation_requested":
        return "press: " + ("fresh session" if f["fresh"] else f"continue {f['continue_session_id']}" if f["continue_session_id"] else "nothing to continue, new session")
    if kind == "conversation_ended":
        return f"conversation ended ({f['reason']}) after {f['duration_s']:.1f} s, session {f['session_id']}"
    if kind == "transcript":  # server text: repr, so a newline or an escape code cannot forge a line
        return f"visitor: {f['text']!r}"
    if kind == "response_text":
        return f"agent: {f['text']!r}"
    if kind == "response_latency":
        return f"response latency {f['ms']:.0f} ms (start_answering -> first audio)"
    return f"{kind}: " + ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in f.items())
