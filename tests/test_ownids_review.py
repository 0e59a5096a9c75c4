"""A hand-edited (or copied) store's rows marked as this kiosk's own are published again at every
start (`own_pointers`): an id no agent gives must not go out to the fleet."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.service.slots import own_pointers


@pytest.mark.parametrize("column", ["id", "continued_from", "replaces", "slot"])
def test_an_own_row_with_an_id_no_agent_gives_is_not_published_again(tmp_path: Path, column: str) -> None:
    """`SessionStore.newest` refuses such a row for a press; the restart's resend took it as
    it was (`own_newest`) and defended it as ours: its newline and escape codes went to the broker
    as the fleet's pointer of that slot, which every other kiosk then refused. A sound own row in
    another slot still goes out as before. A slot with `#` or `/` named no topic it could go to."""
    state = tmp_path / "state"
    store = SessionStore(state)
    store.record_start("good-1", "agent-1", "badge-a", None)
    store.record_end("good-1", "hangup")
    store.close()
    values = {"id": "bad-1", "continued_from": None, "replaces": None, "slot": "badge-b"}
    values[column] = "x/#\nWARNING forged\x1b[2J" if column == "slot" else "x\nWARNING forged\x1b[2J"
    with contextlib.closing(sqlite3.connect(state / DB_NAME, isolation_level=None)) as db:
        db.execute(
            "INSERT INTO sessions (id, agent, slot, started_at, continued_from, replaces, own, filed) VALUES (?, 'agent-1', ?, ?, ?, ?, 1, 99)",
            (values["id"], values["slot"], time.time(), values["continued_from"], values["replaces"]),
        )
    store = SessionStore(state)
    try:
        got = own_pointers(store)
    finally:
        store.close()
    assert [(a, s, p.session_id) for a, s, p in got] == [("agent-1", "badge-a", "good-1")], got
