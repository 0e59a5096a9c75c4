"""SessionStore: the device's durable memory of conversations, so a press can resume the last one.

SQLite in `state_dir` with WAL and synchronous=FULL: a session id returned by `record_start`
survives a power cut right after the call. Sessions are filed per (agent, slot) so several
people or buttons can each keep their own thread later; today the slot is "default".
A state file that is not a database any more is moved aside with a timestamp and a fresh
store is created, so a corrupt SD card sector cannot cause a crash loop.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import StoreError

log = logging.getLogger(__name__)

DB_NAME = "sessions.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    slot TEXT NOT NULL,
    continued_from TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS sessions_newest ON sessions (agent, slot, started_at);
"""


@dataclass(frozen=True)
class StoredSession:
    id: str
    agent: str
    slot: str
    continued_from: str | None
    started_at: float
    ended_at: float | None
    end_reason: str | None

    @property
    def last_active_at(self) -> float:
        """Wall-clock seconds of the last sign of life: the end, or the start if it never ended."""
        return self.ended_at if self.ended_at is not None else self.started_at


class SessionStore:
    """Durable list of sessions; every write is committed before the call returns."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / DB_NAME
        self.recovered_from: Path | None = None
        """Where a corrupt state file was moved on open, for the caller to report."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create state dir {self.path.parent}: {exc.strerror or exc}") from None
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            self.recovered_from = self._move_aside(exc)
            try:
                self._db = self._open()
            except sqlite3.Error as exc2:
                raise StoreError(f"cannot open session store {self.path}: {exc2}") from None

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {row[0] if row else 'no answer'}")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, exc: Exception) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        log.error("session store %s is unreadable (%s); moving it to %s and starting fresh", self.path, exc, target)
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.replace(Path(str(target) + suffix))
        return target

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"session store write failed: {exc}") from None

    def record_start(self, session_id: str, agent: str, slot: str, continued_from: str | None, started_at: float | None = None) -> None:
        """Files a session the moment the agent names it (`onready`); durable on return."""
        self._write(
            "INSERT OR REPLACE INTO sessions (id, agent, slot, continued_from, started_at) VALUES (?, ?, ?, ?, ?)",
            (session_id, agent, slot, continued_from, time.time() if started_at is None else started_at),
        )

    def record_end(self, session_id: str, reason: str, ended_at: float | None = None) -> None:
        self._write(
            "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?",
            (time.time() if ended_at is None else ended_at, reason, session_id),
        )

    def newest(self, agent: str, slot: str = "default") -> StoredSession | None:
        """The session a short press would continue for this agent and slot."""
        rows = self._query("WHERE agent = ? AND slot = ? ORDER BY started_at DESC, rowid DESC LIMIT 1", (agent, slot))
        return rows[0] if rows else None

    def recent(self, limit: int = 100) -> list[StoredSession]:
        """All sessions, newest first."""
        return self._query("ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,))

    def forget(self) -> int:
        """Deletes every session (the operator's privacy switch); returns how many went."""
        try:
            count = self._db.execute("DELETE FROM sessions").rowcount
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            raise StoreError(f"session store wipe failed: {exc}") from None
        return int(count)

    def _query(self, tail: str, args: tuple[object, ...]) -> list[StoredSession]:
        sql = f"SELECT id, agent, slot, continued_from, started_at, ended_at, end_reason FROM sessions {tail}"
        try:
            return [StoredSession(*row) for row in self._db.execute(sql, args)]
        except sqlite3.Error as exc:
            raise StoreError(f"session store read failed: {exc}") from None
