"""Remote commands (MQTT `<prefix>/<id>/cmd`): parsing and validation, nothing else.

A command is a JSON object `{"action": ..., "id": optional}`; `press`, `resume` and `new` may
name a `"slot"` (an operator's label, used as given: letters, digits, `_ . -`, at most 64). Anything else — not JSON, not an
object, too big, an unknown action, a bad id — is a `CommandError` with one clear message, and
changes nothing. No command ever runs a shell: each action maps to one Conversation event or one
store call in the kiosk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edge_agent.core.slots import SlotError, check_slot
from edge_agent.errors import EdgeAgentError

ACTIONS = ("press", "long_press", "resume", "new", "end", "forget_sessions", "forget_echo_grade", "ping")
SLOT_ACTIONS = ("press", "resume", "new")
MAX_COMMAND_BYTES = 4096


class CommandError(EdgeAgentError):
    def __init__(self, message: str, command_id: str | int | None = None) -> None:
        super().__init__(message)
        self.command_id = command_id


@dataclass(frozen=True)
class Command:
    action: str
    id: str | int | None = None
    slot: str | None = None


def parse_command(payload: bytes) -> Command:
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError(f"command larger than {MAX_COMMAND_BYTES} bytes")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CommandError('not JSON: send {"action": "...", "id": "..."}') from None
    if not isinstance(data, dict):
        raise CommandError("a command is a JSON object")
    cid = data.get("id")
    if cid is not None and (isinstance(cid, bool) or not isinstance(cid, (str, int)) or len(str(cid)) > 128):
        raise CommandError("id must be a string or number of at most 128 characters")
    action = data.get("action")
    if not isinstance(action, str):
        raise CommandError("missing 'action'", cid)
    if action not in ACTIONS:
        raise CommandError(f"unknown action {action[:40]!r}; known: {', '.join(ACTIONS)}", cid)
    unknown = sorted(set(data) - {"action", "id", "slot"})
    if unknown:
        raise CommandError(f"unknown field {unknown[0][:40]!r}", cid)
    slot = data.get("slot")
    if slot is not None:
        if action not in SLOT_ACTIONS:
            raise CommandError(f"'slot' goes with {', '.join(SLOT_ACTIONS)} only", cid)
        try:
            check_slot(slot)
        except SlotError as exc:
            raise CommandError(str(exc), cid) from None
    return Command(action, cid, slot)
