"""The small interfaces the Kiosk drives besides audio and buttons, with do-nothing versions.

`Reporter` is where state, events and metrics go (MQTT's StatusReporter in production);
`Led` shows the conversation state (gpiozero's StatusLed in production).
"""

from __future__ import annotations

from typing import Any, Protocol


class Reporter(Protocol):
    """Where state, events and metrics go besides the log (MQTT's StatusReporter in production)."""

    def start(self) -> None: ...

    def state(self, state: str, session_id: str | None, continued_from: str | None) -> None: ...

    def event(self, kind: str, fields: dict[str, Any]) -> None: ...

    def metrics(self, values: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullReporter:
    def start(self) -> None:
        pass

    def state(self, state: str, session_id: str | None, continued_from: str | None) -> None:
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
