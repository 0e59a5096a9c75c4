"""SessionStore: newest per (agent, slot), forget, survival of kill -9, corrupt files."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO

from edge_agent.core.store import DB_NAME, SessionStore


def test_newest_is_per_agent_and_slot(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.record_start("a1", "agent-a", "default", None, started_at=100.0)
    store.record_start("b1", "agent-b", "default", None, started_at=200.0)
    store.record_start("a2", "agent-a", "default", "a1", started_at=300.0)
    store.record_start("a-guest", "agent-a", "guest", None, started_at=400.0)
    store.record_end("a2", "button", ended_at=350.0)
    newest = store.newest("agent-a")
    assert newest is not None and newest.id == "a2" and newest.continued_from == "a1"
    assert newest.end_reason == "button" and newest.last_active_at == 350.0
    assert store.newest("agent-a", "guest").id == "a-guest"  # type: ignore[union-attr]
    assert store.newest("agent-b").id == "b1"  # type: ignore[union-attr]
    assert store.newest("agent-c") is None
    assert [s.id for s in store.recent()] == ["a-guest", "a2", "b1", "a1"]


def test_forget_wipes_everything_and_survives_reopen(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    for i in range(5):
        store.record_start(f"s{i}", "agent", "default", None)
    assert store.forget() == 5
    store.close()
    reopened = SessionStore(tmp_path)
    assert reopened.recent() == [] and reopened.newest("agent") is None
    # the ids are gone from the files too, not just hidden
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"s3" not in blob


def test_corrupt_state_file_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    store = SessionStore(tmp_path)
    assert store.recovered_from is not None and store.recovered_from.exists()
    store.record_start("fresh", "agent", "default", None)
    assert store.newest("agent").id == "fresh"  # type: ignore[union-attr]


WRITER = """
import sys, time
from pathlib import Path
from edge_agent.core.store import SessionStore
store = SessionStore(Path(sys.argv[1]))
i = int(sys.argv[2])
while True:
    store.record_start(f"s{i:06d}", "agent", "default", f"s{i-1:06d}", started_at=float(i))
    print(i, flush=True)  # acknowledged only after the commit returned
    store.record_end(f"s{i:06d}", "button", ended_at=float(i) + 0.5)
    i += 1
"""


def test_kill_9_at_random_points_never_loses_an_acknowledged_session(tmp_path: Path) -> None:
    rng = random.Random(7)
    next_id = 1
    for _ in range(200):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(next_id)], stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert proc.stdout is not None
        proc.stdout.readline()  # the store is open and writing
        time.sleep(rng.uniform(0.0, 0.02))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acked = [int(x) for x in out.split()]
        last_acked = acked[-1] if acked else next_id
        store = SessionStore(tmp_path)
        newest = store.newest("agent")
        store.close()
        assert newest is not None
        assert int(newest.id[1:]) >= last_acked
        next_id = int(newest.id[1:]) + 1
