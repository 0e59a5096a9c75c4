"""Reading the session store without writing to it: `edge-agent sessions` and the doctor.

Both are often run as root (`sudo edge-agent sessions`) on the service's state dir. Opening the
store as `SessionStore` does (for writing, a corrupt file moved aside and a fresh database made)
would leave root's files there, which the service user can then not write: the kiosk would run
without resume. Here the database is opened read-only in a way that leaves no `-wal` or `-shm`
file behind: `immutable=1` while no `-wal` file shows an open store (nothing to miss, and SQLite
then makes no -wal/-shm), `mode=ro` when both are there, and a private copy of the database and
its WAL when the `-shm` is missing (read-only, SQLite cannot rebuild it, and `immutable` left the
WAL's sessions out).
"""

from __future__ import annotations

import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from edge_agent.core.store import is_corruption
from edge_agent.core.storedsession import SOUND_ROW, StoredSession, written_columns
from edge_agent.errors import StoreError


@contextmanager
def read_only(db: Path, timeout_s: float = 0.5) -> Iterator[sqlite3.Connection]:
    """`db` opened for reading only, creating no file beside it (sqlite3.Error when it cannot be).
    A `-wal` without its `-shm` (a state dir copied off a running kiosk, a -shm cleaned away)
    cannot be read in place read-only, and `immutable` leaves it out, with the latest sessions in
    it: the database and its WAL are read from a private copy instead (removed on leaving)."""
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    if wal.exists() and not shm.exists() and _regular(db) and _regular(wal):  # a device or FIFO is not copied
        with tempfile.TemporaryDirectory(prefix="edge-agent-store-") as tmp:
            copy = Path(tmp) / db.name
            try:
                shutil.copyfile(db, copy)
                shutil.copyfile(wal, f"{copy}-wal")
            except OSError as exc:
                raise sqlite3.OperationalError(f"cannot copy it to read its WAL: {exc.strerror or exc}") from None
            conn = sqlite3.connect(copy, timeout=timeout_s)
            try:
                yield conn
            finally:
                conn.close()
        return
    mode = "mode=ro" if wal.exists() and shm.exists() else "immutable=1"
    conn = sqlite3.connect(f"file:{quote(str(db))}?{mode}", uri=True, timeout=timeout_s)
    try:
        yield conn
    finally:
        conn.close()


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


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
    columns = {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}
    if not columns:
        return []
    wanted, last_start = written_columns(columns)  # an older edge-agent's store: `run` adds the columns
    sound = SOUND_ROW if "resumed_at" in columns else SOUND_ROW.replace("resumed_at", "NULL")  # a row of other types is skipped, as the kiosk skips it
    rows = conn.execute(f"SELECT {wanted} FROM sessions WHERE {sound} ORDER BY {last_start} DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
    return [StoredSession(*row) for row in rows]
