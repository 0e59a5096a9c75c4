"""Reading the session store without writing to it: `edge-agent sessions`, the doctor, and the kiosk's salvage.

The first two are often run as root (`sudo edge-agent sessions`) on the service's state dir. Opening the
store as `SessionStore` does (for writing, a corrupt file moved aside and a fresh database made)
would leave root's files there, which the service user can then not write: the kiosk would run
without resume. Here the database is opened read-only (`statefiles.read_only`, which the
kiosk's own salvage of a read-only card uses too) in a way that leaves no `-wal` or `-shm` file
behind: `immutable=1` while no `-wal` file shows an open store (nothing to miss, and SQLite then
makes no -wal/-shm), `mode=ro` when both are there, and a private copy of the database and its
WAL when the `-shm` is missing (read-only, SQLite cannot rebuild it, and `immutable` left the
WAL's sessions out).

`salvage` is the kiosk's own read of a store it cannot open for writing (a read-only card): what
it can still read, carried into the store it then keeps in memory (`SessionStore`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from edge_agent.core.statefiles import read_only
from edge_agent.core.storedsession import SOUND_ROW, Row, StoredSession, written_columns
from edge_agent.core.storefaults import is_corruption
from edge_agent.core.storerows import carried_rows, newest_order
from edge_agent.errors import StoreError


def recent_read_only(db: Path, limit: int) -> list[StoredSession]:
    """The newest `limit` sessions in `db`, newest first, as `SessionStore.recent` lists them,
    read without writing: a store of an older edge-agent (no `resumed_at`) or one without a
    sessions table reads as it is. StoreError when the file is corrupt or cannot be read (a
    corrupt one is left where it is: the kiosk moves it aside when it next starts)."""
    try:
        with read_only(db) as conn:
            return _recent(conn, limit)
    except sqlite3.Error as exc:
        if is_corruption(exc):
            raise StoreError(f"session store {db} is corrupt ({exc}): the kiosk moves it aside when it next starts") from None
        raise StoreError(f"session store {db}: cannot read: {exc}") from None


def _recent(conn: sqlite3.Connection, limit: int) -> list[StoredSession]:
    conn.text_factory = _lenient_text  # a row of bytes that are no UTF-8 failed the whole listing, its escape codes in the error
    columns = {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}
    if not columns:
        return []
    wanted, last_start = written_columns(columns)  # an older edge-agent's store: `run` adds the columns
    sound = SOUND_ROW if "resumed_at" in columns else SOUND_ROW.replace("resumed_at", "NULL")  # a row of other types is skipped, as the kiosk skips it
    order = newest_order(conn, last_start) if "filed" in columns else f"{last_start} DESC, rowid DESC"  # an older store has no write order
    rows = conn.execute(f"SELECT {wanted} FROM sessions WHERE {sound} ORDER BY {order} LIMIT ?", (limit,)).fetchall()
    return [StoredSession(*row) for row in rows]


def _lenient_text(raw: bytes) -> str:
    """A stored TEXT value as a string, bytes that are no UTF-8 (a hand edit, another tool's
    import) as U+FFFD: SQLite's own decoding raised, with the raw bytes (escape codes too) in its
    message, and one such row hid every session from `edge-agent sessions` and the doctor."""
    return raw.decode("utf-8", "replace")


def salvage(path: Path, keep: int, busy_timeout_s: float) -> tuple[list[Row], int]:
    """What can still be read from a database we cannot open for writing (read-only card), as
    `storerows.carried_rows` carries it, for `SessionStore` to go on in memory with.
    Only a regular file: SQLite opening a FIFO read-only at the path waits for a writer, and
    `run` hung there before its first log line."""
    try:
        if not path.is_file():
            return [], 0
    except OSError:  # a state dir this user may not search (another owner's 0700): run went
        return [], 0  # down with exit 70 where it is to keep sessions in memory
    try:  # a -wal without its -shm is read from a private copy (immutable=1 leaves the WAL out)
        with read_only(path, busy_timeout_s) as db:
            return carried_rows(db, keep)
    except sqlite3.Error:
        pass
    uri = "file:" + quote(str(path))
    for mode in ("mode=ro", "immutable=1"):
        try:
            db = sqlite3.connect(f"{uri}?{mode}", uri=True, timeout=busy_timeout_s)
        except sqlite3.Error:
            continue
        try:
            return carried_rows(db, keep)
        except sqlite3.Error:
            continue
        finally:
            db.close()
    return [], 0
