"""What the session store calls corruption, and the corrupt files it moves aside.

An SD card fails in more ways than one, and only one of them is corruption: SQLite's
SQLITE_CORRUPT or SQLITE_NOTADB, or damage `PRAGMA quick_check` finds (`CorruptFile`). A lock,
a full disk, an I/O error or a read-only mount is not (the store carries on in memory and tries
the disk again: store.py). A corrupt database is moved aside with a timestamp (its -wal and -shm
with it), and only the newest CORRUPT_COPIES_KEPT are kept: they hold session ids.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

log = logging.getLogger("edge_agent.core.store")

CORRUPT_COPIES_KEPT = 2
"""Moved-aside corrupt files kept for inspection; older ones are deleted (they hold session ids)."""
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
_CORRUPT_TEXT = ("malformed", "not a database", "corrupt")
_SIDE_FILES = ("", "-wal", "-shm")


class CorruptFile(Exception):
    """quick_check found damage SQLite did not report as an error code."""


def is_corruption(exc: BaseException) -> bool:
    """Real damage to the file, as opposed to a lock, a full disk, an I/O or permission error."""
    if isinstance(exc, CorruptFile):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11; the extended code
    if code is not None:
        return code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
    return any(t in str(exc).lower() for t in _CORRUPT_TEXT)


def why(exc: BaseException) -> str:
    """A store fault in a line: an OSError's own words and the file it names."""
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return str(exc)


def corrupt_copies(db: Path) -> list[Path]:
    """Databases moved aside from `db`, newest first (each may have its -wal and -shm beside it)."""
    return sorted((p for p in db.parent.glob(f"{db.name}.corrupt-*") if not p.name.endswith(("-wal", "-shm"))), reverse=True)


def move_aside(db: Path, exc: BaseException) -> Path:
    """Moves the corrupt `db` (and its -wal, -shm) aside; drops all but the newest copies."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = db.with_name(f"{db.name}.corrupt-{stamp}")
    log.error("session store %s is corrupt (%s); moving it to %s and starting fresh", db, exc, target)
    for suffix in _SIDE_FILES:
        src = Path(str(db) + suffix)
        if src.exists():
            src.replace(Path(str(target) + suffix))
    for old in [p for p in corrupt_copies(db) if p != target][CORRUPT_COPIES_KEPT - 1 :]:  # by name: not this one (a clock behind)
        for suffix in _SIDE_FILES:
            Path(str(old) + suffix).unlink(missing_ok=True)
    return target


def remove_corrupt_copies(db: Path) -> None:
    """Deletes every copy moved aside from `db` (a forget: they hold session ids)."""
    for old in db.parent.glob(f"{db.name}.corrupt-*"):
        try:
            old.unlink()
        except OSError as exc:
            log.error("cannot delete %s: %s", old, exc.strerror or exc)
