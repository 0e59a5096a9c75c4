"""Remote control: one MQTT command carried out on the kiosk, and the result that always goes back.

fleet/commands.py parses and validates what arrives on `<prefix>/<id>/cmd`; this turns a valid
`Command` into one Conversation event or store call, on the event loop, and builds the reply:
`{"id", "action", "ok": true, "state", ...}` or `{"id", "action", "ok": false, "error"}`. A start
while busy, an end with nothing to end, or a start beyond the rate limit is refused with one
clear message and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_agent import __version__
from edge_agent.core import conversation as c
from edge_agent.errors import EdgeAgentError
from edge_agent.fleet.commands import Command, CommandError


def carry_out(
    cmd: Command, conversation: c.Conversation, dispatch: Callable[[c.Event], None], forget_sessions: Callable[[], int], now: float, forget_echo_grade: Callable[[], str | None] = lambda: None
) -> dict[str, Any]:
    """Runs `cmd` against the kiosk's `conversation` (events go through `dispatch`, the daemon's
    own entry point, so its actions are carried out as for a button); returns the reply.
    `forget_echo_grade` drops the echo canceller's grade of the room (a kiosk moved to another
    room: service/roomgrade.py) and says why it could not, if it could not."""
    state = conversation.state
    result: dict[str, Any] = {"id": cmd.id, "action": cmd.action, "ok": True}
    busy = state not in (c.IDLE, c.ERROR, c.ENDING)
    refused = conversation.starts_refused
    try:
        if cmd.action in ("press", "long_press"):
            dispatch(c.Press(long=cmd.action == "long_press", origin="mqtt", slot=cmd.slot))
        elif cmd.action in ("resume", "new"):
            if busy:
                raise CommandError(f"busy: a conversation is {state}")
            dispatch(c.Start(fresh=cmd.action == "new", slot=cmd.slot))
        elif cmd.action == "end":
            if state not in (c.CONNECTING, c.LISTENING, c.SPEAKING):
                raise CommandError(f"no conversation to end (state {state})")
            dispatch(c.End("command"))
        elif cmd.action == "forget_sessions":
            result["forgotten"] = forget_sessions()
        elif cmd.action == "forget_echo_grade":
            problem = forget_echo_grade()
            if problem:
                raise CommandError(problem)
        elif cmd.action == "ping":
            result.update(pong=True, state=state, version=__version__)
        if conversation.starts_refused > refused:
            if conversation.mic_gone:
                raise CommandError("the microphone is gone: no conversation starts until it is back")
            raise CommandError(f"rate limited: too many conversation starts, next one in {conversation.start_wait_s(now):.0f} s")
        result["state"] = conversation.state
    except EdgeAgentError as exc:
        result = {"id": cmd.id, "action": cmd.action, "ok": False, "error": str(exc)}
    return result
